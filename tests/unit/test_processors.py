"""BatchEventProcessor and Disruptor: lifecycle, batching, halt and drain, error policies,
native handlers and thread options."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, checksum, records, wait_until

WAITS: list[Any] = [
    "blocking",
    "sleeping",
    "yielding",
    "busy_spin",
    mi.WaitStrategy(),
    mi.WaitStrategy.blocking(spin=5),
    mi.WaitStrategy.sleeping(spin=10, yields=10, max_sleep_ns=200_000),
    mi.WaitStrategy.yielding(spin=10),
    mi.WaitStrategy.busy_spin(),
]


class Counter:
    """A Python handler that checks every record and counts what it saw."""

    def __init__(self) -> None:
        self.events = 0
        self.batches: list[tuple[int, int, bool]] = []
        self.next = 0
        self.problems: list[str] = []

    def on_event(self, batch: np.ndarray, sequence: int, end_of_batch: bool) -> None:
        if sequence != self.next:
            self.problems.append(f"batch at {sequence}, expected {self.next}")
        if not np.array_equal(batch["chk"], checksum(batch["producer"], batch["seq"])):
            self.problems.append(f"bad checksum in {sequence}..")
        self.next = sequence + len(batch)
        self.events += len(batch)
        self.batches.append((sequence, len(batch), end_of_batch))


def task_names() -> dict[int, str]:
    out = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # the thread may end meanwhile
            out[int(task.name)] = (task / "comm").read_text().strip()
    return out


def tid_of(thread_name: str) -> int | None:
    return next((tid for tid, n in task_names().items() if n == thread_name), None)


# ---- lifecycle ------------------------------------------------------------------------------


def test_on_start_on_event_on_timeout_and_on_shutdown_are_called_in_order() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    calls: list[Any] = []
    timed_out = threading.Event()

    class Handler:
        def on_start(self) -> None:
            calls.append("start")

        def on_event(self, batch: np.ndarray, sequence: int, end: bool) -> None:
            calls.append(("event", sequence, len(batch)))

        def on_timeout(self, sequence: int) -> None:
            calls.append(("timeout", sequence))
            timed_out.set()

        def on_shutdown(self) -> None:
            calls.append("shutdown")

    p = mi.BatchEventProcessor(ring, Handler(), name="life", timeout=0.02)
    assert not p.running and p.exit is None
    p.start()
    assert p.running
    assert timed_out.wait(10)
    ring.publish_batch(records(0, 0, 3))
    assert wait_until(lambda: p.sequence == 2)
    timed_out.clear()
    assert timed_out.wait(10)
    p.stop(timeout=10)
    assert not p.running and p.exit == "drained" and p.error is None
    assert calls[0] == "start" and calls[-1] == "shutdown"
    events = [c for c in calls if c[0] == "event"]
    assert sum(c[2] for c in events) == 3
    timeouts = [c for c in calls if c[0] == "timeout"]
    assert ("timeout", -1) in timeouts and ("timeout", 2) in timeouts
    # A timeout before the events reports -1, after them the last handled sequence.
    first_event = calls.index(events[0])
    assert all(c == ("timeout", -1) for c in calls[1:first_event])
    p.close()


def test_plain_callable_handler_and_repr() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    seen: list[int] = []

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        seen.extend(batch["seq"].tolist())

    p = mi.BatchEventProcessor(ring, handler, name="fn")
    assert not p.native and p.name == "fn" and "fn" in repr(p)
    assert p.consumer_id == ring.consumer_statistics()[0].consumer_id
    p.start()
    ring.publish_batch(records(0, 0, 5))
    p.stop(timeout=10)
    assert seen == [0, 1, 2, 3, 4]
    p.close()
    assert ring.consumer_statistics() == ()


def test_on_start_error_is_reported_as_unraisable_and_processing_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    ring = mi.RingBuffer(8, DTYPE)
    counter = Counter()

    class Handler:
        def on_start(self) -> None:
            raise RuntimeError("on_start failed")

        on_event = counter.on_event

    p = mi.BatchEventProcessor(ring, Handler(), name="bad-start")
    p.start()
    ring.publish_batch(records(0, 0, 4))
    p.stop(timeout=10)
    p.close()
    assert counter.events == 4
    assert len(reported) == 1 and isinstance(reported[0].exc_value, RuntimeError)


@pytest.mark.parametrize("max_batch", [1, 3, 7, 64])
def test_max_batch_is_respected(max_batch: int) -> None:
    ring = mi.RingBuffer(64, DTYPE)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="mb", max_batch=max_batch)
    ring.publish_batch(records(0, 0, 50))  # waiting before the processor starts
    p.start()
    p.stop(timeout=10)
    p.close()
    assert counter.problems == []
    assert counter.events == 50
    assert all(n <= max_batch for _, n, _ in counter.batches)
    assert max(n for _, n, _ in counter.batches) == min(max_batch, 50)
    assert counter.batches[-1][2] is True


def test_a_batch_crossing_the_ring_end_comes_in_two_chunks() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="wrap")
    ring.publish_batch(records(0, 0, 6))
    p.start()
    assert wait_until(lambda: p.sequence == 5)
    ring.publish_batch(records(0, 6, 5))  # slots 6, 7, 0, 1, 2
    p.stop(timeout=10)
    p.close()
    assert counter.problems == []
    assert counter.batches[-2:] == [(6, 2, False), (8, 3, True)]


def test_halt_leaves_later_events_unhandled() -> None:
    ring = mi.RingBuffer(64, DTYPE)
    entered = threading.Event()
    release = threading.Event()
    handled: list[tuple[int, int]] = []

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        handled.append((sequence, len(batch)))
        entered.set()
        release.wait(10)

    p = mi.BatchEventProcessor(ring, handler, name="halts")
    p.start()
    ring.publish((0, 0, checksum(0, 0)))
    assert entered.wait(10)
    ring.publish_batch(records(0, 1, 20))
    # The handler is let go well after halt() was asked for (a margin, not an assertion).
    timer = threading.Timer(0.5, release.set)
    timer.start()
    p.halt(timeout=10)
    timer.join()
    assert handled == [(0, 1)]
    assert p.exit == "halted" and p.error is None
    assert p.sequence == 0
    (stats,) = ring.consumer_statistics()
    assert (stats.events, stats.sequence, stats.lag) == (1, 0, 20)
    p.close()


@pytest.mark.parametrize("wait", WAITS, ids=repr)
def test_stop_drains_everything_published_before_it(wait: Any) -> None:
    ring = mi.RingBuffer(1024, DTYPE)
    counter = Counter()
    native = mi.ChecksumHandler("chk")
    py = mi.BatchEventProcessor(ring, counter, name="py", wait=wait)
    nat = mi.BatchEventProcessor(ring, native, name="native", wait=wait)
    assert nat.native
    py.start()
    nat.start()
    total = 0
    expected_sum = 0
    for i in range(40):
        chunk = records(i % 3, i * 250, 250)
        ring.publish_batch(chunk, timeout=30)
        total += 250
        expected_sum += int(chunk["chk"].sum())
    py.stop(timeout=30)
    nat.stop(timeout=30)
    assert counter.problems == []
    assert counter.events == total
    assert native.count == total
    assert native.checksum == expected_sum % 2**64
    assert py.sequence == nat.sequence == ring.cursor == total - 1
    assert py.exit == nat.exit == "drained"
    py.close()
    nat.close()


@pytest.mark.parametrize("wait", ["blocking", "busy_spin"])
def test_stop_of_a_processor_that_was_never_started_handles_what_is_waiting(wait: str) -> None:
    ring = mi.RingBuffer(256, DTYPE)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="late", wait=wait)
    ring.publish_batch(records(0, 0, 200))
    p.stop(timeout=10)
    assert counter.events == 200 and counter.problems == []
    assert p.exit == "drained"
    p.close()


def test_drain_to_a_sequence_then_join() -> None:
    ring = mi.RingBuffer(64, DTYPE)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="d", max_batch=4)
    ring.publish_batch(records(0, 0, 30))
    p.start()
    p.drain(9)
    p.join(timeout=10)
    assert p.exit == "drained"
    assert counter.events == 10 and p.sequence == 9
    p.close()


def test_processor_as_a_context_manager() -> None:
    ring = mi.RingBuffer(64, DTYPE)
    counter = Counter()
    with mi.BatchEventProcessor(ring, counter, name="cm") as p:
        assert p.running
        ring.publish_batch(records(0, 0, 40))
    assert counter.events == 40
    assert p.exit == "drained"
    assert ring.consumer_statistics() == ()


def test_processor_context_manager_halts_on_an_exception() -> None:
    ring = mi.RingBuffer(64, DTYPE)
    with pytest.raises(KeyError), mi.BatchEventProcessor(ring, Counter(), name="cm") as p:
        raise KeyError("boom")
    assert p.exit == "halted"
    assert ring.consumer_statistics() == ()


# ---- handler errors -------------------------------------------------------------------------


def failing_on(bad: set[int], counts: dict[int, int] | None = None) -> Any:
    """A handler that raises ValueError on a batch holding one of ``bad`` (at most once per
    sequence when ``counts`` tells how many times each sequence still fails)."""
    handled: list[int] = []

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        seqs = range(sequence, sequence + len(batch))
        hit = [s for s in seqs if s in bad and (counts is None or counts.get(s, 0) > 0)]
        if hit:
            if counts is not None:
                counts[hit[0]] -= 1
            raise ValueError(f"bad record {hit[0]}")
        handled.extend(seqs)

    handler.handled = handled  # type: ignore[attr-defined]
    return handler


def test_on_error_halt_raises_handler_error_from_stop_and_join() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    handler = failing_on({5})
    p = mi.BatchEventProcessor(ring, handler, name="fails", max_batch=1)
    p.start()
    ring.publish_batch(records(0, 0, 10))
    with pytest.raises(mi.HandlerError) as e:
        p.stop(timeout=10)
    err = e.value
    assert isinstance(err.__cause__, ValueError) and "bad record 5" in str(err.__cause__)
    assert err.consumer == "fails"
    assert (err.first_sequence, err.last_sequence) == (5, 5)
    assert "fails" in str(err) and "5..5" in str(err)
    assert p.exit == "failed"
    assert p.error is err
    with pytest.raises(mi.HandlerError):
        p.join(timeout=1)
    assert handler.handled == [0, 1, 2, 3, 4]
    (stats,) = ring.consumer_statistics()
    assert (stats.errors, stats.events, stats.sequence) == (1, 5, 4)
    p.close()


def test_handler_error_range_covers_the_failed_batch() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    p = mi.BatchEventProcessor(ring, failing_on({3}), name="batchfail")
    ring.publish_batch(records(0, 0, 8))
    with pytest.raises(mi.HandlerError) as e:
        p.stop(timeout=10)
    assert (e.value.first_sequence, e.value.last_sequence) == (0, 7)
    assert p.sequence == -1  # the failed batch is not released
    p.close()


def test_on_error_log_logs_and_continues(caplog: pytest.LogCaptureFixture) -> None:
    ring = mi.RingBuffer(16, DTYPE)
    handler = failing_on({3, 7})
    with caplog.at_level(logging.ERROR, logger="market_intel.processor"):
        p = mi.BatchEventProcessor(ring, handler, name="logs", on_error="log", max_batch=1)
        p.start()
        ring.publish_batch(records(0, 0, 10))
        p.stop(timeout=10)
    assert p.exit == "drained" and p.error is None
    assert handler.handled == [0, 1, 2, 4, 5, 6, 8, 9]
    logged = [r for r in caplog.records if r.name == "market_intel.processor"]
    assert len(logged) == 2
    for rec, seq in zip(logged, (3, 7), strict=True):
        assert rec.levelno == logging.ERROR
        assert "consumer 'logs'" in rec.getMessage() and f"{seq}..{seq}" in rec.getMessage()
        assert rec.exc_info is not None and rec.exc_info[0] is ValueError
    (stats,) = ring.consumer_statistics()
    assert stats.errors == 2 and stats.sequence == 9
    p.close()


@pytest.mark.parametrize(("retries", "failures"), [(3, 1), (3, 2), (3, 3), (1, 1)])
def test_on_error_retry_recovers(
    retries: int, failures: int, caplog: pytest.LogCaptureFixture
) -> None:
    ring = mi.RingBuffer(16, DTYPE)
    counts = {4: failures}
    handler = failing_on({4}, counts)
    with caplog.at_level(logging.ERROR, logger="market_intel.processor"):
        p = mi.BatchEventProcessor(
            ring, handler, name="retries", on_error="retry", retries=retries, max_batch=1
        )
        p.start()
        ring.publish_batch(records(0, 0, 8))
        p.stop(timeout=10)
    assert p.exit == "drained"
    assert handler.handled == list(range(8))
    assert counts[4] == 0
    (stats,) = ring.consumer_statistics()
    assert stats.errors == failures and stats.events == 8
    assert len([r for r in caplog.records if r.name == "market_intel.processor"]) == failures
    p.close()


def test_on_error_retry_halts_when_the_retries_run_out(caplog: pytest.LogCaptureFixture) -> None:
    ring = mi.RingBuffer(16, DTYPE)
    counts = {2: 100}
    handler = failing_on({2}, counts)
    with caplog.at_level(logging.ERROR, logger="market_intel.processor"):
        p = mi.BatchEventProcessor(
            ring, handler, name="gives-up", on_error="retry", retries=2, max_batch=1
        )
        p.start()
        ring.publish_batch(records(0, 0, 5))
        with pytest.raises(mi.HandlerError) as e:
            p.stop(timeout=10)
    assert isinstance(e.value.__cause__, ValueError)
    assert (e.value.first_sequence, e.value.last_sequence) == (2, 2)
    assert counts[2] == 100 - 3  # the first attempt and two retries
    assert p.exit == "failed"
    (stats,) = ring.consumer_statistics()
    assert stats.errors == 3 and stats.sequence == 1
    p.close()


def test_on_timeout_error_is_counted_and_processing_goes_on() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    raised = threading.Event()
    counter = Counter()

    class Handler:
        on_event = counter.on_event

        def on_timeout(self, sequence: int) -> None:
            raised.set()
            raise RuntimeError("timeout handler failed")

    p = mi.BatchEventProcessor(ring, Handler(), name="t", timeout=0.01, on_error="halt")
    p.start()
    assert raised.wait(10)
    ring.publish_batch(records(0, 0, 4))
    p.stop(timeout=10)
    assert counter.events == 4 and p.exit == "drained"
    assert ring.consumer_statistics()[0].errors >= 1
    p.close()


# ---- native handlers ------------------------------------------------------------------------


def test_checksum_handler_matches_a_python_computation() -> None:
    rng = np.random.default_rng(7)
    values = rng.integers(-(2**63), 2**63 - 1, size=5000, dtype=np.int64)
    ring = mi.RingBuffer(512, np.int64)
    handler = mi.ChecksumHandler()
    assert (handler.count, handler.checksum) == (0, 0)
    p = mi.BatchEventProcessor(ring, handler, name="sum")
    assert p.native
    p.start()
    for i in range(0, len(values), 300):
        ring.publish_batch(values[i : i + 300], timeout=30)
    p.stop(timeout=30)
    assert handler.count == len(values)
    assert handler.checksum == sum(int(v) for v in values) % 2**64
    p.close()


def test_checksum_handler_on_a_named_field_and_on_the_first_field() -> None:
    ring = mi.RingBuffer(64, DTYPE)
    by_name = mi.ChecksumHandler("seq")
    first = mi.ChecksumHandler()
    a = mi.BatchEventProcessor(ring, by_name, name="by-name")
    b = mi.BatchEventProcessor(ring, first, name="first")
    assert a.name == "by-name"
    a.start()
    b.start()
    recs = records(3, 100, 50)
    ring.publish_batch(recs)
    a.stop(timeout=10)
    b.stop(timeout=10)
    assert by_name.count == first.count == 50
    assert by_name.checksum == int(recs["seq"].sum())
    assert first.checksum == int(recs["producer"].sum())
    a.close()
    b.close()


def test_latency_handler_statistics() -> None:
    dt = np.dtype([("ts", "<i8"), ("v", "<f8")])
    ring = mi.RingBuffer(256, dt)
    handler = mi.LatencyHandler("ts")
    assert handler.statistics().count == 0
    p = mi.BatchEventProcessor(ring, handler)
    assert p.name == "latency" and p.native
    p.start()
    n = 3000
    for i in range(n):
        ts = mi.monotonic_ns() if i % 2 else __import__("time").monotonic_ns()
        ring.publish((ts, float(i)))
    p.stop(timeout=30)
    s = handler.statistics()
    assert s.count == n
    assert 0 <= s.min <= s.p50 <= s.p90 <= s.p99 <= s.p999 <= s.max
    assert s.min <= s.mean <= s.max
    with pytest.raises(AttributeError):
        s.count = 0  # type: ignore[misc]
    handler.reset()
    assert handler.statistics().count == 0
    p.close()


# ---- thread options -------------------------------------------------------------------------


def test_thread_name_shows_up_in_proc() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    named = mi.BatchEventProcessor(
        ring, mi.ChecksumHandler(), name="x", thread_name="mi-probe-name"
    )
    default = mi.BatchEventProcessor(ring, Counter(), name="a-rather-long-consumer-name")
    named.start()
    default.start()
    try:
        assert wait_until(lambda: tid_of("mi-probe-name") is not None, timeout=10)
        # The default is "mi-" + the consumer name, cut to the 15 bytes Linux keeps.
        assert wait_until(lambda: tid_of("mi-a-rather-lon") is not None, timeout=10)
    finally:
        named.stop(timeout=10)
        default.stop(timeout=10)
    assert tid_of("mi-probe-name") is None
    named.close()
    default.close()


def test_core_pinning() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    p = mi.BatchEventProcessor(
        ring, mi.ChecksumHandler(), name="pinned", thread_name="mi-pinned", core=0
    )
    p.start()
    try:
        # Once an event is handled, the thread has applied its options.
        ring.publish_batch(records(0, 0, 4))
        assert wait_until(lambda: p.sequence == 3, timeout=10)
        tid = tid_of("mi-pinned")
        status = Path(f"/proc/self/task/{tid}/status").read_text()
        allowed = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list"))
        assert allowed.split()[-1] == "0"
    finally:
        p.stop(timeout=10)
    assert p.thread_warnings == []
    p.close()


def test_pinning_to_a_core_that_does_not_exist_is_a_warning() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="nowhere", core=100_000)
    p.start()
    ring.publish_batch(records(0, 0, 4))
    p.stop(timeout=10)
    assert counter.events == 4
    assert len(p.thread_warnings) == 1 and "core: 100000" in p.thread_warnings[0]
    p.close()


def test_realtime_priority_is_applied_or_reported() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    p = mi.BatchEventProcessor(
        ring, mi.ChecksumHandler(), name="rt", thread_name="mi-rt-probe", realtime_priority=1
    )
    p.start()
    try:
        # Once an event is handled, the thread has applied its options.
        ring.publish_batch(records(0, 0, 1))
        assert wait_until(lambda: p.sequence == 0, timeout=10)
        tid = tid_of("mi-rt-probe")
        stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        fields = stat[stat.rfind(")") + 2 :].split()
        # Fields 40 (rt_priority) and 41 (policy) of proc(5); `fields` starts at field 3.
        rt_priority, policy = int(fields[40 - 3]), int(fields[41 - 3])
    finally:
        p.stop(timeout=10)
    warnings = p.thread_warnings
    if warnings:
        assert len(warnings) == 1 and "realtime_priority" in warnings[0]
        assert policy == os.SCHED_OTHER
    else:
        assert (policy, rt_priority) == (os.SCHED_FIFO, 1)
    p.close()


# ---- Disruptor ------------------------------------------------------------------------------


def test_disruptor_diamond() -> None:
    d = mi.Disruptor(DTYPE, capacity=64, wait="yielding")
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    problems: list[str] = []

    def make(name: str) -> Any:
        def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
            hi = sequence + len(batch) - 1
            if name == "c":
                for up in ("a", "b"):
                    proc = next(p for p in d.processors if p.name == up)
                    if proc.sequence < hi or (seen[up][-1] if seen[up] else -1) < hi:
                        problems.append(f"c saw {hi} before {up}")
            seen[name].extend(range(sequence, hi + 1))

        handler.__name__ = name
        return handler

    group = d.handle_events_with(make("a"), make("b"), names=["a", "b"])
    tail = group.then(make("c"), names=["c"])
    assert [p.name for p in tail.processors] == ["c"]
    assert [p.name for p in d.processors] == ["a", "b", "c"]
    deps = {s.name: s.depends_on for s in d.ring.consumer_statistics()}
    ids = {p.name: p.consumer_id for p in d.processors}
    assert deps == {"a": (), "b": (), "c": tuple(sorted((ids["a"], ids["b"])))}
    ring = d.start()
    assert ring is d.ring
    with pytest.raises(RuntimeError, match="before start"):
        d.handle_events_with(make("late"))
    for i in range(0, 500, 25):
        ring.publish_batch(records(0, i, 25), timeout=30)
    d.stop(timeout=30)
    assert problems == []
    assert seen["a"] == seen["b"] == seen["c"] == list(range(500))
    assert ring.closed
    assert ring.consumer_statistics() == ()


def test_disruptor_default_names_and_options_per_call() -> None:
    d = mi.Disruptor(DTYPE, capacity=16)
    checksum_handler = mi.ChecksumHandler("seq")
    group = d.handle_events_with(checksum_handler, Counter(), max_batch=2)
    names = [p.name for p in group.processors]
    assert names == ["0-checksum", "1-Counter"]
    after = d.after("0-checksum", group.processors[1]).then(mi.LatencyHandler("chk"))
    assert after.processors[0].name == "2-latency"
    with d:
        d.ring.publish_batch(records(0, 0, 10))
    assert checksum_handler.count == 10
    assert d.ring.closed


def test_disruptor_stop_raises_the_first_handler_error() -> None:
    d = mi.Disruptor(DTYPE, capacity=16)
    d.handle_events_with(failing_on({2}), names=["fails"])
    d.start()
    d.ring.publish_batch(records(0, 0, 5))
    with pytest.raises(mi.HandlerError) as e:
        d.stop(timeout=10)
    assert e.value.consumer == "fails"
    d.ring.close()


def test_disruptor_halt_and_context_manager_on_error() -> None:
    d = mi.Disruptor(DTYPE, capacity=16)
    counter = Counter()
    d.handle_events_with(counter)
    with pytest.raises(ZeroDivisionError), d:
        d.ring.publish_batch(records(0, 0, 3))
        _ = 1 / 0
    assert d.ring.closed
    assert all(p.exit == "halted" for p in d.processors)


@pytest.mark.parametrize("wait", WAITS, ids=repr)
def test_disruptor_stop_drains_a_pipeline(wait: Any) -> None:
    d = mi.Disruptor(DTYPE, capacity=256, wait=wait)
    first, second, third = Counter(), mi.ChecksumHandler("chk"), Counter()
    d.handle_events_with(first).then(second).then(third)
    ring = d.start()
    expected = 0
    for i in range(0, 6000, 200):
        chunk = records(1, i, 200)
        expected += int(chunk["chk"].sum())
        ring.publish_batch(chunk, timeout=30)
    d.stop(timeout=30)
    assert first.events == second.count == third.events == 6000
    assert second.checksum == expected % 2**64
    assert first.problems == third.problems == []
    assert all(p.exit == "drained" for p in d.processors)


@pytest.mark.parametrize("wait", WAITS, ids=repr)
def test_halt_of_an_idle_processor_returns(wait: Any) -> None:
    ring = mi.RingBuffer(8, DTYPE)
    p = mi.BatchEventProcessor(ring, Counter(), name="idle", wait=wait)
    p.start()
    ring.publish_batch(records(0, 0, 2))
    assert wait_until(lambda: p.sequence == 1)
    p.halt(timeout=10)
    assert p.exit == "halted" and not p.running
    p.close()


def test_stop_with_a_timeout_while_an_upstream_consumer_holds_events_back() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    upstream = mi.EventPoller(ring, "up")
    p = mi.BatchEventProcessor(ring, Counter(), name="down", after=[upstream])
    p.start()
    ring.publish_batch(records(0, 0, 3))
    with pytest.raises(mi.WaitTimeoutError, match="'down'"):
        p.stop(timeout=0.1)
    assert p.running and p.exit is None
    # Once the upstream consumer lets the events through, the drain completes.
    upstream.next_batch()
    upstream.commit()
    p.join(timeout=10)
    assert p.exit == "drained" and p.sequence == 2
    p.close()


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_stop_while_a_producer_keeps_publishing_loses_nothing_published_before_it(
    producer: str,
) -> None:
    ring = mi.RingBuffer(64, DTYPE, producer=producer)
    counter = Counter()
    p = mi.BatchEventProcessor(ring, counter, name="c", wait="yielding")
    p.start()
    done = threading.Event()
    published = [0]

    def publish_until_done() -> None:
        seq = 0
        while not done.is_set():
            try:
                ring.try_publish((0, seq, checksum(0, seq)))
            except mi.InsufficientCapacity:
                time.sleep(0.0001)
                continue
            seq += 1
        published[0] = seq

    t = threading.Thread(target=publish_until_done)
    t.start()
    assert wait_until(lambda: ring.cursor >= 2000)
    before = ring.cursor
    p.stop(timeout=30)
    p.close()  # stop gating the producer, which is still running
    done.set()
    t.join(timeout=30)
    assert counter.problems == []
    assert counter.events >= before + 1
    assert published[0] >= counter.events
