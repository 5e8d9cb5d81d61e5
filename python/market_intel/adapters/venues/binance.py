"""Binance frames (spot, USD-M and COIN-M futures, Binance.US) as exact updates.

====================================  ============  ==========================================
frame                                 update        fields
====================================  ============  ==========================================
``bookTicker``                        QuoteUpdate   bid=b, bid_size=B, ask=a, ask_size=A,
                                                    update_id=u, exchange_ns=E (futures)
``trade``                             TradeUpdate   trade_id=t, price=p, size=q,
                                                    side: SELL when ``m`` (the buyer was
                                                    the maker), else BUY; exchange_ns=T
``aggTrade``                          TradeUpdate   trade_id=a (the aggregate id), as trade
``depthUpdate``                       BookUpdate    bids=b, asks=a, first_update_id=U,
                                                    last_update_id=u, previous_update_id=pu
                                                    (futures), exchange_ns=E
REST ``{"lastUpdateId", "bids",       BookUpdate    snapshot=True, last_update_id=lastUpdateId,
"asks"}``                                           exchange_ns=E when present
``kline`` and other events            none          ``Parsed([])``
``{"result": .., "id": ..}``          none          ``FeedEvent("subscribed")``
``{"error": ..}``, ``{"code", "msg"}``  none        ``FeedEvent("error")``
====================================  ============  ==========================================

Frames come wrapped (``{"stream": .., "data": ..}`` from ``/stream?streams=``) or raw (from
``/ws/<stream>``). A spot REST snapshot names no symbol (COIN-M ones carry ``symbol``): give
it with ``parse_snapshot`` or the parser's ``snapshot_symbol``. Exchange times are ms and
become ns exactly; frames are decoded by msgspec into typed structs, and decimal strings
become ``Decimal`` exactly (checked as strictly as ``parse_decimal``).

Market frames and snapshots take the fast path (see ``market_intel.adapters.venues``): the
``_FastFrame`` decoder has the strict one's fields and types, with ``Decimal`` (``_Dec``)
where the strict one has a decimal string, so msgspec builds the levels' ``(price, size)``
tuples itself and the parser checks them finite and builds the update.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import msgspec

from market_intel.adapters.normalize import (
    BookUpdate,
    FeedEvent,
    Parsed,
    QuoteUpdate,
    TradeUpdate,
    Update,
    canonical_venue,
)
from market_intel.adapters.venues import (
    _canonical_symbols,
    _channels,
    _Dec,
    _decimals,
    _decode,
    _finite,
    _pairs,
    _plain,
    _spells_n,
    _SymbolCache,
)
from market_intel.enums import Side
from market_intel.errors import InvalidArgumentError, MalformedFrameError

__all__ = ["BinanceParser"]

_Levels = list[tuple[str, str]]


class _Data(msgspec.Struct, gc=False):
    """Every field of the market frames read here; which are required depends on ``e``."""

    e: str = ""
    E: int = 0
    T: int = 0
    s: str | None = None
    u: int | None = None
    U: int | None = None
    pu: int | None = None
    b: str | _Levels | None = None
    a: str | int | _Levels | None = None
    B: str | None = None
    A: str | None = None
    t: int | None = None
    p: str | None = None
    q: str | None = None
    m: bool | None = None


class _Frame(_Data, gc=False):
    """A wrapped frame, a raw one (its fields are ``_Data``'s), a snapshot, or a reply."""

    stream: str | None = None
    data: _Data | None = None
    lastUpdateId: int | None = None
    symbol: str | None = None
    bids: _Levels | None = None
    asks: _Levels | None = None
    id: int | str | None = None
    result: Any = msgspec.UNSET
    error: Any = msgspec.UNSET
    code: int | None = None
    msg: str | None = None


_DecLevels = tuple[tuple[_Dec, _Dec], ...]


class _FastData(msgspec.Struct, gc=False):
    """``_Data`` with ``Decimal`` for each decimal string (the fast path's decoder)."""

    e: str = ""
    E: int = 0
    T: int = 0
    s: str | None = None
    u: int | None = None
    U: int | None = None
    pu: int | None = None
    b: _Dec | _DecLevels | None = None
    a: _Dec | int | _DecLevels | None = None
    B: _Dec | None = None
    A: _Dec | None = None
    t: int | None = None
    p: _Dec | None = None
    q: _Dec | None = None
    m: bool | None = None


class _FastFrame(_FastData, gc=False):
    """``_Frame`` with ``Decimal`` for each decimal string (the fast path's decoder)."""

    stream: str | None = None
    data: _FastData | None = None
    lastUpdateId: int | None = None
    symbol: str | None = None
    bids: _DecLevels | None = None
    asks: _DecLevels | None = None
    id: int | str | None = None
    result: Any = msgspec.UNSET
    error: Any = msgspec.UNSET
    code: int | None = None
    msg: str | None = None


_DECODER: Final = msgspec.json.Decoder(_Frame)
_FAST_DECODER: Final = msgspec.json.Decoder(_FastFrame)
_EMPTY: Final = Parsed([])
_MS: Final = 1_000_000
_QUOTE_FIELDS: Final = {p: (p + "b", p + "B", p + "a", p + "A") for p in ("", "data.")}
_TRADE_FIELDS: Final = {p: (p + "p", p + "q") for p in ("", "data.")}

_CHANNEL_STREAMS: Final = {
    "trades": "trade",
    "quotes": "bookTicker",
    "book": "depth@100ms",
    "candles": "kline_1m",
}


class BinanceParser:
    """Parse one Binance connection's frames.

    Args:
        venue: ``binance`` (spot), ``binance-usdm``, ``binance-coinm`` or ``binance-us``.
        snapshot_symbol: The symbol of REST depth snapshots that name none (spot ones).

    Raises:
        InvalidArgumentError: ``venue`` is not a Binance venue.
    """

    __slots__ = ("_known", "_next_id", "_symbol", "snapshot_symbol", "venue")

    def __init__(self, venue: str = "binance", *, snapshot_symbol: str | None = None) -> None:
        canonical = canonical_venue(venue)
        if canonical not in ("binance", "binance-usdm", "binance-coinm", "binance-us"):
            raise InvalidArgumentError(
                f"venue: {venue!r} is not a Binance venue; expected binance, binance-usdm, "
                "binance-coinm or binance-us"
            )
        self.venue = canonical
        self.snapshot_symbol = snapshot_symbol
        self._symbol = _SymbolCache(canonical)
        self._known = self._symbol.known
        self._next_id = 1

    def parse(self, frame: str | bytes, receive_ns: int) -> Parsed:
        """Parse one frame received at ``receive_ns``.

        Raises:
            MalformedFrameError: The frame cannot be read; the error names the field.
        """
        if _plain(frame):
            parsed = self._fast(frame, receive_ns, self.snapshot_symbol)
            if parsed is not None:
                return parsed
        return self._parse(frame, receive_ns, self.snapshot_symbol)

    def parse_snapshot(self, frame: str | bytes, receive_ns: int, symbol: str) -> Parsed:
        """Parse a REST depth snapshot (or any frame) of ``symbol``, a venue or canonical
        name (``BTCUSDT``, ``BTC-USDT``), used when the snapshot names none.

        Raises:
            MalformedFrameError: The frame cannot be read.
        """
        if _plain(frame):
            parsed = self._fast(frame, receive_ns, symbol)
            if parsed is not None:
                return parsed
        return self._parse(frame, receive_ns, symbol)

    def subscribe_messages(self, symbols: Sequence[str], channels: Sequence[str]) -> list[str]:
        """Return the combined-stream ``SUBSCRIBE`` request for ``symbols`` x ``channels``.

        ``trades`` is ``<sym>@trade``, ``quotes`` ``<sym>@bookTicker``, ``book``
        ``<sym>@depth@100ms`` and ``candles`` ``<sym>@kline_1m``; other channel names are
        used as stream names (``aggTrade``, ``depth@0ms``). Request ids count from 1 on each
        parser.

        Raises:
            InvalidArgumentError: A symbol is not canonical or a list is empty.
        """
        names = [self._stream_symbol(base, rest) for base, rest in _canonical_symbols(symbols)]
        streams = [_CHANNEL_STREAMS.get(channel, channel) for channel in _channels(channels)]
        params = [f"{name}@{stream}" for stream in streams for name in names]
        request = {"method": "SUBSCRIBE", "params": params, "id": self._next_id}
        self._next_id += 1
        return [json.dumps(request, separators=(",", ":"))]

    def ping_message(self) -> str | None:
        """Return ``None``: Binance pings at the WebSocket level."""
        return None

    def _stream_symbol(self, base: str, rest: str) -> str:
        parts = rest.split("-")
        name = base + parts[0]
        for part in parts[1:]:
            if part == "PERP":
                if self.venue != "binance-usdm":
                    name += "_PERP"
            elif part.isdigit():
                name += "_" + part
            else:
                raise InvalidArgumentError(
                    f"symbols: {base}-{rest!r} has a part {part!r} Binance does not name; "
                    "expected BASE-QUOTE, BASE-QUOTE-PERP or BASE-QUOTE-<yymmdd>"
                )
        return name.lower()

    def _fast(
        self, frame: str | bytes, receive_ns: int, snapshot_symbol: str | None
    ) -> Parsed | None:
        """Read a plain frame as ``_parse`` does, or return ``None`` to leave it to ``_parse``:
        a reply, anything amiss, a symbol not seen yet."""
        try:
            # ``Any``: a field's type depends on the event (``a`` is an ask, levels or a trade id)
            top: Any = _FAST_DECODER.decode(frame)
        except msgspec.DecodeError:
            return None
        data = top.data
        if data is None:
            if top.lastUpdateId is not None:
                return self._fast_snapshot(top, frame, receive_ns, snapshot_symbol)
            if not top.e and top.u is None:
                return None  # a reply
            data = top
        symbol = self._known.get(data.s)
        kind = data.e
        update: Update
        try:
            if kind == "depthUpdate":
                bids, asks = data.b, data.a
                if (
                    symbol is None
                    or data.U is None
                    or data.u is None
                    or bids.__class__ is not tuple
                    or asks.__class__ is not tuple
                    or (_spells_n(frame) and not (_finite(bids) and _finite(asks)))
                ):
                    return None
                update = BookUpdate(
                    venue=self.venue,
                    symbol=symbol,
                    bids=bids,
                    asks=asks,
                    first_update_id=data.U,
                    last_update_id=data.u,
                    previous_update_id=data.pu or 0,
                    exchange_ns=data.E * _MS,
                    receive_ns=receive_ns,
                )
            elif kind == "bookTicker" or (not kind and data.b.__class__ is Decimal):
                bid, bid_size, ask, ask_size = data.b, data.B, data.a, data.A
                if (
                    symbol is None
                    or data.u is None
                    or not bid.is_finite()
                    or not bid_size.is_finite()
                    or not ask.is_finite()
                    or not ask_size.is_finite()
                ):
                    return None
                update = QuoteUpdate(
                    venue=self.venue,
                    symbol=symbol,
                    bid=bid,
                    bid_size=bid_size,
                    ask=ask,
                    ask_size=ask_size,
                    update_id=data.u,
                    exchange_ns=data.E * _MS,
                    receive_ns=receive_ns,
                )
            elif kind == "trade" or kind == "aggTrade":
                trade_id = data.t if kind == "trade" else data.a
                price, size = data.p, data.q
                if (
                    symbol is None
                    or trade_id.__class__ is not int
                    or data.m is None
                    or not price.is_finite()
                    or not size.is_finite()
                ):
                    return None
                update = TradeUpdate(
                    venue=self.venue,
                    symbol=symbol,
                    trade_id=trade_id,
                    price=price,
                    size=size,
                    side=Side.SELL if data.m else Side.BUY,
                    exchange_ns=(data.T or data.E) * _MS,
                    receive_ns=receive_ns,
                )
            elif kind:
                return _EMPTY  # kline, 24hrTicker, markPriceUpdate, ...: not read here
            else:
                return None
        except AttributeError:  # a decimal missing (None), or levels or an id in its place
            return None
        return Parsed([update])

    def _fast_snapshot(
        self, top: _FastFrame, frame: str | bytes, receive_ns: int, raw: str | None
    ) -> Parsed | None:
        bids, asks = top.bids, top.asks
        name = top.symbol if top.symbol is not None else raw
        symbol = None if name is None else self._known.get(name)
        if (
            symbol is None
            or bids is None
            or asks is None
            or (_spells_n(frame) and not (_finite(bids) and _finite(asks)))
        ):
            return None
        update = BookUpdate(
            venue=self.venue,
            symbol=symbol,
            bids=bids,
            asks=asks,
            snapshot=True,
            last_update_id=top.lastUpdateId or 0,
            exchange_ns=top.E * _MS,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _parse(self, frame: str | bytes, receive_ns: int, snapshot_symbol: str | None) -> Parsed:
        """The strict path: read any frame, naming the field of a fault."""
        top = _decode(_DECODER, self.venue, frame)
        data = top.data
        path = "data."
        if data is None:
            if top.lastUpdateId is not None:
                return self._snapshot(top, receive_ns, snapshot_symbol)
            if top.e or top.u is not None:
                data, path = top, ""
            else:
                return self._reply(top, frame, receive_ns)
        kind = data.e
        if kind == "depthUpdate":
            return self._depth(data, path, receive_ns)
        if kind == "bookTicker" or (not kind and data.b.__class__ is str):
            return self._quote(data, path, receive_ns)
        if kind == "trade":
            return self._trade(data, data.t, path, "t", receive_ns)
        if kind == "aggTrade":
            return self._trade(data, data.a, path, "a", receive_ns)
        if kind:
            return _EMPTY  # kline, 24hrTicker, markPriceUpdate, ...: not read here
        raise MalformedFrameError(
            self.venue, path + "e", None, "an event type (or a bookTicker's fields)"
        )

    def _depth(self, data: _Data, path: str, receive_ns: int) -> Parsed:
        bids, asks = data.b, data.a
        if data.U is None or data.u is None:
            field = "U" if data.U is None else "u"
            raise MalformedFrameError(self.venue, path + field, None, "an update id")
        if bids.__class__ is not list or asks.__class__ is not list:
            field, value = ("b", bids) if bids.__class__ is not list else ("a", asks)
            raise MalformedFrameError(self.venue, path + field, value, "a list of levels")
        venue = self.venue
        update = BookUpdate(
            venue=venue,
            symbol=self._symbol(data.s, path + "s"),
            bids=_pairs(bids, venue, path + "b"),
            asks=_pairs(asks, venue, path + "a"),
            first_update_id=data.U,
            last_update_id=data.u,
            previous_update_id=data.pu or 0,
            exchange_ns=data.E * _MS,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _quote(self, data: _Data, path: str, receive_ns: int) -> Parsed:
        venue = self.venue
        if data.u is None:
            raise MalformedFrameError(venue, path + "u", None, "an update id")
        fields = _QUOTE_FIELDS[path]
        bid, bid_size, ask, ask_size = _decimals((data.b, data.B, data.a, data.A), venue, fields)
        update = QuoteUpdate(
            venue=venue,
            symbol=self._symbol(data.s, path + "s"),
            bid=bid,
            bid_size=bid_size,
            ask=ask,
            ask_size=ask_size,
            update_id=data.u,
            exchange_ns=data.E * _MS,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _trade(
        self, data: _Data, trade_id: object, path: str, id_field: str, receive_ns: int
    ) -> Parsed:
        venue = self.venue
        if trade_id.__class__ is not int:
            raise MalformedFrameError(venue, path + id_field, trade_id, "an integer trade id")
        if data.m is None:
            raise MalformedFrameError(venue, path + "m", None, "true or false (buyer is maker)")
        price, size = _decimals((data.p, data.q), venue, _TRADE_FIELDS[path])
        update = TradeUpdate(
            venue=venue,
            symbol=self._symbol(data.s, path + "s"),
            trade_id=trade_id,
            price=price,
            size=size,
            side=Side.SELL if data.m else Side.BUY,
            exchange_ns=(data.T or data.E) * _MS,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _snapshot(self, top: _Frame, receive_ns: int, symbol: str | None) -> Parsed:
        venue = self.venue
        raw = top.symbol if top.symbol is not None else symbol
        if raw is None:
            raise MalformedFrameError(
                venue, "symbol", None, "a symbol for the snapshot (give it to parse_snapshot)"
            )
        if top.bids is None or top.asks is None:
            field = "bids" if top.bids is None else "asks"
            raise MalformedFrameError(venue, field, None, "a list of levels")
        update = BookUpdate(
            venue=venue,
            symbol=self._symbol(raw, "symbol"),
            bids=_pairs(top.bids, venue, "bids"),
            asks=_pairs(top.asks, venue, "asks"),
            snapshot=True,
            last_update_id=top.lastUpdateId or 0,
            exchange_ns=top.E * _MS,
            receive_ns=receive_ns,
        )
        return Parsed([update])

    def _reply(self, top: _Frame, frame: str | bytes, receive_ns: int) -> Parsed:
        if top.error is not msgspec.UNSET or top.code is not None:
            error = top.error
            text = json.dumps(error) if error is not msgspec.UNSET else f"{top.code} {top.msg}"
            event = FeedEvent(venue=self.venue, code="error", text=text, receive_ns=receive_ns)
            return Parsed([], events=[event])
        if top.result is not msgspec.UNSET:
            event = FeedEvent(
                venue=self.venue, code="subscribed", text=f"id {top.id}", receive_ns=receive_ns
            )
            return Parsed([], events=[event])
        raise MalformedFrameError(
            self.venue, "stream", frame, "a stream frame, a depth snapshot or a reply"
        )
