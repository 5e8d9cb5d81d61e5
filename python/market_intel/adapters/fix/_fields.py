"""FIX field values: the message type, ids, decimals and timestamps, read and written.

Every reader raises ``MalformedFrameError`` naming the field (``Name(tag)``), the value and
what was expected; decimals are read exactly with ``parse_decimal``.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol, TypeVar, cast

import simplefix

from market_intel.adapters.normalize import parse_decimal
from market_intel.errors import MalformedFrameError


class FixMessage(Protocol):
    """The part of ``simplefix.FixMessage`` this package uses: ordered ``(tag, value)`` pairs."""

    pairs: list[tuple[bytes, bytes]]
    message_type: bytes | None

    def get(self, tag: int, nth: int = ...) -> bytes | None: ...

    def append_pair(self, tag: int, value: object, header: bool = ...) -> None: ...

    def encode(self, raw: bool = ...) -> bytes: ...


def new_message(msg_type: str | None = None, begin_string: str | None = None) -> FixMessage:
    """Make an empty ``simplefix.FixMessage``, with BeginString (8) and MsgType (35) if given."""
    message = cast(FixMessage, simplefix.FixMessage())
    if begin_string is not None:
        message.append_pair(8, begin_string)
    if msg_type is not None:
        message.append_pair(35, msg_type)
    return message


# Values


def fix_id(text: str) -> int:
    """Map a FIX id (ClOrdID, OrderID, ExecID) to an unsigned 64-bit int, always the same way.

    A string of ASCII digits below 2**64 gives its value; any other string gives the first
    8 bytes (big-endian) of its BLAKE2b digest.
    """
    if text.isascii() and text.isdigit() and len(text) <= 20:
        value = int(text)
        if value < 1 << 64:
            return value
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def format_decimal(value: Decimal | float | int) -> str:
    """Write a number as a FIX decimal: plain digits, no exponent (``1e-05`` -> ``0.00001``).

    A float is written as the shortest decimal that reads back as the same double.
    """
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif isinstance(value, int):
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@functools.lru_cache(maxsize=64)
def _day_seconds(date: str) -> int:
    """Seconds from the epoch to 00:00 UTC of ``YYYYMMDD``; ValueError if it is no date."""
    if not (date.isascii() and date.isdigit()):
        raise ValueError(date)
    year, month, day = int(date[:4]), int(date[4:6]), int(date[6:])
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        raise ValueError(date)
    return calendar.timegm((year, month, day, 0, 0, 0, 0, 0, 0))


def parse_utc_timestamp(text: str | bytes, *, venue: str = "fix", field: str = "52") -> int:
    """Read a UTCTimestamp (``20111124-05:33:31.763``, to nanoseconds) as ns since the epoch.

    Raises:
        MalformedFrameError: ``text`` is not ``YYYYMMDD-HH:MM:SS`` with an optional fraction.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    main, _, fraction = raw.partition(".")
    try:
        if len(main) != 17 or main[8] != "-" or main[11] != ":" or main[14] != ":":
            raise ValueError(raw)
        if fraction and (not fraction.isdigit() or len(fraction) > 9):
            raise ValueError(raw)
        parts = (main[9:11], main[12:14], main[15:17])
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ValueError(raw)
        hour, minute, second = (int(p) for p in parts)
        if not (hour < 24 and minute < 60 and second < 61):
            raise ValueError(raw)
        seconds = _day_seconds(main[:8]) + hour * 3600 + minute * 60 + second
    except (ValueError, IndexError, OverflowError):
        raise MalformedFrameError(
            venue, field, text, "a UTC timestamp YYYYMMDD-HH:MM:SS[.fraction]"
        ) from None
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def format_utc_timestamp(ns: int | None = None) -> str:
    """Write ns since the epoch (now when None) as a UTCTimestamp with milliseconds."""
    ns = time.time_ns() if ns is None else ns
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}"


# Field readers


def text_of(message: FixMessage, tag: int) -> str | None:
    """Return a field as text (UTF-8, bad bytes replaced), or None when it is absent."""
    value = message.get(tag)
    return None if value is None else value.decode("utf-8", "replace")


def required_text(message: FixMessage, tag: int, venue: str, name: str) -> str:
    """Return a field as text; MalformedFrameError naming ``name(tag)`` if absent or empty."""
    value = text_of(message, tag)
    if value is None or value == "":
        raise MalformedFrameError(venue, f"{name}({tag})", value, f"tag {tag} present")
    return value


def decimal_of(message: FixMessage, tag: int, venue: str, name: str) -> Decimal | None:
    """Return a field as an exact Decimal, or None when it is absent."""
    value = message.get(tag)
    return None if value is None else parse_decimal(value, venue=venue, field=f"{name}({tag})")


def short_id(text: str) -> str:
    """Return a FIX id if it fits a ``client_order_id`` (<= 16 ASCII, no NUL), else ""."""
    return text if len(text) <= 16 and text.isascii() and "\x00" not in text else ""


_E = TypeVar("_E")


def enum_of(table: Mapping[str, _E], value: str, venue: str, name: str) -> _E:
    """Look a FIX code up in ``table``; MalformedFrameError listing the codes if unknown."""
    try:
        return table[value]
    except KeyError:
        expected = "one of " + ", ".join(sorted(table))
        raise MalformedFrameError(venue, name, value, expected) from None
