"""Recorded venue traffic read back as frames, as updates, and replayed as engine messages.

Two recording formats:

- exchange recordings, ``<VENUE>.jsonl.zst``: zstd JSON lines, a header
  ``{"t": "header", "exchange": .., "config": {channel: [symbols]}}`` and then
  ``{"t": "http" | "connect" | "send" | "recv", "conn": .., "ts": <epoch s>, "data": ..}``;
  ``ts`` becomes ns exactly from the number's text (no float on the way);
- Binance recordings, ``*.gz``: ``<receive ns> <raw JSON frame>`` per line, one REST depth
  snapshot line without ``"stream"``; the venue and the snapshot's symbol come from the file
  name (``usdm_btcusdt_20240808.gz``, see ``adapters.binance.venue_of``).

The layers::

    recorded_frames(path)    RecordedFrame per line, in receive-time order
         |  parser_for(venue), one parser per connection
    recorded_updates(path)   QuoteUpdate | TradeUpdate | BookUpdate | FeedEvent |
         |                   MalformedFrameError (a frame that cannot be read, as a value)
    replay_messages(paths)   CoreMessage, files merged by receive time, ids 1, 2, 3, ...,
                             created_ns = receive time, paced at recorded speed x ``speed``

Everything is deterministic: the same files give the same frames, updates, message ids and
timestamps every time. Frames are ordered by receive time, stably (a file's own order is kept
at equal times, and earlier files come first): the exchange recordings group their lines by
connection. A line that cannot be read keeps its place: it takes the receive time of the line
before it.

REST responses: a Binance depth snapshot (``/depth?symbol=NKNUSDT``) is parsed with the
symbol its URL names (the exchange recordings request the snapshots in no fixed order, so
the URL, not the header's symbol list, says whose book it is); other responses (exchange
info, asset pairs, product lists) are skipped. A ``connect`` line gives
``FeedEvent("connected")``, a skipped venue sequence number ``FeedEvent("gap")``, and the end
of a recording ``FeedEvent("end")``.
"""

from __future__ import annotations

import gzip
import heapq
import io
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
import zstandard

from market_intel.adapters.binance import symbol_of, venue_of
from market_intel.adapters.normalize import FeedEvent, FeedItem, Parsed, canonical_venue
from market_intel.adapters.validation import ValidationIssue, Validator
from market_intel.adapters.venues import VenueParser, parser_for
from market_intel.adapters.venues.binance import BinanceParser
from market_intel.errors import InvalidArgumentError, MalformedFrameError
from market_intel.messages import CoreMessage

__all__ = [
    "RecordedFrame",
    "RecordingReplay",
    "RecordingSource",
    "RecordingSourceStatistics",
    "ReplayStatistics",
    "recorded_frames",
    "recorded_updates",
    "recording_venue",
    "replay_messages",
]

FrameKind = Literal["recv", "http", "send", "connect", "invalid"]


class RecordedFrame(msgspec.Struct, frozen=True, gc=False):
    """One recorded line.

    Attributes:
        receive_ns: When the line was recorded, ns since the epoch.
        connection: The connection it belongs to (``KRAKEN.ws.50``; a Binance recording's
            file stem).
        kind: ``recv`` (a frame received), ``http`` (a REST response), ``send`` (a frame
            sent), ``connect``, or ``invalid`` (a line that could not be split; ``data`` is
            the raw line).
        data: The payload: the frame, the response body, or the address connected to. Bytes
            when it is not UTF-8.
        url: The URL of a REST request (``http``), else empty.
        symbol: The instrument a REST response is about, when the recording says (the URL's
            ``symbol`` parameter as the venue spells it, or the canonical symbol of a Binance
            recording's file name, see ``adapters.binance.symbol_of``), else empty.
        line: The line number in the file (the header is line 1 of an exchange recording).
    """

    receive_ns: int
    connection: str
    kind: FrameKind
    data: str | bytes
    url: str = ""
    symbol: str = ""
    line: int = 0


class _Line(msgspec.Struct, gc=False):
    t: str
    ts: Decimal = Decimal(0)
    conn: str = ""
    data: str = ""
    url: str = ""
    addr: str = ""


