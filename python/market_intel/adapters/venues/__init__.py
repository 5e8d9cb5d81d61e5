"""Venue parsers: one class per venue family, each turning that venue's frames into updates.

Every parser implements ``VenueParser``::

    parser = parser_for("kraken")            # a fresh parser for one connection
    for text in parser.subscribe_messages(["BTC-USD"], ["trades", "book"]):
        websocket.send(text)
    parsed = parser.parse(frame, receive_ns)  # Parsed(updates, sequence, events)

========================  ==============================  ====================================
venue ids                 parser                          frames
========================  ==============================  ====================================
binance, binance-usdm,    ``binance.BinanceParser``       combined-stream and raw-stream
binance-coinm, binance-us                                 bookTicker, trade, aggTrade,
                                                          depthUpdate; REST depth snapshots
coinbase                  ``coinbase.CoinbaseParser``     advanced-trade market_trades, ticker,
                                                          l2_data
kraken                    ``kraken.KrakenParser``         v1 trade, ticker, book, spread
========================  ==============================  ====================================

``parse`` raises ``MalformedFrameError`` naming the field for a frame it cannot read (invalid
JSON or UTF-8, a missing or ill-typed field, a decimal string ``parse_decimal`` would refuse);
frames that carry no market data (subscription acknowledgements, heartbeats, status, candles)
give ``Parsed([])``, with a ``FeedEvent`` when they announce something (``subscribed``, or
``error`` for a venue-side error).

Each parser reads a frame on one of two paths that give the same result. The fast path reads
the frames a venue sends most (book updates, quotes, trades: each venue module says which),
when they are ``_plain``, with a msgspec decoder whose decimal fields are typed ``_Dec``:
msgspec makes each ``Decimal`` from its string in C and builds the levels' tuples, so only
finiteness is left to check in Python. Whatever the fast path does not take (a frame that is
not plain or not of those kinds, a symbol seen for the first time, any doubt about a value)
goes to the strict path, which reads every frame, checks every decimal string as
``parse_decimal`` does and names the field of a fault. The strict path is the reference: the
fast path gives up rather than decide anything differently, so both give the same updates and
the same errors.

Channels given to ``subscribe_messages`` are ``trades``, ``quotes`` (best bid and offer) and
``book`` (L2 updates), or the recordings' names for them (``l2_book``, ``ticker``) and
``candles``; any other name is sent as the venue's own channel name. Symbols are canonical
(``BTC-USDT``, ``BTC-USD-PERP``) and are spelled the venue's way in the messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from itertools import chain
from typing import TYPE_CHECKING, Annotated, Any, Final, Protocol, TypeAlias, runtime_checkable

import msgspec

from market_intel.adapters.normalize import Parsed, canonical_venue, normalize_symbol
from market_intel.errors import InvalidArgumentError, MalformedFrameError

__all__ = ["CHANNELS", "VENUES", "VenueParser", "parser_for"]

CHANNELS: Final = ("trades", "quotes", "book")
"""The generic channel names ``subscribe_messages`` maps to each venue's channels."""

_CHANNEL_ALIASES: Final = {"l2_book": "book", "ticker": "quotes", "trade": "trades"}


