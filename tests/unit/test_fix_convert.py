"""FIX -> engine messages: the recorded JSE and QuickFIX sessions, malformed input, builders."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_intel.adapters.fix.convert import (
    FixConverter,
    FixMessage,
    MarketDataEntry,
    fix_id,
    format_decimal,
    market_data_request,
    market_data_snapshot,
    new_message,
    parse_market_data_request,
    parse_utc_timestamp,
)
from market_intel.adapters.fix.replay import FixFrame, FixReplay, read_frames, replay_file
from market_intel.adapters.normalize import to_float
from market_intel.enums import (
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from market_intel.errors import MalformedFrameError
from market_intel.messages import MarketData, Order, Trade
from mi_data import SHARED_DATA

DATA = SHARED_DATA / "fix"
JSE = DATA / "jse_indices_fixt11_recv_20111124.fix"
BANZAI = DATA / "quickfix_banzai_executor_fix41_20121105.fix"
SOH = b"\x01"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"{DATA} (the recorded FIX data) missing")


def _message(*pairs: tuple[int, str]) -> FixMessage:
    message = new_message()
    for tag, value in pairs:
        message.append_pair(tag, value)
    return message


def _split_messages(data: bytes) -> list[list[tuple[bytes, bytes]]]:
    """An independent reading: split on SOH and on every BeginString field."""
    messages: list[list[tuple[bytes, bytes]]] = []
    for field in data.split(SOH):
        if not field:
            continue
        tag, _, value = field.partition(b"=")
        if tag == b"8":
            messages.append([])
        messages[-1].append((tag, value))
    return messages


@pytest.fixture(scope="module")
def jse_replay() -> FixReplay:
    return replay_file(JSE, venue="jse")


# The JSE index feed


def test_jse_feed_counts(jse_replay: FixReplay) -> None:
    assert jse_replay.malformed == []
    assert jse_replay.frames == 11_365 + 2_523
    assert jse_replay.msg_types == {"X": 11_365, "0": 2_523}


def test_jse_every_entry_is_a_market_data_message_with_exact_values(
    jse_replay: FixReplay,
) -> None:
    expected = []
    for fields in _split_messages(JSE.read_bytes()):
        if (b"35", b"X") not in fields:
            continue
        seq = int(dict(fields)[b"1181"])
        entries: list[dict[bytes, bytes]] = []
        for tag, value in fields[fields.index((b"268", dict(fields)[b"268"])) + 1 :]:
            if tag == b"279":
                entries.append({})
            if tag != b"10":
                entries[-1][tag] = value
        assert len(entries) == int(dict(fields)[b"268"])
        expected += [(seq, entry) for entry in entries]
    messages = jse_replay.messages
    assert len(messages) == len(expected) == 14_375
    for message, (seq, entry) in zip(messages, expected, strict=True):
        payload = message.payload
        assert message.type is MessageType.MARKET_DATA and isinstance(payload, MarketData)
        assert payload.symbol == entry[b"55"].decode()
        assert payload.venue == "jse"
        assert payload.update_id == seq
        assert message.metadata["md_entry_type"] == entry[b"269"].decode()
        assert message.metadata["md_update_action"] == entry[b"279"].decode()
        price = entry.get(b"270")
        if price is None:
            assert payload.last_price is None
        else:
            assert payload.last_price == to_float(Decimal(price.decode()))
        assert payload.kind is MarketDataKind.QUOTE
        assert payload.bid is payload.ask is payload.last_size is None


def test_jse_entries_keep_the_exact_decimals() -> None:
    converter = FixConverter(venue="jse")
    independent = iter(
        fields for fields in _split_messages(JSE.read_bytes()) if (b"35", b"X") in fields
    )
    checked = 0
    for item in read_frames(JSE, venue="jse"):
        assert isinstance(item, FixFrame)
        if item.msg_type != "X":
            continue
        fields = next(independent)
        prices = [Decimal(v.decode()) for t, v in fields if t == b"270"]
        entries = converter.market_data_entries(item.message)
        assert [e.price for e in entries if e.price is not None] == prices
        checked += len(entries)
    assert checked == 14_375


def test_jse_replay_is_deterministic(jse_replay: FixReplay) -> None:
    again = replay_file(JSE, venue="jse")
    assert again == jse_replay
    assert [m.to_msgpack() for m in again.messages] == [m.to_msgpack() for m in jse_replay.messages]
    assert jse_replay.messages[0].id == 1
    assert jse_replay.messages[0].created_ns == parse_utc_timestamp("20111124-06:28:56.151")


# The QuickFIX banzai/executor FIX 4.1 session


def test_banzai_executor_session_gives_orders_and_trades() -> None:
    replay = replay_file(BANZAI, venue="quickfix")
    assert replay.malformed == []
    assert replay.msg_types == {"A": 2, "0": 2, "D": 3, "8": 5, "F": 2, "3": 2}
    orders = [m.payload for m in replay.messages if isinstance(m.payload, Order)]
    trades = [m.payload for m in replay.messages if isinstance(m.payload, Trade)]
    assert [o.status for o in orders] == [
        OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.FILLED,
        OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.FILLED,
        OrderStatus.PENDING_NEW, OrderStatus.NEW,
        OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_CANCEL,
    ]  # fmt: skip
    assert [o.symbol for o in orders] == ["MSFT"] * 3 + ["ORCL"] * 3 + ["SPY"] * 4
    msft, orcl, spy = orders[0], orders[3], orders[6]
    assert msft.order_id == 1352157882577 and msft.order_type is OrderType.MARKET
    assert spy.order_type is OrderType.LIMIT and spy.price == 10.0
    assert spy.time_in_force is TimeInForce.DAY
    assert orders[2].filled_quantity == 10_000.0 and orders[2].order_id == msft.order_id
    cancel = orders[8]
    assert cancel.order_id == spy.order_id and cancel.client_order_id == "1352157916437"
    assert cancel.price == 10.0  # the canceled order's terms, remembered from its D
    assert [(t.trade_id, t.price, t.quantity, t.order_id) for t in trades] == [
        (2, 12.3, 10_000.0, msft.order_id),
        (4, 12.3, 10_000.0, orcl.order_id),
    ]
    assert all(t.side is Side.BUY and t.venue == "quickfix" for t in trades)


# Malformed input


def _banzai_frames() -> list[bytes]:
    return [b"8=FIX" + part for part in BANZAI.read_bytes().split(b"8=FIX")[1:]]


def _without(raw: bytes, field: bytes) -> bytes:
    """Remove a field and write BodyLength and CheckSum again: a well-framed message."""
    fields = [f for f in raw.split(SOH)[1:-1] if f != field and not f.startswith((b"9=", b"10="))]
    body = SOH.join(fields) + SOH
    head = raw.split(SOH)[0] + SOH + b"9=%d" % len(body) + SOH
    return head + body + b"10=%03d" % (sum(head + body) % 256) + SOH


def test_malformed_messages_are_counted_and_reported_never_raised() -> None:
    frames = _banzai_frames()
    assert len(frames) == 16
    d_order = frames[4]
    assert b"35=D" in d_order
    bad_checksum = frames[2][:-4] + b"000\x01"
    bad_length = frames[3].replace(b"9=49\x01", b"9=50\x01")
    assert _without(d_order, b"") == d_order
    no_symbol = _without(d_order, b"55=MSFT")
    no_msg_type = _without(frames[6], b"35=8")
    garbage = b"\xff\xfe not fix at all \x01\x02\x03"
    truncated = frames[7][:40]
    stream = b"".join(
        [frames[0], frames[1], bad_checksum, bad_length, d_order, garbage, frames[5],
         no_symbol, no_msg_type, truncated, *frames[7:], frames[0][:25]]
    )  # fmt: skip
    replay = replay_file(stream, venue="quickfix")
    errors = replay.malformed
    assert all(isinstance(e, MalformedFrameError) for e in errors)
    fields = [e.field.split(" of message")[0] for e in errors]
    assert fields == [
        "CheckSum(10)", "BodyLength(9)", "field", "Symbol(55)", "field 3", "CheckSum(10)",
        "end of stream",
    ]  # fmt: skip
    assert errors[0].value == frames[2][-4:-1] or errors[0].value == b"000"
    assert "the sum of the bytes mod 256" in errors[0].expected
    assert errors[1].value == b"50" and errors[1].expected.startswith("49")
    assert "tag 55 present" in str(errors[3])
    # Every intact message still made it, in order: 2 + 1 + 1 + 9 valid frames.
    assert replay.frames == 2 + 1 + 1 + 1 + 9
    clean_stream = b"".join([frames[0], frames[1], d_order, frames[5], *frames[7:]])
    clean = replay_file(clean_stream, venue="quickfix")
    assert [m.payload for m in replay.messages] == [m.payload for m in clean.messages]


@given(
    cut=st.integers(min_value=0, max_value=1990),
    junk=st.binary(min_size=1, max_size=40),
)
def test_random_junk_in_a_real_stream_never_raises(cut: int, junk: bytes) -> None:
    data = BANZAI.read_bytes()
    stream = data[:cut] + junk + data[cut:]
    items = list(read_frames(stream, venue="quickfix"))
    good = [i for i in items if isinstance(i, FixFrame)]
    assert len(good) >= 16 - 2
    assert all(isinstance(i, FixFrame | MalformedFrameError) for i in items)


# Conversion of single messages


def test_snapshot_and_incremental_refresh() -> None:
    converter = FixConverter(venue="fixvenue")
    entries = [
        MarketDataEntry(entry_type=kind, symbol="EUR/USD", price=Decimal(px), size=Decimal(qty))
        for kind, px, qty in (
            ("0", "1.08345", "2000000"),
            ("1", "1.08351", "1500000.5"),
            ("2", "1.0835", "0.00001"),
        )
    ]
    snapshot = market_data_snapshot(md_req_id="r1", symbol="EUR/USD", entries=entries)
    snapshot.append_pair(52, "20240808-23:54:00.123456", header=True)
    got = converter.convert(snapshot)
    kinds = [m.payload.kind for m in got if isinstance(m.payload, MarketData)]
    assert kinds == [MarketDataKind.SNAPSHOT, MarketDataKind.SNAPSHOT, MarketDataKind.TRADE]
    bid, ask, trade = (m.payload for m in got)
    assert isinstance(bid, MarketData) and isinstance(ask, MarketData)
    assert isinstance(trade, MarketData)
    assert bid.symbol == "EUR-USD" and bid.bid == 1.08345 and bid.bid_size == 2_000_000.0
    assert ask.ask == 1.08351 and ask.ask_size == 1_500_000.5
    assert trade.last_price == 1.0835 and trade.last_size == 0.00001
    assert bid.exchange_ns == parse_utc_timestamp("20240808-23:54:00.123456")
    assert [e.price for e in converter.market_data_entries(snapshot)] == [
        Decimal("1.08345"), Decimal("1.08351"), Decimal("1.0835"),
    ]  # fmt: skip

    refresh = _message(
        (35, "X"), (34, "7"), (268, "2"),
        (279, "2"), (269, "0"), (55, "EURUSD"), (270, "1.08345"),
        (279, "0"), (269, "1"), (55, "EURUSD"), (270, "1.0836"), (271, "300"), (278, "a9"),
    )  # fmt: skip
    deleted, added = (m.payload for m in converter.convert(refresh))
    assert isinstance(deleted, MarketData) and isinstance(added, MarketData)
    assert deleted.kind is MarketDataKind.DEPTH and deleted.bid_size == 0.0
    assert added.ask == 1.0836 and added.ask_size == 300.0 and added.update_id == 7


def test_group_count_mismatch_is_malformed() -> None:
    refresh = _message((35, "X"), (268, "3"), (279, "0"), (269, "0"), (55, "X"), (270, "1"))
    with pytest.raises(MalformedFrameError, match=r"NoMDEntries\(268\): 3; expected 1"):
        FixConverter(venue="v").convert(refresh)


def test_bad_price_is_malformed_naming_the_field() -> None:
    refresh = _message((35, "X"), (268, "1"), (279, "0"), (269, "2"), (55, "X"), (270, "1,5"))
    with pytest.raises(MalformedFrameError, match=r"MDEntryPx\(270\): '1,5'"):
        FixConverter(venue="v").convert(refresh)


def test_orders_and_execution_reports() -> None:
    converter = FixConverter(venue="fixvenue")
    order = Order(
        order_id=42, symbol="BTC-USDT", side=Side.SELL, quantity=0.5, price=65086.18,
        time_in_force=TimeInForce.IOC,
    )  # fmt: skip
    d = converter.new_order_single(order, symbol="BTCUSDT")
    assert d.get(11) == b"42" and d.get(44) == b"65086.18" and d.get(59) == b"3"
    (sent,) = converter.convert(d)
    assert isinstance(sent.payload, Order)
    assert (sent.payload.order_id, sent.payload.symbol, sent.payload.price) == (
        42, "BTC-USDT", 65086.18,
    )  # fmt: skip
    assert sent.payload.status is OrderStatus.PENDING_NEW

    replace = converter.order_cancel_replace_request(
        Order(order_id=42, symbol="BTC-USDT", side=Side.SELL, quantity=0.4, price=65090.0),
        cl_ord_id="43", orig_cl_ord_id="42",
    )  # fmt: skip
    (replaced,) = converter.convert(replace)
    assert isinstance(replaced.payload, Order)
    assert replaced.payload.status is OrderStatus.PENDING_REPLACE
    assert replaced.payload.order_id == 42 and replaced.metadata["msg_type"] == "G"
    assert (replaced.payload.quantity, replaced.payload.price) == (0.4, 65090.0)
    cancel = converter.order_cancel_request(order, cl_ord_id="44", orig_cl_ord_id="42")
    (canceling,) = converter.convert(cancel)
    assert isinstance(canceling.payload, Order)
    assert canceling.payload.status is OrderStatus.PENDING_CANCEL

    partial = _message(
        (35, "8"), (37, "X-1"), (11, "42"), (17, "E-77"), (150, "F"), (39, "1"), (54, "2"),
        (55, "BTCUSDT"), (38, "0.5"), (14, "0.2"), (151, "0.3"), (6, "65086.18"),
        (31, "65086.18"), (32, "0.2"), (851, "2"), (60, "20240808-23:54:01.5"),
    )  # fmt: skip
    report, fill = converter.convert(partial)
    assert isinstance(report.payload, Order) and isinstance(fill.payload, Trade)
    assert report.payload.status is OrderStatus.PARTIALLY_FILLED
    assert report.payload.filled_quantity == 0.2 and report.payload.price == 65086.18
    assert report.payload.time_in_force is TimeInForce.IOC  # remembered from the D
    assert fill.payload.trade_id == fix_id("E-77") and fill.payload.order_id == 42
    assert fill.payload.price == 65086.18 and fill.payload.quantity == 0.2
    assert fill.type is MessageType.TRADE and fill.metadata["exec_id"] == "E-77"
    assert fill.payload.exchange_ns == parse_utc_timestamp("20240808-23:54:01.5")

    no_fill = _message(
        (35, "8"), (37, "X-1"), (11, "42"), (17, "E-78"), (150, "4"), (39, "4"), (54, "2"),
        (55, "BTCUSDT"), (14, "0.2"), (151, "0"), (32, "0"),
    )  # fmt: skip
    (canceled,) = converter.convert(no_fill)
    assert isinstance(canceled.payload, Order)
    assert canceled.payload.status is OrderStatus.CANCELED
    assert canceled.payload.quantity == 0.2  # CumQty + LeavesQty without OrderQty

    pending_replace = _message(
        (35, "8"), (37, "X-1"), (11, "43"), (41, "42"), (17, "E-79"), (150, "E"), (39, "E"),
        (54, "2"), (55, "BTCUSDT"), (38, "0.5"), (14, "0.2"), (151, "0.3"),
    )  # fmt: skip
    (replacing,) = converter.convert(pending_replace)
    assert isinstance(replacing.payload, Order)
    assert replacing.payload.status is OrderStatus.PENDING_REPLACE
    assert replacing.payload.order_id == 42 and replacing.metadata["ord_status"] == "E"
    assert replacing.payload.price == 65090.0  # remembered from the G (ClOrdID 43)


def test_unknown_enum_value_names_field_value_and_expected() -> None:
    d = _message((35, "D"), (11, "1"), (54, "1"), (55, "X"), (38, "1"), (40, "P"), (44, "1"))
    with pytest.raises(MalformedFrameError) as info:
        FixConverter(venue="v").convert(d)
    assert (info.value.field, info.value.value) == ("OrdType(40)", "P")
    assert info.value.expected == "one of 1, 2, 3, 4"


def test_values_and_ids() -> None:
    assert fix_id("1352157882577") == 1352157882577
    assert fix_id("25ecf178-55e3") == fix_id("25ecf178-55e3") < 1 << 64
    assert fix_id("99999999999999999999") < 1 << 64
    assert format_decimal(1e-05) == "0.00001"
    assert format_decimal(Decimal("25929.169999999996")) == "25929.169999999996"
    assert format_decimal(100.0) == "100" and format_decimal(7) == "7"
    assert parse_utc_timestamp("19700101-00:00:01.000000002") == 1_000_000_002
    with pytest.raises(MalformedFrameError, match=r"SendingTime\(52\): '2011-11-24'"):
        parse_utc_timestamp("2011-11-24", field="SendingTime(52)")


def test_market_data_request_round_trip() -> None:
    request = market_data_request(md_req_id="m1", symbols=["J200", "JA00"], entry_types=["3"])
    parsed = parse_market_data_request(request)
    assert parsed.md_req_id == "m1" and parsed.symbols == ("J200", "JA00")
    assert parsed.entry_types == ("3",) and parsed.subscription_type == "0"
    assert parsed.market_depth == 1
    broken = _message((35, "V"), (262, "m2"), (263, "0"), (264, "x"))
    with pytest.raises(MalformedFrameError, match=r"MarketDepth\(264\)"):
        parse_market_data_request(broken)


def test_fix_package_exports_its_public_names() -> None:
    from market_intel.adapters import fix
    from market_intel.adapters.fix import convert, replay, session, store

    assert fix.__all__ == sorted(fix.__all__)
    modules = (convert, replay, session, store)
    assert set(fix.__all__) == {name for module in modules for name in module.__all__}
