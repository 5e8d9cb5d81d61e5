"""A live WebSocket feed into a running engine: a real local server replays the recorded
Coinbase session, ``DataIngestionAgent`` validates it, builds the L2 books and publishes;
a dropped connection is reported, and books wait for a fresh snapshot."""

from __future__ import annotations

import market_intel as mi
import pytest
from market_intel.adapters.book import BookState
from market_intel.adapters.websocket import Backoff, WebSocketFeed, WebSocketFeedConfig
from market_intel.adapters.wsreplay import RecordedVenueServer
from market_intel.agents.ingestion import DataIngestionAgent, DataIngestionAgentConfig
from mi_data import SHARED_DATA
from mi_engine import Recorder, running, wait_for

DATA = SHARED_DATA / "exchanges"
RECORDING = DATA / "COINBASE.jsonl.zst"
CHANNELS = ("trades", "candles", "quotes", "book", "heartbeats")

pytestmark = pytest.mark.skipif(not RECORDING.is_file(), reason="recordings not present")


def run_feed(drop_after: list[int]) -> tuple[DataIngestionAgent, Recorder, WebSocketFeed, int]:
    server = RecordedVenueServer.from_recording(RECORDING, drop_after=drop_after)
    engine = mi.CoreEngineBuilder().with_processors(1).build()
    with server:
        feed = WebSocketFeed(
            WebSocketFeedConfig(
                url=server.url,
                parser="coinbase",
                symbols=["BTC-USD", "ETH-USD"],
                channels=CHANNELS,
                backoff=Backoff(initial_s=0.01, maximum_s=0.05, seed=3),
                ping_interval_s=None,
            )
        )
        agent = DataIngestionAgent(engine, feed, DataIngestionAgentConfig(name="coinbase"))
        engine.register_agent(agent, message_types=[mi.MessageType.CONTROL])
        collector = Recorder("collector")
        engine.register_agent(collector)
        with running(engine):
            frames = len(server.frames)
            wait_for(lambda: feed.statistics().frames >= frames, "every recorded frame")

            def consumed() -> bool:
                s = feed.statistics()
                a = agent.statistics()
                return (a.updates, a.malformed) == (s.updates, s.malformed)

            wait_for(consumed, "the agent to take every item the feed yielded")
            engine.stop(timeout=30)  # on_drain closes the feed; everything published is handled
    return agent, collector, feed, frames


def codes(collector: Recorder) -> list[str]:
    return [
        m.payload.code  # type: ignore[union-attr]
        for m in collector.messages
        if m.type is mi.MessageType.EVENT
    ]


def test_the_live_feed_builds_books_and_publishes_their_tops() -> None:
    agent, collector, _, frames = run_feed([])
    stats = agent.statistics()
    assert stats.error is None
    assert stats.malformed == 0
    assert stats.source["frames"] == frames
    for symbol in ("BTC-USD", "ETH-USD"):
        builder = agent.books.builder("coinbase", symbol)
        assert builder is not None and builder.state is BookState.SYNCED
        book = builder.book
        assert not book.is_crossed()
        tops = [
            m.payload
            for m in collector.messages
            if isinstance(m.payload, mi.MarketData)
            and m.payload.symbol == symbol
            and m.payload.kind is mi.MarketDataKind.QUOTE
            and m.payload.update_id == book.last_update_id
        ]
        best_bid = book.best_bid()
        assert best_bid is not None
        assert tops and tops[-1].bid == float(best_bid[0])
    trades = [
        m
        for m in collector.messages
        if isinstance(m.payload, mi.MarketData) and m.payload.kind is mi.MarketDataKind.TRADE
    ]
    ids = [(m.payload.symbol, m.payload.update_id) for m in trades]  # type: ignore[union-attr]
    assert trades and len(set(ids)) == len(ids)  # duplicates were rejected, not published
    assert "feed.connected" in codes(collector)
    assert stats.published == len(collector.messages)


def test_a_dropped_connection_is_reported_and_books_wait_for_a_snapshot() -> None:
    agent, collector, feed, _ = run_feed([400])
    source = feed.statistics()
    assert (source.reconnects, source.disconnects) == (1, 2)
    events = codes(collector)
    assert events.count("feed.disconnected") >= 1
    assert events.count("feed.resync") >= 2  # one per subscribed symbol
    disconnected = next(
        m for m in collector.messages if getattr(m.payload, "code", "") == "feed.disconnected"
    )
    assert disconnected.priority is mi.Priority.HIGH
    assert disconnected.payload.severity is mi.Severity.WARNING  # type: ignore[union-attr]
    for symbol in ("BTC-USD", "ETH-USD"):
        builder = agent.books.builder("coinbase", symbol)
        assert builder is not None
        # The recording has one snapshot per symbol, sent before the drop: after the
        # resync the books wait for the next one rather than apply diffs to a stale book.
        assert builder.state is BookState.AWAITING_SNAPSHOT
        assert agent.books.top("coinbase", symbol) is None
    assert agent.statistics().error is None