@runtime_checkable
class VenueParser(Protocol):
    """What every venue parser does. Make one per connection with ``parser_for``."""

    venue: str
    """The canonical venue id the parser stamps on its updates (``binance-usdm``)."""

    def parse(self, frame: str | bytes, receive_ns: int) -> Parsed:
        """Parse one frame received at ``receive_ns`` (ns since the epoch).

        Raises:
            MalformedFrameError: The frame cannot be read; the error names the field.
        """
        ...

    def subscribe_messages(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """Return the JSON texts to send, in order, to subscribe ``symbols`` to ``channels``.

        Raises:
            InvalidArgumentError: A symbol is not canonical or a list is empty.
        """
        ...

    def ping_message(self) -> str | None:
        """Return the application-level ping to send on an idle connection, or ``None``
        when the venue relies on WebSocket pings."""
        ...


def parser_for(venue: str) -> VenueParser:
    """Return a new parser for ``venue`` (one per connection: parsers keep per-connection
    state such as subscription request ids).

    Args:
        venue: A venue id or a spelling ``canonical_venue`` accepts (``BINANCE_FUTURES``).

    Raises:
        InvalidArgumentError: No parser reads that venue's frames.
    """
    canonical = canonical_venue(venue)
    factory = _FACTORIES.get(canonical)
    if factory is None:
        raise InvalidArgumentError(
            f"venue: {venue!r} has no parser; expected one of {', '.join(VENUES)}"
        )
    return factory(canonical)


# Shared helpers of the venue modules.

if TYPE_CHECKING:
    _Dec: TypeAlias = Decimal
else:
    _Dec = Decimal | Annotated[float, msgspec.Meta(gt=0, lt=0)]
"""The fast decoders' type of a decimal string field.

msgspec makes a ``Decimal`` of a JSON string with ``Decimal``'s own constructor, exactly, and
refuses a string that constructor refuses. It would read a JSON number as a ``Decimal`` too (from
the number's text, so exactly); the float member of the union, which no number satisfies, takes
every number instead and refuses it, so a number where the venue sends a string fails as it
does on the strict path. What ``Decimal()`` reads more leniently than ``parse_decimal`` is left
to ``_plain`` (spaces, underscores, non-ASCII digits) and to ``_finite`` (NaN, Infinity).
"""

# An underscore with a character of a decimal string after it and one before it (or an
# exponent's ``e`` after a digit): ``"1_0"``, ``"_1"``, ``"1e_5"``, not ``volume_24_h``.
_LENIENT_UNDERSCORE: Final = re.compile(
    r'_[-+.\deE_"](?:(?<=[-+.\d_"]_.)|(?<=[\d._][eE]_.))', re.ASCII
)
_LENIENT_UNDERSCORE_BYTES: Final = re.compile(
    rb'_[-+.\deE_"](?:(?<=[-+.\d_"]_.)|(?<=[\d._][eE]_.))'
)


def _plain(frame: str | bytes, underscores: int | None = None) -> bool:
    """Tell whether no string of the frame can be one that ``Decimal()`` reads although
    ``parse_decimal`` refuses it, other than a NaN or an infinity (``_finite`` sees those).

    ``Decimal()`` strips whitespace around a number, drops underscores anywhere in it
    (``"1_0"``, ``"_1"``, ``"1._5"``) and reads non-ASCII digits. A plain frame is ASCII
    without escapes, so none of its strings holds a non-ASCII digit; has no space next to a
    quote, so no string starts or ends with whitespace (JSON strings cannot hold raw control
    characters); and no underscore whose neighbours could both belong to a decimal string
    (``volume_24_h`` and ``BTCUSD_PERP`` pass, ``"1_0"`` does not). Frames that are not plain
    are read on the strict path.

    Args:
        frame: The frame's text.
        underscores: How many underscores the caller knows the frame to hold outside its
            decimal strings (in keys and names it decoded); when the frame holds exactly
            that many, no decimal string holds one, and the underscores need no closer look.
    """
    if isinstance(frame, str):
        return (
            frame.isascii()
            and "\\" not in frame
            and (" " not in frame or ('" ' not in frame and ' "' not in frame))
            and (
                "_" not in frame
                or (underscores is not None and frame.count("_") == underscores)
                or _LENIENT_UNDERSCORE.search(frame) is None
            )
        )
    if isinstance(frame, bytes):
        return (
            frame.isascii()
            and b"\\" not in frame
            and (b" " not in frame or (b'" ' not in frame and b' "' not in frame))
            and (
                b"_" not in frame
                or (underscores is not None and frame.count(b"_") == underscores)
                or _LENIENT_UNDERSCORE_BYTES.search(frame) is None
            )
        )
    return False


_FINITE: Final = Decimal.is_finite


def _finite(levels: Iterable[Iterable[Decimal]]) -> bool:
    """Tell whether every value of ``(price, size, ..)`` levels is finite (no NaN, no infinity)."""
    return all(map(_FINITE, chain.from_iterable(levels)))


def _spells_n(frame: str | bytes) -> bool:
    """Tell whether the frame holds an ``n`` or ``N``: every spelling ``Decimal()`` reads as a
    NaN or an infinity (``NaN``, ``sNaN``, ``Inf``, ``Infinity``, in any case) has one, so
    the decimals of a frame without one are finite and need no ``_finite``."""
    if isinstance(frame, str):
        return "n" in frame or "N" in frame
    return b"n" in frame or b"N" in frame


_NOT_DECIMAL: Final = re.compile(r"[^0-9.eE+\-]")


def _decimal(text: object, venue: str, field: str) -> Decimal:
    """Parse one decimal string as strictly as ``parse_decimal``."""
    if text.__class__ is str and _NOT_DECIMAL.search(text) is None:
        try:
            return Decimal(text)
        except InvalidOperation:
            pass
    raise MalformedFrameError(venue, field, text, "a decimal string such as '65086.18'")


def _optional_decimal(text: str | None, venue: str, field: str) -> Decimal | None:
    return None if text is None else _decimal(text, venue, field)


def _decimals(texts: Sequence[Any], venue: str, field: str | tuple[str, ...]) -> list[Decimal]:
    """Parse many decimal strings at once, as strictly as ``parse_decimal``.

    ``field`` names the values: one name per value, or the list's name, where a ``*``
    stands for the index of a bad value (``[1][*][0]``), else the index is appended.
    """
    try:
        if _NOT_DECIMAL.search("".join(texts)) is None:
            return list(map(Decimal, texts))
    except (InvalidOperation, TypeError):
        pass
    for index, text in enumerate(texts):
        if isinstance(field, tuple):
            where = field[index]
        else:
            where = field.replace("*", str(index)) if "*" in field else f"{field}[{index}]"
        _decimal(text, venue, where)
    raise AssertionError("unreachable")  # pragma: no cover


def _pairs(
    levels: Sequence[tuple[str, str]], venue: str, field: str
) -> tuple[tuple[Decimal, Decimal], ...]:
    """Parse ``[[price, size], ...]`` string pairs into exact ``(price, size)`` tuples."""
    if not levels:
        return ()
    prices, sizes = zip(*levels, strict=True)
    joined = "".join(prices) + "".join(sizes)
    if _NOT_DECIMAL.search(joined) is None:
        try:
            return tuple(zip(map(Decimal, prices), map(Decimal, sizes), strict=True))
        except InvalidOperation:
            pass
    for index, (price, size) in enumerate(levels):
        _decimal(price, venue, f"{field}[{index}][0]")
        _decimal(size, venue, f"{field}[{index}][1]")
    raise AssertionError("unreachable")  # pragma: no cover


_SECONDS_CACHE: dict[str, int] = {}
_UTC_SECONDS: dict[str, int] = {}
"""Epoch seconds of the ``YYYY-MM-DDTHH:MM:SS`` heads of UTC (``Z``) times read so far."""
_RFC3339: Final = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.ASCII
)
_FRACTION_NS: Final = (0, 100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1)
"""ns of one unit of the last digit of an n-digit decimal fraction of a second."""


