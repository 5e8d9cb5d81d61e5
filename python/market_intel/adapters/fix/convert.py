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
G  OrderCancelReplace   ORDER, status PENDING_NEW (the replacement's terms; OrderStatus
                        has no pending-replace state; ``metadata["msg_type"]`` says G)
8  ExecutionReport      ORDER (status from OrdStatus 39, filled from CumQty 14), and a
                        TRADE when LastQty (32) > 0 (price LastPx 31, quantity 32)
anything else           nothing (admin messages, market data requests, ...)
======================  ==========================================================

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
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, Protocol, TypeVar, cast

import simplefix

from market_intel.adapters.normalize import normalize_symbol, parse_decimal, to_float
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


def _text(message: FixMessage, tag: int) -> str | None:
    value = message.get(tag)
    return None if value is None else value.decode("utf-8", "replace")


def _required(message: FixMessage, tag: int, venue: str, name: str) -> str:
    value = _text(message, tag)
    if value is None or value == "":
        raise MalformedFrameError(venue, f"{name}({tag})", value, f"tag {tag} present")
    return value


def _decimal(message: FixMessage, tag: int, venue: str, name: str) -> Decimal | None:
    value = message.get(tag)
    return None if value is None else parse_decimal(value, venue=venue, field=f"{name}({tag})")


def _short(text: str) -> str:
    return text if len(text) <= 16 and text.isascii() and "\x00" not in text else ""


_E = TypeVar("_E")

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
    "E": OrderStatus.PENDING_NEW,  # pending replace
}
_LIQUIDITY: Final = {"1": Liquidity.MAKER, "2": Liquidity.TAKER}
_FIX_SIDE: Final = {Side.BUY: "1", Side.SELL: "2"}
_FIX_ORDER_TYPE: Final = {v: k for k, v in _ORDER_TYPES.items()}
_FIX_TIME_IN_FORCE: Final = {v: k for k, v in _TIME_IN_FORCE.items()}


def _enum(table: Mapping[str, _E], value: str, venue: str, name: str) -> _E:
    try:
        return table[value]
    except KeyError:
        expected = "one of " + ", ".join(sorted(table))
        raise MalformedFrameError(venue, name, value, expected) from None


# Market data


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataEntry:
    """One MDEntry of a W or X message, with exact values.

    Attributes:
        entry_type: MDEntryType (269): ``"0"`` bid, ``"1"`` offer, ``"2"`` trade, ...
        symbol: The normalized symbol.
        price: MDEntryPx (270), or None.
        size: MDEntrySize (271), or None.
        action: MDUpdateAction (279) of an X entry, None in a snapshot.
        entry_id: MDEntryID (278), or None.
        text: Text (58) of the entry, or None.
    """

    entry_type: str
    symbol: str
    price: Decimal | None = None
    size: Decimal | None = None
    action: str | None = None
    entry_id: str | None = None
    text: str | None = None


_Fields = dict[bytes, bytes]


def _md_group(message: FixMessage, venue: str) -> tuple[_Fields, list[_Fields]]:
    """Split a W or X message: the fields before NoMDEntries (268), then one dict per entry
    (each entry starts with the group's first tag; the first value of a tag wins)."""
    head: _Fields = {}
    entries: list[_Fields] = []
    pairs = iter(message.pairs)
    count: bytes | None = None
    for tag, value in pairs:
        if tag == b"268":
            count = value
            break
        head.setdefault(tag, value)
    if count is None:
        return head, entries
    if not count.isdigit():
        raise MalformedFrameError(venue, "NoMDEntries(268)", count, "a count")
    delimiter: bytes | None = None
    for tag, value in pairs:
        if tag == b"10":
            break
        if delimiter is None:
            delimiter = tag
        if tag == delimiter:
            entries.append({})
        entries[-1].setdefault(tag, value)
    if len(entries) != int(count):
        raise MalformedFrameError(
            venue, "NoMDEntries(268)", int(count), f"{len(entries)}, the entries present"
        )
    return head, entries


def _entry_decimal(value: bytes | None, venue: str, name: str) -> Decimal | None:
    return None if value is None else parse_decimal(value, venue=venue, field=name)


