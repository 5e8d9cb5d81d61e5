"""``DataIngestionAgent`` on a real engine with the packaged Binance recordings: validated,
booked, published in order, deterministic, and never silent about what it could not use."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import market_intel as mi
import pytest
from market_intel.adapters import binance
from market_intel.adapters.normalize import (
    BookUpdate,
    FeedEvent,
    FeedItem,
    QuoteUpdate,
    TradeUpdate,
)
from market_intel.adapters.recording import RecordingSource
from market_intel.adapters.venues.binance import BinanceParser
from market_intel.agents.ingestion import DataIngestionAgent, DataIngestionAgentConfig
from mi_data import SHARED_DATA
from mi_engine import Recorder, control, running, wait_for

SAMPLE = {p.name: p for p in binance.sample_paths()}
EXCHANGES = SHARED_DATA / "exchanges"
VENUES = {"spot": "binance", "usdm": "binance-usdm", "cm": "binance-coinm"}


class InjectingSource:
    """A recorded Binance file as feed items (the REST snapshot line names no symbol)."""

    recorded = True

    def __init__(self, path: Path, *, inject: dict[int, str] | None = None) -> None:
        self.path = path
        self.inject = inject or {}
        self.frames = 0

    def __iter__(self) -> Iterator[FeedItem]:
        venue = VENUES[self.path.name.split("_")[0]]
        symbol = self.path.name.split("_")[1].upper()
        if venue == "binance-coinm":
            symbol = self.path.name.split("_")[1].upper() + "_PERP"
        parser = BinanceParser(venue, snapshot_symbol=symbol)
        with gzip.open(self.path, "rt") as f:
            for i, line in enumerate(f):
                ns, frame = line.rstrip("\n").split(" ", 1)
                frame = self.inject.get(i, frame)
                self.frames += 1
                try:
                    parsed = parser.parse(frame, int(ns))
                except mi.MalformedFrameError as e:
                    yield e
                    continue
                yield from parsed.updates
                yield from parsed.events

    def statistics(self) -> dict[str, int]:
        return {"frames": self.frames}


class Collector(Recorder):
    def kinds(self) -> list[mi.MarketDataKind]:
        return [m.payload.kind for m in self.messages if isinstance(m.payload, mi.MarketData)]


def ingest(
    source: RecordingSource, config: DataIngestionAgentConfig | None = None
) -> tuple[DataIngestionAgent, Collector]:
    engine = mi.CoreEngineBuilder().with_processors(1).build()
    agent = DataIngestionAgent(engine, source, config)
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    collector = Collector("collector")
    engine.register_agent(
        collector, message_types=[mi.MessageType.MARKET_DATA, mi.MessageType.EVENT]
    )
    with running(engine):
        assert agent.wait_finished(60), agent.statistics()
        engine.flush(timeout=30)
    return agent, collector


def items(path: Path) -> list[FeedItem]:
    return list(InjectingSource(path))


def test_a_recording_is_validated_booked_and_published_in_order() -> None:
    path = SAMPLE["spot_btcusdt_20240808.gz"]
    expected = items(path)
    updates = [u for u in expected if not isinstance(u, FeedEvent | mi.MalformedFrameError)]
    agent, got = ingest(RecordingSource(path), DataIngestionAgentConfig(deterministic_ids=True))
    stats = agent.statistics()
    assert stats.error is None
    assert stats.finished
    assert stats.malformed == 0
    assert stats.updates == len(updates)
    assert stats.source["updates"] == len(updates)
    market = [m for m in got.messages if m.type is mi.MessageType.MARKET_DATA]
    assert [m.id for m in market] == sorted(m.id for m in market)
    assert sorted(m.id for m in got.messages) == list(range(1, len(got.messages) + 1))
    assert stats.published == len(got.messages)
    # Every trade and quote went out as it came in, exactly once.
    trades = [u for u in updates if isinstance(u, TradeUpdate)]
    got_trades = [m.payload for m in market if m.payload.kind is mi.MarketDataKind.TRADE]  # type: ignore[union-attr]
    assert [(t.update_id, t.last_price, t.last_size) for t in got_trades] == [  # type: ignore[union-attr]
        (t.trade_id, float(t.price), float(t.size)) for t in trades
    ]
    # The book: one snapshot, the diffs that chain on it, and the top on every change.
    book = agent.book("binance", "BTC-USDT")
    assert book is not None
    assert len(book) > 1000
    tops = [
        m
        for m in market
        if m.source == "ingest" and m.payload.kind is mi.MarketDataKind.QUOTE  # type: ignore[union-attr]
    ]
    tickers = [u for u in updates if isinstance(u, QuoteUpdate)]
    assert len(tops) == stats.book_tops + len(tickers)
    last_top = [m for m in tops if m.payload.update_id == book.last_update_id][-1].payload  # type: ignore[union-attr]
    best_bid, best_ask = book.best_bid(), book.best_ask()
    assert best_bid is not None and best_ask is not None
    assert (Decimal(repr(last_top.bid)), Decimal(repr(last_top.ask))) == (best_bid[0], best_ask[0])  # type: ignore[union-attr]
    events = [m.payload for m in got.messages if m.type is mi.MessageType.EVENT]
    assert [e.code for e in events] == ["feed.synced", "feed.end"]  # type: ignore[union-attr]
    assert stats.validation.rejected == 0


def test_the_same_recording_gives_the_same_messages_every_time() -> None:
    paths = [SAMPLE["usdm_ethusdt_20240808.gz"], EXCHANGES / "KRAKEN.jsonl.zst"]
    config = DataIngestionAgentConfig(deterministic_ids=True)
    agent, first = ingest(RecordingSource(paths), config)
    _, second = ingest(RecordingSource(paths), config)
    assert {m.payload.venue for m in first.messages if isinstance(m.payload, mi.MarketData)} == {
        "binance-usdm",
        "kraken",
    }
    assert agent.book("binance-usdm", "ETH-USDT") is not None
    # Priority-lane events interleave with the normal lane as the processor polls; each
    # lane's order, and every message, is the same on every run.
    strip = lambda ms: sorted(msgspec_fields(m) for m in ms)  # noqa: E731
    assert strip(first.messages) == strip(second.messages)
    assert first.messages[0].id == 1


def msgspec_fields(m: mi.CoreMessage) -> tuple[object, ...]:
    return (m.id, m.created_ns, m.type, m.payload, m.priority, m.source, m.metadata)


def test_bad_frames_and_bad_values_are_counted_flagged_or_rejected_never_fatal() -> None:
    path = SAMPLE["spot_ethusdt_20240808.gz"]
    with gzip.open(path, "rt") as f:
        lines = f.read().splitlines()
    quote_at = next(i for i, line in enumerate(lines) if "@bookTicker" in line and i > 100)
    frame = lines[quote_at].split(" ", 1)[1]
    import json

    crossed = json.loads(frame)
    crossed["data"]["b"], crossed["data"]["a"] = crossed["data"]["a"], crossed["data"]["b"]
    crossed["data"]["u"] += 1
    negative = json.loads(frame)
    negative["data"]["B"] = "-1.0"
    negative["data"]["u"] += 2
    inject = {
        5: "{not json",
        6: '{"stream":"ethusdt@trade","data":{"e":"trade","p":"NaN"}}',
        quote_at + 1: json.dumps(crossed),
        quote_at + 2: json.dumps(negative),
        quote_at + 3: json.dumps(crossed),  # the same update id again
        quote_at + 4: frame,  # an update id below the last
    }
    agent, got = ingest(InjectingSource(path, inject=inject))
    stats = agent.statistics()
    assert stats.finished and stats.error is None
    assert stats.malformed == 2
    assert stats.last_malformed is not None
    assert stats.last_malformed.startswith("binance: ")
    issues = stats.validation.issues
    assert issues["malformed"] == 2
    assert issues["crossed"] >= 1
    assert issues["negative"] >= 1
    assert issues["duplicate"] >= 1
    assert issues["out_of_order"] >= 1
    flagged = [m for m in got.messages if m.metadata.get("issues")]
    assert any(m.metadata["issues"] == "crossed" for m in flagged)


def test_a_failing_source_is_reported_and_the_engine_keeps_running() -> None:
    def source() -> Iterator[FeedItem]:
        yield from items(SAMPLE["spot_btcusdt_20240808.gz"])[:50]
        raise ConnectionResetError("venue went away")

    engine = mi.CoreEngineBuilder().with_processors(1).build()
    agent = DataIngestionAgent(engine, source())
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    collector = Collector("collector")
    engine.register_agent(collector)
    with running(engine):
        wait_for(lambda: agent.statistics().error is not None, "the failure")
        engine.flush(timeout=30)
        events = [m for m in collector.messages if m.type is mi.MessageType.EVENT]
        failed = [m for m in events if m.payload.code == "feed.failed"]  # type: ignore[union-attr]
        assert len(failed) == 1
        assert failed[0].payload.severity is mi.Severity.ERROR  # type: ignore[union-attr]
        assert "ConnectionResetError: venue went away" in failed[0].payload.text  # type: ignore[union-attr]
        assert failed[0].priority is mi.Priority.HIGH
        assert not agent.statistics().finished
        engine.publish_message(control("still-alive", mi.Priority.NORMAL))
        engine.flush(timeout=30)


def test_stop_drains_everything_an_endless_feed_published() -> None:
    updates = [u for u in items(SAMPLE["usdm_btcusdt_20240808.gz"]) if isinstance(u, TradeUpdate)]

    def endless() -> Iterator[FeedItem]:
        i = 0
        while True:
            u = updates[i % len(updates)]
            yield TradeUpdate(
                venue=u.venue,
                symbol=u.symbol,
                trade_id=i + 1,
                price=u.price,
                size=u.size,
                receive_ns=time.time_ns(),
            )
            i += 1

    engine = mi.CoreEngineBuilder().with_processors(1).with_buffer_size(1024).build()
    agent = DataIngestionAgent(engine, endless())
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    collector = Collector("collector")
    engine.register_agent(collector, message_types=[mi.MessageType.MARKET_DATA])
    engine.start()
    wait_for(lambda: len(collector.messages) > 5000, "the feed to flow")
    engine.stop(timeout=30)
    stats = agent.statistics()
    assert not stats.running
    ids = [m.payload.update_id for m in collector.messages]  # type: ignore[union-attr]
    assert ids == list(range(1, len(ids) + 1))
    assert stats.published == len(ids)
    assert stats.feed_events == 0
    assert stats.backpressure.dropped == 0


def test_pause_and_resume_by_control_message() -> None:
    gate = threading.Event()

    def slow() -> Iterator[FeedItem]:
        for u in items(SAMPLE["spot_btcusdt_20240808.gz"])[:3000]:
            if not gate.is_set():
                gate.wait(10)
            yield u

    engine = mi.CoreEngineBuilder().with_processors(1).build()
    agent = DataIngestionAgent(engine, slow(), DataIngestionAgentConfig(name="feed"))
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    with running(engine):
        engine.publish_message(control("feed.pause", mi.Priority.CRITICAL))
        engine.flush(timeout=30)
        gate.set()
        time.sleep(0.1)
        paused_at = agent.statistics().items
        assert paused_at <= 1
        engine.publish_message(control("feed.resume", mi.Priority.CRITICAL))
        assert agent.wait_finished(30)
    assert agent.statistics().items == 3000


def test_recorded_speed_paces_the_feed_on_its_own_clock() -> None:
    now = [0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += int(seconds * 1e9)

    path = SAMPLE["spot_btcusdt_20240808.gz"]
    source = RecordingSource(path, speed=10.0, clock=lambda: now[0], sleep=sleep)
    received = [item.receive_ns for item in source if not isinstance(item, mi.MalformedFrameError)]
    span = (max(received) - min(received)) / 1e9
    assert sum(waits) == pytest.approx(span / 10, rel=1e-6)
    with pytest.raises(mi.InvalidArgumentError, match=r"speed: 0; expected None or a finite"):
        RecordingSource(path, speed=0)


def test_stop_does_not_hang_on_a_source_stuck_in_a_read(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def stuck() -> Iterator[FeedItem]:
        yield from items(SAMPLE["spot_btcusdt_20240808.gz"])[:10]
        release.wait(30)  # a read that close() cannot interrupt

    engine = mi.CoreEngineBuilder().with_processors(1).build()
    agent = DataIngestionAgent(engine, stuck(), DataIngestionAgentConfig(drain_timeout_s=0.2))
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    engine.start()
    wait_for(lambda: agent.statistics().items == 10, "the first items")
    engine.stop(timeout=30)
    assert "still in its source after 0.2 s" in caplog.text
    release.set()
    wait_for(lambda: not agent.statistics().running, "the reader to leave")


def test_config_errors_are_named() -> None:
    with pytest.raises(mi.InvalidArgumentError, match=r"backpressure: 'queue'; expected one of"):
        DataIngestionAgentConfig(backpressure="queue")  # type: ignore[arg-type]
    with pytest.raises(mi.InvalidArgumentError, match=r"name: ''; expected a name"):
        DataIngestionAgentConfig(name="")
    with pytest.raises(mi.InvalidArgumentError, match=r"drain_timeout_s: 0; expected seconds"):
        DataIngestionAgentConfig(drain_timeout_s=0)


def test_a_gapped_book_fetches_a_snapshot_over_http_and_resyncs() -> None:
    """A lost diff breaks the chain; the agent asks a real HTTP server (answering Binance's
    depth endpoint with the recorded book at that moment) for a snapshot, and the book
    ends equal to the book built without the loss."""
    import http.server
    import json as jsonlib
    from urllib.parse import parse_qs, urlsplit

    from market_intel.adapters.book import BookBuilder
    from market_intel.adapters.snapshots import BinanceSnapshots

    path = SAMPLE["spot_btcusdt_20240808.gz"]
    all_items = items(path)
    diffs = [i for i, u in enumerate(all_items) if isinstance(u, BookUpdate) and not u.snapshot]
    lost = diffs[100]
    reveal = next(i for i in diffs if i > lost)
    reference = BookBuilder("binance", "BTC-USDT")
    served: dict[str, bytes] = {}
    for i, u in enumerate(all_items):
        if isinstance(u, BookUpdate):
            reference.apply(u)
        if i == reveal:  # the venue's book when the gap is seen
            book = reference.book
            served["BTCUSDT"] = jsonlib.dumps(
                {
                    "lastUpdateId": book.last_update_id,
                    "bids": [[str(p), str(q)] for p, q in book.bids()],
                    "asks": [[str(p), str(q)] for p, q in book.asks()],
                }
            ).encode()
    requests: list[str] = []

    class Depth(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            requests.append(self.path)
            body = served.get(parse_qs(url.query)["symbol"][0])
            if url.path != "/api/v3/depth" or body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Depth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        snapshots = BinanceSnapshots(f"http://127.0.0.1:{server.server_port}")
        source = [u for i, u in enumerate(all_items) if i != lost]
        engine = mi.CoreEngineBuilder().with_processors(1).build()
        agent = DataIngestionAgent(engine, source, snapshots=snapshots)
        engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
        collector = Collector("collector")
        engine.register_agent(collector, message_types=[mi.MessageType.EVENT])
        with running(engine):
            assert agent.wait_finished(60)
            engine.flush(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert requests == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]
    stats = agent.statistics()
    assert stats.snapshots_fetched == 1
    assert stats.validation.issues["gap"] == 1
    builder = agent.books.builder("binance", "BTC-USDT")
    assert builder is not None and builder.synced and builder.gaps == 1
    assert builder.book.bids() == reference.book.bids()
    assert builder.book.asks() == reference.book.asks()
    codes = [m.payload.code for m in collector.messages]  # type: ignore[union-attr]
    assert codes.count("feed.gap") == 1
    assert codes.count("feed.synced") == 2  # the recording's snapshot, then the fetched one


def test_a_failed_snapshot_fetch_is_reported_and_the_feed_goes_on() -> None:
    from market_intel.adapters.snapshots import BinanceSnapshots

    path = SAMPLE["spot_btcusdt_20240808.gz"]
    all_items = items(path)
    diffs = [i for i, u in enumerate(all_items) if isinstance(u, BookUpdate) and not u.snapshot]
    source = [u for i, u in enumerate(all_items) if i != diffs[50]]
    engine = mi.CoreEngineBuilder().with_processors(1).build()
    closed_port = BinanceSnapshots("http://127.0.0.1:9", timeout_s=2)
    agent = DataIngestionAgent(engine, source, snapshots=closed_port)
    engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
    collector = Collector("collector")
    engine.register_agent(collector, message_types=[mi.MessageType.EVENT])
    with running(engine):
        assert agent.wait_finished(60)
        engine.flush(timeout=30)
    failed = [
        m.payload
        for m in collector.messages
        if m.payload.code == "feed.snapshot_failed"  # type: ignore[union-attr]
    ]
    assert len(failed) == 1
    assert "http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT" in failed[0].text  # type: ignore[union-attr]
    assert agent.statistics().error is None
    with pytest.raises(mi.InvalidArgumentError, match=r"base_url: 'ftp://x'; expected an http"):
        BinanceSnapshots("ftp://x")
