"""The typed messages of the engine: payloads, ``CoreMessage`` and their serialization.

A ``CoreMessage`` is a header (type, priority, source, ids, timestamps, tracing ids, metadata)
around one payload. Payloads are frozen msgspec structs under ``MessagePayload``, tagged by a
``payload`` field so that a union of them serializes and decodes by tag::

    CoreMessage
    ├── type: MessageType           decides the payload class (Text goes with any type)
    └── payload: MessagePayload
        ├── MarketData    MARKET_DATA   hot: also travels as a record, column by column
        ├── Order         ORDER         hot
        ├── Trade         TRADE         hot (a fill or a public trade)
        ├── Event         EVENT
        ├── Control       CONTROL       e.g. command "kill_switch"
        ├── Health        HEALTH
        ├── Analytics     ANALYTICS     a query or a result, exactly one
        └── Text          any type

Every struct checks its fields in ``__post_init__``, which msgspec runs on construction and on
decoding; a violation raises ``MessageValidationError`` naming ``Class.field``, the value and
what was expected. Enum fields accept the enum or its integer value and store the enum; ints
given to float fields are stored as floats; bools are not numbers. NaN and infinities are
rejected, so JSON round trips are exact. ``msgspec.structs.replace`` skips ``__post_init__``:
do not build messages with it.

Message ids come from a process-wide counter. Each process starts it at a random multiple of
2**32 below 2**63 (31 random bits), so ids of different processes collide only if two
processes draw the same block (odds about k**2 / 2**32 for k processes) or one process makes
more than 2**32 messages. A forked child draws a new block.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
from typing import Any, ClassVar, Final, TypeAlias

import msgspec

from market_intel._checks import (
    _ANY_TEXT,
    _I63,
    _ID,
    _INF,
    _MAYBE_ID,
    _MAYBE_PRICE,
    _NS,
    _POSITIVE,
    _PRICE,
    _SHORT,
    _SIGNED,
    _SYMBOL,
    _TEXT,
    _U64,
    _UINT64,
    JsonValue,
    MetadataValue,
    _fail,
    _json,
    _member,
    _metrics,
    _scalars,
    _validate,
)
from market_intel.enums import (
    AgentStatus,
    Liquidity,
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Priority,
    Severity,
    Side,
    TimeInForce,
)
from market_intel.errors import MessageValidationError

__all__ = [
    "Analytics",
    "AnyPayload",
    "Control",
    "CoreMessage",
    "Event",
    "Health",
    "JsonValue",
    "MarketData",
    "MessagePayload",
    "MetadataValue",
    "Order",
    "Text",
    "Trade",
]

# Payloads. The hot ones (market data, orders, trades) check the common case inline and fall
# back to the field checks, which convert or explain. The inline 16 is SYMBOL_SIZE: an ASCII
# str of at most 16 characters is at most 16 UTF-8 bytes.


class MessagePayload(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="payload", forbid_unknown_fields=True
):
    """Base of every payload; serialized with a ``payload`` tag naming its class.

    Static constructors mirror the classes: ``MessagePayload.text("Hello World")`` makes a
    ``Text``; ``market_data``, ``order``, ``trade``, ``event``, ``control``, ``health`` and
    ``analytics`` are the classes ``MarketData`` ... ``Analytics`` and take their arguments.
    """

    market_data: ClassVar[type[MarketData]]
    order: ClassVar[type[Order]]
    trade: ClassVar[type[Trade]]
    event: ClassVar[type[Event]]
    control: ClassVar[type[Control]]
    health: ClassVar[type[Health]]
    analytics: ClassVar[type[Analytics]]

    @staticmethod
    def text(text: str) -> Text:
        """Make a ``Text`` payload."""
        return Text(text=text)


class MarketData(MessagePayload, frozen=True, kw_only=True, tag="market_data", gc=False):
    """A quote, public trade, book update or snapshot of one symbol; absent numbers are None."""

    symbol: str
    venue: str = ""
    kind: MarketDataKind = MarketDataKind.QUOTE
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last_price: float | None = None
    last_size: float | None = None
    volume: float | None = None
    update_id: int = 0
    exchange_ns: int = 0
    receive_ns: int = 0

    _checks: ClassVar = (
        ("symbol", _SYMBOL), ("venue", _SHORT), ("kind", _member(MarketDataKind)),
        ("bid", _MAYBE_PRICE), ("ask", _MAYBE_PRICE), ("bid_size", _MAYBE_PRICE),
        ("ask_size", _MAYBE_PRICE), ("last_price", _MAYBE_PRICE), ("last_size", _MAYBE_PRICE),
        ("volume", _MAYBE_PRICE), ("update_id", _UINT64), ("exchange_ns", _NS),
        ("receive_ns", _NS),
    )  # fmt: skip

    def __post_init__(self) -> None:
        s, v, b, a = self.symbol, self.venue, self.bid, self.ask
        bs, az = self.bid_size, self.ask_size
        lp, ls, vol = self.last_price, self.last_size, self.volume
        u, e, r = self.update_id, self.exchange_ns, self.receive_ns
        if not (
            s.__class__ is str and 0 < len(s) <= 16 and s.isascii() and "\x00" not in s
            and v.__class__ is str and len(v) <= 16 and v.isascii() and "\x00" not in v
            and self.kind.__class__ is MarketDataKind
            and (b is None or (b.__class__ is float and 0.0 <= b < _INF))
            and (a is None or (a.__class__ is float and 0.0 <= a < _INF))
            and (bs is None or (bs.__class__ is float and 0.0 <= bs < _INF))
            and (az is None or (az.__class__ is float and 0.0 <= az < _INF))
            and (lp is None or (lp.__class__ is float and 0.0 <= lp < _INF))
            and (ls is None or (ls.__class__ is float and 0.0 <= ls < _INF))
            and (vol is None or (vol.__class__ is float and 0.0 <= vol < _INF))
            and u.__class__ is int and e.__class__ is int and r.__class__ is int
            and 0 <= u < _U64 and 0 <= (e | r) < _I63
        ):  # fmt: skip
            _validate(self, self._checks)


class Order(MessagePayload, frozen=True, kw_only=True, tag="order", gc=False):
    """An order and its state; LIMIT and STOP_LIMIT orders need a price, MARKET orders none."""

    order_id: int
    symbol: str
    side: Side
    quantity: float
    price: float | None = None
    order_type: OrderType = OrderType.LIMIT
    time_in_force: TimeInForce = TimeInForce.GTC
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: float = 0.0
    client_order_id: str = ""
    venue: str = ""
    exchange_ns: int = 0
    receive_ns: int = 0

    _checks: ClassVar = (
        ("order_id", _UINT64), ("symbol", _SYMBOL), ("side", _member(Side)),
        ("quantity", _POSITIVE), ("price", _MAYBE_PRICE), ("order_type", _member(OrderType)),
        ("time_in_force", _member(TimeInForce)), ("status", _member(OrderStatus)),
        ("filled_quantity", _PRICE), ("client_order_id", _SHORT), ("venue", _SHORT),
        ("exchange_ns", _NS), ("receive_ns", _NS),
    )  # fmt: skip

    def __post_init__(self) -> None:
        s, v, c, i = self.symbol, self.venue, self.client_order_id, self.order_id
        q, p, f = self.quantity, self.price, self.filled_quantity
        e, r = self.exchange_ns, self.receive_ns
        if not (
            s.__class__ is str and 0 < len(s) <= 16 and s.isascii() and "\x00" not in s
            and v.__class__ is str and len(v) <= 16 and v.isascii() and "\x00" not in v
            and c.__class__ is str and len(c) <= 16 and c.isascii() and "\x00" not in c
            and q.__class__ is float and 0.0 < q < _INF
            and (p is None or (p.__class__ is float and 0.0 <= p < _INF))
            and f.__class__ is float and 0.0 <= f < _INF
            and self.side.__class__ is Side and self.order_type.__class__ is OrderType
            and self.time_in_force.__class__ is TimeInForce
            and self.status.__class__ is OrderStatus
            and i.__class__ is int and e.__class__ is int and r.__class__ is int
            and 0 <= i < _U64 and 0 <= (e | r) < _I63
        ):  # fmt: skip
            _validate(self, self._checks)
        if self.filled_quantity > self.quantity:
            raise _fail(
                "Order", "filled_quantity", self.filled_quantity,
                f"exceeds quantity {self.quantity!r}", "a finite number in [0, quantity]",
            )  # fmt: skip
        kind = self.order_type
        if self.price is None and (kind is OrderType.LIMIT or kind is OrderType.STOP_LIMIT):
            raise _fail("Order", "price", None, f"for a {kind.name} order", "a finite number >= 0")
        if self.price is not None and kind is OrderType.MARKET:
            raise _fail("Order", "price", self.price, "for a MARKET order", "None")


class Trade(MessagePayload, frozen=True, kw_only=True, tag="trade", gc=False):
    """A fill of one of our orders, or a public trade; ``fee`` may be negative (a rebate)."""

    trade_id: int
    symbol: str
    side: Side
    price: float
    quantity: float
    order_id: int = 0
    client_order_id: str = ""
    liquidity: Liquidity = Liquidity.UNKNOWN
    fee: float = 0.0
    venue: str = ""
    exchange_ns: int = 0
    receive_ns: int = 0

    _checks: ClassVar = (
        ("trade_id", _UINT64), ("symbol", _SYMBOL), ("side", _member(Side)), ("price", _PRICE),
        ("quantity", _POSITIVE), ("order_id", _UINT64), ("client_order_id", _SHORT),
        ("liquidity", _member(Liquidity)), ("fee", _SIGNED), ("venue", _SHORT),
        ("exchange_ns", _NS), ("receive_ns", _NS),
    )  # fmt: skip

    def __post_init__(self) -> None:
        s, v, c, t, o = self.symbol, self.venue, self.client_order_id, self.trade_id, self.order_id
        q, p, f, e, r = self.quantity, self.price, self.fee, self.exchange_ns, self.receive_ns
        if not (
            s.__class__ is str and 0 < len(s) <= 16 and s.isascii() and "\x00" not in s
            and v.__class__ is str and len(v) <= 16 and v.isascii() and "\x00" not in v
            and c.__class__ is str and len(c) <= 16 and c.isascii() and "\x00" not in c
            and q.__class__ is float and 0.0 < q < _INF
            and p.__class__ is float and 0.0 <= p < _INF
            and f.__class__ is float and -_INF < f < _INF
            and self.side.__class__ is Side and self.liquidity.__class__ is Liquidity
            and t.__class__ is int and o.__class__ is int
            and e.__class__ is int and r.__class__ is int
            and 0 <= (t | o) < _U64 and 0 <= (e | r) < _I63
        ):  # fmt: skip
            _validate(self, self._checks)


class Event(MessagePayload, frozen=True, kw_only=True, tag="event", gc=False):
    """Something that happened, with a machine-readable code."""

    code: str
    severity: Severity = Severity.INFO
    text: str = ""  # type: ignore[assignment]  # a field here, a constructor on the base

    _checks: ClassVar = (("code", _TEXT), ("severity", _member(Severity)), ("text", _ANY_TEXT))

    def __post_init__(self) -> None:
        _validate(self, self._checks)


class Control(MessagePayload, frozen=True, kw_only=True, tag="control"):
    """A command to the engine or its agents, such as ``"kill_switch"``."""

    command: str
    arguments: dict[str, MetadataValue] = {}

    _checks: ClassVar = (("command", _TEXT), ("arguments", _scalars))

    def __post_init__(self) -> None:
        _validate(self, self._checks)


class Health(MessagePayload, frozen=True, kw_only=True, tag="health"):
    """An agent's status and metrics."""

    agent: str
    status: AgentStatus
    metrics: dict[str, float] = {}

    _checks: ClassVar = (("agent", _TEXT), ("status", _member(AgentStatus)), ("metrics", _metrics))

    def __post_init__(self) -> None:
        _validate(self, self._checks)