class _Header(msgspec.Struct, gc=False):
    t: str
    exchange: str
    config: dict[str, list[str]] = {}


_LINE: Final = msgspec.json.Decoder(_Line)
_HEADER: Final = msgspec.json.Decoder(_Header)
_KINDS: Final = frozenset(("recv", "http", "send", "connect"))


def _is_exchange_recording(path: Path) -> bool:
    return path.name.endswith(".jsonl.zst")


def _read_lines(path: Path) -> list[bytes]:
    if _is_exchange_recording(path):
        with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
            text = reader.read()
    elif path.suffix == ".gz":
        with gzip.open(path, "rb") as reader:
            text = reader.read()
    else:
        raise InvalidArgumentError(
            f"path: {os.fspath(path)!r}; expected a <VENUE>.jsonl.zst or a Binance .gz recording"
        )
    return text.splitlines()


def recording_venue(path: str | os.PathLike[str]) -> str:
    """Return the canonical venue of a recording (its header's ``exchange``, or a Binance
    recording's file name prefix).

    Raises:
        InvalidArgumentError: The file is neither kind of recording.
        MalformedFrameError: An exchange recording's header cannot be read.
    """
    path = Path(path)
    if not _is_exchange_recording(path):
        return venue_of(path)
    with path.open("rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as reader:
        first = io.BufferedReader(reader).readline()
    return canonical_venue(_header(first, path).exchange)


def _header(line: bytes, path: Path) -> _Header:
    try:
        header = _HEADER.decode(line)
    except msgspec.DecodeError as exc:
        raise MalformedFrameError(
            path.name, "header", line[:80], f"a header line {{'t': 'header', ..}} ({exc})"
        ) from None
    if header.t != "header":
        raise MalformedFrameError(path.name, "header.t", header.t, "'header'")
    return header


def recorded_frames(
    path: str | os.PathLike[str], *, order: Literal["receive", "file"] = "receive"
) -> Iterator[RecordedFrame]:
    """Yield a recording's lines as frames.

    Args:
        path: A ``<VENUE>.jsonl.zst`` exchange recording or a Binance ``.gz`` recording.
        order: ``receive``: by receive time, stably; ``file``: as the lines are written.

    Raises:
        InvalidArgumentError: The file is neither kind of recording.
        MalformedFrameError: An exchange recording's header cannot be read.
        OSError: The file cannot be read or decompressed.
    """
    path = Path(path)
    frames = _frames(path)
    if order == "receive":
        frames.sort(key=_receive_ns)
    elif order != "file":
        raise InvalidArgumentError(f"order: {order!r}; expected 'receive' or 'file'")
    return iter(frames)


def _receive_ns(frame: RecordedFrame) -> int:
    return frame.receive_ns


def _frames(path: Path) -> list[RecordedFrame]:
    lines = _read_lines(path)
    if _is_exchange_recording(path):
        if not lines:
            raise MalformedFrameError(path.name, "header", b"", "a header line")
        _header(lines[0], path)
        frames = [_exchange_frame(line, number) for number, line in enumerate(lines[1:], 2)]
    else:
        connection = path.name.split(".", 1)[0]
        symbol = symbol_of(path)
        frames = [
            _binance_frame(line, number, connection, symbol)
            for number, line in enumerate(lines, 1)
            if line.strip()
        ]
    previous = 0
    for index, frame in enumerate(frames):
        if frame.kind == "invalid":
            frames[index] = msgspec.structs.replace(frame, receive_ns=previous)
        else:
            previous = frame.receive_ns
    return frames


def _exchange_frame(line: bytes, number: int) -> RecordedFrame:
    try:
        item = _LINE.decode(line)
        if item.t not in _KINDS:
            raise msgspec.ValidationError(f"unknown line type {item.t!r}")
        ts = item.ts
        if not (ts.is_finite() and ts >= 0):
            raise msgspec.ValidationError(f"ts {ts} is not a time")
    except msgspec.DecodeError:
        return RecordedFrame(0, "", "invalid", line, line=number)
    data = item.addr if item.t == "connect" else item.data
    symbol = ""
    if item.url:
        symbol = parse_qs(urlsplit(item.url).query).get("symbol", [""])[0]
    kind: FrameKind = item.t  # type: ignore[assignment]
    return RecordedFrame(
        int(ts.scaleb(9)), item.conn, kind, data, url=item.url, symbol=symbol, line=number
    )


def _binance_frame(line: bytes, number: int, connection: str, symbol: str) -> RecordedFrame:
    stamp, _, frame = line.partition(b" ")
    if not (stamp.isdigit() and frame):
        return RecordedFrame(0, connection, "invalid", line, line=number)
    data: str | bytes
    try:
        data = frame.decode("utf-8")
    except UnicodeDecodeError:
        data = frame
    if frame.startswith(b'{"stream"'):
        return RecordedFrame(int(stamp), connection, "recv", data, line=number)
    return RecordedFrame(int(stamp), connection, "http", data, symbol=symbol, line=number)


def recorded_updates(
    path: str | os.PathLike[str], *, venue: str | None = None
) -> Iterator[FeedItem]:
    """Yield a recording's updates and feed events in receive-time order.

    A frame that cannot be read is yielded as its ``MalformedFrameError`` (the field names
    the line: ``line 12: data.p``), never raised, and the replay goes on.

    Args:
        path: A ``<VENUE>.jsonl.zst`` exchange recording or a Binance ``.gz`` recording.
        venue: The venue whose parser reads the frames; by default the recording's own
            (``recording_venue``).

    Raises:
        InvalidArgumentError: The file is neither kind of recording, or no parser reads
            ``venue``.
        OSError: The file cannot be read or decompressed.
    """
    return (item for _, item in _timed_updates(path, venue))


def _timed_updates(
    path: str | os.PathLike[str], venue: str | None
) -> Iterator[tuple[int, FeedItem]]:
    """Yield ``(receive_ns, item)`` pairs of a recording, in receive-time order."""
    name = canonical_venue(venue) if venue is not None else recording_venue(path)
    frames = recorded_frames(path)
    parser_for(name)  # fail now, not at the first frame, if no parser reads the venue
    return _parse_frames(frames, name)


def _parse_frames(frames: Iterable[RecordedFrame], venue: str) -> Iterator[tuple[int, FeedItem]]:
    parsers: dict[str, VenueParser] = {}
    sequences: dict[str, int] = {}
    last_ns = 0
    for frame in frames:
        receive_ns = frame.receive_ns
        last_ns = receive_ns or last_ns
        kind = frame.kind
        if kind == "recv" or (kind == "http" and frame.symbol):
            parser = parsers.get(frame.connection)
            if parser is None:
                parser = parsers[frame.connection] = parser_for(venue)
            try:
                if kind == "http":
                    if not isinstance(parser, BinanceParser):
                        continue
                    parsed = parser.parse_snapshot(frame.data, receive_ns, frame.symbol)
                else:
                    parsed = parser.parse(frame.data, receive_ns)
            except MalformedFrameError as exc:
                yield receive_ns, _at_line(exc, frame.line)
                continue
            if parsed.sequence is not None:
                gap = _gap(sequences, frame.connection, parsed, venue, receive_ns)
                if gap is not None:
                    yield receive_ns, gap
            for event in parsed.events:
                yield receive_ns, event
            for update in parsed.updates:
                yield receive_ns, update
        elif kind == "connect":
            text = str(frame.data)
            yield (
                receive_ns,
                FeedEvent(venue=venue, code="connected", text=text, receive_ns=receive_ns),
            )
        elif kind == "invalid":
            yield (
                last_ns,
                MalformedFrameError(
                    venue, f"line {frame.line}", frame.data, "a recorded line of a known form"
                ),
            )
    yield last_ns, FeedEvent(venue=venue, code="end", receive_ns=last_ns)


def _gap(
    sequences: dict[str, int], connection: str, parsed: Parsed, venue: str, receive_ns: int
) -> FeedEvent | None:
    sequence = parsed.sequence
    assert sequence is not None
    last = sequences.get(connection)
    sequences[connection] = sequence
    if last is None or sequence == last + 1:
        return None
    return FeedEvent(
        venue=venue,
        code="gap",
        text=f"{connection}: sequence {sequence} after {last}",
        receive_ns=receive_ns,
    )


def _at_line(exc: MalformedFrameError, line: int) -> MalformedFrameError:
    located = MalformedFrameError(exc.venue, f"line {line}: {exc.field}", exc.value, exc.expected)
    located.__cause__ = exc
    return located


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayStatistics:
    """Counters of one replay at one moment."""

    items: int
    """Updates, feed events and malformed frames read."""
    messages: int
    """Messages yielded."""
    updates: int
    events: int
    malformed: int
    rejected: int
    """Updates the validator rejected."""
    flagged: int
    """Messages yielded with issues in their metadata."""
    errors: tuple[str, ...] = field(default=())
    """The first malformed frames' error texts (at most 100)."""


class RecordingReplay:
    """An iterator of the messages of a replay, with its counters (``statistics()``).

    Made by ``replay_messages``.
    """

    def __init__(
        self,
        items: Iterator[FeedItem],
        *,
        speed: float | None,
        source: str,
        validator: Validator | None,
        clock: Callable[[], int],
        sleep: Callable[[float], object],
    ) -> None:
        self._items = items
        self._speed = speed
        self._source = source
        self._validator = validator
        self._clock = clock
        self._sleep = sleep
        self._started: tuple[int, int] | None = None
        self._messages = self._updates = self._events = 0
        self._malformed = self._rejected = self._flagged = 0
        self._errors: list[str] = []
        self._events_seen: list[FeedEvent] = []

    def __iter__(self) -> RecordingReplay:
        return self

    def __next__(self) -> CoreMessage:
        validator = self._validator
        for item in self._items:
            if isinstance(item, FeedEvent):
                self._events += 1
                self._events_seen.append(item)
                if item.code == "gap" and validator is not None:
                    validator.record(ValidationIssue.GAP)
                continue
            if isinstance(item, MalformedFrameError):
                self._malformed += 1
                if len(self._errors) < 100:
                    self._errors.append(str(item))
                if validator is not None:
                    validator.record(ValidationIssue.MALFORMED)
                continue
            self._updates += 1
            flags = ""
            if validator is not None:
                verdict = validator.check(item)
                if not verdict.accepted:
                    self._rejected += 1
                    continue
                flags = verdict.flags
            self._messages += 1
            message = item.to_message(
                source=self._source,
                message_id=self._messages,
                metadata={"issues": flags} if flags else None,
            )
            if flags:
                self._flagged += 1
            if self._speed is not None:
                self._pace(item.receive_ns)
            return message
        raise StopIteration

    def _pace(self, receive_ns: int) -> None:
        if self._started is None:
            self._started = (self._clock(), receive_ns)
            return
        begin, first = self._started
        assert self._speed is not None
        due = begin + (receive_ns - first) / self._speed
        wait = due - self._clock()
        if wait > 0:
            self._sleep(wait / 1e9)

    def events(self) -> list[FeedEvent]:
        """Return the feed events read so far (connections, gaps, ends), in order."""
        return list(self._events_seen)

    def statistics(self) -> ReplayStatistics:
        """Return the counters so far."""
        return ReplayStatistics(
            items=self._updates + self._events + self._malformed,
            messages=self._messages,
            updates=self._updates,
            events=self._events,
            malformed=self._malformed,
            rejected=self._rejected,
            flagged=self._flagged,
            errors=tuple(self._errors),
        )


def replay_messages(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    speed: float | None = None,
    source: str = "replay",
    validator: Validator | None = None,
    clock: Callable[[], int] = time.monotonic_ns,
    sleep: Callable[[float], object] = time.sleep,
) -> RecordingReplay:
    """Replay recordings as ``MARKET_DATA`` messages, merged by receive time.

    Messages are numbered 1, 2, 3, ... in replay order, and each one's ``created_ns`` is its
    update's receive time, so a replay of the same files gives the same messages every time.
    Feed events and malformed frames give no message; they are counted (``statistics()``).

    Args:
        paths: Recordings (``<VENUE>.jsonl.zst`` or Binance ``.gz``); equal receive times
            keep the order of the files given.
        speed: ``None`` replays as fast as the consumer takes the messages; ``speed > 0``
            yields each message when ``(its receive time - the first one's) / speed`` has
            elapsed on ``clock`` since the first (1.0 is recorded speed, 10.0 ten times
            faster).
        source: The messages' ``source``.
        validator: Checks each update: rejected ones are dropped, flagged ones carry
            ``metadata["issues"]`` (``"crossed,precision"``); malformed frames are recorded
            on it as ``ValidationIssue.MALFORMED`` and sequence gaps as ``ValidationIssue.GAP``.
        clock: Monotonic clock in ns.
        sleep: Sleeps a number of seconds.

    Raises:
        InvalidArgumentError: ``speed`` is not a finite number > 0, or a file is neither kind
            of recording.
        OSError: A file cannot be read or decompressed.
    """
    if speed is not None and not (speed > 0 and math.isfinite(speed)):
        raise InvalidArgumentError(f"speed: {speed!r}; expected None or a finite number > 0")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    streams = [_timed_updates(path, None) for path in paths]
    if not streams:
        raise InvalidArgumentError("paths: []; expected at least one recording")
    merged = (item for _, item in heapq.merge(*streams, key=itemgetter(0)))
    return RecordingReplay(
        merged, speed=speed, source=source, validator=validator, clock=clock, sleep=sleep
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingSourceStatistics:
    """A ``RecordingSource``'s counters at one moment."""

    items: int
    updates: int
    events: int
    malformed: int
    last_receive_ns: int


class RecordingSource:
    """Recordings as a feed for ``DataIngestionAgent``: their items merged by receive time,
    at full speed or paced at recorded speed x ``speed``.

    The agent judges staleness on the recording's own clock (``recorded`` is true) and
    numbers messages itself when asked (``deterministic_ids``), so the same files give the
    same messages every run.

    Args:
        paths: Recordings (``<VENUE>.jsonl.zst`` or Binance ``.gz``); equal receive times keep
            the order of the files given.
        speed: ``None`` for full speed; ``speed > 0`` yields each item when
            ``(its receive time - the first one's) / speed`` has elapsed on ``clock``.
        clock: Monotonic clock in ns.
        sleep: Sleeps a number of seconds.

    Raises:
        InvalidArgumentError: ``speed`` is not a finite number > 0, no path is given, or a
            file is neither kind of recording.
    """

    recorded = True

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        *,
        speed: float | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise InvalidArgumentError(f"speed: {speed!r}; expected None or a finite number > 0")
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InvalidArgumentError("paths: []; expected at least one recording")
        for path in self.paths:
            recording_venue(path)  # refuse a file that is not a recording now
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._items = self._updates = self._events = self._malformed = 0
        self._last_ns = 0

    def __iter__(self) -> Iterator[FeedItem]:
        streams = [_timed_updates(path, None) for path in self.paths]
        started: tuple[int, int] | None = None
        for receive_ns, item in heapq.merge(*streams, key=itemgetter(0)):
            if self._closed:
                return
            if self.speed is not None and receive_ns:
                if started is None:
                    started = (self._clock(), receive_ns)
                else:
                    due = started[0] + (receive_ns - started[1]) / self.speed
                    wait = due - self._clock()
                    if wait > 0:
                        self._sleep(wait / 1e9)
            self._items += 1
            if isinstance(item, FeedEvent):
                self._events += 1
            elif isinstance(item, MalformedFrameError):
                self._malformed += 1
            else:
                self._updates += 1
            self._last_ns = receive_ns or self._last_ns
            yield item

    def close(self) -> None:
        """Stop the iteration at the next item."""
        self._closed = True

    def statistics(self) -> RecordingSourceStatistics:
        """Return the counters."""
        return RecordingSourceStatistics(
            items=self._items,
            updates=self._updates,
            events=self._events,
            malformed=self._malformed,
            last_receive_ns=self._last_ns,
        )