def _rfc3339_ns(text: object, venue: str, field: str) -> int:
    """Return ns since the epoch of an RFC 3339 time with up to 9 fraction digits, exactly."""
    if text.__class__ is str and text[-1:] == "Z":
        # a UTC time whose head was read before: check the rest as ``_RFC3339`` would
        seconds = _UTC_SECONDS.get(text[:19])
        if seconds is not None:
            fraction = text[20:-1]
            if len(text) == 20:
                return seconds * 1_000_000_000
            if (
                text[19] == "."
                and 0 < len(fraction) <= 9
                and fraction.isdigit()
                and fraction.isascii()
            ):
                return seconds * 1_000_000_000 + int(fraction) * _FRACTION_NS[len(fraction)]
    match = _RFC3339.fullmatch(text) if text.__class__ is str else None
    if match is None:
        raise MalformedFrameError(
            venue, field, text, "an RFC 3339 time such as '2026-08-09T21:05:48.228568804Z'"
        )
    head, fraction, zone = match.groups()
    key = head + zone
    seconds = _SECONDS_CACHE.get(key)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
        except ValueError:
            raise MalformedFrameError(venue, field, text, "a valid calendar time") from None
        seconds = int(moment.timestamp())
        if len(_SECONDS_CACHE) > 4096:
            _SECONDS_CACHE.clear()
            _UTC_SECONDS.clear()
        _SECONDS_CACHE[key] = seconds
        if zone == "Z":
            _UTC_SECONDS[head] = seconds
    return seconds * 1_000_000_000 + (
        int(fraction) * _FRACTION_NS[len(fraction)] if fraction else 0
    )


_EPOCH_DECIMAL: Final = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?", re.ASCII)


def _epoch_ns(text: object, venue: str, field: str) -> int:
    """Return ns of an epoch-seconds decimal string (``"1618678142.557535"``), exactly."""
    match = _EPOCH_DECIMAL.fullmatch(text) if text.__class__ is str else None
    if match is None:
        raise MalformedFrameError(venue, field, text, "epoch seconds such as '1618678142.557535'")
    seconds, fraction = match.groups()
    return int(seconds) * 1_000_000_000 + (int(fraction.ljust(9, "0")) if fraction else 0)


