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
``symbol`` (data ``s``, uppercase; a snapshot takes ``symbol`` or the file's symbol),
``venue``, ``source`` = ``b"replay"`` and ``id`` numbered from 1. Float fields a frame does
not carry are NaN; ``created_ns`` and ``published_ns`` are left 0 for the engine to stamp.

How the decoder is fast: numpy finds the lines, parses the receive times and classifies each
frame from its stream name without a Python loop; the frames of one kind are joined into
one JSON array and decoded in one msgspec call into typed structs, which parse the decimal
strings straight to the nearest double; depth levels stay raw JSON, are stripped to one
text of numbers and parsed in one more msgspec call, and each update's best level is a
segmented numpy max. Python touches each frame only in one list comprehension per column.
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
from numpy.typing import NDArray

from market_intel.enums import MarketDataKind, MessageType, Priority
from market_intel.errors import InvalidArgumentError, MessageValidationError
from market_intel.records import MESSAGE_DTYPE, SYMBOL_SIZE

__all__ = ["decode_frames", "load", "replay", "sample_paths", "symbol_of", "venue_of"]

Records = NDArray[np.void]

_VENUES: Final = {"spot": "binance", "usdm": "binance-usdm", "cm": "binance-coinm"}
_SOURCE: Final = b"replay"
_MS: Final = 1_000_000
_FLOAT_FIELDS: Final = ("bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume")


# -- frame schemas: only the fields a record needs; the rest are skipped unparsed ----------


class _BookTicker(msgspec.Struct, gc=False):
    symbol: str = msgspec.field(name="s")
    update_id: int = msgspec.field(name="u")
    bid: float = msgspec.field(name="b")
    bid_size: float = msgspec.field(name="B")
    ask: float = msgspec.field(name="a")
    ask_size: float = msgspec.field(name="A")
    event_ms: int = msgspec.field(default=0, name="E")


class _Trade(msgspec.Struct, gc=False):
    symbol: str = msgspec.field(name="s")
    trade_id: int = msgspec.field(name="t")
    price: float = msgspec.field(name="p")
    quantity: float = msgspec.field(name="q")
    trade_ms: int = msgspec.field(name="T")


class _DepthUpdate(msgspec.Struct, gc=False):
    symbol: str = msgspec.field(name="s")
    update_id: int = msgspec.field(name="u")
    bids: msgspec.Raw = msgspec.field(name="b")
    asks: msgspec.Raw = msgspec.field(name="a")
    event_ms: int = msgspec.field(default=0, name="E")


class _Snapshot(msgspec.Struct, gc=False):
    last_update_id: int = msgspec.field(name="lastUpdateId")
    bids: msgspec.Raw
    asks: msgspec.Raw
    event_ms: int = msgspec.field(default=0, name="E")
    symbol: str = ""


class _BookTickerFrame(msgspec.Struct, gc=False):
    data: _BookTicker


class _TradeFrame(msgspec.Struct, gc=False):
    data: _Trade


class _DepthFrame(msgspec.Struct, gc=False):
    data: _DepthUpdate


# strict=False lets a float field take a JSON string ("61800.20"): msgspec parses it to the
# nearest double, the value float("61800.20") gives, with no Python object per string.
_DECODERS: Final[dict[MarketDataKind, msgspec.json.Decoder[Any]]] = {
    MarketDataKind.QUOTE: msgspec.json.Decoder(list[_BookTickerFrame], strict=False),
    MarketDataKind.TRADE: msgspec.json.Decoder(list[_TradeFrame], strict=False),
    MarketDataKind.DEPTH: msgspec.json.Decoder(list[_DepthFrame], strict=False),
    MarketDataKind.SNAPSHOT: msgspec.json.Decoder(list[_Snapshot], strict=False),
}

# The stream name follows this prefix; its kind is the token after the '@'.
_STREAM_PREFIX: Final = b'{"stream":"'
_STREAM_TOKENS: Final = (
    (MarketDataKind.QUOTE, b'bookTicker"'),
    (MarketDataKind.TRADE, b'trade"'),
    (MarketDataKind.DEPTH, b'depth"'),
    (MarketDataKind.DEPTH, b"depth@"),
)
_MAX_DIGITS: Final = 19  # of a receive time
_NAME_WINDOW: Final = 48  # bytes of a stream name searched for its '@'
_LEVEL_JUNK: Final = b'[]" \t\r\n'
_FLOATS: Final = msgspec.json.Decoder(list[float])


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
    """Return the symbol a recording's file name carries (``cm_btcusd_perp_20240808.gz`` ->
    ``BTCUSD_PERP``)."""
    stem = Path(path).name.split(".", 1)[0]
    parts = stem.split("_")[1:]
    if parts and parts[-1].isdigit():
        parts = parts[:-1]
    if not parts:
        raise InvalidArgumentError(f"path: {os.fspath(path)!r} names no symbol")
    return "_".join(parts).upper()


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
        at equal times), with ``id`` renumbered from 1 in that order.
    """
    parts = []
    for path in sample_paths() if paths is None else paths:
        with open(path, "rb") as file:
            data = gzip.decompress(file.read())
        parts.append(_decode_buffer(data, venue=venue_of(path), symbol_hint=symbol_of(path)))
    if not parts:
        return np.zeros(0, dtype=MESSAGE_DTYPE)
    # dtype= keeps the record layout: numpy 2 promotes a structured dtype with overlapping
    # fields to a packed copy of another size when it concatenates without it.
    merged = np.concatenate(parts, dtype=MESSAGE_DTYPE)
    merged = merged[np.argsort(merged["receive_ns"], kind="stable")]
    merged["id"] = np.arange(1, len(merged) + 1, dtype=np.uint64)
    return merged


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
            bookTicker, trade or depth, or its frame misses a field of its kind.
    """
    return _decode_buffer(b"\n".join(lines), venue=venue, symbol_hint=symbol_hint)


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


