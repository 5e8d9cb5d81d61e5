"""One naming scheme, exact decimals, and the checks every update goes through."""

from __future__ import annotations

from decimal import Decimal

import market_intel as mi
import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_intel.adapters.normalize import (
    BookUpdate,
    QuoteUpdate,
    TradeUpdate,
    canonical_venue,
    float_is_exact,
    normalize_symbol,
    parse_decimal,
    to_float,
)
from market_intel.adapters.validation import (
    ValidationAction,
    ValidationIssue,
    ValidationPolicy,
    Validator,
)

D = Decimal


@pytest.mark.parametrize(
    ("venue", "raw", "symbol"),
    [
        ("binance", "btcusdt", "BTC-USDT"),
        ("binance", "LRCBTC", "LRC-BTC"),
        ("binance", "NKN-USDT", "NKN-USDT"),
        ("binance-coinm", "BTCUSD_PERP", "BTC-USD-PERP"),
        ("binance-coinm", "BCHUSD_210924", "BCH-USD-210924"),
        ("binance-coinm", "DOTUSD_PERP", "DOT-USD-PERP"),
        ("kraken", "XBTUSD", "BTC-USD"),
        ("kraken", "XBT/USD", "BTC-USD"),
        ("kraken", "XDG/EUR", "DOGE-EUR"),
        ("coinbase", "ETH-USD", "ETH-USD"),
        ("jse", "J200", "J200"),
    ],
)
def test_symbols_have_one_spelling(venue: str, raw: str, symbol: str) -> None:
    assert normalize_symbol(venue, raw) == symbol


def test_venue_ids_have_one_spelling() -> None:
    assert canonical_venue("BINANCE_FUTURES") == "binance-usdm"
    assert canonical_venue("BINANCE_DELIVERY") == "binance-coinm"
    assert canonical_venue("COINBASE") == "coinbase"
    assert canonical_venue("CRYPTO.COM") == "cryptocom"
    with pytest.raises(mi.MalformedFrameError, match=r"venue: 'bin ance'; expected a venue name"):
        canonical_venue("bin ance")


def test_an_empty_symbol_is_malformed() -> None:
    with pytest.raises(mi.MalformedFrameError, match=r"kraken: symbol: ' '; expected a non-empty"):
        normalize_symbol("kraken", " ")


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", "", "1,000.5", "0x10", "1.2.3", " 1", "--1", "\u0661\u0662"]
)
def test_only_plain_decimals_parse(text: str) -> None:
    with pytest.raises(mi.MalformedFrameError) as caught:
        parse_decimal(text, venue="binance", field="data.p")
    assert caught.value.venue == "binance"
    assert caught.value.field == "data.p"
    assert caught.value.value == text
    assert isinstance(caught.value, ValueError)


def test_decimals_parse_exactly() -> None:
    assert parse_decimal("0.00006547", venue="v", field="f") == D("0.00006547")
    assert parse_decimal(b"65086.18", venue="v", field="f") == D("65086.18")
    assert parse_decimal("1e-8", venue="v", field="f") == D("0.00000001")
    with pytest.raises(mi.MalformedFrameError, match="expected an ASCII decimal string"):
        parse_decimal(b"\xff1", venue="v", field="f")
    with pytest.raises(mi.MalformedFrameError, match="expected a decimal string"):
        parse_decimal(1.5, venue="v", field="f")  # type: ignore[arg-type]


@given(st.decimals(min_value=D("0.00000001"), max_value=D("999999999"), places=8, allow_nan=False))
def test_up_to_15_significant_digits_read_back_exactly_from_the_float(value: Decimal) -> None:
    digits = len(value.normalize().as_tuple().digits)
    if digits <= 15:
        assert float_is_exact(value)
        assert D(repr(to_float(value))) == value


def test_more_than_15_digits_may_not_survive_the_float() -> None:
    assert not float_is_exact(D("12345678901234567.1"))


def test_updates_become_engine_messages_with_deterministic_ids_on_request() -> None:
    quote = QuoteUpdate(
        venue="binance",
        symbol="BTC-USDT",
        bid=D("61837.63"),
        bid_size=D("3.78826"),
        ask=D("61837.64"),
        ask_size=D("0.1"),
        update_id=9,
        exchange_ns=5,
        receive_ns=7,
    )
    m = quote.to_message(source="feed", message_id=42)
    assert (m.id, m.created_ns, m.source) == (42, 7, "feed")
    assert isinstance(m.payload, mi.MarketData)
    assert m.payload.kind is mi.MarketDataKind.QUOTE
    assert (m.payload.bid, m.payload.ask_size) == (61837.63, 0.1)
    assert quote.to_message(source="feed", message_id=42) == m
    trade = TradeUpdate(
        venue="kraken", symbol="BTC-USD", trade_id=3, price=D("1.5"), size=D("2"), side=mi.Side.SELL
    )
    tm = trade.to_message()
    assert isinstance(tm.payload, mi.MarketData)
    assert (tm.payload.kind, tm.payload.last_price, tm.payload.update_id) == (
        mi.MarketDataKind.TRADE,
        1.5,
        3,
    )
    book = BookUpdate(
        venue="binance",
        symbol="BTC-USDT",
        bids=((D("10"), D("0")), (D("9"), D("1"))),
        asks=((D("11"), D("2")),),
        last_update_id=5,
    )
    bm = book.to_message()
    assert isinstance(bm.payload, mi.MarketData)
    assert (bm.payload.kind, bm.payload.bid, bm.payload.ask) == (mi.MarketDataKind.DEPTH, 9.0, 11.0)


