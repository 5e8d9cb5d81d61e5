"""The codec: CoreMessage objects to MESSAGE_DTYPE records and back."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_intel.codec import from_records, market_data_array, records_to_message, to_records
from market_intel.enums import (
    AgentStatus,
    Liquidity,
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Priority,
    Side,
    TimeInForce,
)
from market_intel.errors import DtypeMismatchError, InvalidArgumentError, MessageValidationError
from market_intel.messages import (
    Analytics,
    Control,
    CoreMessage,
    Event,
    Health,
    MarketData,
    Order,
    Text,
    Trade,
)
from market_intel.records import FLAG_OBJECT, MESSAGE_DTYPE, SYMBOL_SIZE
from msgspec.structs import force_setattr
from test_messages import hot_messages

MD_FLOATS = ["bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume"]


def quote(**kw: object) -> CoreMessage:
    return CoreMessage(
        MessageType.MARKET_DATA,
        MarketData(symbol="BTCUSDT", bid=1.0, ask=2.0),
        **kw,  # type: ignore[arg-type]
    )


def order(**kw: object) -> Order:
    fields: dict[str, object] = {
        "order_id": 5,
        "symbol": "ETHUSDT",
        "side": Side.SELL,
        "quantity": 2.0,
        "price": 3.5,
    }
    return Order(**fields | kw)  # type: ignore[arg-type]


def trade(**kw: object) -> Trade:
    fields: dict[str, object] = {
        "trade_id": 9,
        "symbol": "SOL",
        "side": Side.BUY,
        "price": 10.0,
        "quantity": 0.5,
    }
    return Trade(**fields | kw)  # type: ignore[arg-type]


@given(st.lists(hot_messages, max_size=8))
def test_hot_messages_round_trip_exactly(messages: list[CoreMessage]) -> None:
    records = to_records(messages)
    assert records.dtype == MESSAGE_DTYPE and len(records) == len(messages)
    assert (records["flags"] == 0).all()
    assert from_records(records) == messages
    assert [records_to_message(r) for r in records] == messages


@given(hot_messages)
def test_one_hot_message_round_trips_exactly(message: CoreMessage) -> None:
    assert from_records(to_records([message])) == [message]


def test_market_data_columns() -> None:
    msg = CoreMessage(
        MessageType.MARKET_DATA,
        MarketData(
            symbol="BTCUSDT",
            venue="binance",
            kind=MarketDataKind.TRADE,
            last_price=5.0,
            last_size=1.0,
            update_id=3,
            exchange_ns=10,
            receive_ns=11,
        ),
        priority=Priority.HIGH,
        source="feed",
        correlation_id=4,
        causation_id=2,
        metadata={"dropped": True},
    )
    CoreMessage.__dict__["published_ns"].__set__(msg, 99)
    (row,) = to_records([msg])
    assert (row["id"], row["created_ns"], row["published_ns"]) == (msg.id, msg.created_ns, 99)
    assert (row["correlation_id"], row["causation_id"], row["flags"]) == (4, 2, 0)
    assert (row["type"], row["priority"], row["kind"]) == (1, Priority.HIGH, MarketDataKind.TRADE)
    assert (row["symbol"], row["venue"], row["source"]) == (b"BTCUSDT", b"binance", b"feed")
    assert (row["last_price"], row["last_size"], row["update_id"]) == (5.0, 1.0, 3)
    assert (row["exchange_ns"], row["receive_ns"]) == (10, 11)
    assert all(math.isnan(row[f]) for f in ("bid", "ask", "bid_size", "ask_size", "volume"))
    again = records_to_message(row)
    assert again.metadata == {} and again == CoreMessage(**{**_fields(msg), "metadata": {}})  # type: ignore[arg-type]


def _fields(msg: CoreMessage) -> dict[str, object]:
    return {f: getattr(msg, f) for f in msg.__struct_fields__}


def test_order_and_trade_columns() -> None:
    o = CoreMessage(
        MessageType.ORDER,
        order(
            order_type=OrderType.MARKET,
            price=None,
            time_in_force=TimeInForce.IOC,
            status=OrderStatus.PARTIALLY_FILLED,
            filled_quantity=1.0,
            client_order_id="c1",
        ),
    )
    t = CoreMessage(
        MessageType.TRADE, trade(order_id=5, liquidity=Liquidity.TAKER, fee=-0.01, venue="okx")
    )
    records = to_records([o, t])
    assert list(records["type"]) == [2, 3] and list(records["side"]) == [2, 1]
    assert math.isnan(records["price"][0]) and records["price"][1] == 10.0
    assert (records["order_type"][0], records["time_in_force"][0], records["status"][0]) == (
        1,
        2,
        2,
    )
    assert (records["filled_quantity"][0], records["client_order_id"][0]) == (1.0, b"c1")
    assert (records["trade_id"][1], records["order_id"][1], records["liquidity"][1]) == (9, 5, 2)
    assert (records["fee"][1], records["venue"][1], records["quantity"][1]) == (-0.01, b"okx", 0.5)
    assert list(records["correlation_id"]) == [0, 0] and list(records["causation_id"]) == [0, 0]
    assert from_records(records) == [o, t]


OBJECTS = [
    CoreMessage(MessageType.EVENT, Event(code="started"), source="engine"),
    CoreMessage(MessageType.CONTROL, Control(command="kill_switch", arguments={"why": "test"})),
    CoreMessage(MessageType.HEALTH, Health(agent="risk", status=AgentStatus.DEGRADED)),
    CoreMessage(MessageType.ANALYTICS, Analytics(name="vwap", result={"BTCUSDT": 1.5})),
    CoreMessage(MessageType.MARKET_DATA, Text(text="Hello World"), source="test_source"),
    CoreMessage(MessageType.ORDER, Text(text="note")),
]


@pytest.mark.parametrize("msg", OBJECTS, ids=lambda m: f"{m.type.name}-{type(m.payload).__name__}")
def test_other_payloads_fill_the_header_and_flag_the_object(msg: CoreMessage) -> None:
    (row,) = to_records([quote(), msg, quote()])[1:2]
    assert row["flags"] == FLAG_OBJECT
    assert (row["id"], row["type"], row["priority"], row["source"]) == (
        msg.id,
        msg.type,
        msg.priority,
        msg.source.encode(),
    )
    assert (row["kind"], row["side"], row["symbol"]) == (0, 0, b"")
    with pytest.raises(
        MessageValidationError,
        match=rf"record: a record of type {msg.type.name} without a record payload; "
        r".*travels only as an object",
    ):
        records_to_message(row)
    with pytest.raises(MessageValidationError, match=r"records\[1\]: .*travels only as an object"):
        from_records(to_records([quote(), msg]))


def test_a_mixed_batch_keeps_every_row_in_place() -> None:
    batch = [
        quote(),
        OBJECTS[0],
        CoreMessage(MessageType.ORDER, order()),
        quote(),
        CoreMessage(MessageType.TRADE, trade()),
    ]
    records = to_records(batch)
    assert list(records["flags"]) == [0, FLAG_OBJECT, 0, 0, 0]
    assert list(records["symbol"]) == [b"BTCUSDT", b"", b"ETHUSDT", b"BTCUSDT", b"SOL"]
    hot = np.flatnonzero(records["flags"] == 0)
    assert from_records(records[hot]) == [batch[i] for i in hot]


def test_empty_batches() -> None:
    assert to_records([]).shape == (0,) and from_records(np.zeros(0, MESSAGE_DTYPE)) == []


def test_market_data_array_is_ready_to_fill_column_by_column() -> None:
    records = market_data_array(3)
    assert records.dtype == MESSAGE_DTYPE and records.shape == (3,)
    assert (records["type"] == MessageType.MARKET_DATA).all() and (
        records["priority"] == Priority.NORMAL
    ).all()
    assert (records["kind"] == MarketDataKind.QUOTE).all() and (records["flags"] == 0).all()
    assert all(np.isnan(records[f]).all() for f in MD_FLOATS)
    assert (records["id"] == 0).all() and (records["symbol"] == b"").all()
    records["id"] = [1, 2, 3]
    records["created_ns"] = 7
    records["symbol"] = [b"A", b"B", b"C"]
    records["bid"] = [1.0, 2.0, 3.0]
    messages = from_records(records)
    assert [m.payload for m in messages] == [
        MarketData(symbol=s, bid=b) for s, b in zip("ABC", (1.0, 2.0, 3.0), strict=True)
    ]
    assert market_data_array(0).shape == (0,)


@pytest.mark.parametrize("n", [-1, 1.5, "3", True])
def test_market_data_array_needs_a_count(n: object) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"n: .* is not a record count; expected an int >= 0"
    ):
        market_data_array(n)  # type: ignore[arg-type]


def test_strings_are_capped_at_16_utf8_bytes() -> None:
    assert SYMBOL_SIZE == 16  # the messages' fast paths inline it
    fits = CoreMessage(
        MessageType.MARKET_DATA, MarketData(symbol="€" * 5 + "x", venue="v" * 16), source="s" * 16
    )
    (row,) = to_records([fits])
    assert row["symbol"].decode() == "€" * 5 + "x" and records_to_message(row) == fits
    for make in (
        lambda: MarketData(symbol="x" * 17),
        lambda: MarketData(symbol="x", venue="€" * 6),
        lambda: order(client_order_id="c" * 17),
        lambda: trade(venue="v" * 17),
        lambda: quote(source="s" * 17),
    ):
        with pytest.raises(MessageValidationError, match=r"UTF-8 bytes; expected [01] to 16"):
            make()


@pytest.mark.parametrize(
    ("target", "field", "value"),
    [
        ("payload", "symbol", "x" * 17),
        ("payload", "venue", "€" * 6),
        ("message", "source", "s" * 20),
    ],
)
def test_to_records_refuses_to_truncate_strings_that_skipped_validation(
    target: str, field: str, value: str
) -> None:
    msg = quote()
    force_setattr(msg.payload if target == "payload" else msg, field, value)
    with pytest.raises(
        MessageValidationError,
        match=rf"messages\[1\]\.{field}: .* is {len(value.encode())} UTF-8 bytes; "
        r"expected at most 16",
    ):
        to_records([quote(), msg])


def test_to_records_needs_messages() -> None:
    with pytest.raises(InvalidArgumentError, match=r"messages\[1\]: 'nope' is not a CoreMessage"):
        to_records([quote(), "nope"])  # type: ignore[list-item]


def test_from_records_needs_message_records() -> None:
    with pytest.raises(
        DtypeMismatchError,
        match=r"records: ndarray of dtype float64; expected MESSAGE_DTYPE records",
    ):
        from_records(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(DtypeMismatchError, match=r"records: list"):
        from_records([])  # type: ignore[arg-type]
    with pytest.raises(
        InvalidArgumentError,
        match=r"records: an array of shape \(2, 2\); expected a one-dimensional array",
    ):
        from_records(np.zeros((2, 2), MESSAGE_DTYPE))
    with pytest.raises(DtypeMismatchError, match=r"record: "):
        records_to_message(np.zeros(1)[0])
    with pytest.raises(
        InvalidArgumentError, match=r"record: an array of shape \(2,\); expected one record"
    ):
        records_to_message(np.zeros(2, MESSAGE_DTYPE))


def _corrupt(field: str, value: object) -> np.ndarray:
    records = to_records([quote(), CoreMessage(MessageType.ORDER, order())])
    records[field][1] = value
    return records


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("type", 0, r"records\[1\]\.type: 0 is not a MessageType; expected one of MARKET_DATA"),
        (
            "type",
            MessageType.EVENT,
            r"records\[1\]: a record of type EVENT without a record payload",
        ),
        ("priority", 9, r"records\[1\]: CoreMessage.priority: 9 is not a Priority"),
        ("id", 0, r"records\[1\]: CoreMessage.id: 0 is out of range"),
        ("created_ns", -1, r"records\[1\]: CoreMessage.created_ns: -1 is out of range"),
        ("causation_id", 5, r"records\[1\]: CoreMessage.causation_id: 5 without correlation_id"),
        ("side", 3, r"records\[1\]: Order.side: 3 is not a Side"),
        ("side", 0, r"records\[1\]: Order.side: 0 is not a Side"),
        ("order_type", 0, r"records\[1\]: Order.order_type: 0 is not a OrderType"),
        ("status", 99, r"records\[1\]: Order.status: 99 is not a OrderStatus"),
        ("quantity", math.nan, r"records\[1\]: Order.quantity: nan is not finite"),
        ("price", -1.0, r"records\[1\]: Order.price: -1.0 is negative"),
        ("symbol", b"", r"records\[1\]: Order.symbol: '' is empty"),
        ("symbol", b"\xff", r"records\[1\]\.symbol: b'\\xff' is not UTF-8"),
        (
            "source",
            b"a\x00b",
            r"records\[1\]: CoreMessage.source: 'a\\x00b' contains a NUL character",
        ),
    ],
)
def test_invalid_records_name_the_row(field: str, value: object, expected: str) -> None:
    with pytest.raises(MessageValidationError, match=expected):
        from_records(_corrupt(field, value))


def test_market_data_records_are_checked_too() -> None:
    records = market_data_array(1)
    records["id"] = 1
    with pytest.raises(
        MessageValidationError, match=r"records\[0\]: MarketData.symbol: '' is empty"
    ):
        from_records(records)
    records["symbol"] = b"X"
    records["bid"] = -2.0
    with pytest.raises(
        MessageValidationError, match=r"records\[0\]: MarketData.bid: -2.0 is negative"
    ):
        from_records(records)
    records["bid"] = 2.0
    records["kind"] = 0
    with pytest.raises(MessageValidationError, match=r"without a record payload"):
        records["flags"] = FLAG_OBJECT
        from_records(records)
    records["flags"] = 0
    with pytest.raises(MessageValidationError, match=r"MarketData.kind: 0 is not a MarketDataKind"):
        from_records(records)


def test_a_flagged_hot_record_still_rebuilds_from_the_record() -> None:
    records = to_records([quote(metadata={"k": "v"})])
    records["flags"] = FLAG_OBJECT
    (msg,) = from_records(records)
    assert msg.payload == MarketData(symbol="BTCUSDT", bid=1.0, ask=2.0) and msg.metadata == {}
