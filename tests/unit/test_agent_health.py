"""Agents at run time: registering and unregistering while running, failures, the health
monitor's restarts, stuck agents, and input that must never stop a processor."""

from __future__ import annotations

import functools
import threading
import time

import market_intel as mi
import pytest
from mi_engine import (
    TIMEOUT,
    BatchRecorder,
    Gate,
    GatedRecorder,
    Recorder,
    engine,
    quote,
    quote_records,
    running,
    wait_for,
)

FAST = {
    "heartbeat_interval_ms": 10,
    "heartbeat_timeout_ms": 2_000,
    "failure_timeout_ms": 4_000,
    "restart_backoff_ms": 10,
    "restart_backoff_max_ms": 40,
}
"""A health monitor that checks every 10 ms and restarts after 10, 20, 40, 40... ms."""


def status(e: mi.CoreEngine, name: str) -> mi.AgentStatus:
    return e.get_agent(name).status


class Flaky(Recorder):
    """Raises on the messages whose update_id is in ``bad``; blocks on ``pause``."""

    def __init__(self, name: str = "flaky", bad: frozenset[int] = frozenset(), pause: int = -1):
        super().__init__(name)
        self.bad = bad
        self.pause = pause
        self.gate = Gate()

    def process_event(self, message: mi.CoreMessage) -> None:
        i = message.payload.update_id  # type: ignore[union-attr]
        if i == self.pause:
            self.gate.block()
        if i in self.bad:
            raise ValueError(f"bad message {i}")
        super().process_event(message)


class Broken(Recorder):
    """Raises on every message."""

    instances = 0

    def __init__(self, name: str = "broken") -> None:
        super().__init__(name)
        Broken.instances += 1
        self.calls = 0

    def process_event(self, message: mi.CoreMessage) -> None:
        self.calls += 1
        raise RuntimeError("always")


# -- registration at run time --------------------------------------------------------------------


def test_an_agent_registered_while_running_gets_exactly_what_is_published_after() -> None:
    e = engine(2)
    busy = GatedRecorder("busy")
    e.register_agent(busy, affinity=0)
    with running(e):
        e.publish_message(quote(i=0))
        busy.gate.wait_entered()
        e.publish_batch([quote(i=i) for i in range(1, 101)])  # a backlog on processor 0
        late = Recorder("late")
        other = Recorder("other")
        record = e.register_agent(late, affinity=0)  # behind its processor's backlog
        e.register_agent(other, affinity=1)  # on a processor that was idle (not running)
        assert record.status == mi.AgentStatus.RUNNING and late.started == 1
        e.publish_batch([quote(i=i) for i in range(101, 151)])
        busy.gate.release()
        e.flush(TIMEOUT)
        assert late.update_ids() == list(range(101, 151))
        assert other.update_ids() == list(range(101, 151))
        assert busy.update_ids() == list(range(151))


def test_a_vectorized_agent_registered_while_running_skips_the_backlog() -> None:
    e = engine(1)
    busy = GatedRecorder("busy")
    e.register_agent(busy)
    with running(e):
        e.publish_message(quote(i=0))
        busy.gate.wait_entered()
        e.publish_batch(quote_records(["A"], 100, start=1))
        late = BatchRecorder("late")
        e.register_agent(late)
        e.publish_batch(quote_records(["A"], 50, start=101))
        busy.gate.release()
        e.flush(TIMEOUT)
    assert late.records["update_id"].tolist() == list(range(101, 151))


def test_duplicate_names_are_rejected() -> None:
    e = engine(1)
    e.register_agent(Recorder("x"))
    with pytest.raises(mi.InvalidArgumentError, match="name: 'x' is taken; expected a unique"):
        e.register_agent(Recorder("y"), name="x")
    with running(e), pytest.raises(mi.InvalidArgumentError, match="'x' is taken"):
        e.register_agent(Recorder("x"))
    assert [a.name for a in e.agents()] == ["x"]


@pytest.mark.parametrize("by", ["id", "name", "record"])
def test_an_unregistered_agent_gets_nothing_more(by: str) -> None:
    e = engine(1)
    stays = Recorder("stays")
    leaves = Recorder("leaves")
    e.register_agent(stays)
    record = e.register_agent(leaves)
    key: object = {"id": record.id, "name": "leaves", "record": record}[by]
    with running(e):
        e.publish_batch([quote(i=i) for i in range(10)])
        e.flush(TIMEOUT)
        last = e.unregister_agent(key)  # type: ignore[arg-type]
        assert last.status == mi.AgentStatus.STOPPED and last.stats.messages == 10
        assert leaves.stopped == 1
        e.publish_batch([quote(i=i) for i in range(10, 20)])
        e.flush(TIMEOUT)
    assert leaves.update_ids() == list(range(10))
    assert stays.update_ids() == list(range(20))
    assert [a.name for a in e.agents()] == ["stays"]
    with pytest.raises(mi.AgentNotFoundError, match="'leaves'"):
        e.get_agent("leaves")


