"""Helpers shared by the test suite: the record layout used to check integrity, producers that
publish in every supported way, and the entry points of child processes.

Child-process functions live here (and not in test modules) so that processes started with the
'spawn' method can import them by name.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import market_intel as mi
import numpy as np

# Every record carries who wrote it, that producer's own running number, and a checksum of the
# two: a torn, stale or overwritten slot shows up as a checksum or ordering error.
DTYPE = np.dtype([("producer", "<i8"), ("seq", "<i8"), ("chk", "<i8")])

PUBLISH_METHODS = ("publish", "dict", "fields", "try", "batch", "claim")

SHM = Path("/dev/shm")


def examples(n: int) -> int:
    """Hypothesis examples for a property test: ``n`` times MI_TEST_EXAMPLES_SCALE (default 1),
    so a longer soak run needs no code change."""
    return max(1, int(n * float(os.environ.get("MI_TEST_EXAMPLES_SCALE", "1"))))


def checksum(producer: Any, seq: Any) -> Any:
    """Checksum of a record; works on Python ints and on int64 arrays alike."""
    return (producer * 1_000_003 + seq * 7_919 + 12_345) ^ 0x5DEECE66D


def records(producer: int, start: int, n: int) -> np.ndarray:
    """``n`` valid records of ``producer`` with running numbers ``start..start+n-1``."""
    out = np.zeros(n, dtype=DTYPE)
    out["producer"] = producer
    out["seq"] = np.arange(start, start + n, dtype=np.int64)
    out["chk"] = checksum(out["producer"], out["seq"])
    return out


def unique_name(tag: str = "t") -> str:
    """A segment name that no other test (or run) uses."""
    return f"mi-test-{tag}-{uuid.uuid4().hex[:12]}"


def segment_exists(name: str) -> bool:
    return (SHM / name).exists()


def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.005
) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return predicate()
        time.sleep(interval)


def produce(
    ring: mi.RingBuffer, producer: int, n: int, method: str, batch: int, timeout: float = 30.0
) -> None:
    """Publish ``n`` records of ``producer`` in order, using ``method`` (one of PUBLISH_METHODS).

    ``batch`` is the chunk size of 'batch' and 'claim' (at most the ring's capacity).
    """
    batch = max(1, min(batch, ring.capacity))
    deadline = time.monotonic() + timeout
    seq = 0
    while seq < n:
        if method == "publish":
            ring.publish((producer, seq, checksum(producer, seq)))
            seq += 1
        elif method == "dict":
            ring.publish({"chk": checksum(producer, seq), "producer": producer, "seq": seq})
            seq += 1
        elif method == "fields":
            ring.publish_fields(producer=producer, seq=seq, chk=checksum(producer, seq))
            seq += 1
        elif method == "try":
            try:
                ring.try_publish((producer, seq, checksum(producer, seq)))
            except mi.InsufficientCapacity:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.0002)
                continue
            seq += 1
        elif method == "batch":
            k = min(batch, n - seq)
            ring.publish_batch(records(producer, seq, k), timeout=timeout)
            seq += k
        elif method == "claim":
            k = min(batch, n - seq)
            with ring.claim(k, timeout=timeout) as view:
                view[:] = records(producer, seq, k)
            seq += k
        else:
            raise ValueError(f"unknown publish method {method!r}")


# ---- child-process entry points (spawn) ----------------------------------------------------


def child_produce(name: str, producer: int, n: int, method: str, batch: int) -> int:
    """Attach to the ring ``name`` and publish ``n`` records of ``producer``; returns ``n``."""
    ring = mi.RingBuffer.attach(name)
    try:
        produce(ring, producer, n, method, batch)
    finally:
        del ring
    return n


def verify(chunks: list[np.ndarray], producers: dict[int, int]) -> list[str]:
    """Problems found in what one consumer saw (empty when every record arrived exactly once,
    in each producer's order, with a valid checksum)."""
    problems: list[str] = []
    seen = np.concatenate(chunks) if chunks else np.zeros(0, dtype=DTYPE)
    expected_total = sum(producers.values())
    if len(seen) != expected_total:
        problems.append(f"saw {len(seen)} records, expected {expected_total}")
    bad = seen["chk"] != checksum(seen["producer"], seen["seq"])
    if bad.any():
        problems.append(f"{int(bad.sum())} records with a bad checksum, first {seen[bad][0]}")
    for p, n in producers.items():
        mine = seen["seq"][seen["producer"] == p]
        if not np.array_equal(mine, np.arange(n)):
            problems.append(f"producer {p}: saw {len(mine)} records, not 0..{n - 1} in order")
    unknown = set(np.unique(seen["producer"]).tolist()) - set(producers)
    if unknown:
        problems.append(f"records of unknown producers {sorted(unknown)}")
    return problems


def child_poll_consumer(
    name: str,
    consumer: str,
    producers: dict[int, int],
    ready: Any,
    out: Any,
    use_poll: bool,
    delay: float = 0.0,
) -> None:
    """Attach, register an EventPoller, signal ``ready``, read every expected record (sleeping
    ``delay`` seconds per batch), and put ``(consumer, problems, records seen, last committed
    sequence)`` on ``out``."""
    ring = mi.RingBuffer.attach(name)
    poller = mi.EventPoller(ring, consumer)
    ready.set()
    total = sum(producers.values())
    chunks: list[np.ndarray] = []
    sequences: list[int] = []
    problems: list[str] = []

    def handle(batch: np.ndarray, sequence: int, _end: bool) -> None:
        if sequence != len(sequences):
            problems.append(f"batch at {sequence}, expected {len(sequences)}")
        sequences.extend(range(sequence, sequence + len(batch)))
        chunks.append(batch.copy())
        if delay:
            time.sleep(delay)

    deadline = time.monotonic() + 60
    while len(sequences) < total and time.monotonic() < deadline:
        if use_poll:
            if poller.poll(handle) != "processing":
                poller.wait(timeout=0.05)
        else:
            b = poller.next_batch(timeout=0.05)
            if b is not None:
                handle(b, poller.sequence + 1, True)
    poller.commit()
    problems += verify(chunks, producers)
    out.put((consumer, problems, len(sequences), poller.sequence))
    poller.close()


def child_processor_consumer(
    name: str, consumer: str, producers: dict[int, int], ready: Any, out: Any
) -> None:
    """Attach and run a BatchEventProcessor until every expected record is handled."""
    ring = mi.RingBuffer.attach(name)
    chunks: list[np.ndarray] = []
    problems: list[str] = []
    next_seq = [0]

    def handle(batch: np.ndarray, sequence: int, _end: bool) -> None:
        if sequence != next_seq[0]:
            problems.append(f"batch at {sequence}, expected {next_seq[0]}")
        next_seq[0] = sequence + len(batch)
        chunks.append(batch.copy())

    total = sum(producers.values())
    processor = mi.BatchEventProcessor(ring, handle, name=consumer, wait="blocking")
    processor.start()
    ready.set()
    wait_until(lambda: processor.sequence >= total - 1, timeout=60)
    processor.drain(total - 1)
    processor.join(timeout=30)
    problems += verify(chunks, producers)
    out.put((consumer, problems, next_seq[0], processor.sequence))
    processor.close()


def child_idle_consumer(name: str, consumer: str, ready: Any) -> None:
    """Attach, register a poller that never reads, signal ``ready`` and sleep (to be killed)."""
    ring = mi.RingBuffer.attach(name)
    poller = mi.EventPoller(ring, consumer)
    ready.set()
    time.sleep(120)
    del poller, ring


def child_create_and_hang(name: str, ready: Any) -> None:
    """Create the named ring ``name``, signal ``ready`` and sleep (to be killed)."""
    ring = mi.RingBuffer(8, DTYPE, name=name)
    ready.set()
    time.sleep(120)
    del ring


def child_attach_and_hang(name: str, ready: Any) -> None:
    """Attach to ``name``, signal ``ready`` and sleep (to be killed)."""
    ring = mi.RingBuffer.attach(name)
    ready.set()
    time.sleep(120)
    del ring


def child_publish_and_hang(name: str, ready: Any) -> None:
    """Attach to ``name``, publish one record (becoming its producer), signal and sleep."""
    ring = mi.RingBuffer.attach(name)
    ring.publish((9, 0, checksum(9, 0)))
    ready.set()
    time.sleep(120)
    del ring


def child_try_publish(name: str, out: Any) -> None:
    """Attach and publish one record; put ``(exception class name or None, message, pid)``."""
    ring = mi.RingBuffer.attach(name)
    try:
        ring.publish((7, 0, checksum(7, 0)))
    except Exception as e:
        out.put((type(e).__name__, str(e), os.getpid()))
    else:
        out.put((None, "", os.getpid()))
    finally:
        del ring


def child_dependent_consumer(
    name: str, consumer: str, upstream: str, producers: dict[int, int], ready: Any, out: Any
) -> None:
    """Like child_poll_consumer, after the consumer ``upstream`` of another process; checks for
    every batch that ``upstream`` had already released it."""
    ring = mi.RingBuffer.attach(name)
    poller = mi.EventPoller(ring, consumer, after=[upstream])
    ready.set()
    total = sum(producers.values())
    chunks: list[np.ndarray] = []
    problems: list[str] = []
    seen = 0
    deadline = time.monotonic() + 60
    while seen < total and time.monotonic() < deadline:
        batch = poller.next_batch(timeout=0.05)
        if batch is None:
            continue
        hi = poller.sequence + len(batch)
        up = next(c for c in ring.consumer_statistics() if c.name == upstream)
        if up.sequence < hi:
            problems.append(f"saw {hi} before {upstream} released it ({up.sequence})")
        chunks.append(batch.copy())
        seen += len(batch)
    poller.commit()
    problems += verify(chunks, producers)
    out.put((consumer, problems, seen, poller.sequence))
    poller.close()
