"""The asyncio face of CoreEngine: ``async with``, ``apublish_message``, ``apublish_batch``,
``aflush``, and a publish into a full lane that waits without blocking the event loop."""

from __future__ import annotations

import asyncio

import market_intel as mi
import pytest
from mi_engine import TIMEOUT, GatedRecorder, Recorder, engine, quote, quote_records


def test_async_with_starts_and_stops_and_publishes() -> None:
    e = engine(2)
    r = Recorder()
    e.register_agent(r)

    async def main() -> None:
        async with e as entered:
            assert entered is e and e.running
            assert await e.apublish_message(quote(i=0)) == 0
            assert e.publish_message(quote(i=1)) == 1  # the sync call works in a coroutine
            assert await e.apublish_batch([quote(i=2), quote(i=3)]) == 2
            assert await e.apublish_batch(quote_records(["A"], 2, start=4)) == 2
            await e.aflush(TIMEOUT)
            assert r.update_ids() == [0, 1, 2, 3, 4, 5]
            await e.apublish_message(quote(i=6))
        assert not e.running

    asyncio.run(main())
    assert r.update_ids() == list(range(7))  # leaving the block drained
    assert (r.started, r.stopped) == (1, 1)


def test_astart_and_astop() -> None:
    e = engine(1)
    r = Recorder()
    e.register_agent(r)

    async def main() -> None:
        await e.astart()
        assert e.running
        await e.apublish_message(quote())
        await e.astop(TIMEOUT)
        assert not e.running

    asyncio.run(main())
    assert len(r.messages) == 1


def test_apublish_errors() -> None:
    e = engine(1)

    async def before_start() -> None:
        with pytest.raises(mi.EngineError, match="apublish_message: the engine is not running"):
            await e.apublish_message(quote())
        with pytest.raises(mi.EngineError, match="publish_batch: the engine is not running"):
            await e.apublish_batch([quote()])

    async def not_a_message() -> None:
        async with e:
            with pytest.raises(mi.InvalidArgumentError, match="dict is not a CoreMessage"):
                await e.apublish_message({"type": 1})  # type: ignore[arg-type]

    asyncio.run(before_start())
    asyncio.run(not_a_message())


@pytest.mark.parametrize("priority", [mi.Priority.NORMAL, mi.Priority.CRITICAL])
def test_apublish_into_a_full_lane_waits_without_blocking_the_event_loop(
    priority: mi.Priority,
) -> None:
    e = (
        mi.CoreEngineBuilder()
        .with_processors(1)
        .with_buffer_size(8)
        .with_priority_buffer_size(8)
        .build()
    )
    agent = GatedRecorder()
    e.register_agent(agent)

    async def main() -> None:
        async with e:
            assert e._lanes is not None
            lane = e._lanes.priority if priority <= mi.Priority.HIGH else e._lanes.normal
            e.publish_message(quote(i=0, priority=priority))
            await asyncio.to_thread(agent.gate.wait_entered)
            i = 1
            while lane.remaining_capacity() > 0:
                e.publish_message(quote(i=i, priority=priority))
                i += 1
            full = i
            waiting = asyncio.create_task(e.apublish_message(quote(i=full, priority=priority)))
            ticks = 0
            for _ in range(50):  # the loop keeps running other tasks meanwhile
                await asyncio.sleep(0.001)
                ticks += 1
            assert ticks == 50
            assert not waiting.done()  # still waiting for room: the agent holds the lane
            agent.gate.release()
            sequence = await asyncio.wait_for(waiting, TIMEOUT)
            assert sequence == full
            await e.aflush(TIMEOUT)
            assert agent.update_ids() == list(range(full + 1))

    asyncio.run(main())


def test_the_native_try_publish_refuses_a_full_lane_and_publishes_nothing() -> None:
    """What ``apublish_message`` relies on to never block the event loop."""
    e = mi.CoreEngineBuilder().with_processors(1).with_buffer_size(8).build()
    agent = GatedRecorder()
    e.register_agent(agent)
    with e:
        assert e._lanes is not None
        native, lane = e._lanes.native, e._lanes.normal
        native.try_publish(quote(i=0))
        agent.gate.wait_entered()
        i = 1
        while lane.remaining_capacity() > 0:
            assert native.try_publish(quote(i=i)) == i
            i += 1
        cursor = lane.cursor
        with pytest.raises(mi.InsufficientCapacity):
            native.try_publish(quote(i=i))
        assert lane.cursor == cursor  # nothing claimed, nothing published
        agent.gate.release()
        e.flush(TIMEOUT)
    assert agent.update_ids() == list(range(i))