# -- the decoder -----------------------------------------------------------------------------


def _decode_buffer(data: bytes, *, venue: str, symbol_hint: str | None) -> Records:
    """Decode a buffer of newline-separated recorded lines (see ``decode_frames``)."""
    venue_bytes = _ascii_field("venue", venue)
    text = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_bounds(text)
    spaces, receive = _receive_times(text, starts, ends)
    kinds = _classify(data, text, spaces + 1, ends)

    out = np.zeros(len(starts), dtype=MESSAGE_DTYPE)
    out["id"] = np.arange(1, len(out) + 1, dtype=np.uint64)
    out["type"] = MessageType.MARKET_DATA
    out["priority"] = Priority.NORMAL
    out["kind"] = kinds
    out["venue"] = venue_bytes
    out["source"] = _SOURCE
    out["receive_ns"] = receive
    for name in _FLOAT_FIELDS:
        out[name] = np.nan

    for kind, fill in _FILLERS.items():
        rows = np.flatnonzero(kinds == kind)
        if len(rows) == 0:
            continue
        chunks = [
            data[a:b] for a, b in zip((spaces[rows] + 1).tolist(), ends[rows].tolist(), strict=True)
        ]
        try:
            frames = _DECODERS[kind].decode(b"[" + b",".join(chunks) + b"]")
        except msgspec.DecodeError as exc:
            row = _failing_chunk(_DECODERS[kind], chunks)
            line = "?" if row is None else _line_at(text, int(starts[rows[row]]))
            raise MessageValidationError(
                f"line {line}: {kind.name} frame: {exc}; expected a Binance "
                f"{kind.name.lower()} frame"
            ) from exc
        fill(out, rows, frames, symbol_hint)
    return out