def test_unregistering_mid_stream_waits_for_a_call_in_progress() -> None:
    e = mi.CoreEngineBuilder().with_processors(1).with_buffer_size(1024).build()
    leaves = Recorder("leaves")
    e.register_agent(leaves)
    e.register_agent(Recorder("stays"))
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            e.publish_batch([quote(i=i) for i in range(200)])

    with running(e):
        producer = threading.Thread(target=flood)
        producer.start()
        try:
            wait_for(lambda: len(leaves.messages) > 1000, "the agent to take messages")
            e.unregister_agent("leaves")
            handled = len(leaves.messages)
            assert leaves.stopped == 1
            time.sleep(0.05)  # the flood goes on: nothing more may reach the agent
            assert len(leaves.messages) == handled
        finally:
            stop.set()
            producer.join(TIMEOUT)


def test_on_stop_runs_once_per_on_start() -> None:
    e = engine(1)
    never = Recorder("never")
    once = Recorder("once")
    e.register_agent(never)
    e.register_agent(once)
    e.unregister_agent("never")  # never started: nothing to stop
    with running(e):
        pass
    e.unregister_agent("once")  # the engine's stop stopped it already
    assert (never.started, never.stopped) == (0, 0)
    assert (once.started, once.stopped) == (1, 1)


def test_unknown_agents_raise_agent_not_found() -> None:
    e = engine(1)
    for key in (42, "ghost"):
        with pytest.raises(mi.AgentNotFoundError) as err:
            e.unregister_agent(key)
        assert repr(key) in str(err.value)
        assert isinstance(err.value, KeyError)
    record = e.register_agent(Recorder())
    e.unregister_agent(record)
    with pytest.raises(mi.AgentNotFoundError):
        e.unregister_agent(record)


def test_a_processor_without_agents_ends_and_stops_gating() -> None:
    e = mi.CoreEngineBuilder().with_processors(2).with_buffer_size(64).build()
    a = e.register_agent(Recorder("a"), affinity=0)
    b = e.register_agent(Recorder("b"), affinity=1)
    with running(e):
        lanes = e._lanes
        assert lanes is not None

        def active_consumers() -> int:
            return sum(c.active for c in lanes.normal.consumer_statistics())

        assert active_consumers() == 2
        e.unregister_agent(b)
        wait_for(lambda: not e._processors[1].running, "processor 1 to end")
        assert active_consumers() == 1
        e.unregister_agent(a)
        wait_for(lambda: not e._processors[0].running, "processor 0 to end")
        assert active_consumers() == 0
        # Nothing gates the lanes now: ten laps of the ring publish without waiting for anyone.
        done = threading.Event()

        def publish() -> None:
            e.publish_batch([quote(i=i) for i in range(640)])
            e.publish_batch(quote_records(["A"], 640))
            done.set()

        t = threading.Thread(target=publish, daemon=True)
        t.start()
        assert done.wait(TIMEOUT), "publishing blocked on a processor that has no agents"
        # A new agent brings the processor back, from the current position.
        again = Recorder("again")
        e.register_agent(again, affinity=1)
        e.publish_message(quote(i=7))
        e.flush(TIMEOUT)
        assert again.update_ids() == [7]


def test_an_agent_can_unregister_itself() -> None:
    e = engine(1)

    class Quitter(Recorder):
        def process_event(self, message: mi.CoreMessage) -> None:
            super().process_event(message)
            if message.payload.update_id == 5:  # type: ignore[union-attr]
                e.unregister_agent(self.name)

    q = Quitter("quitter")
    e.register_agent(q)
    with running(e):
        for i in range(10):
            e.publish_message(quote(i=i))
        wait_for(lambda: not e._processors[0].running, "the processor to end")
        e.publish_batch([quote(i=i) for i in range(10, 200)])
    assert q.update_ids() == list(range(6))
    assert q.stopped == 1


# -- failures ----------------------------------------------------------------------------------