class Analytics(MessagePayload, frozen=True, kw_only=True, tag="analytics"):
    """An analytics query or its result: exactly one of ``query`` and ``result`` is set."""

    name: str
    query: str | None = None
    result: JsonValue = None

    _checks: ClassVar = (("name", _TEXT), ("result", _json))

    def __post_init__(self) -> None:
        _validate(self, self._checks)
        query = self.query
        if query is not None and type(query) is not str:
            raise _fail("Analytics", "query", query, "is not a str", "a str or None")
        if (query is None) == (self.result is None):
            problem = "with result None" if query is None else "with a result as well"
            raise _fail("Analytics", "query", query, problem, "exactly one of query and result")


class Text(MessagePayload, frozen=True, kw_only=True, tag="text", gc=False):
    """Free text; goes with any message type."""

    text: str  # type: ignore[assignment]  # a field here, a constructor on the base

    def __post_init__(self) -> None:
        if self.text.__class__ is not str:
            _validate(self, (("text", _ANY_TEXT),))


MessagePayload.market_data = MarketData
MessagePayload.order = Order
MessagePayload.trade = Trade
MessagePayload.event = Event
MessagePayload.control = Control
MessagePayload.health = Health
MessagePayload.analytics = Analytics

AnyPayload: TypeAlias = MarketData | Order | Trade | Event | Control | Health | Analytics | Text
"""Any concrete payload: the type of ``CoreMessage.payload``."""

