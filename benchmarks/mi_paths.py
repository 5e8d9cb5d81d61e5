"""market-intel's Python paths, measured beside the Python peers of the same topology.

Every path moves records 0..n-1 and verifies count and seq checksum (benchmarks.records.check),
so a run that loses, duplicates or overwrites a record fails instead of reporting a number.

- python_process_records: a producer process publishes one record per ``publish()`` call into a
  named ring; a consumer process reads batches as numpy views (EventPoller) and sums ``seq``.
- python_process_batches: the producer publishes numpy batches of 1024 x 64-byte records with
  ``publish_batch``; the consumer reads views as above.
- ping_pong_latency: two processes, two single-producer rings, busy-spin pollers; one-way time
  is half the round trip, timed with perf_counter_ns in the pinging process.
- one_to_one: a Python thread publishes one record per call; a native ChecksumHandler
  processor (no GIL) or a Python handler processor consumes on its own thread.
"""

from __future__ import annotations

import time
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any

import numpy as np

from benchmarks.harness import Bench, percentiles_ns
from benchmarks.procs import run_pair, run_processes
from benchmarks.records import BATCH, REC_DTYPE, batch_template, check

RECORD_DTYPE = np.dtype([("seq", "<i8"), ("ts_ns", "<i8"), ("price", "<f8"), ("qty", "<f8")])
RING = 1 << 16


def _name(tag: str) -> str:
    return f"mi-bench-{tag}-{uuid.uuid4().hex[:12]}"


def _consume(barrier: Barrier, n: int, name: str, wait: str) -> tuple[int, int, int]:
    import market_intel as mi

    ring = mi.RingBuffer.attach(name)
    poller = mi.EventPoller(ring, "consumer", wait=wait)
    barrier.wait()
    count = 0
    total = 0
    next_batch = poller.next_batch
    while count < n:
        b = next_batch(None)
        count += len(b)
        total += int(b["seq"].sum())
    poller.commit()
    t_end = time.perf_counter_ns()
    poller.close()
    return t_end, count, total


def _produce_records(barrier: Barrier, n: int, name: str) -> int:
    import market_intel as mi

    ring = mi.RingBuffer.attach(name)
    publish = ring.publish
    barrier.wait()
    t0 = time.perf_counter_ns()
    for i in range(n):
        publish((i, t0, 100.0, 1.0))
    return t0


def _produce_batches(barrier: Barrier, n: int, name: str) -> int:
    import market_intel as mi

    ring = mi.RingBuffer.attach(name)
    src, idx = batch_template()
    publish_batch = ring.publish_batch
    barrier.wait()
    t0 = time.perf_counter_ns()
    for start in range(0, n, BATCH):
        k = min(BATCH, n - start)
        batch = src[:k]
        batch["seq"] = idx[:k] + start
        publish_batch(batch)
    return t0


def process_records(n: int, wait: str = "yielding") -> float:
    """Producer process -> consumer process, one ``publish(tuple)`` per record."""
    import market_intel as mi

    name = _name("rec")
    with mi.RingBuffer(RING, RECORD_DTYPE, name=name):
        return run_pair(
            n,
            ("producer", _produce_records, (n, name)),
            ("consumer", _consume, (n, name, wait)),
            "market-intel records",
        )


def process_batches(n: int) -> float:
    """Producer process -> consumer process, numpy batches of 1024 x 64 B; records/s."""
    import market_intel as mi

    name = _name("batch")
    with mi.RingBuffer(RING, REC_DTYPE, name=name):
        return run_pair(
            n,
            ("producer", _produce_batches, (n, name)),
            ("consumer", _consume, (n, name, "yielding")),
            "market-intel batches",
        )


def _pinger(barrier: Barrier, n: int, ab: str, ba: str) -> np.ndarray:
    import market_intel as mi

    out = mi.RingBuffer.attach(ab)
    poller = mi.EventPoller(mi.RingBuffer.attach(ba), "pinger", wait="busy_spin")
    barrier.wait()
    warm = min(10_000, n)
    samples = np.empty(n, dtype=np.int64)
    publish = out.publish
    next_batch = poller.next_batch
    clock = time.perf_counter_ns
    for i in range(-warm, n):
        t0 = clock()
        publish(i)
        next_batch(None)
        t1 = clock()
        if i >= 0:
            samples[i] = t1 - t0
    poller.commit()
    return samples // 2