def test_an_agent_failing_on_some_messages_keeps_running() -> None:
    e = engine(2, **FAST)
    flaky = Flaky(bad=frozenset(range(0, 5000, 10)))  # one in ten, never two in a row
    bystander = Recorder("bystander")
    neighbour = Recorder("neighbour")
    e.register_agent(flaky, affinity=0)
    e.register_agent(neighbour, affinity=0)
    e.register_agent(bystander, affinity=1)
    with running(e):
        e.publish_batch([quote(i=i) for i in range(5000)])  # big batches: errors inside each
        e.flush(TIMEOUT)
        a = e.get_agent("flaky")
        assert a.status == mi.AgentStatus.RUNNING
        assert a.stats.errors == 500 and a.stats.consecutive_errors == 0
        assert a.stats.messages == 5000 and a.stats.dropped == 0
        assert a.stats.last_error == "ValueError: bad message 4990"
        assert len(flaky.messages) == 4500
        assert len(neighbour.messages) == len(bystander.messages) == 5000
        assert all(p.running and p.error is None for p in e._processors)
        s = e.get_statistics()
        assert s.errors == 500 and s.error_rate == pytest.approx(500 / 15000)


def test_an_agent_is_degraded_after_an_error_and_running_after_a_success() -> None:
    e = engine(1, **FAST)
    flaky = Flaky(bad=frozenset({1}), pause=2)
    e.register_agent(flaky)
    with running(e):
        e.publish_message(quote(i=0))
        e.publish_message(quote(i=1))
        e.publish_message(quote(i=2))
        flaky.gate.wait_entered()
        a = e.get_agent("flaky")
        assert a.status == mi.AgentStatus.DEGRADED
        assert a.stats.errors == 1 and a.stats.consecutive_errors == 1
        flaky.gate.release()
        e.publish_message(quote(i=3))
        e.flush(TIMEOUT)
        a = e.get_agent("flaky")
        assert a.status == mi.AgentStatus.RUNNING and a.stats.consecutive_errors == 0
    assert flaky.update_ids() == [0, 2, 3]


def test_an_agent_always_failing_reaches_failed_and_its_messages_are_dropped() -> None:
    e = engine(2, max_consecutive_errors=3, restart=False)
    broken = Broken()
    fine = Recorder("fine")
    e.register_agent(broken, affinity=0)
    e.register_agent(fine, affinity=0)
    with running(e):
        e.publish_batch([quote(i=i) for i in range(10)])
        e.flush(TIMEOUT)
        a = e.get_agent("broken")
        assert a.status == mi.AgentStatus.FAILED
        assert (a.stats.errors, a.stats.consecutive_errors, a.stats.dropped) == (3, 3, 7)
        assert a.stats.last_error == "RuntimeError: always"
        e.publish_batch([quote(i=i) for i in range(5)])
        e.flush(TIMEOUT)
        s = e.get_statistics()
        assert s.dropped == 12 and s.errors == 3
        assert broken.calls == 3
        assert len(fine.messages) == 15
        e.check_health()
        assert status(e, "broken") == mi.AgentStatus.FAILED  # restart is off


def test_a_failing_vectorized_agent_is_counted_per_batch() -> None:
    class BrokenBatches:
        name = "vbroken"

        def process_batch(self, batch: mi.MessageBatch) -> None:
            raise KeyError("no")

    e = engine(1, max_consecutive_errors=2, restart=False)
    e.register_agent(BrokenBatches())
    with running(e):
        for start in (0, 10, 20):
            e.publish_batch(quote_records(["A"], 10, start=start))
            e.flush(TIMEOUT)
        a = e.get_agent("vbroken")
    assert a.status == mi.AgentStatus.FAILED
    assert (a.stats.errors, a.stats.messages, a.stats.dropped) == (2, 20, 10)


def test_the_monitor_restarts_a_failed_agent_with_a_fresh_instance_from_its_factory() -> None:
    e = engine(1, max_consecutive_errors=2, max_restarts=3, **FAST)
    made: list[Broken] = []

    def factory() -> Broken:
        made.append(Broken())
        return made[-1]

    e.register_agent(factory(), factory=factory)

    def restarted(n: int) -> bool:
        return e.get_agent("broken").restarts >= n

    with running(e):
        for restarts in range(1, 4):
            e.publish_batch([quote(i=i) for i in range(2)])
            wait_for(functools.partial(restarted, restarts), f"restart {restarts}")
            assert e.get_agent("broken").restarts == restarts
            assert len(made) == restarts + 1  # a new instance each time
            assert made[-2].stopped == 1 and made[-1].started == 1
            wait_for(lambda: status(e, "broken") == mi.AgentStatus.RUNNING, "running again")
        # The last allowed restart is used up: once failed again it stays failed.
        e.publish_batch([quote(i=i) for i in range(2)])
        wait_for(lambda: status(e, "broken") == mi.AgentStatus.FAILED, "failed for good")
        time.sleep(0.2)  # many monitor rounds and backoffs later
        a = e.get_agent("broken")
        assert a.status == mi.AgentStatus.FAILED and a.restarts == 3 and len(made) == 4
        assert a.stats.errors == 8


