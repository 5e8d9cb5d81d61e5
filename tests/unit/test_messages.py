"""Messages: payloads, CoreMessage, validation errors and exact serialization round trips."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
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
from market_intel.errors import InvalidArgumentError, MessageValidationError
from market_intel.messages import (
    Analytics,
    AnyPayload,
    Control,
    CoreMessage,
    Event,
    Health,
    MarketData,
    MessagePayload,
    Order,
    Text,
    Trade,
)

# -- strategies of valid messages (shared with test_codec) --------------------------------------

short = st.text(max_size=16).filter(lambda s: "\x00" not in s and len(s.encode()) <= 16)
symbols = short.filter(bool)
prices = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=0, exclude_min=True, allow_nan=False, allow_infinity=False)
maybe_prices = st.none() | prices
uint64 = st.integers(0, 2**64 - 1)
ns = st.integers(0, 2**63 - 1)
scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | prices

market_data = st.builds(
    MarketData,
    symbol=symbols,
    venue=short,
    kind=st.sampled_from(MarketDataKind),
    bid=maybe_prices,
    ask=maybe_prices,
    bid_size=maybe_prices,
    ask_size=maybe_prices,
    last_price=maybe_prices,
    last_size=maybe_prices,
    volume=maybe_prices,
    update_id=uint64,
    exchange_ns=ns,
    receive_ns=ns,
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    order_type = draw(st.sampled_from(OrderType))
    quantity = draw(positive)
    if order_type is OrderType.MARKET:
        price = None
    elif order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        price = draw(prices)
    else:
        price = draw(maybe_prices)
    return Order(
        order_id=draw(uint64),
        symbol=draw(symbols),
        side=draw(st.sampled_from(Side)),
        quantity=quantity,
        price=price,
        order_type=order_type,
        time_in_force=draw(st.sampled_from(TimeInForce)),
        status=draw(st.sampled_from(OrderStatus)),
        filled_quantity=draw(st.floats(0, quantity, allow_nan=False)),
        client_order_id=draw(short),
        venue=draw(short),
        exchange_ns=draw(ns),
        receive_ns=draw(ns),
    )


trades = st.builds(
    Trade,
    trade_id=uint64,
    symbol=symbols,
    side=st.sampled_from(Side),
    price=prices,
    quantity=positive,
    order_id=uint64,
    client_order_id=short,
    liquidity=st.sampled_from(Liquidity),
    venue=short,
    exchange_ns=ns,
    receive_ns=ns,
    fee=st.floats(allow_nan=False, allow_infinity=False),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)
other_payloads = st.one_of(
    st.builds(Event, code=st.text(min_size=1), severity=st.sampled_from(Severity), text=st.text()),
    st.builds(Control, command=st.text(min_size=1), arguments=st.dictionaries(st.text(), scalars)),
    st.builds(
        Health,
        agent=st.text(min_size=1),
        status=st.sampled_from(AgentStatus),
        metrics=st.dictionaries(st.text(), st.floats(allow_nan=False, allow_infinity=False)),
    ),
    st.builds(Analytics, name=st.text(min_size=1), query=st.text()),
    st.builds(
        Analytics, name=st.text(min_size=1), result=json_values.filter(lambda v: v is not None)
    ),
    st.builds(Text, text=st.text()),
)
TYPE_OF = {
    MarketData: MessageType.MARKET_DATA,
    Order: MessageType.ORDER,
    Trade: MessageType.TRADE,
    Event: MessageType.EVENT,
    Control: MessageType.CONTROL,
    Health: MessageType.HEALTH,
    Analytics: MessageType.ANALYTICS,
}


@st.composite
def messages(
    draw: st.DrawFn, payloads: st.SearchStrategy[Any], metadata: bool = True
) -> CoreMessage:
    """Valid messages of the given payloads (Text gets a random type)."""
    payload = draw(payloads)
    kind = TYPE_OF.get(type(payload)) or draw(st.sampled_from(MessageType))
    correlation = draw(st.none() | st.integers(1, 2**64 - 1))
    causation = None if correlation is None else draw(st.none() | st.integers(1, 2**64 - 1))
    return CoreMessage(
        kind,
        payload,
        priority=draw(st.sampled_from(Priority)),
        source=draw(short),
        id=draw(st.integers(1, 2**64 - 1)),
        created_ns=draw(ns),
        published_ns=draw(ns),
        correlation_id=correlation,
        causation_id=causation,
        metadata=draw(st.dictionaries(st.text(), scalars, max_size=3)) if metadata else {},
    )


hot_messages = messages(market_data | orders() | trades, metadata=False)
all_messages = messages(market_data | orders() | trades | other_payloads)

# -- construction ---------------------------------------------------------------------------------


def test_the_canonical_example() -> None:
    msg = CoreMessage(
        MessageType.MARKET_DATA, MessagePayload.text("Hello World"), source="test_source"
    )
    assert msg.payload == Text(text="Hello World")
    assert (msg.type, msg.priority, msg.source) == (
        MessageType.MARKET_DATA,
        Priority.NORMAL,
        "test_source",
    )
    assert msg.id >= 1 and msg.created_ns > 0 and msg.published_ns == 0
    assert msg.correlation_id is None and msg.causation_id is None and msg.metadata == {}
    assert msg.partition_key == "test_source"


def test_static_constructors_make_the_payload_classes() -> None:
    assert MessagePayload.market_data(symbol="BTCUSDT", bid=1.0) == MarketData(
        symbol="BTCUSDT", bid=1.0
    )
    assert (
        type(MessagePayload.order(order_id=1, symbol="X", side=Side.BUY, quantity=1.0, price=2.0))
        is Order
    )
    assert (
        type(MessagePayload.trade(trade_id=1, symbol="X", side=Side.SELL, price=1.0, quantity=1.0))
        is Trade
    )
    assert MessagePayload.event(code="started") == Event(code="started")
    assert MessagePayload.control(command="kill_switch").arguments == {}
    assert MessagePayload.health(agent="risk", status=AgentStatus.RUNNING).metrics == {}
    assert MessagePayload.analytics(name="vwap", query="BTCUSDT").result is None
    assert isinstance(MessagePayload.text("x"), MessagePayload)


def test_ids_are_unique_increasing_and_at_least_one() -> None:
    ids = [CoreMessage(MessageType.EVENT, Event(code="x")).id for _ in range(1000)]
    assert len(set(ids)) == 1000 and ids == sorted(ids) and ids[0] >= 1 and ids[-1] < 2**63


def test_another_process_and_a_forked_child_start_another_id_block() -> None:
    script = (
        "import os\n"
        "from market_intel.messages import CoreMessage, Text\n"
        "parent = CoreMessage(1, Text(text='')).id\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(w, str(CoreMessage(1, Text(text='')).id).encode()); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(parent, os.read(r, 100).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    parent, child = map(int, out.stdout.split())
    mine = CoreMessage(MessageType.EVENT, Event(code="x")).id
    assert len({parent >> 32, child >> 32, mine >> 32}) == 3


def test_enum_fields_accept_their_int_values_and_store_the_enum() -> None:
    order = Order(
        order_id=1,
        symbol="X",
        side=2,  # type: ignore[arg-type]
        quantity=1.0,
        price=1.0,
        order_type=2,  # type: ignore[arg-type]
        time_in_force=3,  # type: ignore[arg-type]
        status=1,  # type: ignore[arg-type]
    )
    assert order.side is Side.SELL and order.order_type is OrderType.LIMIT
    assert order.time_in_force is TimeInForce.FOK and order.status is OrderStatus.NEW
    msg = CoreMessage(4, Event(code="x", severity=40), priority=0)  # type: ignore[arg-type]
    assert msg.type is MessageType.EVENT and msg.priority is Priority.CRITICAL
    assert msg.payload.severity is Severity.ERROR  # type: ignore[union-attr]
    assert MarketData(symbol="X", kind=2).kind is MarketDataKind.TRADE  # type: ignore[arg-type]
    assert Health(agent="a", status=2).status is AgentStatus.RUNNING  # type: ignore[arg-type]
    assert (
        Trade(trade_id=1, symbol="X", side=1, price=1.0, quantity=1.0, liquidity=1).liquidity  # type: ignore[arg-type]
        is Liquidity.MAKER
    )


def test_ints_given_to_float_fields_are_stored_as_floats() -> None:
    md = MarketData(symbol="X", bid=100, ask=101)
    assert type(md.bid) is float and md.bid == 100.0 and type(md.ask) is float
    order = Order(order_id=1, symbol="X", side=Side.BUY, quantity=3, price=10)
    assert type(order.quantity) is float and type(order.filled_quantity) is float
    assert Health(agent="a", status=AgentStatus.RUNNING, metrics={"x": 1}).metrics == {"x": 1.0}
    assert (
        type(Health(agent="a", status=AgentStatus.RUNNING, metrics={"x": 1}).metrics["x"]) is float
    )


def test_utf8_strings_up_to_16_bytes_fit() -> None:
    assert MarketData(symbol="€" * 5, venue="x" * 16).symbol == "€" * 5  # 15 bytes
    with pytest.raises(
        MessageValidationError,
        match=r"MarketData.symbol: '€€€€€€' is 18 UTF-8 bytes; expected 1 to 16",
    ):
        MarketData(symbol="€" * 6)


def test_the_engine_stamps_published_ns_through_the_member_descriptor() -> None:
    msg = CoreMessage(MessageType.MARKET_DATA, MarketData(symbol="BTCUSDT", bid=1.0, ask=2.0))
    CoreMessage.__dict__["published_ns"].__set__(msg, 1_234_567)
    assert msg.published_ns == 1_234_567
    assert CoreMessage.from_msgpack(msg.to_msgpack()).published_ns == 1_234_567
    assert CoreMessage.from_json(msg.to_json()) == msg
    with pytest.raises(AttributeError):
        msg.published_ns = 5  # type: ignore[misc]


def test_derive_sets_correlation_and_causation() -> None:
    order = CoreMessage(
        MessageType.ORDER, Order(order_id=1, symbol="X", side=Side.BUY, quantity=1.0, price=1.0)
    )
    fill = order.derive(
        MessageType.TRADE, Trade(trade_id=9, symbol="X", side=Side.BUY, price=1.0, quantity=1.0)
    )
    assert fill.correlation_id == order.id and fill.causation_id == order.id and fill.id != order.id
    alert = fill.derive(
        MessageType.EVENT,
        Event(code="filled"),
        priority=Priority.HIGH,
        source="risk",
        metadata={"a": 1},
    )
    assert alert.correlation_id == order.id and alert.causation_id == fill.id
    assert (alert.priority, alert.source, alert.metadata) == (Priority.HIGH, "risk", {"a": 1})


def test_partition_key_is_the_symbol_or_the_source() -> None:
    assert (
        CoreMessage(MessageType.MARKET_DATA, MarketData(symbol="ETH"), source="feed").partition_key
        == "ETH"
    )
    assert (
        CoreMessage(
            MessageType.TRADE,
            Trade(trade_id=1, symbol="SOL", side=1, price=1.0, quantity=1.0),  # type: ignore[arg-type]
        ).partition_key
        == "SOL"
    )
    assert (
        CoreMessage(
            MessageType.HEALTH, Health(agent="a", status=AgentStatus.RUNNING), source="mon"
        ).partition_key
        == "mon"
    )


def test_text_goes_with_every_type() -> None:
    for kind in MessageType:
        assert CoreMessage(kind, Text(text="t")).payload == Text(text="t")


def test_messages_are_frozen_and_keyword_only_payloads() -> None:
    md = MarketData(symbol="X")
    with pytest.raises(AttributeError):
        md.symbol = "Y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        MarketData("X")  # type: ignore[misc]


# -- validation errors ----------------------------------------------------------------------------

M = MessageType
Make = Callable[[], object]
ORDER: dict[str, Any] = {"order_id": 1, "symbol": "X", "side": 1, "quantity": 1.0, "price": 1.0}
TRADE: dict[str, Any] = {"trade_id": 1, "symbol": "X", "side": 1, "price": 1.0, "quantity": 1.0}
RUNNING = AgentStatus.RUNNING


def md(**kw: Any) -> Make:
    return lambda: MarketData(**{"symbol": "X"} | kw)


def od(**kw: Any) -> Make:
    return lambda: Order(**ORDER | kw)


def tr(**kw: Any) -> Make:
    return lambda: Trade(**TRADE | kw)


def core(**kw: Any) -> Make:
    kind, payload = kw.pop("type", M.EVENT), kw.pop("payload", Event(code="x"))
    return lambda: CoreMessage(kind, payload, **kw)


def an(**kw: Any) -> Make:
    return lambda: Analytics(**{"name": "n"} | kw)


FLOAT_FIELDS = ("bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume")
NON_NEGATIVE = "expected a finite number >= 0"
U64 = r"expected an int in \[0, 2\*\*64\)"
NOT_SCALAR = "is not a str, int, float, bool or None"

CASES: list[tuple[Make, str]] = [
    # strings of records
    (md(symbol=""), r"MarketData.symbol: '' is empty; expected 1 to 16 UTF-8 bytes"),
    (md(symbol="A" * 17), r"MarketData.symbol: 'A{17}' is 17 UTF-8 bytes; expected 1 to 16"),
    (md(symbol=5), r"MarketData.symbol: 5 is not a str; expected 1 to 16 UTF-8 bytes"),
    (md(symbol="A\x00"), r"MarketData.symbol: 'A\\x00' contains a NUL character; expected"),
    (md(symbol="\ud800"), r"MarketData.symbol: '\\ud800' is not encodable as UTF-8"),
    (md(venue="v" * 17), r"MarketData.venue: 'v{17}' is 17 UTF-8 bytes; expected 0 to 16"),
    (od(symbol=""), r"Order.symbol: '' is empty"),
    (od(client_order_id="c" * 17), r"Order.client_order_id: 'c{17}' is 17 UTF-8 bytes"),
    (od(venue="v" * 20), r"Order.venue: 'v{20}' is 20 UTF-8 bytes"),
    (tr(symbol="x" * 17), r"Trade.symbol: 'x{17}' is 17 UTF-8 bytes"),
    (tr(client_order_id=1), r"Trade.client_order_id: 1 is not a str"),
    (tr(venue="\x00"), r"Trade.venue: '\\x00' contains a NUL"),
    (core(source="s" * 17), r"CoreMessage.source: 's{17}' is 17 UTF-8 bytes; expected 0 to 16"),
    # prices and quantities
    (md(bid_size=-1.0), rf"MarketData.bid_size: -1.0 is negative; {NON_NEGATIVE}"),
    *[
        (md(**{f: math.nan}), rf"MarketData.{f}: nan is not finite; {NON_NEGATIVE}")
        for f in FLOAT_FIELDS
    ],
    (md(ask=math.inf), r"MarketData.ask: inf is not finite"),
    (md(bid="1"), rf"MarketData.bid: '1' is not a number; {NON_NEGATIVE}"),
    (md(bid=True), r"MarketData.bid: True is not a number"),
    (od(quantity=math.nan), r"Order.quantity: nan is not finite; expected a finite number > 0"),
    (od(quantity=0.0), r"Order.quantity: 0.0 is not positive; expected a finite number > 0"),
    (od(price=-0.5), r"Order.price: -0.5 is negative"),
    (od(filled_quantity=-1.0), r"Order.filled_quantity: -1.0 is negative"),
    (
        od(filled_quantity=2.0),
        r"Order.filled_quantity: 2.0 exceeds quantity 1.0; "
        r"expected a finite number in \[0, quantity\]",
    ),
    (od(price=None), rf"Order.price: None for a LIMIT order; {NON_NEGATIVE}"),
    (od(price=None, order_type=OrderType.STOP_LIMIT), r"Order.price: None for a STOP_LIMIT order"),
    (od(order_type=OrderType.MARKET), r"Order.price: 1.0 for a MARKET order; expected None"),
    (tr(quantity=0.0), r"Trade.quantity: 0.0 is not positive"),
    (tr(price=None), r"Trade.price: None is not a number"),
    (tr(price=-1.0), r"Trade.price: -1.0 is negative"),
    (tr(fee=math.inf), r"Trade.fee: inf is not finite; expected a finite number$"),
    (
        lambda: Health(agent="a", status=RUNNING, metrics={"m": math.nan}),
        r"Health.metrics\['m'\]: nan is not finite",
    ),
    (
        lambda: Health(agent="a", status=RUNNING, metrics={1: 1.0}),  # type: ignore[dict-item]
        r"Health.metrics: 1 is a key that is not a str",
    ),
    (lambda: Health(agent="a", status=RUNNING, metrics=[]), r"Health.metrics: \[\] is not a dict"),  # type: ignore[arg-type]
    # ids and timestamps
    (md(update_id=-1), rf"MarketData.update_id: -1 is out of range; {U64}"),
    (md(update_id=2**64), r"MarketData.update_id: 18446744073709551616 is out of range"),
    (
        md(exchange_ns=2**63),
        r"MarketData.exchange_ns: 9223372036854775808 is out of range; "
        r"expected an int in \[0, 2\*\*63\)",
    ),
    (md(receive_ns=True), r"MarketData.receive_ns: True is not an int"),
    (md(update_id=1.0), rf"MarketData.update_id: 1.0 is not an int; {U64}"),
    (od(order_id=-1), r"Order.order_id: -1 is out of range"),
    (od(exchange_ns=-1), r"Order.exchange_ns: -1 is out of range"),
    (od(receive_ns=2**63), r"Order.receive_ns: 9223372036854775808 is out of range"),
    (tr(trade_id=True), r"Trade.trade_id: True is not an int"),
    (tr(order_id=2**64), r"Trade.order_id: 18446744073709551616 is out of range"),
    (tr(exchange_ns=-5), r"Trade.exchange_ns: -5 is out of range"),
    (core(id=0), r"CoreMessage.id: 0 is out of range; expected an int in \[1, 2\*\*64\)"),
    (core(id=2**64), r"CoreMessage.id: 18446744073709551616 is out of range"),
    (core(id=True), r"CoreMessage.id: True is not an int"),
    (
        core(created_ns=-1),
        r"CoreMessage.created_ns: -1 is out of range; expected an int in \[0, 2\*\*63\)",
    ),
    (core(published_ns=2**63), r"CoreMessage.published_ns: 9223372036854775808 is out of range"),
    (core(correlation_id=0), r"CoreMessage.correlation_id: 0 is out of range; .* or None"),
    (core(correlation_id=1, causation_id=0), r"CoreMessage.causation_id: 0 is out of range"),
    (
        core(causation_id=7),
        r"CoreMessage.causation_id: 7 without correlation_id; "
        r"expected a correlation_id whenever causation_id is set",
    ),
    # enums
    (
        core(type=99),
        r"CoreMessage.type: 99 is not a MessageType; "
        r"expected one of MARKET_DATA, ORDER, TRADE, EVENT, CONTROL, HEALTH, ANALYTICS",
    ),
    (core(type=True), r"CoreMessage.type: True is not a MessageType"),
    (core(type="EVENT"), r"CoreMessage.type: 'EVENT' is not a MessageType"),
    (
        core(priority=7),
        r"CoreMessage.priority: 7 is not a Priority; expected one of CRITICAL, HIGH",
    ),
    (
        md(kind=0),
        r"MarketData.kind: 0 is not a MarketDataKind; expected one of QUOTE, TRADE, DEPTH",
    ),
    (od(side=3), r"Order.side: 3 is not a Side; expected one of BUY, SELL"),
    (od(side=OrderType.LIMIT), r"Order.side: OrderType.LIMIT is not a Side"),
    (od(order_type=9), r"Order.order_type: 9 is not a OrderType; expected one of MARKET, LIMIT"),
    (od(time_in_force=0), r"Order.time_in_force: 0 is not a TimeInForce; expected one of GTC"),
    (od(status=9), r"Order.status: 9 is not a OrderStatus; expected one of NEW"),
    (tr(side=None), r"Trade.side: None is not a Side"),
    (tr(liquidity=3), r"Trade.liquidity: 3 is not a Liquidity; expected one of UNKNOWN, MAKER"),
    (lambda: Event(code="x", severity=11), r"Event.severity: 11 is not a Severity"),  # type: ignore[arg-type]
    (lambda: Health(agent="a", status=0), r"Health.status: 0 is not a AgentStatus"),  # type: ignore[arg-type]
    # other payloads
    (lambda: Event(code=""), r"Event.code: '' is empty; expected a non-empty str"),
    (lambda: Event(code="x", text=None), r"Event.text: None is not a str; expected a str"),  # type: ignore[arg-type]
    (lambda: Control(command=""), r"Control.command: '' is empty"),
    (
        lambda: Control(command="k", arguments={"a": [1]}),  # type: ignore[dict-item]
        rf"Control.arguments\['a'\]: \[1\] {NOT_SCALAR}",
    ),
    (
        lambda: Control(command="k", arguments={"a": math.nan}),
        r"Control.arguments\['a'\]: nan is not finite",
    ),
    (lambda: Health(agent="", status=RUNNING), r"Health.agent: '' is empty"),
    (an(name="", query="q"), r"Analytics.name: '' is empty"),
    (an(), r"Analytics.query: None with result None; expected exactly one of query and result"),
    (an(query="q", result=1), r"Analytics.query: 'q' with a result as well"),
    (an(query=5), r"Analytics.query: 5 is not a str"),
    (an(result={"a": (1, 2)}), rf"Analytics.result\['a'\]: \(1, 2\) {NOT_SCALAR}"),
    (an(result=[1, {"b": math.inf}]), r"Analytics.result\[1\]\['b'\]: inf is not finite"),
    (an(result={1: 2}), r"Analytics.result: 1 is a key that is not a str"),
    (lambda: Text(text=b"x"), r"Text.text: b'x' is not a str"),  # type: ignore[arg-type]
    # the message around the payload
    (
        core(payload=MarketData(symbol="X")),
        r"CoreMessage.payload: MarketData\(.* is not for type EVENT; expected Event or Text",
    ),
    (
        core(type=M.ORDER),
        r"CoreMessage.payload: Event\(.* is not for type ORDER; expected Order or Text",
    ),
    (
        core(payload={"text": "x"}),
        r"CoreMessage.payload: \{'text': 'x'\} is not a payload; expected one of MarketData",
    ),
    (core(metadata={"k": math.inf}), r"CoreMessage.metadata\['k'\]: inf is not finite"),
    (
        core(metadata={"k": 2**64}),
        r"CoreMessage.metadata\['k'\]: .* is out of range \[-2\*\*63, 2\*\*64\)",
    ),
    (core(metadata={"k": object()}), rf"CoreMessage.metadata\['k'\]: .* {NOT_SCALAR}"),
    (core(metadata={3: "v"}), r"CoreMessage.metadata: 3 is a key that is not a str"),
    (core(metadata=None), r"CoreMessage.metadata: None is not a dict"),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_every_rule_names_field_value_and_expectation(
    make: Callable[[], object], expected: str
) -> None:
    with pytest.raises(MessageValidationError, match=expected) as e:
        make()
    assert isinstance(e.value, InvalidArgumentError) and isinstance(e.value, ValueError)
    assert "; expected " in str(e.value)


def test_nesting_is_capped() -> None:
    deep: list[Any] = []
    deep.append(deep)
    with pytest.raises(MessageValidationError, match=r"is nested deeper than 64 levels"):
        Analytics(name="n", result=deep)


# -- serialization ------------------------------------------------------------------------------


@given(all_messages)
def test_msgpack_round_trip_is_exact(msg: CoreMessage) -> None:
    again = CoreMessage.from_msgpack(msg.to_msgpack())
    assert again == msg and type(again.payload) is type(msg.payload)
    assert msgspec.structs.asdict(again) == msgspec.structs.asdict(msg)


@given(all_messages)
def test_json_round_trip_is_exact(msg: CoreMessage) -> None:
    data = msg.to_json()
    again = CoreMessage.from_json(data)
    assert again == msg and again.to_json() == data


def test_json_shows_the_payload_tag() -> None:
    msg = CoreMessage(
        MessageType.MARKET_DATA, MarketData(symbol="BTCUSDT", bid=1.5), id=7, created_ns=1
    )
    data = msgspec.json.decode(msg.to_json())
    assert data["payload"]["payload"] == "market_data" and data["payload"]["bid"] == 1.5
    assert data["type"] == 1 and data["id"] == 7


def test_round_trips_keep_floats_none_and_enums_exact() -> None:
    payload = MarketData(
        symbol="X", kind=MarketDataKind.DEPTH, bid=0.1 + 0.2, ask=None, volume=5e-324
    )
    msg = CoreMessage(
        MessageType.MARKET_DATA, payload, metadata={"a": 1.0, "b": 1, "c": True, "d": None}
    )
    for again in (CoreMessage.from_json(msg.to_json()), CoreMessage.from_msgpack(msg.to_msgpack())):
        assert again == msg
        assert again.payload.bid == 0.1 + 0.2 and again.payload.ask is None  # type: ignore[union-attr]
        assert again.payload.kind is MarketDataKind.DEPTH  # type: ignore[union-attr]
        assert [type(v) for v in again.metadata.values()] == [float, int, bool, type(None)]


def _json_of(**changes: Any) -> bytes:
    msg = CoreMessage(MessageType.MARKET_DATA, MarketData(symbol="X", bid=1.0))
    data = msgspec.json.decode(msg.to_json())
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return msgspec.json.encode(data)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"payload__bid": "x"}, r"CoreMessage \$.payload.bid: Expected `float \| null`, got `str`"),
        ({"payload__bid": -1.0}, r"CoreMessage \$.payload: MarketData.bid: -1.0 is negative"),
        ({"payload__kind": 9}, r"CoreMessage \$.payload.kind: Invalid enum value 9"),
        ({"type": 99}, r"CoreMessage \$.type: Invalid enum value 99"),
        ({"type": 2}, r"CoreMessage \$: CoreMessage.payload: MarketData\(.* is not for type ORDER"),
        (
            {"payload__symbol": KeyError},
            r"CoreMessage \$.payload: Object missing required field `symbol`",
        ),
        ({"payload__payload": "nope"}, r"CoreMessage \$.payload.payload: Invalid value 'nope'"),
        ({"payload__extra": 1}, r"CoreMessage \$.payload: Object contains unknown field `extra`"),
        ({"id": 0}, r"CoreMessage \$: CoreMessage.id: 0 is out of range"),
        (
            {"causation_id": 3},
            r"CoreMessage \$: CoreMessage.causation_id: 3 without correlation_id",
        ),
    ],
)
def test_decoding_errors_name_the_path(changes: dict[str, Any], expected: str) -> None:
    data = _json_of(**changes)
    with pytest.raises(MessageValidationError, match=expected) as e:
        CoreMessage.from_json(data)
    assert isinstance(e.value.__cause__, msgspec.ValidationError)
    packed = msgspec.msgpack.encode(msgspec.json.decode(data))
    with pytest.raises(MessageValidationError, match=expected):
        CoreMessage.from_msgpack(packed)


def test_malformed_data_is_a_validation_error() -> None:
    with pytest.raises(MessageValidationError, match=r"CoreMessage: .*; expected JSON data"):
        CoreMessage.from_json(b"{not json")
    with pytest.raises(MessageValidationError, match=r"expected MessagePack data"):
        CoreMessage.from_msgpack(b"\xc1")
    with pytest.raises(
        MessageValidationError, match=r"CoreMessage \$: Expected `object`, got `array`"
    ):
        CoreMessage.from_json(b"[]")


def test_any_payload_lists_every_payload_class() -> None:
    assert set(AnyPayload.__args__) == {
        MarketData,
        Order,
        Trade,
        Event,
        Control,
        Health,
        Analytics,
        Text,
    }