def _decoded(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


# Orders


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

    def _exchange_ns(self, message: FixMessage | _Fields) -> int:
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
        return self._entries(*_md_group(message, self.venue))

    def _symbol(self, raw: bytes) -> str:
        symbol = self._symbols.get(raw)
        if symbol is None:
            symbol = normalize_symbol(self.venue, raw.decode("utf-8", "replace"))
            if len(self._symbols) < 100_000:
                self._symbols[raw] = symbol
        return symbol

    def _entries(self, head: _Fields, group: list[_Fields]) -> list[MarketDataEntry]:
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
                    price=_entry_decimal(entry.get(b"270"), venue, "MDEntryPx(270)"),
                    size=_entry_decimal(entry.get(b"271"), venue, "MDEntrySize(271)"),
                    action=_decoded(entry.get(b"279")) if incremental else None,
                    entry_id=_decoded(entry.get(b"278")),
                    text=_decoded(entry.get(b"58")),
                )
            )
        return entries

    def market_data(self, message: FixMessage, *, receive_ns: int = 0) -> list[CoreMessage]:
        """Return one MARKET_DATA message per MDEntry of a W or X message (see the module)."""
        venue = self.venue
        head, group = _md_group(message, venue)
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
        price = _decimal(message, 44, venue, "Price")
        ord_type = _text(message, 40)
        tif = _text(message, 59)
        if ord_type is not None:
            order_type = _enum(_ORDER_TYPES, ord_type, venue, "OrdType(40)")
        elif known is not None:
            order_type = known.order_type
        else:
            order_type = OrderType.MARKET if price is None else OrderType.LIMIT
        if tif is not None:
            time_in_force = _enum(_TIME_IN_FORCE, tif, venue, "TimeInForce(59)")
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
        cl_ord_id = _text(message, 11)
        orig = _text(message, 41)
        order_text = _text(message, 37)
        key = orig or cl_ord_id or order_text
        if not key:
            raise MalformedFrameError(
                self.venue, "ClOrdID(11)", None, "ClOrdID, OrigClOrdID or OrderID"
            )
        metadata: dict[str, MetadataValue] = {"msg_type": _text(message, 35)}
        named = (("cl_ord_id", cl_ord_id), ("orig_cl_ord_id", orig), ("fix_order_id", order_text))
        for name, value in named:
            if value is not None:
                metadata[name] = value
        return fix_id(key), cl_ord_id or "", metadata

    def order(self, message: FixMessage, *, receive_ns: int = 0) -> CoreMessage:
        """Return the ORDER message of a D, F or G (PENDING_NEW, PENDING_CANCEL, PENDING_NEW).

        Raises:
            MalformedFrameError: ClOrdID (11), Symbol (55), Side (54) or OrderQty (38) is
                missing or malformed, or a limit order has no price.
        """
        venue = self.venue
        msg_type = _text(message, 35)
        order_id, cl_ord_id, metadata = self._ids_of(message)
        orig = _text(message, 41)
        known = self._orders.get(orig) if orig else None
        terms = self._terms(message, known)
        side = _enum(_SIDES, _required(message, 54, venue, "Side"), venue, "Side(54)")
        quantity = _decimal(message, 38, venue, "OrderQty")
        if quantity is None:
            raise MalformedFrameError(venue, "OrderQty(38)", None, "an order quantity")
        exchange_ns = self._exchange_ns(message)
        status = OrderStatus.PENDING_CANCEL if msg_type == "F" else OrderStatus.PENDING_NEW
        payload = Order(
            order_id=order_id,
            symbol=normalize_symbol(venue, _required(message, 55, venue, "Symbol")),
            side=side,
            quantity=to_float(quantity),
            price=terms.price,
            order_type=terms.order_type,
            time_in_force=terms.time_in_force,
            status=status,
            client_order_id=_short(cl_ord_id),
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
        orig = _text(message, 41)
        known = self._orders.get(cl_ord_id) or (self._orders.get(orig) if orig else None)
        ord_status = _required(message, 39, venue, "OrdStatus")
        metadata["ord_status"] = ord_status
        status = _enum(_ORDER_STATUS, ord_status, venue, "OrdStatus(39)")
        side = _enum(_SIDES, _required(message, 54, venue, "Side"), venue, "Side(54)")
        symbol = normalize_symbol(venue, _required(message, 55, venue, "Symbol"))
        cum = _decimal(message, 14, venue, "CumQty")
        if cum is None:
            raise MalformedFrameError(venue, "CumQty(14)", None, "the filled quantity")
        quantity = _decimal(message, 38, venue, "OrderQty")
        if quantity is None:
            leaves = _decimal(message, 151, venue, "LeavesQty")
            if leaves is None:
                raise MalformedFrameError(venue, "OrderQty(38)", None, "OrderQty or LeavesQty(151)")
            quantity = cum + leaves
        exec_type = _text(message, 150)
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
            client_order_id=_short(cl_ord_id),
            venue=venue,
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )
        out = [self._wrap(MessageType.ORDER, order, metadata, receive_ns, exchange_ns)]
        last_qty = _decimal(message, 32, venue, "LastQty")
        canceled_trade = exec_type == "H" or _text(message, 20) == "1"
        if last_qty is not None and last_qty > 0 and not canceled_trade:
            last_px = _decimal(message, 31, venue, "LastPx")
            if last_px is None:
                raise MalformedFrameError(venue, "LastPx(31)", None, "the price of a fill")
            exec_id = _required(message, 17, venue, "ExecID")
            liquidity = _LIQUIDITY.get(_text(message, 851) or "", Liquidity.UNKNOWN)
            trade = Trade(
                trade_id=fix_id(exec_id),
                symbol=symbol,
                side=side,
                price=to_float(last_px),
                quantity=to_float(last_qty),
                order_id=order_id,
                client_order_id=_short(cl_ord_id),
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


# Market data requests (V) and their answers


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketDataRequest:
    """A MarketDataRequest (V) as an acceptor reads it.

    Attributes:
        md_req_id: MDReqID (262).
        subscription_type: SubscriptionRequestType (263): ``"0"`` snapshot, ``"1"``
            snapshot and updates, ``"2"`` unsubscribe.
        market_depth: MarketDepth (264): 0 full book, 1 top of book, n levels.
        entry_types: MDEntryTypes asked for (267 group of 269).
        symbols: Symbols asked for (146 group of 55), as sent.
    """

    md_req_id: str
    subscription_type: str
    market_depth: int
    entry_types: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()


def market_data_request(
    *,
    md_req_id: str,
    symbols: Sequence[str],
    entry_types: Sequence[str] = ("0", "1"),
    subscription_type: str = "0",
    market_depth: int = 1,
) -> FixMessage:
    """Build a MarketDataRequest (V) for some symbols and entry types."""
    message = new_message("V")
    message.append_pair(262, md_req_id)
    message.append_pair(263, subscription_type)
    message.append_pair(264, market_depth)
    if subscription_type == "1":
        message.append_pair(265, "1")
    message.append_pair(267, len(entry_types))
    for entry_type in entry_types:
        message.append_pair(269, entry_type)
    message.append_pair(146, len(symbols))
    for symbol in symbols:
        message.append_pair(55, symbol)
    return message


def parse_market_data_request(message: FixMessage, *, venue: str = "fix") -> MarketDataRequest:
    """Read a MarketDataRequest (V).

    Raises:
        MalformedFrameError: MDReqID (262), SubscriptionRequestType (263) or MarketDepth (264)
            is missing, the depth is not a number, or a group count differs from its entries.
    """
    md_req_id = _required(message, 262, venue, "MDReqID")
    subscription = _required(message, 263, venue, "SubscriptionRequestType")
    depth = _required(message, 264, venue, "MarketDepth")
    if not depth.isdigit():
        raise MalformedFrameError(venue, "MarketDepth(264)", depth, "a whole number")
    groups: dict[bytes, list[str]] = {b"269": [], b"55": []}
    for tag, value in message.pairs:
        if tag in groups:
            groups[tag].append(value.decode("utf-8", "replace"))
    for count_tag, tag in ((267, b"269"), (146, b"55")):
        count = _text(message, count_tag)
        if count is not None and (not count.isdigit() or int(count) != len(groups[tag])):
            raise MalformedFrameError(
                venue, f"({count_tag})", count, f"{len(groups[tag])}, the entries present"
            )
    return MarketDataRequest(
        md_req_id=md_req_id,
        subscription_type=subscription,
        market_depth=int(depth),
        entry_types=tuple(groups[b"269"]),
        symbols=tuple(groups[b"55"]),
    )


def market_data_snapshot(
    *, md_req_id: str, symbol: str, entries: Sequence[MarketDataEntry]
) -> FixMessage:
    """Build a MarketDataSnapshotFullRefresh (W) answering request ``md_req_id``.

    Args:
        md_req_id: MDReqID (262) of the request answered.
        symbol: The symbol (55) as the requester sent it.
        entries: The book's entries; each writes 269, and 270, 271, 278 when set.
    """
    message = new_message("W")
    message.append_pair(262, md_req_id)
    message.append_pair(55, symbol)
    message.append_pair(268, len(entries))
    for entry in entries:
        message.append_pair(269, entry.entry_type)
        if entry.price is not None:
            message.append_pair(270, format_decimal(entry.price))
        if entry.size is not None:
            message.append_pair(271, format_decimal(entry.size))
        if entry.entry_id is not None:
            message.append_pair(278, entry.entry_id)
    return message


def market_data_request_reject(*, md_req_id: str, reason: str, text: str = "") -> FixMessage:
    """Build a MarketDataRequestReject (Y): MDReqRejReason (281) ``reason``, e.g. ``"0"``
    unknown symbol."""
    message = new_message("Y")
    message.append_pair(262, md_req_id)
    message.append_pair(281, reason)
    if text:
        message.append_pair(58, text)
    return message