def test_a_restart_without_a_factory_reuses_the_instance() -> None:
    e = engine(1, max_consecutive_errors=1, **FAST)

    class FailsOnce(Recorder):
        def process_event(self, message: mi.CoreMessage) -> None:
            if not self.messages and self.started == 1:
                self.messages.append(message)
                raise ValueError("first")
            super().process_event(message)

    agent = FailsOnce("once")
    e.register_agent(agent)
    with running(e):
        e.publish_message(quote(i=0))
        wait_for(lambda: e.get_agent("once").restarts == 1, "the restart")
        wait_for(lambda: status(e, "once") == mi.AgentStatus.RUNNING, "running again")
        e.publish_message(quote(i=1))
        e.flush(TIMEOUT)
    assert (agent.started, agent.stopped) == (2, 2)
    assert agent.update_ids() == [0, 1]


class SlowStarter(Recorder):
    """Its first ``on_start`` raises."""

    def on_start(self) -> None:
        super().on_start()
        if self.started == 1:
            raise ConnectionError("venue down")


def test_an_agent_whose_on_start_raises_is_failed() -> None:
    e = engine(1, restart=False)
    agent = SlowStarter("starter")
    e.register_agent(agent)
    with running(e):
        a = e.get_agent("starter")
        assert a.status == mi.AgentStatus.FAILED
        assert a.stats.last_error == "ConnectionError: venue down"
        e.publish_message(quote())
        e.flush(TIMEOUT)
        assert e.get_agent("starter").stats.dropped == 1
    assert agent.messages == []


def test_an_agent_whose_on_start_raises_is_restarted() -> None:
    e = engine(1, **FAST)
    agent = SlowStarter("starter")
    e.register_agent(agent)
    with running(e):
        wait_for(lambda: status(e, "starter") == mi.AgentStatus.RUNNING, "a restart")
        a = e.get_agent("starter")
        assert a.restarts == 1 and a.stats.errors == 1
        assert a.stats.last_error == "ConnectionError: venue down"
        e.publish_message(quote(i=1))
        e.flush(TIMEOUT)
    assert agent.started == 2 and agent.update_ids() == [1]


def test_an_on_start_that_always_raises_uses_up_exactly_max_restarts() -> None:
    e = engine(1, max_restarts=2, **FAST)

    class NeverStarts(Recorder):
        def on_start(self) -> None:
            super().on_start()
            raise ConnectionError("no")

    agent = NeverStarts("never")
    e.register_agent(agent)
    with running(e):
        wait_for(lambda: agent.started == 3, "two restarts")
        time.sleep(0.2)  # well past every backoff
        a = e.get_agent("never")
    assert a.status == mi.AgentStatus.FAILED
    assert a.restarts == 2 and agent.started == 3


def test_a_stuck_agent_is_reported_and_recovers_when_released() -> None:
    e = engine(
        2,
        heartbeat_interval_ms=10,
        heartbeat_timeout_ms=60,
        failure_timeout_ms=200,
        restart_backoff_ms=10,
    )
    stuck = GatedRecorder("stuck")
    neighbour = Recorder("neighbour")
    elsewhere = Recorder("elsewhere")
    e.register_agent(stuck, affinity=0)
    e.register_agent(neighbour, affinity=0)
    e.register_agent(elsewhere, affinity=1)
    with running(e):
        e.publish_message(quote(i=0))
        stuck.gate.wait_entered()
        wait_for(lambda: status(e, "stuck") == mi.AgentStatus.DEGRADED, "stuck: degraded")
        wait_for(lambda: status(e, "stuck") == mi.AgentStatus.FAILED, "stuck: failed")
        assert "no heartbeat for" in (e.get_agent("stuck").stats.last_error or "")
        # Its neighbour starves on the same processor but is not the one that failed.
        assert status(e, "neighbour") == mi.AgentStatus.DEGRADED
        assert status(e, "elsewhere") == mi.AgentStatus.RUNNING
        assert e.get_agent("stuck").restarts == 0  # no restart while it is still inside
        stuck.gate.release()
        wait_for(lambda: status(e, "stuck") == mi.AgentStatus.RUNNING, "stuck: restarted")
        wait_for(lambda: status(e, "neighbour") == mi.AgentStatus.RUNNING, "neighbour: running")
        assert e.get_agent("stuck").restarts == 1
        e.publish_message(quote(i=1))
        e.flush(TIMEOUT)
    assert stuck.update_ids() == [0, 1]
    assert neighbour.update_ids() == [0, 1]


