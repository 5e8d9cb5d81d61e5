"""Recorded Binance market data: decode its frames into message records, and replay them.

A recording is gzip text, one frame a line: ``<local receive time, ns> <raw JSON frame>``.
Combined-stream frames (``{"stream": "btcusdt@bookTicker", "data": {...}}``) become one
``MESSAGE_DTYPE`` record each, of type ``MARKET_DATA`` and priority ``NORMAL``:

========================  =========  ===============================================
frame                     kind       fields
========================  =========  ===============================================
``<sym>@bookTicker``      QUOTE      bid=b, bid_size=B, ask=a, ask_size=A, update_id=u
``<sym>@trade``           TRADE      last_price=p, last_size=q, update_id=t (trade id),
                                     exchange_ns=T (trade time)
``<sym>@depth...``        DEPTH      update_id=u; bid/ask and sizes: the best levels of
                                     the update with a non-zero quantity (NaN if none)
REST snapshot line        SNAPSHOT   update_id=lastUpdateId; best bid/ask and sizes
========================  =========  ===============================================

Every record has ``receive_ns`` (the line's receive time), ``exchange_ns`` (the frame's
``E`` event time, or ``T`` for trades, ms -> ns; 0 when the frame carries neither),
``symbol`` (data ``s``, or a snapshot's ``symbol`` or else the file's symbol, in the
canonical form ``normalize_symbol`` gives: ``BTCUSDT`` is ``BTC-USDT``, ``BTCUSD_PERP`` is
``BTC-USD-PERP``), ``venue``, ``source`` = ``b"replay"`` and ``id`` numbered from 1. Float
fields a frame does not carry are NaN; ``created_ns`` and ``published_ns`` are left 0 for the
engine to stamp.

The decoding is native (``market_intel._core``, over the ``market-intel-adapters`` crate):
it runs without the GIL, gunzips, splits and decodes the lines on all cores, and writes
each record once, straight into its merged position in one array allocated at its final
size. Decimal strings parse to the nearest double, the value ``float()`` gives.
"""

from __future__ import annotations

import importlib.resources
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from market_intel import _core
from market_intel.adapters.normalize import normalize_symbol
from market_intel.errors import InvalidArgumentError, MalformedFrameError
from market_intel.records import MESSAGE_DTYPE

__all__ = ["decode_frames", "load", "replay", "sample_paths", "symbol_of", "venue_of"]

Records = NDArray[np.void]

_VENUES: Final = {"spot": "binance", "usdm": "binance-usdm", "cm": "binance-coinm"}


def venue_of(path: str | os.PathLike[str]) -> str:
    """Return the venue of a recording from its file name prefix.

    Args:
        path: A recording such as ``spot_btcusdt_20240808.gz``.

    Returns:
        ``"binance"`` for ``spot_``, ``"binance-usdm"`` for ``usdm_``, ``"binance-coinm"``
        for ``cm_``.

    Raises:
        InvalidArgumentError: The prefix is none of these.
    """
    prefix = Path(path).name.split("_", 1)[0]
    try:
        return _VENUES[prefix]
    except KeyError:
        raise InvalidArgumentError(
            f"path: {os.fspath(path)!r} has prefix {prefix!r}; expected one of {sorted(_VENUES)}"
        ) from None


def symbol_of(path: str | os.PathLike[str]) -> str:
    """Return the canonical symbol a recording's file name carries.

    Args:
        path: A recording such as ``cm_btcusd_perp_20240808.gz``.

    Returns:
        The symbol as ``normalize_symbol`` gives it: ``BTC-USD-PERP`` for
        ``cm_btcusd_perp_20240808.gz``, ``BTC-USDT`` for ``spot_btcusdt_20240808.gz``.

    Raises:
        InvalidArgumentError: The name carries no symbol, or one with spaces or control
            characters.
    """
    stem = Path(path).name.split(".", 1)[0]
    parts = stem.split("_")[1:]
    if parts and parts[-1].isdigit():
        parts = parts[:-1]
    try:
        return normalize_symbol("binance", "_".join(parts))
    except MalformedFrameError:
        raise InvalidArgumentError(f"path: {os.fspath(path)!r} names no symbol") from None


def sample_paths() -> list[Path]:
    """Return the recordings of the packaged sample, sorted by name."""
    root = importlib.resources.files("market_intel") / "data" / "binance"
    return sorted(Path(str(entry)) for entry in root.iterdir() if entry.name.endswith(".gz"))