_PAYLOAD_TYPE: Final[dict[type, MessageType | None]] = {
    MarketData: MessageType.MARKET_DATA,
    Order: MessageType.ORDER,
    Trade: MessageType.TRADE,
    Event: MessageType.EVENT,
    Control: MessageType.CONTROL,
    Health: MessageType.HEALTH,
    Analytics: MessageType.ANALYTICS,
    Text: None,
}
_PAYLOAD_NAMES: Final = ", ".join(cls.__name__ for cls in _PAYLOAD_TYPE)
_PAYLOAD_NAME: Final = {t: cls.__name__ for cls, t in _PAYLOAD_TYPE.items() if t is not None}


def _payload(owner: str, field: str, value: Any) -> Any:
    if type(value) not in _PAYLOAD_TYPE:
        raise _fail(owner, field, value, "is not a payload", "one of " + _PAYLOAD_NAMES)
    return value


# Message ids


def _id_block() -> itertools.count[int]:
    return itertools.count((secrets.randbits(31) << 32) | 1)


_ids = _id_block()


def _next_id() -> int:
    return next(_ids)


def _draw_new_id_block() -> None:
    global _ids
    _ids = _id_block()


os.register_at_fork(after_in_child=_draw_new_id_block)


class CoreMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One engine message: a header around a payload.

    ``CoreMessage(MessageType.MARKET_DATA, MessagePayload.text("Hello World"), source="x")``
    makes a message with a fresh ``id`` and ``created_ns``. The engine stamps ``published_ns``
    when it publishes the message. Structs with dict fields stay garbage-collected (``gc`` on):
    a dict mutated after construction could close a reference cycle.

    Attributes:
        type: What the message is about; decides the payload class (``Text`` goes with any).
        payload: The body.
        priority: Delivery priority.
        source: Who sent it, at most 16 UTF-8 bytes.
        id: A process-wide unique id >= 1.
        created_ns: Creation time, ns since the epoch (``time.time_ns``).
        published_ns: Publication time, ns since the epoch; 0 until published.
        correlation_id: The id of the message that started the conversation.
        causation_id: The id of the message this one follows from; needs a correlation_id.
        metadata: Str keys to scalars; records do not carry it.
    """

    type: MessageType
    payload: AnyPayload
    priority: Priority = Priority.NORMAL
    source: str = ""
    id: int = msgspec.field(default_factory=_next_id)
    created_ns: int = msgspec.field(default_factory=time.time_ns)
    published_ns: int = 0
    correlation_id: int | None = None
    causation_id: int | None = None
    metadata: dict[str, MetadataValue] = {}

    _checks: ClassVar = (
        ("type", _member(MessageType)), ("payload", _payload), ("priority", _member(Priority)),
        ("source", _SHORT), ("id", _ID), ("created_ns", _NS), ("published_ns", _NS),
        ("correlation_id", _MAYBE_ID), ("causation_id", _MAYBE_ID), ("metadata", _scalars),
    )  # fmt: skip

    def __post_init__(self) -> None:
        t, s, i, c, p = self.type, self.source, self.id, self.created_ns, self.published_ns
        expected = _PAYLOAD_TYPE.get(self.payload.__class__, 0)
        if not (
            t.__class__ is MessageType and (expected is t or expected is None)
            and self.priority.__class__ is Priority
            and s.__class__ is str and len(s) <= 16 and s.isascii() and "\x00" not in s
            and i.__class__ is int and c.__class__ is int and p.__class__ is int
            and 0 < i < _U64 and 0 <= (c | p) < _I63
            and self.correlation_id is None and self.causation_id is None
            and not self.metadata and self.metadata.__class__ is dict
        ):  # fmt: skip
            self._validate()

    def _validate(self) -> None:
        _validate(self, self._checks)
        expected = _PAYLOAD_TYPE[type(self.payload)]
        if expected is not None and expected is not self.type:
            raise _fail(
                "CoreMessage", "payload", self.payload, f"is not for type {self.type.name}",
                f"{_PAYLOAD_NAME[self.type]} or Text",
            )  # fmt: skip
        if self.causation_id is not None and self.correlation_id is None:
            raise _fail(
                "CoreMessage", "causation_id", self.causation_id, "without correlation_id",
                "a correlation_id whenever causation_id is set",
            )  # fmt: skip

    @property
    def partition_key(self) -> str:
        """Return the payload's symbol if it has one, else the source."""
        payload = self.payload
        if isinstance(payload, MarketData | Order | Trade):
            return payload.symbol
        return self.source

    def derive(
        self,
        type: MessageType,
        payload: AnyPayload,
        *,
        priority: Priority = Priority.NORMAL,
        source: str = "",
        metadata: dict[str, MetadataValue] | None = None,
    ) -> CoreMessage:
        """Make a message that follows from this one (a reply, a fill, an alert).

        Args:
            type: The new message's type.
            payload: The new message's payload.
            priority: The new message's priority.
            source: The new message's source.
            metadata: The new message's metadata.

        Returns:
            A new message whose ``causation_id`` is this message's id and whose
            ``correlation_id`` is this message's correlation id, or its id if it has none.
        """
        correlation = self.id if self.correlation_id is None else self.correlation_id
        return CoreMessage(
            type, payload, priority, source,
            correlation_id=correlation, causation_id=self.id, metadata=metadata or {},
        )  # fmt: skip

    def to_msgpack(self) -> bytes:
        """Serialize to MessagePack; ``from_msgpack`` gives back an equal message."""
        return _MSGPACK_ENCODER.encode(self)

    def to_json(self) -> bytes:
        """Serialize to UTF-8 JSON; ``from_json`` gives back an equal message."""
        return _JSON_ENCODER.encode(self)

    @classmethod
    def from_msgpack(cls, data: bytes | bytearray | memoryview) -> CoreMessage:
        """Decode a message made by ``to_msgpack``.

        Raises:
            MessageValidationError: The data is not a valid message; the text names the path.
        """
        return _decode(_MSGPACK_DECODER, data, "MessagePack")

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str) -> CoreMessage:
        """Decode a message made by ``to_json``.

        Raises:
            MessageValidationError: The data is not a valid message; the text names the path.
        """
        return _decode(_JSON_DECODER, data, "JSON")


_MSGPACK_ENCODER: Final = msgspec.msgpack.Encoder()
_JSON_ENCODER: Final = msgspec.json.Encoder()
_MSGPACK_DECODER: Final = msgspec.msgpack.Decoder(CoreMessage)
_JSON_DECODER: Final = msgspec.json.Decoder(CoreMessage)


def _decode(
    decoder: msgspec.msgpack.Decoder[CoreMessage] | msgspec.json.Decoder[CoreMessage],
    data: Any,
    form: str,
) -> CoreMessage:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        text, _, path = str(exc).rpartition(" - at ")
        where = path.strip("`") if text else "$"
        raise MessageValidationError(f"CoreMessage {where}: {text or exc}") from exc
    except msgspec.DecodeError as exc:
        raise MessageValidationError(f"CoreMessage: {exc}; expected {form} data") from exc
