"""FIX messages to engine messages and back: market data, orders and execution reports.

Messages are ``simplefix.FixMessage`` objects (typed here by the ``FixMessage`` protocol).
Every price and size is read with ``parse_decimal``, exactly; floats appear only in the
``CoreMessage`` payloads (``to_float``, the nearest double). ``FixConverter.convert`` maps:

======================  ==========================================================
FIX message (35)        engine messages
======================  ==========================================================
W  snapshot             one MARKET_DATA per MDEntry (268 group)
X  incremental refresh  one MARKET_DATA per MDEntry (268 group)
D  NewOrderSingle       ORDER, status PENDING_NEW
F  OrderCancelRequest   ORDER, status PENDING_CANCEL
G  OrderCancelReplace   ORDER, status PENDING_REPLACE (the replacement's terms)
8  ExecutionReport      ORDER (status from OrdStatus 39, filled from CumQty 14), and a
                        TRADE when LastQty (32) > 0 (price LastPx 31, quantity 32)
anything else           nothing (admin messages, market data requests, ...)
======================  ==========================================================

Every order message has ``metadata["msg_type"]`` (35). A report's OrdStatus (39) gives its
status: A PENDING_NEW, 6 PENDING_CANCEL, E PENDING_REPLACE; 0, 5 (replaced: the replacement
is working), 7, 9 and D NEW; 1 PARTIALLY_FILLED; 2 and B FILLED; 3, 4 and C CANCELED;
8 REJECTED.

MDEntryType (269) decides the kind and the fields of a market data message:

=============================  ==================  =====================================
269                            kind                fields
=============================  ==================  =====================================
0 bid                          SNAPSHOT (W),       bid = 270, bid_size = 271
                               DEPTH (X)
1 offer                        SNAPSHOT / DEPTH    ask = 270, ask_size = 271
2 trade                        TRADE               last_price = 270, last_size = 271
B trade volume                 QUOTE               volume = 271
anything else (3 index value,  QUOTE               last_price = 270, last_size = 271
4 open, 5 close, 7 high, ...)
=============================  ==================  =====================================

An incremental delete (279=2) of a bid or offer has size 0 (a zero size removes a level).
Every market data message has ``metadata`` ``md_entry_type`` (269) and, for X,
``md_update_action`` (279); ``md_entry_id`` (278) and ``text`` (58) when present. Symbols
are ``normalize_symbol(venue, 55)``; an entry without 55 takes the message's 55.
``update_id`` is MsgSeqNum (34), or ApplSeqNum (1181) when a feed numbers by application
sequence only (the JSE index feed), else 0. ``exchange_ns`` is TransactTime (60) when
present, else SendingTime (52).

Ids: FIX ids are strings, engine ids are unsigned 64-bit ints. ``fix_id`` maps a string of
ASCII digits below 2**64 to its value and any other string to the first 8 bytes of its
BLAKE2b digest, so the same FIX id always gives the same int. An order message's
``order_id`` is ``fix_id`` of OrigClOrdID (41) when present, else of ClOrdID (11), else of
OrderID (37): a D, the F and G that refer to it and the execution reports about it share one
``order_id``. A trade's ``trade_id`` is ``fix_id(ExecID 17)``. ``client_order_id`` is ClOrdID
when it fits (16 ASCII characters) and empty otherwise; ``metadata["cl_ord_id"]`` always has
it whole.

An ExecutionReport seldom repeats the order's type, price and time in force. The converter
remembers the orders it saw or built (``remember``, the last 100,000 by ClOrdID) and takes
those from there; a report about an order it never saw, without OrdType (40) and Price (44),
gives order type MARKET and price None.

Field values are read and written in ``_fields``; the MDEntry group and the V/W/Y
builders are in ``_market_data``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from market_intel.adapters.fix._fields import (
    FixMessage,
    decimal_of,
    enum_of,
    fix_id,
    format_decimal,
    format_utc_timestamp,
    new_message,
    parse_utc_timestamp,
    required_text,
    short_id,
    text_of,
)
from market_intel.adapters.fix._market_data import (
    Fields,
    MarketDataEntry,
    MarketDataRequest,
    decoded,
    entry_decimal,
    market_data_request,
    market_data_request_reject,
    market_data_snapshot,
    md_group,
    parse_market_data_request,
)
from market_intel.adapters.normalize import normalize_symbol, to_float
from market_intel.enums import (
    Liquidity,
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from market_intel.errors import MalformedFrameError
from market_intel.messages import CoreMessage, MarketData, MetadataValue, Order, Trade

__all__ = [
    "FixConverter",
    "FixMessage",
    "MarketDataEntry",
    "MarketDataRequest",
    "fix_id",
    "format_decimal",
    "format_utc_timestamp",
    "market_data_request",
    "market_data_request_reject",
    "market_data_snapshot",
    "new_message",
    "parse_market_data_request",
    "parse_utc_timestamp",
]

# FIX codes of the order fields

_SIDES: Final = {"1": Side.BUY, "2": Side.SELL, "5": Side.SELL, "6": Side.SELL}
_ORDER_TYPES: Final = {
    "1": OrderType.MARKET,
    "2": OrderType.LIMIT,
    "3": OrderType.STOP,
    "4": OrderType.STOP_LIMIT,
}
_TIME_IN_FORCE: Final = {
    "0": TimeInForce.DAY,
    "1": TimeInForce.GTC,
    "3": TimeInForce.IOC,
    "4": TimeInForce.FOK,
}
_ORDER_STATUS: Final = {
    "0": OrderStatus.NEW,
    "1": OrderStatus.PARTIALLY_FILLED,
    "2": OrderStatus.FILLED,
    "3": OrderStatus.CANCELED,  # done for day
    "4": OrderStatus.CANCELED,
    "5": OrderStatus.NEW,  # replaced: the replacement is working
    "6": OrderStatus.PENDING_CANCEL,
    "7": OrderStatus.NEW,  # stopped
    "8": OrderStatus.REJECTED,
    "9": OrderStatus.NEW,  # suspended
    "A": OrderStatus.PENDING_NEW,
    "B": OrderStatus.FILLED,  # calculated
    "C": OrderStatus.CANCELED,  # expired
    "D": OrderStatus.NEW,  # accepted for bidding
    "E": OrderStatus.PENDING_REPLACE,
}
_LIQUIDITY: Final = {"1": Liquidity.MAKER, "2": Liquidity.TAKER}
_FIX_SIDE: Final = {Side.BUY: "1", Side.SELL: "2"}
_FIX_ORDER_TYPE: Final = {v: k for k, v in _ORDER_TYPES.items()}
_FIX_TIME_IN_FORCE: Final = {v: k for k, v in _TIME_IN_FORCE.items()}


@dataclass(frozen=True, slots=True)
class _Terms:
    order_type: OrderType
    price: float | None
    time_in_force: TimeInForce


class FixConverter:
    """Turn FIX application messages of one venue into engine messages.

    Args:
        venue: The venue id written into every payload (at most 16 ASCII characters).
        source: The ``source`` of the messages made.
        remember: How many orders (by ClOrdID) to remember for the execution reports that
            do not repeat their order's type, price and time in force.
        message_ids: Ids for the messages made (a replay numbers them from 1); when given,
            ``created_ns`` is the message's ``receive_ns`` or, if 0, its ``exchange_ns``, so
            the same input always gives equal messages. Fresh ids and clock times otherwise.
    """

    def __init__(
        self,
        *,
        venue: str,
        source: str = "fix",
        remember: int = 100_000,
        message_ids: Iterator[int] | None = None,
    ) -> None:
        self.venue = venue
        self.source = source
        self._remember = remember
        self._orders: OrderedDict[str, _Terms] = OrderedDict()
        self._ids = message_ids
        self._symbols: dict[bytes, str] = {}

    def convert(self, message: FixMessage, *, receive_ns: int = 0) -> list[CoreMessage]:
        """Return the engine messages a FIX message carries (none for admin messages).

        Raises:
            MalformedFrameError: A field the conversion needs is missing or malformed.
        """
        msg_type = message.get(35)
        if msg_type in (b"W", b"X"):
            return self.market_data(message, receive_ns=receive_ns)
        if msg_type in (b"D", b"F", b"G"):
            return [self.order(message, receive_ns=receive_ns)]
        if msg_type == b"8":
            return self.execution(message, receive_ns=receive_ns)
        return []

    def _wrap(
        self,
        type: MessageType,
        payload: MarketData | Order | Trade,
        metadata: dict[str, MetadataValue],
        receive_ns: int,
        exchange_ns: int,
    ) -> CoreMessage:
        if self._ids is None:
            return CoreMessage(type, payload, source=self.source, metadata=metadata)
        return CoreMessage(
            type,
            payload,
            source=self.source,
            id=next(self._ids),
            created_ns=receive_ns or exchange_ns,
            metadata=metadata,
        )

    def _exchange_ns(self, message: FixMessage | Fields) -> int:
        if isinstance(message, dict):
            stamp, sent = message.get(b"60"), message.get(b"52")
        else:
            stamp, sent = message.get(60), message.get(52)
        if stamp is not None:
            return parse_utc_timestamp(stamp, venue=self.venue, field="TransactTime(60)")
        stamp = sent
        if stamp is None:
            return 0
        return parse_utc_timestamp(stamp, venue=self.venue, field="SendingTime(52)")

    # Market data

    def market_data_entries(self, message: FixMessage) -> list[MarketDataEntry]:
        """Return the MDEntries of a W or X message, with exact decimal values.

        Raises:
            MalformedFrameError: The group count differs from the entries present, an entry
                has no MDEntryType (269) or symbol, or a price or size is not a decimal.
        """
        return self._entries(*md_group(message, self.venue))

    def _symbol(self, raw: bytes) -> str:
        symbol = self._symbols.get(raw)
        if symbol is None:
            symbol = normalize_symbol(self.venue, raw.decode("utf-8", "replace"))
            if len(self._symbols) < 100_000:
                self._symbols[raw] = symbol
        return symbol

    def _entries(self, head: Fields, group: list[Fields]) -> list[MarketDataEntry]:
        venue = self.venue
        incremental = head.get(b"35") == b"X"
        outer_symbol = head.get(b"55")
        entries = []
        for i, entry in enumerate(group, 1):
            entry_type = entry.get(b"269")
            if entry_type is None:
                raise MalformedFrameError(venue, f"MDEntryType(269) of entry {i}", None, "a type")
            symbol = entry.get(b"55") or outer_symbol
            if not symbol:
                raise MalformedFrameError(venue, f"Symbol(55) of entry {i}", None, "a symbol")
            entries.append(
                MarketDataEntry(
                    entry_type=entry_type.decode("ascii", "replace"),
                    symbol=self._symbol(symbol),
                    price=entry_decimal(entry.get(b"270"), venue, "MDEntryPx(270)"),
                    size=entry_decimal(entry.get(b"271"), venue, "MDEntrySize(271)"),
                    action=decoded(entry.get(b"279")) if incremental else None,
                    entry_id=decoded(entry.get(b"278")),
                    text=decoded(entry.get(b"58")),
                )
            )
        return entries

    def market_data(self, message: FixMessage, *, receive_ns: int = 0) -> list[CoreMessage]:
        """Return one MARKET_DATA message per MDEntry of a W or X message (see the module)."""
        venue = self.venue
        head, group = md_group(message, venue)
        snapshot = head.get(b"35") == b"W"
        seq = head.get(b"34") or head.get(b"1181")
        update_id = int(seq) if seq is not None and seq.isdigit() else 0
        exchange_ns = self._exchange_ns(head)
        out = []
        for entry in self._entries(head, group):
            price = None if entry.price is None else to_float(entry.price)
            size = None if entry.size is None else to_float(entry.size)
            if entry.action == "2" and entry.entry_type in ("0", "1"):
                size = 0.0
            kind = MarketDataKind.QUOTE
            values: dict[str, float | None] = {}
            if entry.entry_type == "0":
                kind = MarketDataKind.SNAPSHOT if snapshot else MarketDataKind.DEPTH
                values = {"bid": price, "bid_size": size}
            elif entry.entry_type == "1":
                kind = MarketDataKind.SNAPSHOT if snapshot else MarketDataKind.DEPTH
                values = {"ask": price, "ask_size": size}
            elif entry.entry_type == "2":
                kind = MarketDataKind.TRADE
                values = {"last_price": price, "last_size": size}
            elif entry.entry_type == "B":
                values = {"volume": size}
            else:
                values = {"last_price": price, "last_size": size}
            metadata: dict[str, MetadataValue] = {"md_entry_type": entry.entry_type}
            if entry.action is not None:
                metadata["md_update_action"] = entry.action
            if entry.entry_id is not None:
                metadata["md_entry_id"] = entry.entry_id
            if entry.text is not None:
                metadata["text"] = entry.text
            payload = MarketData(
                symbol=entry.symbol,
                venue=venue,
                kind=kind,
                update_id=update_id,
                exchange_ns=exchange_ns,
                receive_ns=receive_ns,
                **values,
            )
            out.append(
                self._wrap(MessageType.MARKET_DATA, payload, metadata, receive_ns, exchange_ns)
            )
        return out

    # Orders

    def remember(self, cl_ord_id: str, order: Order) -> None:
        """Remember an order's type, price and time in force under its ClOrdID."""
        terms = _Terms(order.order_type, order.price, order.time_in_force)
        self._orders[cl_ord_id] = terms
        self._orders.move_to_end(cl_ord_id)
        while len(self._orders) > self._remember:
            self._orders.popitem(last=False)

    def _terms(self, message: FixMessage, known: _Terms | None) -> _Terms:
        venue = self.venue
        price = decimal_of(message, 44, venue, "Price")
        ord_type = text_of(message, 40)
        tif = text_of(message, 59)
        if ord_type is not None:
            order_type = enum_of(_ORDER_TYPES, ord_type, venue, "OrdType(40)")
        elif known is not None:
            order_type = known.order_type
        else:
            order_type = OrderType.MARKET if price is None else OrderType.LIMIT
        if tif is not None:
            time_in_force = enum_of(_TIME_IN_FORCE, tif, venue, "TimeInForce(59)")
        else:
            time_in_force = known.time_in_force if known is not None else TimeInForce.DAY
        if order_type is OrderType.MARKET or order_type is OrderType.STOP:
            value = None
        elif price is not None:
            value = to_float(price)
        elif known is not None and known.price is not None:
            value = known.price
        else:
            raise MalformedFrameError(
                venue, "Price(44)", None, f"a price for a {order_type.name} order"
            )
        return _Terms(order_type, value, time_in_force)

    def _ids_of(self, message: FixMessage) -> tuple[int, str, dict[str, MetadataValue]]:
        cl_ord_id = text_of(message, 11)
        orig = text_of(message, 41)
        order_text = text_of(message, 37)
        key = orig or cl_ord_id or order_text
        if not key:
            raise MalformedFrameError(
                self.venue, "ClOrdID(11)", None, "ClOrdID, OrigClOrdID or OrderID"
            )
        metadata: dict[str, MetadataValue] = {"msg_type": text_of(message, 35)}
        named = (("cl_ord_id", cl_ord_id), ("orig_cl_ord_id", orig), ("fix_order_id", order_text))
        for name, value in named:
            if value is not None:
                metadata[name] = value
        return fix_id(key), cl_ord_id or "", metadata

    def order(self, message: FixMessage, *, receive_ns: int = 0) -> CoreMessage:
        """Return the ORDER message of a D, F or G: pending new, cancel or replace.

        Raises:
            MalformedFrameError: ClOrdID (11), Symbol (55), Side (54) or OrderQty (38) is
                missing or malformed, or a limit order has no price.
        """
        venue = self.venue
        msg_type = text_of(message, 35)
        order_id, cl_ord_id, metadata = self._ids_of(message)
        orig = text_of(message, 41)
        known = self._orders.get(orig) if orig else None
        terms = self._terms(message, known)
        side = enum_of(_SIDES, required_text(message, 54, venue, "Side"), venue, "Side(54)")
        quantity = decimal_of(message, 38, venue, "OrderQty")
        if quantity is None:
            raise MalformedFrameError(venue, "OrderQty(38)", None, "an order quantity")
        exchange_ns = self._exchange_ns(message)
        if msg_type == "F":
            status = OrderStatus.PENDING_CANCEL
        elif msg_type == "G":
            status = OrderStatus.PENDING_REPLACE
        else:
            status = OrderStatus.PENDING_NEW
        payload = Order(
            order_id=order_id,
            symbol=normalize_symbol(venue, required_text(message, 55, venue, "Symbol")),
            side=side,
            quantity=to_float(quantity),
            price=terms.price,
            order_type=terms.order_type,
            time_in_force=terms.time_in_force,
            status=status,
            client_order_id=short_id(cl_ord_id),
            venue=venue,
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )
        if msg_type in ("D", "G") and cl_ord_id:
            self.remember(cl_ord_id, payload)
        return self._wrap(MessageType.ORDER, payload, metadata, receive_ns, exchange_ns)

    def execution(self, message: FixMessage, *, receive_ns: int = 0) -> list[CoreMessage]:
        """Return the ORDER message of an ExecutionReport, and its TRADE when LastQty > 0.

        Raises:
            MalformedFrameError: OrdStatus (39), Side (54), Symbol (55), CumQty (14), a
                quantity or a price the report needs is missing or malformed.
        """
        venue = self.venue
        order_id, cl_ord_id, metadata = self._ids_of(message)
        orig = text_of(message, 41)
        known = self._orders.get(cl_ord_id) or (self._orders.get(orig) if orig else None)
        ord_status = required_text(message, 39, venue, "OrdStatus")
        metadata["ord_status"] = ord_status
        status = enum_of(_ORDER_STATUS, ord_status, venue, "OrdStatus(39)")
        side = enum_of(_SIDES, required_text(message, 54, venue, "Side"), venue, "Side(54)")
        symbol = normalize_symbol(venue, required_text(message, 55, venue, "Symbol"))
        cum = decimal_of(message, 14, venue, "CumQty")
        if cum is None:
            raise MalformedFrameError(venue, "CumQty(14)", None, "the filled quantity")
        quantity = decimal_of(message, 38, venue, "OrderQty")
        if quantity is None:
            leaves = decimal_of(message, 151, venue, "LeavesQty")
            if leaves is None:
                raise MalformedFrameError(venue, "OrderQty(38)", None, "OrderQty or LeavesQty(151)")
            quantity = cum + leaves
        exec_type = text_of(message, 150)
        if exec_type is not None:
            metadata["exec_type"] = exec_type
        terms = self._terms(message, known)
        exchange_ns = self._exchange_ns(message)
        order = Order(
            order_id=order_id,
            symbol=symbol,
            side=side,
            quantity=to_float(quantity),
            price=terms.price,
            order_type=terms.order_type,
            time_in_force=terms.time_in_force,
            status=status,
            filled_quantity=to_float(cum),
            client_order_id=short_id(cl_ord_id),
            venue=venue,
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )
        out = [self._wrap(MessageType.ORDER, order, metadata, receive_ns, exchange_ns)]
        last_qty = decimal_of(message, 32, venue, "LastQty")
        canceled_trade = exec_type == "H" or text_of(message, 20) == "1"
        if last_qty is not None and last_qty > 0 and not canceled_trade:
            last_px = decimal_of(message, 31, venue, "LastPx")
            if last_px is None:
                raise MalformedFrameError(venue, "LastPx(31)", None, "the price of a fill")
            exec_id = required_text(message, 17, venue, "ExecID")
            liquidity = _LIQUIDITY.get(text_of(message, 851) or "", Liquidity.UNKNOWN)
            trade = Trade(
                trade_id=fix_id(exec_id),
                symbol=symbol,
                side=side,
                price=to_float(last_px),
                quantity=to_float(last_qty),
                order_id=order_id,
                client_order_id=short_id(cl_ord_id),
                liquidity=liquidity,
                venue=venue,
                exchange_ns=exchange_ns,
                receive_ns=receive_ns,
            )
            trade_metadata: dict[str, MetadataValue] = {**metadata, "exec_id": exec_id}
            out.append(
                self._wrap(MessageType.TRADE, trade, trade_metadata, receive_ns, exchange_ns)
            )
        return out

    # Builders of outgoing order messages

    def _order_body(
        self, message: FixMessage, order: Order, symbol: str | None, with_terms: bool
    ) -> None:
        message.append_pair(55, symbol or order.symbol)
        message.append_pair(54, _FIX_SIDE[order.side])
        message.append_pair(60, format_utc_timestamp())
        message.append_pair(38, format_decimal(order.quantity))
        if with_terms:
            message.append_pair(40, _FIX_ORDER_TYPE[order.order_type])
            if order.price is not None:
                message.append_pair(44, format_decimal(order.price))
            message.append_pair(59, _FIX_TIME_IN_FORCE[order.time_in_force])

    def new_order_single(
        self, order: Order, *, cl_ord_id: str | None = None, symbol: str | None = None
    ) -> FixMessage:
        """Build a NewOrderSingle (D) for an order, and remember it.

        Args:
            order: The order; its price is written as the shortest decimal of its float.
            cl_ord_id: ClOrdID (11); the order's ``client_order_id``, or its ``order_id``.
            symbol: The venue's symbol (55) when it differs from ``order.symbol``.
        """
        cl = cl_ord_id or order.client_order_id or str(order.order_id)
        message = new_message("D")
        message.append_pair(11, cl)
        message.append_pair(21, "1")
        self._order_body(message, order, symbol, with_terms=True)
        self.remember(cl, order)
        return message

    def order_cancel_request(
        self, order: Order, *, cl_ord_id: str, orig_cl_ord_id: str, symbol: str | None = None
    ) -> FixMessage:
        """Build an OrderCancelRequest (F) for an order placed as ``orig_cl_ord_id``."""
        message = new_message("F")
        message.append_pair(11, cl_ord_id)
        message.append_pair(41, orig_cl_ord_id)
        self._order_body(message, order, symbol, with_terms=False)
        return message

    def order_cancel_replace_request(
        self, order: Order, *, cl_ord_id: str, orig_cl_ord_id: str, symbol: str | None = None
    ) -> FixMessage:
        """Build an OrderCancelReplaceRequest (G): ``order`` holds the new terms."""
        message = new_message("G")
        message.append_pair(11, cl_ord_id)
        message.append_pair(41, orig_cl_ord_id)
        message.append_pair(21, "1")
        self._order_body(message, order, symbol, with_terms=True)
        self.remember(cl_ord_id, order)
        return message
