"""Backpressure policies on a real engine whose only agent is held at a gate: the normal
lane fills, and each policy's loss (or its absence) is counted, never silent."""

from __future__ import annotations

import threading

import market_intel as mi
import pytest
from market_intel.adapters.backpressure import BackpressurePolicy, FeedPublisher
from mi_engine import GatedRecorder, quote, running, trade, wait_for

CAPACITY = 64


def small_engine() -> mi.CoreEngine:
    return mi.CoreEngineBuilder().with_processors(1).with_buffer_size(CAPACITY).build()


def held(engine: mi.CoreEngine) -> GatedRecorder:
    agent = GatedRecorder()
    engine.register_agent(agent)
    return agent


def fill(engine: mi.CoreEngine, agent: GatedRecorder) -> None:
    """Publish until the agent holds the first message and the lane is full (the held
    message keeps its slot until the call returns)."""
    engine.publish_message(quote("FILL", 0))
    agent.gate.wait_entered()
    for i in range(1, CAPACITY):
        engine.publish_message(quote("FILL", i))


def test_drop_counts_every_lost_message_per_symbol_and_says_so_on_the_priority_lane() -> None:
    engine = small_engine()
    agent = held(engine)
    with running(engine):
        fill(engine, agent)
        publisher = FeedPublisher(engine, "drop", source="feed")
        sent = [publisher.publish(quote("BTC-USDT", i)) for i in range(100)]
        sent += [publisher.publish(quote("ETH-USDT", i)) for i in range(50)]
        stats = publisher.statistics()
        assert not any(sent)
        assert (stats.published, stats.dropped) == (0, 150)
        assert stats.dropped_by_symbol == {"BTC-USDT": 100, "ETH-USDT": 50}
        agent.gate.release()
        engine.flush(timeout=30)
        publisher.flush()  # a feed's end: the drops since the last warning are reported
        engine.flush(timeout=30)
    warnings = [m for m in agent.messages if m.type is mi.MessageType.EVENT]
    texts = [m.payload.text for m in warnings]  # type: ignore[union-attr]
    assert texts == [  # the first drop at once, then at most one warning a second
        "feed: lane full, dropped 1 (1 in all; BTC-USDT 1)",
        "feed: lane full, dropped 149 (150 in all; BTC-USDT 100, ETH-USDT 50)",
    ]
    assert {m.payload.code for m in warnings} == {"backpressure.drop"}  # type: ignore[union-attr]
    assert {m.priority for m in warnings} == {mi.Priority.HIGH}
    assert len(agent.messages) == CAPACITY + 2  # the fill, and the warnings


def test_conflate_keeps_the_latest_quote_per_symbol_and_publishes_it_when_room_returns() -> None:
    engine = small_engine()
    agent = held(engine)
    with running(engine):
        fill(engine, agent)
        publisher = FeedPublisher(engine, BackpressurePolicy.CONFLATE, source="feed")
        for i in range(200):
            publisher.publish(quote("BTC-USDT", i))
            publisher.publish(quote("ETH-USDT", 1000 + i))
        stats = publisher.statistics()
        assert (stats.published, stats.pending, stats.conflated) == (0, 2, 398)
        agent.gate.release()
        engine.flush(timeout=30)
        publisher.publish(quote("BTC-USDT", 500))  # room again: the waiting quotes go first
        engine.flush(timeout=30)
    after_fill = [m.payload for m in agent.messages[CAPACITY:]]
    assert [(p.symbol, p.update_id) for p in after_fill] == [  # type: ignore[union-attr]
        ("BTC-USDT", 199),
        ("ETH-USDT", 1199),
        ("BTC-USDT", 500),
    ]
    final = publisher.statistics()
    assert (final.published, final.pending, final.conflated, final.dropped) == (3, 0, 398, 0)


def test_conflate_never_conflates_trades_they_wait_for_room() -> None:
    engine = small_engine()
    agent = held(engine)
    with running(engine):
        fill(engine, agent)
        publisher = FeedPublisher(engine, "conflate")
        publisher.publish(quote("BTC-USDT", 1))
        done = threading.Event()

        def publish_trades() -> None:
            for i in range(10):
                publisher.publish(trade("BTC-USDT", i))
            done.set()

        thread = threading.Thread(target=publish_trades)
        thread.start()
        assert not done.wait(0.2)  # blocked behind the full lane
        agent.gate.release()
        thread.join(30)
        assert done.is_set()
        engine.flush(timeout=30)
    tail = agent.messages[CAPACITY:]
    assert tail[0].type is mi.MessageType.MARKET_DATA  # the held quote first, then the trades
    assert [m.payload.trade_id for m in tail[1:]] == list(range(1, 11))  # type: ignore[union-attr]
    stats = publisher.statistics()
    assert stats.blocked >= 1
    assert (stats.published, stats.dropped, stats.pending) == (11, 0, 0)


def test_block_waits_for_room_and_loses_nothing() -> None:
    engine = small_engine()
    agent = held(engine)
    with running(engine):
        fill(engine, agent)
        publisher = FeedPublisher(engine, "block")
        thread = threading.Thread(
            target=lambda: [publisher.publish(quote("BTC-USDT", i)) for i in range(500)]
        )
        thread.start()
        wait_for(lambda: publisher.statistics().blocked == 1, "the publisher to wait")
        agent.gate.release()
        thread.join(30)
        engine.flush(timeout=30)
    ids = [m.payload.update_id for m in agent.messages[CAPACITY:]]  # type: ignore[union-attr]
    assert ids == list(range(500))
    assert publisher.statistics().published == 500


def test_a_bad_policy_is_named() -> None:
    with pytest.raises(ValueError, match="'queue' is not a valid BackpressurePolicy"):
        FeedPublisher(small_engine(), "queue")