def q(update_id: int, bid: str = "10", ask: str = "11", size: str = "1", **kw: int) -> QuoteUpdate:
    return QuoteUpdate(
        venue="binance",
        symbol="BTC-USDT",
        bid=D(bid),
        ask=D(ask),
        bid_size=D(size),
        ask_size=D(size),
        update_id=update_id,
        **kw,
    )


def test_the_default_policy_flags_crossed_and_locked_and_rejects_the_rest() -> None:
    v = Validator()
    assert v.check(q(1)).accepted
    crossed = v.check(q(2, bid="12"))
    assert (crossed.accepted, crossed.flags) == (True, "crossed")
    assert v.check(q(3, bid="11")).flags == "locked"
    assert v.check(q(4, size="-1")).issues == (ValidationIssue.NEGATIVE,)
    assert not v.check(q(5, bid="0")).accepted
    assert v.check(q(5)).accepted  # a rejected update does not move its stream on
    assert v.check(q(5)).issues == (ValidationIssue.DUPLICATE,)
    assert v.check(q(2)).issues == (ValidationIssue.OUT_OF_ORDER,)
    stats = v.statistics()
    assert (stats.checked, stats.accepted, stats.rejected, stats.flagged) == (8, 4, 4, 2)
    assert stats.issues["duplicate"] == 1
    assert stats.issues["negative"] == 2


def test_a_policy_can_reject_crossed_books_and_accept_duplicates() -> None:
    v = Validator(ValidationPolicy(crossed=ValidationAction.REJECT, duplicate="accept"))  # type: ignore[arg-type]
    assert not v.check(q(1, bid="12")).accepted
    assert v.check(q(2)).accepted
    dup = v.check(q(2))
    assert (dup.accepted, dup.issues) == (True, ())
    assert v.statistics().issues["duplicate"] == 1


def test_streams_are_ordered_separately_and_by_time_without_ids() -> None:
    v = Validator()
    trade = TradeUpdate(venue="binance", symbol="BTC-USDT", trade_id=5, price=D("1"), size=D("1"))
    assert v.check(q(10)).accepted
    assert v.check(trade).accepted  # trades are numbered apart from quotes
    assert v.check(q(0, exchange_ns=100)).accepted
    assert v.check(q(0, exchange_ns=50)).issues == (ValidationIssue.OUT_OF_ORDER,)
    v.forget("binance", "BTC-USDT")
    assert v.check(q(3)).accepted


def test_books_are_checked_level_by_level() -> None:
    v = Validator()
    bad = BookUpdate(venue="b", symbol="S", bids=((D("1"), D("-2")),), last_update_id=1)
    assert v.check(bad).issues == (ValidationIssue.NEGATIVE,)
    crossed = BookUpdate(
        venue="b",
        symbol="S",
        bids=((D("12"), D("1")),),
        asks=((D("11"), D("1")), (D("13"), D("0"))),
        snapshot=True,
        last_update_id=2,
    )
    assert v.check(crossed).flags == "crossed"
    # Book levels stay exact Decimals in the book: only quotes and trades become floats.
    precise = BookUpdate(
        venue="b", symbol="S", bids=((D("1.00000000000000001"), D("1")),), last_update_id=3
    )
    assert v.check(precise).flags == ""
    assert v.check(q(1, bid="1.00000000000000001")).flags == "precision"


def test_quiet_streams_go_stale_once_per_spell() -> None:
    v = Validator(ValidationPolicy(stale_after_s=1.0))
    v.check(q(1, receive_ns=1_000_000_000))
    assert v.stale(1_500_000_000) == []
    assert v.stale(2_500_000_000) == [("binance", "BTC-USDT")]
    assert v.stale(3_500_000_000) == []
    v.check(q(2, receive_ns=3_600_000_000))
    assert v.stale(5_000_000_000) == [("binance", "BTC-USDT")]
    assert v.statistics().issues["stale"] == 2


def test_issues_found_elsewhere_are_counted_by_policy() -> None:
    v = Validator()
    assert v.record(ValidationIssue.MALFORMED) is ValidationAction.REJECT
    assert v.record(ValidationIssue.GAP, 2) is ValidationAction.FLAG
    stats = v.statistics()
    assert (stats.rejected, stats.flagged, stats.issues["gap"]) == (1, 2, 2)


def test_a_bad_policy_is_named() -> None:
    with pytest.raises(mi.InvalidArgumentError, match=r"ValidationPolicy.crossed: 'ignore'"):
        ValidationPolicy(crossed="ignore")  # type: ignore[arg-type]
    with pytest.raises(mi.InvalidArgumentError, match=r"stale_after_s: 0; expected seconds > 0"):
        ValidationPolicy(stale_after_s=0)
