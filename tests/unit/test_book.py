"""L2 books from the real Binance recordings: snapshot plus diffs, gaps and resyncs."""

from __future__ import annotations

import gzip
import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path

import market_intel as mi
import pytest
from market_intel.adapters.book import BookBuilder, BookManager, BookRule, BookState, OrderBook
from market_intel.adapters.normalize import BookUpdate, QuoteUpdate
from mi_data import SHARED_DATA

DATA = SHARED_DATA / "binance"
VENUES = {"spot": "binance", "usdm": "binance-usdm", "cm": "binance-coinm"}


def _levels(rows: list[list[str]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(p), Decimal(q)) for p, q in rows)


def recorded(path: Path) -> Iterator[BookUpdate | QuoteUpdate]:
    """The recording's book updates and quotes, read with json and Decimal only."""
    venue = VENUES[path.name.split("_")[0]]
    with gzip.open(path, "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            o = json.loads(frame)
            if "stream" not in o:
                yield BookUpdate(
                    venue=venue,
                    symbol="S",
                    bids=_levels(o["bids"]),
                    asks=_levels(o["asks"]),
                    snapshot=True,
                    last_update_id=o["lastUpdateId"],
                    receive_ns=int(ns),
                )
                continue
            d = o["data"]
            if d.get("e") == "depthUpdate":
                yield BookUpdate(
                    venue=venue,
                    symbol="S",
                    bids=_levels(d["b"]),
                    asks=_levels(d["a"]),
                    first_update_id=d["U"],
                    last_update_id=d["u"],
                    previous_update_id=d.get("pu", 0),
                    exchange_ns=d["E"] * 1_000_000,
                    receive_ns=int(ns),
                )
            elif o["stream"].endswith("@bookTicker"):
                yield QuoteUpdate(
                    venue=venue,
                    symbol="S",
                    bid=Decimal(d["b"]),
                    bid_size=Decimal(d["B"]),
                    ask=Decimal(d["a"]),
                    ask_size=Decimal(d["A"]),
                    update_id=d["u"],
                    receive_ns=int(ns),
                )


@cache
def book_updates(path: Path) -> list[BookUpdate]:
    return [u for u in recorded(path) if isinstance(u, BookUpdate)]


@pytest.fixture(scope="module")
def spot() -> list[BookUpdate]:
    return book_updates(DATA / "spot_btcusdt_20240808.gz")


@pytest.fixture(scope="module")
def usdm() -> list[BookUpdate]:
    return book_updates(DATA / "usdm_ethusdt_20240808.gz")


def test_the_rule_follows_the_venue() -> None:
    assert BookRule.for_venue("binance") is BookRule.BINANCE_SPOT
    assert BookRule.for_venue("binance-coinm") is BookRule.BINANCE_FUTURES
    assert BookRule.for_venue("coinbase") is BookRule.SNAPSHOT_THEN_UPDATES


@pytest.mark.parametrize("name", ["usdm_btcusdt_20240808.gz", "usdm_ethusdt_20240808.gz"])
def test_the_book_top_equals_the_venue_book_ticker_at_the_same_update(name: str) -> None:
    builder: BookBuilder | None = None
    matched = 0
    for item in recorded(DATA / name):
        if isinstance(item, BookUpdate):
            if builder is None:
                builder = BookBuilder(item.venue, item.symbol)
            builder.apply(item)
        elif (
            builder is not None and builder.synced and builder.book.last_update_id == item.update_id
        ):
            assert builder.book.best_bid() == (item.bid, item.bid_size)
            assert builder.book.best_ask() == (item.ask, item.ask_size)
            matched += 1
    assert builder is not None
    assert builder.gaps == 0
    assert matched > 50


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.gz")))
def test_every_recording_syncs_and_never_gaps(name: str) -> None:
    updates = book_updates(DATA / name)
    builder = BookBuilder(updates[0].venue, "S")
    events = [e for u in updates for e in builder.apply(u)]
    assert [e.code for e in events] == ["synced"]
    assert builder.state is BookState.SYNCED
    assert builder.gaps == 0
    assert builder.dropped > 0  # the diffs received before the snapshot, as documented
    assert builder.applied + builder.dropped == len(updates)
    assert not builder.book.is_crossed()


def test_diffs_before_the_snapshot_are_buffered_then_dropped_or_applied(
    spot: list[BookUpdate],
) -> None:
    snapshot_at = next(i for i, u in enumerate(spot) if u.snapshot)
    assert snapshot_at > 0, "the recording starts with diffs that precede the snapshot"
    builder = BookBuilder("binance", "S")
    for u in spot[:snapshot_at]:
        assert builder.apply(u) == []
    assert builder.state is BookState.AWAITING_SNAPSHOT
    events = builder.apply(spot[snapshot_at])
    snapshot_id = spot[snapshot_at].last_update_id
    stale = sum(1 for u in spot[:snapshot_at] if u.last_update_id <= snapshot_id)
    assert builder.dropped == stale
    if builder.synced:
        assert [e.code for e in events] == ["synced"]


def test_a_lost_spot_diff_is_a_gap_and_a_fresh_snapshot_resyncs(spot: list[BookUpdate]) -> None:
    reference = BookBuilder("binance", "S")
    gapped = BookBuilder("binance", "S")
    lost = 200
    for i, u in enumerate(spot[:400]):
        reference.apply(u)
        if i == lost:
            continue
        events = gapped.apply(u)
        if i == lost + 1:
            previous = spot[lost - 1].last_update_id
            assert [e.code for e in events] == ["gap"]
            assert events[0].text == f"expected U={previous + 1}, got U={u.first_update_id}"
    assert gapped.gaps == 1
    assert gapped.state is BookState.AWAITING_SNAPSHOT
    # A new snapshot taken from the true book brings it back, and later diffs chain on.
    book = reference.book
    fresh = BookUpdate(
        venue="binance",
        symbol="S",
        bids=tuple(book.bids()),
        asks=tuple(book.asks()),
        snapshot=True,
        last_update_id=book.last_update_id,
    )
    assert [e.code for e in gapped.apply(fresh)] == []
    for u in spot[400:600]:
        reference.apply(u)
        gapped.apply(u)
    assert gapped.synced
    assert gapped.book.bids() == reference.book.bids()
    assert gapped.book.asks() == reference.book.asks()


def test_a_broken_futures_chain_is_a_gap(usdm: list[BookUpdate]) -> None:
    builder = BookBuilder("binance-usdm", "S")
    for u in usdm[:300]:
        builder.apply(u)
    assert builder.synced
    skipped = usdm[301]
    events = builder.apply(skipped)
    assert [e.code for e in events] == ["gap"]
    assert f"got pu={skipped.previous_update_id}" in events[0].text


def test_snapshot_then_updates_books_wait_for_a_snapshot_after_a_resync() -> None:
    d = Decimal
    builder = BookBuilder("coinbase", "BTC-USD")
    update = BookUpdate(venue="coinbase", symbol="BTC-USD", bids=((d("10"), d("1")),))
    assert builder.apply(update) == []
    assert len(builder.book) == 0  # nothing applies before a snapshot
    snap = BookUpdate(
        venue="coinbase",
        symbol="BTC-USD",
        bids=((d("9"), d("2")),),
        asks=((d("11"), d("3")),),
        snapshot=True,
    )
    assert [e.code for e in builder.apply(snap)] == ["synced"]
    builder.apply(update)
    assert builder.book.best_bid() == (d("10"), d("1"))
    assert [e.code for e in builder.invalidate("reconnected")] == ["resync"]
    assert not builder.synced


def test_order_book_queries() -> None:
    d = Decimal
    book = OrderBook("binance", "BTC-USDT")
    book.apply(
        BookUpdate(
            venue="binance",
            symbol="BTC-USDT",
            bids=((d("100.1"), d("1")), (d("100.3"), d("2")), (d("99"), d("5"))),
            asks=((d("100.5"), d("3")), (d("101"), d("1"))),
            snapshot=True,
            last_update_id=7,
        )
    )
    assert book.bids(2) == [(d("100.3"), d("2")), (d("100.1"), d("1"))]
    assert book.asks() == [(d("100.5"), d("3")), (d("101"), d("1"))]
    assert book.spread() == d("0.2")
    assert book.mid() == d("100.4")
    assert book.size_at("bid", d("99")) == d("5")
    assert book.size_at("ask", d("99")) == 0
    book.apply(BookUpdate(venue="binance", symbol="BTC-USDT", bids=((d("100.3"), d("0")),)))
    assert book.best_bid() == (d("100.1"), d("1"))
    assert not book.is_crossed()
    top = book.top()
    assert (top.bid, top.ask, top.update_id) == (d("100.1"), d("100.5"), 7)
    with pytest.raises(mi.InvalidArgumentError, match=r"side: 'buy'; expected 'bid' or 'ask'"):
        book.size_at("buy", d("1"))


def test_the_manager_reports_the_top_only_when_it_changes(usdm: list[BookUpdate]) -> None:
    manager = BookManager()
    tops = []
    for u in usdm[:500]:
        top, _ = manager.apply(u)
        if top is not None:
            tops.append(top)
    assert tops
    for a, b in itertools.pairwise(tops):
        assert (a.bid, a.bid_size, a.ask, a.ask_size) != (b.bid, b.bid_size, b.ask, b.ask_size)
    book = manager.book("binance-usdm", "S")
    assert book is not None
    assert (tops[-1].bid, tops[-1].bid_size) == book.best_bid()
    assert manager.keys() == [("binance-usdm", "S")]
    depth = manager.depth("binance-usdm", "S", 5)
    assert depth == (book.bids(5), book.asks(5))
    assert manager.top("binance-usdm", "S") == book.top()
    assert manager.depth("binance-usdm", "X") is None


def test_a_gap_fetches_a_snapshot_and_the_book_resyncs(spot: list[BookUpdate]) -> None:
    reference = BookBuilder("binance", "S")
    asked: list[tuple[str, str]] = []

    def snapshot(venue: str, symbol: str) -> BookUpdate:
        asked.append((venue, symbol))
        book = reference.book  # the venue's book when the gap is seen
        return BookUpdate(
            venue=venue,
            symbol=symbol,
            bids=tuple(book.bids()),
            asks=tuple(book.asks()),
            snapshot=True,
            last_update_id=book.last_update_id,
        )

    manager = BookManager(snapshots=snapshot)
    codes = []
    for i, u in enumerate(spot[:300]):
        reference.apply(u)
        if i != 60:
            codes += [e.code for e in manager.apply(u)[1]]
    assert asked == [("binance", "S")]
    assert manager.snapshots_fetched == 1
    assert codes == ["synced", "gap", "synced"]
    book = manager.book("binance", "S")
    assert book is not None
    assert (book.bids(), book.asks()) == (reference.book.bids(), reference.book.asks())


def test_a_failed_snapshot_fetch_is_an_event_and_the_book_waits(spot: list[BookUpdate]) -> None:
    def unreachable(venue: str, symbol: str) -> BookUpdate:
        raise mi.FeedError(f"snapshot http://127.0.0.1:9/api/v3/depth?symbol={symbol}: refused")

    manager = BookManager(snapshots=unreachable)
    events = [e for i, u in enumerate(spot[:100]) if i != 60 for e in manager.apply(u)[1]]
    failed = [e for e in events if e.code == "snapshot_failed"]
    assert len(failed) == 1 and "refused" in failed[0].text
    assert manager.top("binance", "S") is None
    assert manager.snapshots_fetched == 0


def test_the_wait_buffer_is_bounded_and_counts_what_it_discards(spot: list[BookUpdate]) -> None:
    diffs = [u for u in spot if not u.snapshot][:20]
    builder = BookBuilder("binance", "S", buffer_limit=5)
    for u in diffs:
        builder.apply(u)
    assert builder.overflowed == 15
    with pytest.raises(mi.InvalidArgumentError, match=r"buffer_limit: 0; expected a count >= 1"):
        BookBuilder("binance", "S", buffer_limit=0)
