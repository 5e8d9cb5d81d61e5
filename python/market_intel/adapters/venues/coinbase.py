"""Coinbase Advanced Trade frames as exact updates.

=================  ============  =====================================================
channel            update        fields
=================  ============  =====================================================
``market_trades``  TradeUpdate   one per trade, oldest first (Coinbase lists them
                                 newest first): trade_id, price, size, side (the
                                 aggressor's: the opposite of the ``side`` Coinbase
                                 sends, which is the maker's), exchange_ns=time
``ticker``         QuoteUpdate   best_bid, best_bid_quantity, best_ask,
                                 best_ask_quantity (when the ticker has them),
                                 exchange_ns=the frame's timestamp
``l2_data``        BookUpdate    one per event: ``bid`` levels to bids, ``offer`` levels
                                 to asks as (price_level, new_quantity); snapshot for
                                 ``snapshot`` events; exchange_ns=the latest event_time
``subscriptions``  none          ``FeedEvent("subscribed")`` per channel and product
``heartbeats``,    none          ``Parsed([])``
``candles``, ...
``{"type":         none          ``FeedEvent("error")``
"error"}``
=================  ============  =====================================================

Every frame's ``sequence_num`` (numbered per connection over all channels) is
``Parsed.sequence``. Times are RFC 3339 with up to nine fraction digits and become ns exactly.
Coinbase numbers neither quotes nor book updates, so their update ids are 0.

The trade side: the recorded frames show ``SELL`` trades at the best ask and ``BUY`` trades
at the best bid, so the side sent is the resting (maker) order's and the aggressor's side is
the other one.

``l2_data``, ``market_trades``, ``ticker`` and the channels read as ``Parsed([])`` take the
fast path (see ``market_intel.adapters.venues``): the ``_FastFrame`` decoder has the strict
one's fields and types, with ``Decimal`` (``_Dec``) for each decimal string and the sides as
literals, so msgspec makes the decimals and the parser only picks the ``(price, size)`` pairs
out of the levels, checks them finite and builds the updates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from itertools import compress
from operator import attrgetter, not_
from typing import Final, Literal

import msgspec

from market_intel.adapters.normalize import (
    BookUpdate,
    FeedEvent,
    Parsed,
    QuoteUpdate,
    TradeUpdate,
    Update,
)
from market_intel.adapters.venues import (
    _canonical_symbols,
    _channels,
    _Dec,
    _decimals,
    _decode,
    _finite,
    _optional_decimal,
    _plain,
    _rfc3339_ns,
    _SymbolCache,
)
from market_intel.enums import Side
from market_intel.errors import MalformedFrameError

__all__ = ["CoinbaseParser"]

_VENUE: Final = "coinbase"


class _Trade(msgspec.Struct, gc=False):
    product_id: str
    trade_id: str
    price: str
    size: str
    time: str
    side: str


class _Ticker(msgspec.Struct, gc=False):
    product_id: str
    best_bid: str | None = None
    best_bid_quantity: str | None = None
    best_ask: str | None = None
    best_ask_quantity: str | None = None


class _Level(msgspec.Struct, gc=False):
    side: str
    event_time: str
    price_level: str
    new_quantity: str


class _Event(msgspec.Struct, gc=False):
    type: str = ""
    product_id: str | None = None
    trades: list[_Trade] | None = None
    tickers: list[_Ticker] | None = None
    updates: list[_Level] | None = None
    subscriptions: dict[str, list[str]] | None = None


class _Frame(msgspec.Struct, gc=False):
    channel: str = ""
    timestamp: str = ""
    sequence_num: int | None = None
    events: list[_Event] = []
    type: str = ""
    message: str = ""
    reason: str = ""


class _FastTrade(msgspec.Struct, gc=False):
    product_id: str
    trade_id: str
    price: _Dec
    size: _Dec
    time: str
    side: Literal["BUY", "SELL"]


class _FastTicker(msgspec.Struct, gc=False):
    product_id: str
    best_bid: _Dec | None = None
    best_bid_quantity: _Dec | None = None
    best_ask: _Dec | None = None
    best_ask_quantity: _Dec | None = None


class _FastLevel(msgspec.Struct, gc=False):
    side: Literal["bid", "offer"]
    event_time: str
    price_level: _Dec
    new_quantity: _Dec


class _FastEvent(msgspec.Struct, gc=False):
    type: str = ""
    product_id: str | None = None
    trades: list[_FastTrade] | None = None
    tickers: list[_FastTicker] | None = None
    updates: list[_FastLevel] | None = None
    subscriptions: dict[str, list[str]] | None = None


class _FastFrame(msgspec.Struct, gc=False):
    """``_Frame`` with ``Decimal`` for each decimal string (the fast path's decoder)."""

    channel: str = ""
    timestamp: str = ""
    sequence_num: int | None = None
    events: list[_FastEvent] = []
    type: str = ""
    message: str = ""
    reason: str = ""


class _Doubt(Exception):
    """Raised on the fast path to leave the frame to the strict path."""


Levels = tuple[tuple[Decimal, Decimal], ...]

_DECODER: Final = msgspec.json.Decoder(_Frame)
_FAST_DECODER: Final = msgspec.json.Decoder(_FastFrame)
_PAIR: Final = attrgetter("price_level", "new_quantity")
_SIDE: Final = attrgetter("side")
_PRICE: Final = attrgetter("price_level")
_QUANTITY: Final = attrgetter("new_quantity")
_TIME: Final = attrgetter("event_time")
_IS_BID: Final = "bid".__eq__
_TRADE_ID: Final = attrgetter("trade_id")
_AGGRESSOR: Final = {"BUY": Side.SELL, "SELL": Side.BUY}

_CHANNEL_NAMES: Final = {
    "trades": "market_trades",
    "quotes": "ticker",
    "book": "level2",
    "candles": "candles",
}


class CoinbaseParser:
    """Parse one Coinbase Advanced Trade connection's frames."""

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
        try:
            top = _FAST_DECODER.decode(frame)
        except msgspec.DecodeError:
            return self._parse(frame, receive_ns)
        try:
            parsed = self._fast(top, frame, receive_ns)
        except (_Doubt, MalformedFrameError):
            parsed = None
        return self._parse(frame, receive_ns) if parsed is None else parsed

    def _fast(self, top: _FastFrame, frame: str | bytes, receive_ns: int) -> Parsed | None:
        """Read a decoded frame as ``_parse`` does, or return ``None`` (or raise) to leave it
        to ``_parse``: a frame that is not plain or not read here, a value amiss, a product
        not seen yet."""
        channel = top.channel
        if channel == "subscriptions" or not channel:
            return None
        underscores = None
        if channel == "l2_data":
            # the underscores of what was decoded (``l2_data``, ``sequence_num``, each event's
            # ``product_id``, each level's three keys): when the frame holds no other, no
            # decimal string holds one and ``_plain`` need not look at each (a snapshot has
            # tens of thousands)
            underscores = 1 + (top.sequence_num is not None)
            for event in top.events:
                if event.product_id is not None:
                    underscores += 1 + event.product_id.count("_")
                if event.updates is not None:
                    underscores += 3 * len(event.updates)
        if not _plain(frame, underscores):
            return None
        updates: list[Update] = []
        if channel == "l2_data":
            for event in top.events:
                updates.append(self._fast_book(event, receive_ns))
        elif channel == "market_trades":
            for event in top.events:
                self._fast_trades(event, receive_ns, updates)
        elif channel == "ticker":
            exchange_ns = _rfc3339_ns(top.timestamp, _VENUE, "timestamp")
            for event in top.events:
                self._fast_quotes(event, exchange_ns, receive_ns, updates)
        return Parsed(updates, top.sequence_num)

    def _fast_book(self, event: _FastEvent, receive_ns: int) -> BookUpdate:
        levels = event.updates
        symbol = None if event.product_id is None else self._known.get(event.product_id)
        if levels is None or symbol is None:
            raise _Doubt
        pairs = tuple(map(_PAIR, levels))
        if not _finite(pairs):
            raise _Doubt
        sides = list(map(_SIDE, levels))
        bid_count = sides.count("bid")
        bids: Levels
        asks: Levels
        if sides[:bid_count].count("bid") == bid_count:  # bids first, as Coinbase sends them
            bids, asks = pairs[:bid_count], pairs[bid_count:]
        else:
            is_bid = list(map(_IS_BID, sides))
            bids = tuple(compress(pairs, is_bid))
            asks = tuple(compress(pairs, map(not_, is_bid)))
        times = set(map(_TIME, levels))
        if len(times) == 1:  # as in most updates
            exchange_ns = _rfc3339_ns(times.pop(), _VENUE, "event_time")
        else:
            exchange_ns = max(
                (_rfc3339_ns(text, _VENUE, "event_time") for text in times), default=0
            )
        return BookUpdate(
            venue=_VENUE,
            symbol=symbol,
            bids=bids,
            asks=asks,
            snapshot=event.type == "snapshot",
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )

    def _fast_trades(self, event: _FastEvent, receive_ns: int, out: list[Update]) -> None:
        if event.trades is None:
            raise _Doubt
        batch: list[TradeUpdate] = []
        known = self._known
        for trade in event.trades:
            trade_id = trade.trade_id
            symbol = known.get(trade.product_id)
            if (
                symbol is None
                or not (trade_id.isascii() and trade_id.isdigit())
                or not trade.price.is_finite()
                or not trade.size.is_finite()
            ):
                raise _Doubt
            batch.append(
                TradeUpdate(
                    venue=_VENUE,
                    symbol=symbol,
                    trade_id=int(trade_id),
                    price=trade.price,
                    size=trade.size,
                    side=_AGGRESSOR[trade.side],
                    exchange_ns=_rfc3339_ns(trade.time, _VENUE, "time"),
                    receive_ns=receive_ns,
                )
            )
        batch.sort(key=_TRADE_ID)  # Coinbase lists an event's trades newest first
        out.extend(batch)

    def _fast_quotes(
        self, event: _FastEvent, exchange_ns: int, receive_ns: int, out: list[Update]
    ) -> None:
        if event.tickers is None:
            raise _Doubt
        known = self._known
        for ticker in event.tickers:
            bid, ask = ticker.best_bid, ticker.best_ask
            if bid is None and ask is None:
                continue
            bid_size, ask_size = ticker.best_bid_quantity, ticker.best_ask_quantity
            symbol = known.get(ticker.product_id)
            if (
                symbol is None
                or (bid is not None and not bid.is_finite())
                or (bid_size is not None and not bid_size.is_finite())
                or (ask is not None and not ask.is_finite())
                or (ask_size is not None and not ask_size.is_finite())
            ):
                raise _Doubt
            out.append(
                QuoteUpdate(
                    venue=_VENUE,
                    symbol=symbol,
                    bid=bid,
                    bid_size=bid_size,
                    ask=ask,
                    ask_size=ask_size,
                    exchange_ns=exchange_ns,
                    receive_ns=receive_ns,
                )
            )

    def _parse(self, frame: str | bytes, receive_ns: int) -> Parsed:
        """The strict path: read any frame, naming the field of a fault."""
        top = _decode(_DECODER, _VENUE, frame)
        channel = top.channel
        updates: list[Update] = []
        if channel == "l2_data":
            for index, event in enumerate(top.events):
                updates.append(self._book(event, f"events[{index}]", receive_ns))
        elif channel == "market_trades":
            for index, event in enumerate(top.events):
                self._trades(event, f"events[{index}]", receive_ns, updates)
        elif channel == "ticker":
            exchange_ns = _rfc3339_ns(top.timestamp, _VENUE, "timestamp")
            for index, event in enumerate(top.events):
                self._quotes(event, f"events[{index}]", exchange_ns, receive_ns, updates)
        elif channel == "subscriptions":
            return Parsed([], top.sequence_num, self._subscribed(top, receive_ns))
        elif not channel:
            if top.type == "error":
                text = f"{top.message} {top.reason}".strip()
                error = FeedEvent(venue=_VENUE, code="error", text=text, receive_ns=receive_ns)
                return Parsed([], None, [error])
            raise MalformedFrameError(_VENUE, "channel", frame, "a channel name")
        return Parsed(updates, top.sequence_num)

    def subscribe_messages(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """Return one ``subscribe`` message per channel for ``symbols``.

        ``trades`` is ``market_trades``, ``quotes`` ``ticker``, ``book`` ``level2``; other
        names (``heartbeats``, ``status``) are sent as given.

        Raises:
            InvalidArgumentError: A symbol is not canonical or a list is empty.
        """
        products = [f"{base}-{rest}" for base, rest in _canonical_symbols(symbols)]
        return [
            json.dumps(
                {"type": "subscribe", "product_ids": products, "channel": name},
                separators=(",", ":"),
            )
            for name in (_CHANNEL_NAMES.get(c, c) for c in _channels(channels))
        ]

    def ping_message(self) -> str | None:
        """Return ``None``: subscribe to ``heartbeats`` to keep a quiet connection open."""
        return None

    def _book(self, event: _Event, path: str, receive_ns: int) -> BookUpdate:
        levels = event.updates
        if levels is None:
            raise MalformedFrameError(_VENUE, path + ".updates", None, "a list of levels")
        field = path + ".updates[*]"
        sides = list(map(_SIDE, levels))
        bid_count = sides.count("bid")
        if bid_count + sides.count("offer") != len(sides):
            index = next(i for i, side in enumerate(sides) if side not in ("bid", "offer"))
            raise MalformedFrameError(
                _VENUE, field.replace("*", str(index)) + ".side", sides[index], "'bid' or 'offer'"
            )
        prices = _decimals(list(map(_PRICE, levels)), _VENUE, field + ".price_level")
        sizes = _decimals(list(map(_QUANTITY, levels)), _VENUE, field + ".new_quantity")
        pairs = tuple(zip(prices, sizes, strict=True))
        bids: Levels
        asks: Levels
        if sides[:bid_count].count("bid") == bid_count:  # bids first, as Coinbase sends them
            bids, asks = pairs[:bid_count], pairs[bid_count:]
        else:
            is_bid = list(map(_IS_BID, sides))
            bids = tuple(compress(pairs, is_bid))
            asks = tuple(compress(pairs, map(not_, is_bid)))
        times = set(map(_TIME, levels))
        exchange_ns = max(
            (_rfc3339_ns(text, _VENUE, path + ".updates[].event_time") for text in times),
            default=0,
        )
        return BookUpdate(
            venue=_VENUE,
            symbol=self._symbol(event.product_id, path + ".product_id"),
            bids=bids,
            asks=asks,
            snapshot=event.type == "snapshot",
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )

    def _trades(self, event: _Event, path: str, receive_ns: int, out: list[Update]) -> None:
        if event.trades is None:
            raise MalformedFrameError(_VENUE, path + ".trades", None, "a list of trades")
        batch: list[TradeUpdate] = []
        for index, trade in enumerate(event.trades):
            where = f"{path}.trades[{index}]"
            trade_id = trade.trade_id
            if not (trade_id.isascii() and trade_id.isdigit()):
                raise MalformedFrameError(_VENUE, where + ".trade_id", trade_id, "a numeric id")
            side = _AGGRESSOR.get(trade.side)
            if side is None:
                raise MalformedFrameError(_VENUE, where + ".side", trade.side, "'BUY' or 'SELL'")
            fields = (where + ".price", where + ".size")
            price, size = _decimals((trade.price, trade.size), _VENUE, fields)
            batch.append(
                TradeUpdate(
                    venue=_VENUE,
                    symbol=self._symbol(trade.product_id, where + ".product_id"),
                    trade_id=int(trade_id),
                    price=price,
                    size=size,
                    side=side,
                    exchange_ns=_rfc3339_ns(trade.time, _VENUE, where + ".time"),
                    receive_ns=receive_ns,
                )
            )
        batch.sort(key=_TRADE_ID)  # Coinbase lists an event's trades newest first
        out.extend(batch)

    def _quotes(
        self, event: _Event, path: str, exchange_ns: int, receive_ns: int, out: list[Update]
    ) -> None:
        if event.tickers is None:
            raise MalformedFrameError(_VENUE, path + ".tickers", None, "a list of tickers")
        for index, ticker in enumerate(event.tickers):
            if ticker.best_bid is None and ticker.best_ask is None:
                continue
            where = f"{path}.tickers[{index}]"
            out.append(
                QuoteUpdate(
                    venue=_VENUE,
                    symbol=self._symbol(ticker.product_id, where + ".product_id"),
                    bid=_optional_decimal(ticker.best_bid, _VENUE, where + ".best_bid"),
                    bid_size=_optional_decimal(
                        ticker.best_bid_quantity, _VENUE, where + ".best_bid_quantity"
                    ),
                    ask=_optional_decimal(ticker.best_ask, _VENUE, where + ".best_ask"),
                    ask_size=_optional_decimal(
                        ticker.best_ask_quantity, _VENUE, where + ".best_ask_quantity"
                    ),
                    exchange_ns=exchange_ns,
                    receive_ns=receive_ns,
                )
            )

    def _subscribed(self, top: _Frame, receive_ns: int) -> list[FeedEvent]:
        events: list[FeedEvent] = []
        for index, event in enumerate(top.events):
            for channel, products in (event.subscriptions or {}).items():
                for product in products:
                    field = f"events[{index}].subscriptions.{channel}"
                    symbol = "" if product == channel else self._symbol(product, field)
                    events.append(
                        FeedEvent(
                            venue=_VENUE,
                            code="subscribed",
                            symbol=symbol,
                            text=channel,
                            receive_ns=receive_ns,
                        )
                    )
        return events
