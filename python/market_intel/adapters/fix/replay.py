"""Split FIX byte streams into validated messages, and replay recorded FIX files.

A recording is FIX messages concatenated, SOH-delimited, as they crossed the wire.
``FixFrameReader`` cuts a stream (a file, or a socket's bytes) into messages with
simplefix's parser and validates each one:

- BeginString (8), BodyLength (9) and MsgType (35) are the first three fields and CheckSum
  (10) the last;
- BodyLength is the byte count from after the 9 field up to the 10 field;
- CheckSum is the sum of every byte before the 10 field, modulo 256, as three digits.

A message that fails is reported as a ``MalformedFrameError`` naming the field, the value
and what was expected (and the message's position in the stream), then skipped: the reader
resynchronizes on the next ``8=FIX`` and goes on. Garbage bytes, a message cut short by the
next one, an empty value and a stream that ends inside a message are all reported this way;
none of them raises.

``replay_file`` converts a whole recording with ``FixConverter``: one list of engine
messages, numbered from 1 with ``created_ns`` taken from the messages themselves, so the
same file always gives equal results.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, cast

import simplefix

from market_intel.adapters.fix.convert import FixConverter, FixMessage
from market_intel.errors import MalformedFrameError
from market_intel.messages import CoreMessage

__all__ = ["FixFrame", "FixFrameReader", "FixReplay", "read_frames", "replay_file"]

_BEGIN: Final = b"8=FIX"
_CHUNK: Final = 256  # simplefix copies its buffer per field: keep it short


@dataclass(frozen=True, slots=True)
class FixFrame:
    """One complete FIX message that passed validation.

    Attributes:
        message: The parsed message (a ``simplefix.FixMessage``).
        raw: Its bytes, exactly as read.
        index: Its position in the stream: messages and malformed stretches counted from 0.
    """

    message: FixMessage
    raw: bytes
    index: int

    @property
    def msg_type(self) -> str:
        """MsgType (35)."""
        value = self.message.get(35)
        return "" if value is None else value.decode("ascii", "replace")


def _check(raw: bytes, message: FixMessage) -> tuple[str, object, str] | None:
    """Return ``(field, value, expected)`` for the first problem of a message, or None."""
    pairs = message.pairs
    if len(pairs) < 4:
        return "message", raw, "BeginString, BodyLength, MsgType ... CheckSum"
    for position, (tag, name) in enumerate(((b"8", "BeginString"), (b"9", "BodyLength"))):
        if pairs[position][0] != tag:
            return f"field {position + 1}", pairs[position][0], f"{name}({tag.decode()})"
    if pairs[2][0] != b"35":
        return "field 3", pairs[2][0], "MsgType(35)"
    begin, length = pairs[0][1], pairs[1][1]
    if not begin.startswith(b"FIX"):
        return "BeginString(8)", begin, "FIX.4.x or FIXT.1.1"
    tag, checksum = pairs[-1]
    if tag != b"10":
        return "last field", tag, "CheckSum(10)"
    if not length.isdigit():
        return "BodyLength(9)", length, "a byte count"
    start = len(begin) + len(length) + 6  # "8=" SOH "9=" SOH
    end = len(raw) - len(checksum) - 4  # "10=" SOH
    if int(length) != end - start:
        return "BodyLength(9)", length, f"{end - start}, the bytes between 9 and 10"
    actual = f"{sum(raw[:end]) % 256:03d}".encode()
    if checksum != actual:
        return "CheckSum(10)", checksum, f"{actual.decode()}, the sum of the bytes mod 256"
    return None


class FixFrameReader:
    """Cut a FIX byte stream into validated messages with simplefix's parser.

    Feed bytes as they come (``feed``); each call returns the messages completed so far and
    the malformed stretches found, in stream order. ``finish`` reports a message left
    incomplete at the end of the stream.

    Args:
        venue: The venue named in the errors.

    Attributes:
        frames: Valid messages returned so far.
        malformed: Malformed stretches reported so far.
    """

    def __init__(self, *, venue: str = "fix") -> None:
        self.venue = venue
        self.frames = 0
        self.malformed = 0
        self._parser = simplefix.FixParser()

    def _error(self, name: str, value: object, expected: str) -> MalformedFrameError:
        index = self.frames + self.malformed
        self.malformed += 1
        return MalformedFrameError(self.venue, f"{name} of message {index}", value, expected)

    def _resync(self) -> None:
        """Drop the stretch being parsed, up to the next BeginString."""
        parser = self._parser
        buf: bytes = parser.buf
        at = buf.find(_BEGIN, 1)
        if at < 0:  # keep only a tail that may begin the next BeginString; drop >= 1 byte
            keep = min(len(_BEGIN) - 1, len(buf) - 1)
            while keep > 0 and not _BEGIN.startswith(buf[-keep:]):
                keep -= 1
            at = len(buf) - keep
        parser.buf = buf[at:]
        parser.pairs = []
        parser.raw_len = 0

    def feed(self, data: bytes) -> list[FixFrame | MalformedFrameError]:
        """Add bytes and return what they complete: messages and malformed stretches."""
        out: list[FixFrame | MalformedFrameError] = []
        for at in range(0, len(data), _CHUNK):
            self._parser.append_buffer(data[at : at + _CHUNK])
            self._drain(out)
        return out

    def _drain(self, out: list[FixFrame | MalformedFrameError]) -> None:
        parser = self._parser
        while True:
            try:
                message = cast(FixMessage | None, parser.get_message())
            except simplefix.errors.ParsingError as exc:
                snippet = bytes(parser.buf[:40])
                kind = type(exc).__name__
                out.append(self._error("field", snippet, f"tag=value fields ({kind})"))
                self._resync()
                continue
            if message is None:
                return
            raw = message.encode(raw=True)
            problem = _check(raw, message)
            if problem is None:
                out.append(FixFrame(message, raw, self.frames + self.malformed))
                self.frames += 1
                continue
            cut = raw.find(_BEGIN, 1)
            if cut > 0:
                # A message cut short by the next one: report the stump, parse the rest again.
                stump = raw[:cut][-40:]
                expected = "a message ending in CheckSum before the next BeginString"
                out.append(self._error("CheckSum(10)", stump, expected))
                parser.buf = raw[cut:] + parser.buf
                continue
            out.append(self._error(*problem))

    def finish(self) -> list[MalformedFrameError]:
        """Report a message left incomplete at the end of the stream, and reset."""
        parser = self._parser
        rest = bytes(parser.buf).strip()
        pending = parser.pairs
        self._parser = simplefix.FixParser()
        if rest or pending:
            value = rest[-40:] if rest else b"|".join(b"%d=%s" % (t, v) for t, v in pending)[-40:]
            return [self._error("end of stream", value, "a complete message ending in CheckSum")]
        return []


def read_frames(
    source: str | os.PathLike[str] | bytes | Iterable[bytes], *, venue: str = "fix"
) -> Iterator[FixFrame | MalformedFrameError]:
    """Yield the messages and malformed stretches of a recording, in order.

    Args:
        source: A file path, the bytes themselves, or an iterable of byte chunks.
        venue: The venue named in the errors.
    """
    reader = FixFrameReader(venue=venue)
    if isinstance(source, bytes):
        chunks: Iterable[bytes] = (source,)
    elif isinstance(source, str | os.PathLike):
        chunks = _file_chunks(source)
    else:
        chunks = source
    for chunk in chunks:
        yield from reader.feed(chunk)
    yield from reader.finish()


def _file_chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            yield chunk


@dataclass(frozen=True, slots=True, kw_only=True)
class FixReplay:
    """What a recording held.

    Attributes:
        messages: The engine messages, in order, ids numbered from ``first_id``.
        frames: Valid FIX messages read.
        msg_types: Valid FIX messages by MsgType (35), e.g. ``{"X": 11365, "0": 2523}``.
        malformed: Stretches that failed validation and messages that failed conversion.
    """

    messages: list[CoreMessage]
    frames: int
    msg_types: dict[str, int]
    malformed: list[MalformedFrameError] = field(default_factory=list)


def replay_file(
    source: str | os.PathLike[str] | bytes,
    *,
    venue: str,
    source_name: str = "fix-replay",
    first_id: int = 1,
) -> FixReplay:
    """Read a recording and convert every message, deterministically.

    Args:
        source: A file path, or the recording's bytes.
        venue: The venue id of the payloads (``"jse"``).
        source_name: The ``source`` of the messages.
        first_id: The id of the first message; ``created_ns`` is each message's own time.

    Returns:
        The messages, counts and malformed stretches; a malformed message never raises.
    """
    ids = iter(range(first_id, 1 << 63))
    converter = FixConverter(venue=venue, source=source_name, message_ids=ids)
    messages: list[CoreMessage] = []
    malformed: list[MalformedFrameError] = []
    types: Counter[str] = Counter()
    frames = 0
    for item in read_frames(source, venue=venue):
        if isinstance(item, MalformedFrameError):
            malformed.append(item)
            continue
        frames += 1
        types[item.msg_type] += 1
        try:
            messages.extend(converter.convert(item.message))
        except MalformedFrameError as exc:
            where = f"{exc.field} of message {item.index}"
            malformed.append(MalformedFrameError(exc.venue, where, exc.value, exc.expected))
    return FixReplay(messages=messages, frames=frames, msg_types=dict(types), malformed=malformed)