def load(paths: Iterable[str | os.PathLike[str]] | None = None) -> Records:
    """Decode recordings and merge them into one stream ordered by receive time.

    Args:
        paths: The ``.gz`` recordings; the packaged sample when ``None``. Each file's venue
            and snapshot symbol come from its name (see ``venue_of`` and ``symbol_of``).

    Returns:
        ``MESSAGE_DTYPE`` records sorted by ``receive_ns`` (stable: a file's order is kept
        at equal times, and earlier files come first), with ``id`` numbered from 1 in that
        order.

    Raises:
        InvalidArgumentError: A file name has no known venue prefix or no symbol.
        OSError: A file cannot be read or is not valid gzip (the message names it).
        MessageValidationError: A line does not decode (the message names the file and
            the line, as ``decode_frames`` does).
    """
    files = [
        (os.fspath(path), venue_of(path), symbol_of(path))
        for path in (sample_paths() if paths is None else paths)
    ]
    return _core._load_binance(files, MESSAGE_DTYPE)


def decode_frames(lines: Iterable[bytes], *, venue: str, symbol_hint: str | None = None) -> Records:
    """Decode recorded lines into one market data record per frame, in line order.

    Args:
        lines: ``<receive_ns> <json>`` lines, with or without their newline; blank lines
            are skipped.
        venue: The venue every record carries (at most 16 ASCII bytes).
        symbol_hint: The symbol of a REST snapshot line that names none.

    Returns:
        ``MESSAGE_DTYPE`` records with ``id`` numbered from 1.

    Raises:
        InvalidArgumentError: ``venue`` does not fit.
        MessageValidationError: A line is not ``<receive_ns> <json>``, its stream is not
            bookTicker, trade or depth, or its frame misses a field of its kind or has one
            that does not parse (the message names the line).
    """
    return _core._decode_binance(b"\n".join(lines), venue, symbol_hint, MESSAGE_DTYPE)


def replay(
    records: Records,
    *,
    batch_size: int = 4096,
    speed: float = 0.0,
    max_span_ns: int = 1_000_000,
    clock: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[Records]:
    """Yield consecutive slices of ``records``, paced to their receive times if asked.

    Args:
        records: Records ordered by ``receive_ns`` (as ``load`` returns them).
        batch_size: The most records a slice holds.
        speed: 0 yields as fast as the consumer takes them; ``speed > 0`` emits each slice
            when ``(its first receive_ns - the first receive_ns) / speed`` has elapsed on
            ``clock`` since the first slice (1.0 is real time, 10.0 ten times faster).
        max_span_ns: When paced, a slice is also cut where its receive times would span
            more than this, so no record is emitted more than ``max_span_ns / speed`` early.
        clock: Nanosecond monotonic clock.
        sleep: Sleeps a number of seconds.

    Yields:
        Views of ``records``, in order, together covering every record once.

    Raises:
        InvalidArgumentError: An argument is out of range.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size: {batch_size} must be at least 1")
    if not (speed >= 0 and math.isfinite(speed)):
        raise InvalidArgumentError(f"speed: {speed} must be a finite number >= 0")
    if max_span_ns < 1:
        raise InvalidArgumentError(f"max_span_ns: {max_span_ns} must be at least 1")
    n = len(records)
    if speed == 0:
        for start in range(0, n, batch_size):
            yield records[start : start + batch_size]
        return
    if n == 0:
        return
    receive = records["receive_ns"]
    first = int(receive[0])
    starts = _paced_starts(receive, batch_size, max_span_ns).tolist()
    stops = [*starts[1:], n]
    begin = clock()
    for start, stop in zip(starts, stops, strict=True):
        due = begin + (int(receive[start]) - first) / speed
        wait = due - clock()
        if wait > 0:
            sleep(wait / 1e9)
        yield records[start:stop]


def _paced_starts(
    receive: NDArray[np.int64], batch_size: int, max_span_ns: int
) -> NDArray[np.intp]:
    """Return slice starts: where a ``max_span_ns`` bucket of receive time begins, and every
    ``batch_size`` records within a bucket."""
    bucket = (receive - receive[0]) // max_span_ns
    edges = np.flatnonzero(np.diff(bucket)) + 1
    bounds = np.concatenate(([0], edges, [len(receive)]))
    lengths = np.diff(bounds)
    pieces = -(-lengths // batch_size)  # ceil
    piece_start = np.repeat(bounds[:-1], pieces)
    rank = np.arange(int(pieces.sum())) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    starts: NDArray[np.intp] = piece_start + rank * batch_size
    return starts
