"""Kraken WebSocket v1 frames as exact updates.

Market frames are arrays ``[channelID, payload, channelName, pair]`` (a book frame may carry
two payloads, asks then bids: ``[channelID, {"a": ..}, {"b": .., "c": ..}, name, pair]``):

=============  ============  =========================================================
channel        update        fields
=============  ============  =========================================================
``trade``      TradeUpdate   one per ``[price, volume, time, side, type, misc]``: side
                             ``b`` BUY, ``s`` SELL (the aggressor's); trade_id 0 (v1
                             trades carry no id); exchange_ns=time
``ticker``     QuoteUpdate   bid=b[0], bid_size=b[2] (lot volume), ask=a[0],
                             ask_size=a[2]; exchange_ns 0 (the ticker carries no time)
``spread``     QuoteUpdate   ``[bid, ask, time, bid_volume, ask_volume]``
``book-N``     BookUpdate    ``as``/``bs``: a snapshot; ``a``/``b``: updates (levels with
                             a fourth element ``"r"`` are republished, applied alike);
                             exchange_ns=the latest level time; update ids 0
=============  ============  =========================================================

Events (objects): ``heartbeat``, ``systemStatus``, ``pong`` give ``Parsed([])``;
``subscriptionStatus`` gives ``FeedEvent("subscribed")`` (or ``"error"`` with the venue's
``errorMessage``); ``{"event": "error"}`` gives ``FeedEvent("error")``. Times are epoch
seconds with microseconds as decimal strings and become ns exactly. Pairs are folded to the
canonical scheme (``XBT/USD`` is ``BTC-USD``). The book checksum ``c`` needs the whole book
and is left to the order book.

Book frames take the fast path (see ``market_intel.adapters.venues``): the ``_FastFrame``
decoder reads ``[channelID, book, (book,) channelName, pair]`` into structs whose levels hold
``Decimal`` (``_Dec``) prices and volumes, so the parser only checks them finite, reads the
level times and builds the update. Other frames are decoded on the strict path by msgspec into
plain lists and dicts (Kraken's positional arrays mix types), and every field's type is checked
there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import Any, Final

import msgspec
from msgspec import UNSET, UnsetType

from market_intel.adapters.normalize import (
    BookUpdate,
    FeedEvent,
    Parsed,
    QuoteUpdate,
    TradeUpdate,
    Update,
)
from market_intel.adapters.venues import (
    _FRACTION_NS,
    _NOT_DECIMAL,
    _canonical_symbols,
    _channels,
    _Dec,
    _decimals,
    _decode,
    _epoch_ns,
    _finite,
    _plain,
    _SymbolCache,
)
from market_intel.enums import Side
from market_intel.errors import MalformedFrameError

__all__ = ["KrakenParser"]

_VENUE: Final = "kraken"
_DECODER: Final = msgspec.json.Decoder()
_EMPTY: Final = Parsed([])
_SIDES: Final = {"b": Side.BUY, "s": Side.SELL}
_ASSETS: Final = {"BTC": "XBT", "DOGE": "XDG"}
_LEVEL_LENGTHS: Final = frozenset((3, 4))
_LIST_ONLY: Final = frozenset((list,))
_BOOK_KEYS: Final = frozenset(("as", "bs", "a", "b", "c"))
_ARRAY: Final = "[channelID, payload, channelName, pair]"

_CHANNEL_NAMES: Final = {"trades": "trade", "quotes": "ticker", "book": "book", "candles": "ohlc"}

Levels = tuple[tuple[Decimal, Decimal], ...]


class _FastLevel(msgspec.Struct, array_like=True, gc=False):
    """``[price, volume, time]``, or ``[.., "r"]`` for a republished level."""

    price: _Dec
    volume: _Dec
    time: str
    flag: str | UnsetType = UNSET


_FastLevels = list[_FastLevel] | UnsetType


class _FastBook(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A book payload: ``as``/``bs`` (a snapshot) or ``a``/``b`` levels, and a checksum."""

    asks_snapshot: _FastLevels = msgspec.field(name="as", default=UNSET)
    bids_snapshot: _FastLevels = msgspec.field(name="bs", default=UNSET)
    a: _FastLevels = UNSET
    b: _FastLevels = UNSET
    c: Any = None  # the checksum, left to the order book