def _line_bounds(text: NDArray[np.uint8]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Return the start and end (exclusive, before the newline) of every non-blank line."""
    newlines = np.flatnonzero(text == ord("\n"))
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(text)]))
    keep = ends > starts
    return starts[keep], ends[keep]


def _windows(text: NDArray[np.uint8], offsets: NDArray[np.intp], width: int) -> NDArray[np.uint8]:
    """Return the ``width`` bytes from each offset as rows (zeros past the end of ``text``).

    The text is viewed as overlapping ``width``-byte items, one starting at every byte, so
    the gather is a one-dimensional take of whole items (several times faster than indexing
    a two-dimensional sliding window).
    """
    if len(offsets) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    if int(offsets.max()) + width > len(text):
        text = np.concatenate((text, np.zeros(width, dtype=np.uint8)))
    items = np.ndarray(shape=(len(text) - width + 1,), dtype=f"V{width}", buffer=text, strides=(1,))
    rows: NDArray[np.uint8] = items[offsets].view(np.uint8).reshape(len(offsets), width)
    return rows


def _receive_times(
    text: NDArray[np.uint8], starts: NDArray[np.intp], ends: NDArray[np.intp]
) -> tuple[NDArray[np.intp], NDArray[np.int64]]:
    """Return where each line's receive time ends (its first space) and the time itself."""
    head = _windows(text, starts, _MAX_DIGITS + 1)
    width = np.argmax(head == ord(" "), axis=1)
    spaces = starts + width
    bad = (head[np.arange(len(head)), width] != ord(" ")) | (spaces >= ends)
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise MessageValidationError(
            f"line {_line_at(text, starts[line])}: {_excerpt(text, starts[line], ends[line])}; "
            "expected '<receive_ns> <json>'"
        )
    bad = width == 0
    values = np.zeros(len(starts), dtype=np.uint64)
    for column in range(_MAX_DIGITS):  # Horner's rule, one digit column at a time
        digit = head[:, column] - np.uint8(ord("0"))
        inside = column < width
        bad |= inside & (digit > 9)
        values = np.where(inside, values * np.uint64(10) + digit, values)
    bad |= values > np.uint64(np.iinfo(np.int64).max)
    if bad.any():
        line = int(np.flatnonzero(bad)[0])
        raise MessageValidationError(
            f"line {_line_at(text, starts[line])}: receive time "
            f"{_excerpt(text, starts[line], spaces[line])}; expected nanoseconds since the epoch"
        )
    receive: NDArray[np.int64] = values.astype(np.int64)
    return spaces, receive


def _classify(
    data: bytes, text: NDArray[np.uint8], json_starts: NDArray[np.intp], ends: NDArray[np.intp]
) -> NDArray[np.uint8]:
    """Return each frame's kind from the token after the '@' of its stream name; a line with
    no stream is a snapshot."""
    is_stream = _starts_with(_windows(text, json_starts, len(_STREAM_PREFIX)), _STREAM_PREFIX)
    kinds = np.full(len(json_starts), MarketDataKind.SNAPSHOT, dtype=np.uint8)
    if not is_stream.any():
        return kinds
    names = json_starts[is_stream] + len(_STREAM_PREFIX)
    name = _windows(text, names, _NAME_WINDOW)
    at = np.argmax(name == ord("@"), axis=1)
    quote = np.argmax(name == ord('"'), axis=1)
    quote[name[np.arange(len(quote)), quote] != ord('"')] = _NAME_WINDOW
    token_start = names + at + 1
    tokens = _windows(text, token_start, max(len(token) for _, token in _STREAM_TOKENS))
    stream_kinds = np.zeros(len(names), dtype=np.uint8)
    for kind, token in _STREAM_TOKENS:
        stream_kinds[_starts_with(tokens, token) & (stream_kinds == 0)] = kind
    valid = (name[np.arange(len(at)), at] == ord("@")) & (at < quote)
    stream_kinds[~valid | (token_start >= ends[is_stream])] = 0
    if (stream_kinds == 0).any():
        row = int(np.flatnonzero(stream_kinds == 0)[0])
        stream = data[int(names[row]) : int(names[row]) + _NAME_WINDOW].split(b'"', 1)[0]
        raise MessageValidationError(
            f"line {_line_at(text, int(names[row]))}: stream "
            f"{stream.decode(errors='replace')!r}; expected <symbol>@bookTicker, @trade or @depth"
        )
    kinds[is_stream] = stream_kinds
    return kinds


def _starts_with(rows: NDArray[np.uint8], token: bytes) -> NDArray[np.bool_]:
    """Return which rows of bytes begin with ``token`` (a column at a time: fast for short
    tokens, where a reduction along rows is not)."""
    match = np.ones(len(rows), dtype=bool)
    for column, byte in enumerate(token):
        match &= rows[:, column] == byte
    return match


def _failing_chunk(decoder: msgspec.json.Decoder[Any], chunks: list[bytes]) -> int | None:
    """Return the first frame that fails to decode on its own (on the error path only)."""
    for i, chunk in enumerate(chunks):
        try:
            decoder.decode(b"[" + chunk + b"]")
        except msgspec.DecodeError:
            return i
    return None


def _line_at(text: NDArray[np.uint8], offset: int) -> int:
    """Return the 1-based line number of a byte offset (for error messages only)."""
    return int(np.count_nonzero(text[:offset] == ord("\n"))) + 1


def _excerpt(text: NDArray[np.uint8], start: int, end: int) -> str:
    return repr(text[start : min(end, start + 60)].tobytes())


def _ascii_field(field: str, value: str, size: int = 16) -> bytes:
    """Encode a venue or symbol for a record, or raise naming the field."""
    try:
        encoded = value.encode("ascii")
    except UnicodeEncodeError:
        encoded = b""
    if not encoded or len(encoded) > size:
        raise InvalidArgumentError(f"{field}: {value!r} must be 1 to {size} ASCII characters")
    return encoded


def _symbols(names: Sequence[str]) -> NDArray[np.bytes_]:
    """Return the uppercase symbols of frames as a record column."""
    encoded = {name: _ascii_field("symbol", name.upper(), SYMBOL_SIZE) for name in set(names)}
    if len(encoded) == 1:
        return np.full(len(names), next(iter(encoded.values())), dtype=f"S{SYMBOL_SIZE}")
    return np.array([encoded[name] for name in names], dtype=f"S{SYMBOL_SIZE}")


def _ms_to_ns(values: list[int]) -> NDArray[np.int64]:
    return np.array(values, dtype=np.int64) * _MS


def _best_levels(
    sides: Sequence[msgspec.Raw], *, highest: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return, per side (a raw JSON ``[[price, qty], ...]``), the best price with a non-zero
    quantity and that quantity; NaN where the side has none.

    The sides are joined into one text of JSON numbers that one msgspec call parses; the
    best level of each side is a segmented max (bids) or min (asks) over its levels.
    """
    n = len(sides)
    price = np.full(n, np.nan)
    size = np.full(n, np.nan)
    joined = b",".join(sides)
    chars = np.frombuffer(joined, dtype=np.uint8)
    bounds = np.cumsum([0] + [len(side) + 1 for side in sides[:-1]])
    counts = np.add.reduceat((chars == ord("[")).astype(np.int64), bounds) - 1
    total = int(counts.sum())
    if total == 0:
        return price, size
    # brackets, quotes and blanks out: "1.5","2"],["3","4" -> 1.5,2,3,4 (JSON numbers)
    numbers = b",".join([side for side, count in zip(sides, counts.tolist(), strict=True) if count])
    try:
        flat = np.array(_FLOATS.decode(b"[" + numbers.translate(None, _LEVEL_JUNK) + b"]"))
    except msgspec.DecodeError:
        flat = np.zeros(0)
    if flat.size != 2 * total:
        raise MessageValidationError(
            f"depth levels: {total} levels do not parse as [price, quantity] decimal pairs"
        )
    levels = flat.reshape(total, 2)
    sign = 1.0 if highest else -1.0
    key = np.where(levels[:, 1] != 0, sign * levels[:, 0], -np.inf)
    nonempty = np.flatnonzero(counts > 0)
    level_starts = np.cumsum(counts[nonempty]) - counts[nonempty]
    best = np.maximum.reduceat(key, level_starts)
    owner = np.repeat(nonempty, counts[nonempty])
    found = np.isfinite(best)
    price[nonempty[found]] = sign * best[found]
    at_best = np.flatnonzero(key == np.repeat(best, counts[nonempty]))
    at_best = at_best[np.isfinite(key[at_best])]
    size[owner[at_best]] = levels[at_best, 1]
    return price, size


def _fill_quotes(out: Records, rows: NDArray[np.intp], frames: list[Any], hint: str | None) -> None:
    data: list[_BookTicker] = [frame.data for frame in frames]
    out["symbol"][rows] = _symbols([d.symbol for d in data])
    out["update_id"][rows] = np.array([d.update_id for d in data], dtype=np.uint64)
    out["bid"][rows] = np.array([d.bid for d in data])
    out["bid_size"][rows] = np.array([d.bid_size for d in data])
    out["ask"][rows] = np.array([d.ask for d in data])
    out["ask_size"][rows] = np.array([d.ask_size for d in data])
    out["exchange_ns"][rows] = _ms_to_ns([d.event_ms for d in data])


def _fill_trades(out: Records, rows: NDArray[np.intp], frames: list[Any], hint: str | None) -> None:
    data: list[_Trade] = [frame.data for frame in frames]
    out["symbol"][rows] = _symbols([d.symbol for d in data])
    out["update_id"][rows] = np.array([d.trade_id for d in data], dtype=np.uint64)
    out["last_price"][rows] = np.array([d.price for d in data])
    out["last_size"][rows] = np.array([d.quantity for d in data])
    out["exchange_ns"][rows] = _ms_to_ns([d.trade_ms for d in data])


def _fill_depth(out: Records, rows: NDArray[np.intp], frames: list[Any], hint: str | None) -> None:
    data: list[_DepthUpdate] = [frame.data for frame in frames]
    out["symbol"][rows] = _symbols([d.symbol for d in data])
    out["update_id"][rows] = np.array([d.update_id for d in data], dtype=np.uint64)
    out["exchange_ns"][rows] = _ms_to_ns([d.event_ms for d in data])
    out["bid"][rows], out["bid_size"][rows] = _best_levels([d.bids for d in data], highest=True)
    out["ask"][rows], out["ask_size"][rows] = _best_levels([d.asks for d in data], highest=False)


def _fill_snapshots(
    out: Records, rows: NDArray[np.intp], frames: list[Any], hint: str | None
) -> None:
    snapshots: list[_Snapshot] = frames
    names = [s.symbol or hint or "" for s in snapshots]
    if not all(names):
        raise MessageValidationError(
            "snapshot symbol: the REST snapshot names no symbol; pass symbol_hint"
        )
    out["symbol"][rows] = _symbols(names)
    out["update_id"][rows] = np.array([s.last_update_id for s in snapshots], dtype=np.uint64)
    out["exchange_ns"][rows] = _ms_to_ns([s.event_ms for s in snapshots])
    out["bid"][rows], out["bid_size"][rows] = _best_levels(
        [s.bids for s in snapshots], highest=True
    )
    out["ask"][rows], out["ask_size"][rows] = _best_levels(
        [s.asks for s in snapshots], highest=False
    )


_FILLERS: Final[
    dict[MarketDataKind, Callable[[Records, NDArray[np.intp], list[Any], str | None], None]]
] = {
    MarketDataKind.QUOTE: _fill_quotes,
    MarketDataKind.TRADE: _fill_trades,
    MarketDataKind.DEPTH: _fill_depth,
    MarketDataKind.SNAPSHOT: _fill_snapshots,
}