def _ponger(barrier: Barrier, n: int, ab: str, ba: str) -> int:
    import market_intel as mi

    out = mi.RingBuffer.attach(ba)
    poller = mi.EventPoller(mi.RingBuffer.attach(ab), "ponger", wait="busy_spin")
    barrier.wait()
    publish = out.publish
    next_batch = poller.next_batch
    seen = 0
    while True:
        b = next_batch(None)
        for v in b.tolist():
            publish(v)
            seen += 1
            if v == n - 1:
                poller.commit()
                return seen


def pingpong(n: int) -> dict[str, float]:
    """Python <-> Python between two processes over two rings, busy-spin; one-way ns."""
    import market_intel as mi

    ab, ba = _name("ab"), _name("ba")
    with mi.RingBuffer(1024, np.int64, name=ab), mi.RingBuffer(1024, np.int64, name=ba):
        samples, seen = run_processes(
            [("pinger", _pinger, (n, ab, ba)), ("ponger", _ponger, (n, ab, ba))]
        )
    warm = min(10_000, n)
    if seen != n + warm:
        raise RuntimeError(f"ping-pong: ponger answered {seen} of {n + warm} pings")
    return percentiles_ns(samples)


class _SumHandler:
    def __init__(self) -> None:
        self.count = 0
        self.checksum = 0

    def on_event(self, batch: np.ndarray, sequence: int, end_of_batch: bool) -> None:
        self.count += len(batch)
        self.checksum += int(batch["seq"].sum())


def _threads(n: int, handler: Any, wait: str, what: str) -> float:
    """A Python thread publishes one record per call; `handler` consumes on a native thread."""
    import market_intel as mi

    ring = mi.RingBuffer(RING, RECORD_DTYPE)
    processor = mi.BatchEventProcessor(ring, handler, wait=wait)
    processor.start()
    publish = ring.publish
    t0 = time.perf_counter_ns()
    for i in range(n):
        publish((i, t0, 100.0, 1.0))
    processor.stop()
    t1 = time.perf_counter_ns()
    processor.close()
    check(what, n, handler.count, handler.checksum)
    return n * 1e9 / (t1 - t0)


def threads_native(n: int) -> float:
    """Python thread publishes one record per call; native checksum processor consumes."""
    import market_intel as mi

    return _threads(n, mi.ChecksumHandler("seq"), "yielding", "market-intel threads native")


def threads_python_handler(n: int) -> float:
    """Python thread publishes one record per call; a Python handler gets numpy batches."""
    return _threads(n, _SumHandler(), "blocking", "market-intel threads python handler")


NOTE_REC = "processes, publish(tuple of 4) -> numpy views, yielding"


def benches() -> list[Bench]:
    """market-intel's Python paths."""
    out: list[Any] = [
        Bench(
            "python_process_records",
            "market-intel publish",
            "throughput",
            process_records,
            300_000,
            3_000_000,
            NOTE_REC,
        ),
        Bench(
            "python_process_batches",
            "market-intel publish_batch",
            "throughput",
            process_batches,
            4 * 1024 * 1024,
            32 * 1024 * 1024,
            "processes, 1024 x 64 B numpy batches -> numpy views; records/s",
        ),
        Bench(
            "ping_pong_latency",
            "market-intel Python<->Python",
            "latency",
            pingpong,
            20_000,
            200_000,
            "processes, two rings, busy-spin pollers",
        ),
        Bench(
            "one_to_one",
            "market-intel publish -> native",
            "throughput",
            threads_native,
            300_000,
            3_000_000,
            "Python thread publish(tuple) -> native checksum thread",
        ),
        Bench(
            "one_to_one",
            "market-intel publish -> Python handler",
            "throughput",
            threads_python_handler,
            300_000,
            3_000_000,
            "Python thread publish(tuple) -> Python handler per batch",
        ),
    ]
    return out