def test_a_briefly_stuck_agent_is_degraded_then_running_without_a_restart() -> None:
    e = engine(1, heartbeat_interval_ms=10, heartbeat_timeout_ms=60, failure_timeout_ms=60_000)
    stuck = GatedRecorder("stuck")
    e.register_agent(stuck)
    with running(e):
        e.publish_message(quote())
        stuck.gate.wait_entered()
        wait_for(lambda: status(e, "stuck") == mi.AgentStatus.DEGRADED, "degraded")
        stuck.gate.release()
        wait_for(lambda: status(e, "stuck") == mi.AgentStatus.RUNNING, "running")
        assert e.get_agent("stuck").restarts == 0


def test_stop_never_deadlocks_with_the_health_monitor() -> None:
    # The monitor checks every millisecond; stop() holds the engine lock while it drains a
    # stuck agent, so the monitor is certainly due meanwhile.
    e = engine(1, heartbeat_interval_ms=1, heartbeat_timeout_ms=10_000, failure_timeout_ms=20_000)
    stuck = GatedRecorder()
    e.register_agent(stuck)
    e.start()
    e.publish_message(quote())
    stuck.gate.wait_entered()
    stopper = threading.Thread(target=e.stop)
    stopper.start()
    time.sleep(0.05)
    stuck.gate.release()
    stopper.join(TIMEOUT)
    assert not stopper.is_alive(), "stop() deadlocked"
    assert not e.running


def test_a_stop_that_timed_out_blocks_a_restart_until_the_processor_ends() -> None:
    e = engine(1)
    stuck = GatedRecorder()
    e.register_agent(stuck)
    e.start()
    e.publish_message(quote(i=0))
    stuck.gate.wait_entered()
    with pytest.raises(mi.WaitTimeoutError):
        e.stop(timeout=0.05)
    with pytest.raises(mi.EngineError, match=r"processor\(s\) \[0\] still handling"):
        e.start()
    stuck.gate.release()
    wait_for(lambda: not e._processors[0].running, "the processor to end")
    with running(e):
        e.publish_message(quote(i=1))
        e.flush(TIMEOUT)
    assert stuck.update_ids() == [0, 1]


# -- input that must not stop a processor ------------------------------------------------------


def test_records_that_do_not_decode_are_dropped_for_object_agents_only() -> None:
    e = engine(1)
    objects = Recorder("objects")
    rows = BatchRecorder("rows")
    e.register_agent(objects)
    e.register_agent(rows)
    records = quote_records(["A"], 6)
    records["symbol"][2] = b""  # a market data record without a symbol is not a message
    records["kind"][4] = 0
    with running(e):
        e.publish_batch(records)
        e.publish_message(quote(i=99))
        e.flush(TIMEOUT)
        assert e._processors[0].running
        a = e.get_agent("objects")
    assert objects.update_ids() == [0, 1, 3, 5, 99]
    assert a.stats.dropped == 2
    assert rows.count == 7
    assert e._processors[0].undecodable == 2


def test_a_raising_filter_is_the_agent_error_not_the_processor_one() -> None:
    e = engine(1, max_consecutive_errors=100)
    vector = BatchRecorder("vector")
    objects = Recorder("objects")
    fine = Recorder("fine")

    def boom(_: object) -> bool:
        raise ZeroDivisionError("filter")

    e.register_agent(vector, filter=boom)
    e.register_agent(objects, filter=boom)
    e.register_agent(fine)
    with running(e):
        e.publish_batch([quote(i=i) for i in range(5)])
        e.publish_batch(quote_records(["A"], 5))
        e.flush(TIMEOUT)
        assert e._processors[0].running
        assert e.get_agent("vector").stats.errors >= 1  # one per batch
        assert e.get_agent("objects").stats.errors == 10
    assert len(fine.messages) == 10
    assert vector.count == 0 and objects.messages == []


def test_agents_of_a_processor_that_died_are_reported_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    e = engine(1, **FAST)
    e.register_agent(Recorder("victim"))

    def broken(*_: object) -> None:
        raise RuntimeError("engine bug")

    with running(e):
        monkeypatch.setattr(e._processors[0], "_dispatch", broken)
        e.publish_message(quote())
        wait_for(lambda: not e._processors[0].running, "the processor to stop")
        wait_for(lambda: status(e, "victim") == mi.AgentStatus.FAILED, "the agent to fail")
        assert "processor 0 stopped on RuntimeError('engine bug')" in (
            e.get_agent("victim").stats.last_error or ""
        )
    assert isinstance(e._processors[0].error, RuntimeError)