class _FastFrame(msgspec.Struct, array_like=True, gc=False):
    """``[channelID, book, channelName, pair]`` or ``[channelID, book, book, channelName,
    pair]``: ``second`` is the name or the second book, ``third`` the pair or the name."""

    channel_id: Any
    book: _FastBook
    second: _FastBook | str
    third: str
    pair: str | UnsetType = UNSET


_FAST_DECODER: Final = msgspec.json.Decoder(_FastFrame)
_PAIR: Final = attrgetter("price", "volume")
_TIME: Final = attrgetter("time")


class _Doubt(Exception):
    """Raised on the fast path to leave the frame to the strict path."""


class KrakenParser:
    """Parse one Kraken (WebSocket v1) connection's frames."""

    __slots__ = ("_known", "_symbol", "venue")

    def __init__(self) -> None:
        self.venue = _VENUE
        self._symbol = _SymbolCache(_VENUE)
        self._known = self._symbol.known

    def parse(self, frame: str | bytes, receive_ns: int) -> Parsed:
        """Parse one frame received at ``receive_ns``.

        Raises:
            MalformedFrameError: The frame cannot be read; the error names the field.
        """
        if _plain(frame):
            try:
                return self._fast(_FAST_DECODER.decode(frame), receive_ns)
            except (msgspec.DecodeError, _Doubt, MalformedFrameError):
                pass
        return self._parse(frame, receive_ns)

    def _fast(self, top: _FastFrame, receive_ns: int) -> Parsed:
        """Read a decoded book frame as ``_parse`` does, or raise to leave the frame to
        ``_parse`` (a value amiss, a pair not seen yet)."""
        book, second, pair = top.book, top.second, top.pair
        if isinstance(second, str):  # [channelID, book, channelName, pair]
            if pair is not UNSET:
                raise _Doubt
            name, pair = second, top.third
            asks_snapshot, bids_snapshot = book.asks_snapshot, book.bids_snapshot
            asks, bids = book.a, book.b
        else:  # [channelID, asks, bids, channelName, pair]
            name = top.third
            asks_snapshot = _one(book.asks_snapshot, second.asks_snapshot)
            bids_snapshot = _one(book.bids_snapshot, second.bids_snapshot)
            asks, bids = _one(book.a, second.a), _one(book.b, second.b)
        symbol = self._known.get(pair) if isinstance(pair, str) else None
        if symbol is None or not name.startswith("book"):
            raise _Doubt
        snapshot = False
        if asks_snapshot is not UNSET:
            asks, snapshot = _one(asks, asks_snapshot), True
        if bids_snapshot is not UNSET:
            bids, snapshot = _one(bids, bids_snapshot), True
        ask_levels, ask_ns = ((), 0) if asks is UNSET else _fast_levels(asks)
        bid_levels, bid_ns = ((), 0) if bids is UNSET else _fast_levels(bids)
        update = BookUpdate(
            venue=_VENUE,
            symbol=symbol,
            bids=bid_levels,
            asks=ask_levels,
            snapshot=snapshot,
            exchange_ns=ask_ns if ask_ns > bid_ns else bid_ns,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _parse(self, frame: str | bytes, receive_ns: int) -> Parsed:
        """The strict path: read any frame, naming the field of a fault."""
        top: Any = _decode(_DECODER, _VENUE, frame)
        if top.__class__ is dict:
            return self._event(top, receive_ns)
        if top.__class__ is not list or not 4 <= len(top) <= 5:
            raise MalformedFrameError(_VENUE, "frame", frame, _ARRAY)
        name = top[-2]
        if name.__class__ is not str:
            raise MalformedFrameError(_VENUE, f"[{len(top) - 2}]", name, "a channel name")
        symbol = self._symbol(top[-1], "[3]" if len(top) == 4 else "[4]")
        if name.startswith("book"):
            return Parsed([self._book(top[1:-2], symbol, receive_ns)])
        if len(top) != 4:
            raise MalformedFrameError(_VENUE, "frame", frame, _ARRAY + " with one payload")
        if name == "trade":
            return Parsed(_trades(top[1], symbol, receive_ns))
        if name == "ticker":
            return Parsed([_ticker(top[1], symbol, receive_ns)])
        if name == "spread":
            return Parsed([_spread(top[1], symbol, receive_ns)])
        return _EMPTY  # ohlc and other channels are not read here

    def subscribe_messages(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """Return one v1 ``subscribe`` message per channel for ``symbols``.

        ``trades`` is ``trade``, ``quotes`` ``ticker``, ``book`` ``book`` at depth 1000;
        other names (``spread``, ``ohlc``) are sent as given. Pairs are spelled Kraken's way
        (``BTC-USD`` is ``XBT/USD``).

        Raises:
            InvalidArgumentError: A symbol is not canonical or a list is empty.
        """
        pairs = [
            f"{_ASSETS.get(base, base)}/{_ASSETS.get(rest, rest)}"
            for base, rest in _canonical_symbols(symbols)
        ]
        messages = []
        for channel in _channels(channels):
            name = _CHANNEL_NAMES.get(channel, channel)
            subscription: dict[str, object] = {"name": name}
            if name == "book":
                subscription["depth"] = 1000
            message = {"event": "subscribe", "pair": pairs, "subscription": subscription}
            messages.append(json.dumps(message, separators=(",", ":")))
        return messages

    def ping_message(self) -> str | None:
        """Return Kraken's application-level ping, ``{"event":"ping"}``."""
        return '{"event":"ping"}'

    def _event(self, event: dict[str, Any], receive_ns: int) -> Parsed:
        kind = event.get("event")
        if kind.__class__ is not str:
            raise MalformedFrameError(_VENUE, "event", kind, "an event name")
        if kind == "subscriptionStatus":
            pair = event.get("pair")
            symbol = "" if pair is None else self._symbol(pair, "pair")
            status = event.get("status")
            if status == "subscribed":
                code, text = "subscribed", event.get("channelName", "")
            elif status == "error":
                code, text = "error", event.get("errorMessage", "")
            else:
                return _EMPTY  # unsubscribed
            found = FeedEvent(
                venue=_VENUE, code=code, symbol=symbol, text=str(text), receive_ns=receive_ns
            )
            return Parsed([], None, [found])
        if kind == "error":
            text = str(event.get("errorMessage", ""))
            found = FeedEvent(venue=_VENUE, code="error", text=text, receive_ns=receive_ns)
            return Parsed([], None, [found])
        return _EMPTY  # heartbeat, systemStatus, pong

    def _book(self, payloads: list[Any], symbol: str, receive_ns: int) -> BookUpdate:
        bids: Levels = ()
        asks: Levels = ()
        snapshot = False
        latest = 0
        for index, book in enumerate(payloads, start=1):
            if book.__class__ is not dict or not book.keys() <= _BOOK_KEYS:
                raise MalformedFrameError(
                    _VENUE, f"[{index}]", book, "an object of 'as'/'bs' or 'a'/'b' levels"
                )
            for key, levels in book.items():
                if key == "c":
                    continue
                parsed, time = _levels(levels, index, key)
                if time > latest:
                    latest = time
                if key[0] == "a":
                    asks = parsed
                else:
                    bids = parsed
                if len(key) == 2:
                    snapshot = True
        return BookUpdate(
            venue=_VENUE,
            symbol=symbol,
            bids=bids,
            asks=asks,
            snapshot=snapshot,
            exchange_ns=latest,
            receive_ns=receive_ns,
        )


def _one(first: _FastLevels, second: _FastLevels) -> _FastLevels:
    """Return the one of two level lists that is set; raise ``_Doubt`` when both are (the
    strict path keeps one or the other by the order of the keys)."""
    if first is UNSET:
        return second
    if second is UNSET:
        return first
    raise _Doubt


def _fast_levels(levels: list[_FastLevel]) -> tuple[Levels, int]:
    """Return ``(price, volume)`` levels and the latest level time in ns, as ``_levels``
    does, or raise ``_Doubt``."""
    if len(levels) == 1:  # most updates change one level: ``_time_ns`` inline
        level = levels[0]
        price, volume = level.price, level.volume
        seconds, _, fraction = level.time.partition(".")
        digits = seconds + fraction
        if (
            price.is_finite()
            and volume.is_finite()
            and digits.isdigit()
            and 0 < len(seconds) <= 12
            and 0 < len(fraction) <= 9
        ):
            return ((price, volume),), int(digits) * _FRACTION_NS[len(fraction)]
        raise _Doubt
    if not levels:
        return (), 0
    pairs = tuple(map(_PAIR, levels))
    if not _finite(pairs):
        raise _Doubt
    times = list(map(_TIME, levels))
    width, dot = len(times[0]), times[0].find(".")
    joined = "".join(times)
    if (
        dot > 0
        and set(map(len, times)) == {width}
        and joined.count(".") == len(times)
        and joined[dot::width].count(".") == len(times)
        and joined.replace(".", "").isdigit()
    ):  # digits with the point in the same place: the greatest string is the latest time
        return pairs, _time_ns(max(times))
    return pairs, _latest(times, "[*]")


def _time_ns(text: str) -> int:
    """Return ns of a level time as ``_EPOCH`` reads it, or raise ``_Doubt`` (``isdigit``
    takes ASCII digits only, as the frame is plain)."""
    seconds, _, fraction = text.partition(".")
    digits = seconds + fraction
    if digits.isdigit() and 0 < len(seconds) <= 12 and 0 < len(fraction) <= 9:
        return int(digits) * _FRACTION_NS[len(fraction)]
    raise _Doubt


def _columns(rows: Any, lengths: frozenset[int], field: str, shape: str) -> list[tuple[str, ...]]:
    """Return the columns of a list of string arrays, checking their shape and types."""
    if rows.__class__ is not list or set(map(type, rows)) - _LIST_ONLY:
        raise MalformedFrameError(_VENUE, field, rows, f"a list of {shape} arrays")
    if set(map(len, rows)) - lengths:
        bad = next(i for i, row in enumerate(rows) if len(row) not in lengths)
        raise MalformedFrameError(_VENUE, f"{field}[{bad}]", rows[bad], shape)
    columns = list(zip(*rows, strict=False))
    for column, values in enumerate(columns):
        if set(map(type, values)) - {str}:
            bad = next(i for i, row in enumerate(rows) if row[column].__class__ is not str)
            raise MalformedFrameError(
                _VENUE, f"{field}[{bad}][{column}]", rows[bad][column], "a string"
            )
    return columns


def _levels(levels: Any, index: int, key: str) -> tuple[Levels, int]:
    """Return ``(price, volume)`` levels and the latest level time in ns."""
    if levels.__class__ is list and len(levels) <= 1:
        if not levels:
            return (), 0
        level = levels[0]  # most updates change one level: a path without field names
        if level.__class__ is list and 3 <= len(level) <= 4:
            price, size, time = level[0], level[1], level[2]
            try:
                if _NOT_DECIMAL.search(price + size) is None:
                    pair = (Decimal(price), Decimal(size))
                    match = _EPOCH.fullmatch(time)
                    if match is not None:
                        seconds, fraction = match.groups()
                        return (pair,), int(seconds) * 1_000_000_000 + int(fraction.ljust(9, "0"))
            except (TypeError, InvalidOperation):
                pass  # the general path below names the bad field
    field = f"[{index}].{key}"
    columns = _columns(levels, _LEVEL_LENGTHS, field, "[price, volume, time] or [.., 'r']")
    prices = _decimals(columns[0], _VENUE, field + "[*][0]")
    sizes = _decimals(columns[1], _VENUE, field + "[*][1]")
    return tuple(zip(prices, sizes, strict=True)), _latest(columns[2], field + "[*][2]")


_EPOCH: Final = re.compile(r"(\d{1,12})\.(\d{1,9})", re.ASCII)


def _latest(times: Sequence[str], field: str) -> int:
    """Return the latest of epoch-seconds decimal strings, in ns, exactly."""
    if _NOT_DECIMAL.search("".join(times)) is None:
        try:
            latest = max(map(Decimal, times))
            if latest >= 0 and latest == latest.quantize(_NANO):
                return int(latest.scaleb(9))
        except InvalidOperation:
            pass
    for index, text in enumerate(times):
        _epoch_ns(text, _VENUE, field.replace("*", str(index)))
    raise MalformedFrameError(_VENUE, field, times, "epoch seconds with at most 9 decimals")


_NANO: Final = Decimal("1e-9")


def _trades(rows: Any, symbol: str, receive_ns: int) -> list[Update]:
    shape = "[price, volume, time, side, type, misc]"
    columns = _columns(rows, frozenset(range(4, 8)), "[1]", shape)
    prices = _decimals(columns[0], _VENUE, "[1][*][0]")
    sizes = _decimals(columns[1], _VENUE, "[1][*][1]")
    out: list[Update] = []
    for index, (price, size, time, side_text) in enumerate(
        zip(prices, sizes, columns[2], columns[3], strict=True)
    ):
        side = _SIDES.get(side_text)
        if side is None:
            raise MalformedFrameError(_VENUE, f"[1][{index}][3]", side_text, "'b' or 's'")
        out.append(
            TradeUpdate(
                venue=_VENUE,
                symbol=symbol,
                trade_id=0,
                price=price,
                size=size,
                side=side,
                exchange_ns=_epoch_ns(time, _VENUE, f"[1][{index}][2]"),
                receive_ns=receive_ns,
            )
        )
    return out


def _ticker(ticker: Any, symbol: str, receive_ns: int) -> QuoteUpdate:
    if ticker.__class__ is not dict:
        raise MalformedFrameError(_VENUE, "[1]", ticker, "a ticker object")
    texts: list[Any] = []
    for key in ("b", "a"):
        side = ticker.get(key)
        if side.__class__ is not list or len(side) != 3:
            raise MalformedFrameError(
                _VENUE, f"[1].{key}", side, "[price, whole lot volume, lot volume]"
            )
        texts += (side[0], side[2])
    fields = ("[1].b[0]", "[1].b[2]", "[1].a[0]", "[1].a[2]")
    bid, bid_size, ask, ask_size = _decimals(texts, _VENUE, fields)
    return QuoteUpdate(
        venue=_VENUE,
        symbol=symbol,
        bid=bid,
        bid_size=bid_size,
        ask=ask,
        ask_size=ask_size,
        receive_ns=receive_ns,
    )


def _spread(spread: Any, symbol: str, receive_ns: int) -> QuoteUpdate:
    shape = "[bid, ask, time, bid volume, ask volume]"
    if spread.__class__ is not list or len(spread) != 5:
        raise MalformedFrameError(_VENUE, "[1]", spread, shape)
    bid, ask, time, bid_size, ask_size = spread
    fields = ("[1][0]", "[1][1]", "[1][3]", "[1][4]")
    bid, ask, bid_size, ask_size = _decimals((bid, ask, bid_size, ask_size), _VENUE, fields)
    return QuoteUpdate(
        venue=_VENUE,
        symbol=symbol,
        bid=bid,
        bid_size=bid_size,
        ask=ask,
        ask_size=ask_size,
        exchange_ns=_epoch_ns(time, _VENUE, "[1][2]"),
        receive_ns=receive_ns,
    )