class _SymbolCache:
    """Canonical symbols of one venue's instrument names, computed once each.

    ``known`` maps the names seen so far to their symbols: the fast paths look a name up
    there and leave a name not yet seen to the strict path, which calls the cache.
    """

    __slots__ = ("_venue", "known")

    def __init__(self, venue: str) -> None:
        self._venue = venue
        self.known: dict[str, str] = {}

    def __call__(self, raw: object, field: str) -> str:
        if raw.__class__ is not str:
            raise MalformedFrameError(self._venue, field, raw, "an instrument name string")
        known = self.known.get(raw)
        if known is not None:
            return known
        try:
            symbol = normalize_symbol(self._venue, raw)
        except MalformedFrameError as exc:
            raise MalformedFrameError(self._venue, field, raw, exc.expected) from None
        if len(symbol) > 16 or not symbol.isascii():
            raise MalformedFrameError(
                self._venue, field, raw, "an ASCII instrument name of at most 16 characters"
            )
        if len(self.known) > 4096:
            self.known.clear()
        self.known[raw] = symbol
        return symbol


def _decode(decoder: msgspec.json.Decoder[Any], venue: str, frame: str | bytes) -> Any:
    """Decode a frame, refusing bytes that are not UTF-8 (msgspec skips unknown fields
    without reading them)."""
    try:
        if frame.__class__ is bytes and not frame.isascii():
            frame.decode()
        return decoder.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise _decode_error(venue, frame, exc) from None


def _decode_error(venue: str, frame: str | bytes, exc: Exception) -> MalformedFrameError:
    """Turn a decoding failure into a ``MalformedFrameError`` naming the field."""
    if isinstance(exc, UnicodeDecodeError):
        return MalformedFrameError(venue, "frame", frame, "UTF-8 JSON text")
    if isinstance(exc, msgspec.ValidationError):
        message, _, path = str(exc).rpartition(" - at ")
        path = path.strip("`")
        if not message:
            message, path = str(exc), "$"
        expected = message.replace("`", "")
        if expected.startswith("Object missing required field "):
            path += "." + expected.removeprefix("Object missing required field ")
            expected = "a value (the field is missing)"
        elif expected.startswith("Expected "):
            expected = expected[len("Expected ") :]
        field = path.removeprefix("$").removeprefix(".") or "frame"
        return MalformedFrameError(venue, field, _value_at(frame, path), expected)
    return MalformedFrameError(venue, "frame", frame, f"a JSON text ({exc})")


_PATH_PART: Final = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _value_at(frame: str | bytes, path: str) -> object:
    """Return the value at a msgspec error path (``$.data.b[3][0]``) of a frame, for the
    error message; the whole frame when the path does not resolve."""
    try:
        value: Any = json.loads(frame)
        for key, index in _PATH_PART.findall(path.removeprefix("$")):
            value = value[key] if key else value[int(index)]
    except (ValueError, KeyError, IndexError, TypeError):
        return frame
    return value


def _channels(channels: Iterable[str]) -> list[str]:
    """Return the channel names with the recordings' aliases folded to the generic names."""
    names = [_CHANNEL_ALIASES.get(name, name) for name in channels]
    if not names:
        raise InvalidArgumentError("channels: [] is empty; expected at least one channel")
    return names


def _canonical_symbols(symbols: Sequence[str]) -> list[tuple[str, str]]:
    """Split canonical symbols into ``(base, rest)``: ``BTC-USD-PERP`` -> ``(BTC, USD-PERP)``."""
    if isinstance(symbols, str) or not symbols:
        raise InvalidArgumentError(
            f"symbols: {symbols!r}; expected a non-empty list of symbols such as ['BTC-USDT']"
        )
    pairs: list[tuple[str, str]] = []
    for symbol in symbols:
        base, _, rest = symbol.upper().partition("-")
        if not base or not rest:
            raise InvalidArgumentError(
                f"symbols: {symbol!r} is not canonical; expected BASE-QUOTE such as 'BTC-USDT'"
            )
        pairs.append((base, rest))
    return pairs


from market_intel.adapters.venues.binance import BinanceParser  # noqa: E402
from market_intel.adapters.venues.coinbase import CoinbaseParser  # noqa: E402
from market_intel.adapters.venues.kraken import KrakenParser  # noqa: E402

_FACTORIES: Final[dict[str, Callable[[str], VenueParser]]] = {
    "binance": BinanceParser,
    "binance-usdm": BinanceParser,
    "binance-coinm": BinanceParser,
    "binance-us": BinanceParser,
    "coinbase": lambda venue: CoinbaseParser(),
    "kraken": lambda venue: KrakenParser(),
}

VENUES: Final = tuple(_FACTORIES)
"""The venue ids ``parser_for`` has a parser for."""
