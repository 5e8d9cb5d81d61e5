"""Producers and consumers in separate processes over one named ring."""

from __future__ import annotations

import multiprocessing.context
import os
import queue
import time
from typing import Any

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import (
    DTYPE,
    checksum,
    child_dependent_consumer,
    child_poll_consumer,
    child_processor_consumer,
    child_produce,
    records,
    segment_exists,
    verify,
    wait_until,
)

pytestmark = pytest.mark.slow


def start(
    spawn: multiprocessing.context.SpawnContext,
    children: list[Any],
    target: Any,
    *args: Any,
) -> Any:
    p = spawn.Process(target=target, args=args, daemon=True)
    p.start()
    children.append(p)
    return p


def results(out: Any, n: int, children: list[Any]) -> dict[str, tuple[list[str], int, int]]:
    """The reports of ``n`` consumer processes; fails early if a child process failed."""
    got = {}
    deadline = time.monotonic() + 90
    while len(got) < n:
        try:
            consumer, problems, seen, sequence = out.get(timeout=0.5)
        except queue.Empty:
            failed = [(p.name, p.exitcode) for p in children if p.exitcode not in (None, 0)]
            assert failed == [], f"child processes failed: {failed}"
            assert time.monotonic() < deadline, f"only {sorted(got)} reported"
            continue
        got[consumer] = (problems, seen, sequence)
    return got


def join_all(children: list[Any]) -> None:
    for p in children:
        p.join(timeout=60)
        assert p.exitcode == 0, (p.name, p.exitcode)


def test_single_producer_process_to_consumer_process(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    total = 6000
    with mi.RingBuffer(256, DTYPE, name=shm_name) as ring:
        ready, out = spawn.Event(), spawn.Queue()
        start(
            spawn, children, child_poll_consumer, shm_name, "reader", {0: total}, ready, out, False
        )
        assert ready.wait(60)
        start(spawn, children, child_produce, shm_name, 0, total, "batch", 100)
        got = results(out, 1, children)
        join_all(children)
        assert got["reader"] == ([], total, total - 1)
        stats = ring.statistics()
        assert (stats.cursor, stats.published) == (total - 1, total)
    assert not segment_exists(shm_name)


def test_three_producer_processes_to_one_consumer_process(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    counts = {0: 3000, 1: 2500, 2: 2000}
    methods = {0: "publish", 1: "batch", 2: "claim"}
    with mi.RingBuffer(128, DTYPE, name=shm_name, producer="multi") as ring:
        ready, out = spawn.Event(), spawn.Queue()
        start(spawn, children, child_poll_consumer, shm_name, "reader", counts, ready, out, True)
        assert ready.wait(60)
        for pid, n in counts.items():
            start(spawn, children, child_produce, shm_name, pid, n, methods[pid], 37)
        got = results(out, 1, children)
        join_all(children)
        total = sum(counts.values())
        assert got["reader"] == ([], total, total - 1)
        assert ring.statistics().published == total


def test_consumer_processes_with_a_processor_a_poller_and_a_dependency(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    counts = {0: 2000, 1: 2000}
    with mi.RingBuffer(64, DTYPE, name=shm_name, producer="multi") as ring:
        out = spawn.Queue()
        readies = [spawn.Event() for _ in range(3)]
        start(spawn, children, child_processor_consumer, shm_name, "proc", counts, readies[0], out)
        start(
            spawn, children, child_poll_consumer, shm_name, "slow", counts, readies[1], out,
            False, 0.0005,
        )  # fmt: skip
        assert readies[0].wait(60) and readies[1].wait(60)
        start(
            spawn, children, child_dependent_consumer, shm_name, "after-slow", "slow", counts,
            readies[2], out,
        )  # fmt: skip
        assert readies[2].wait(60)
        by_name = {c.name: c for c in ring.consumer_statistics()}
        assert set(by_name) == {"proc", "slow", "after-slow"}
        assert by_name["after-slow"].depends_on == (by_name["slow"].consumer_id,)
        assert len({c.pid for c in by_name.values()} | {os.getpid()}) == 4
        for pid, n in counts.items():
            start(spawn, children, child_produce, shm_name, pid, n, "fields", 1)
        got = results(out, 3, children)
        join_all(children)
        total = sum(counts.values())
        for name in ("proc", "slow", "after-slow"):
            assert got[name] == ([], total, total - 1), name


def test_consumer_in_this_process_and_producers_in_children(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    counts = {3: 3000, 4: 3000}
    chunks: list[np.ndarray] = []
    with mi.RingBuffer(512, DTYPE, name=shm_name, producer="multi") as ring:
        checksum_handler = mi.ChecksumHandler("chk")
        native = mi.BatchEventProcessor(ring, checksum_handler, name="native")
        python = mi.BatchEventProcessor(
            ring, lambda b, s, e: chunks.append(b.copy()), name="python", wait="sleeping"
        )
        native.start()
        python.start()
        for pid, n in counts.items():
            start(spawn, children, child_produce, shm_name, pid, n, "try", 1)
        join_all(children)
        native.stop(timeout=30)
        python.stop(timeout=30)
        native.close()
        python.close()
    total = sum(counts.values())
    assert verify(chunks, counts) == []
    expected = sum(int(records(p, 0, n)["chk"].sum()) for p, n in counts.items())
    assert (checksum_handler.count, checksum_handler.checksum) == (total, expected % 2**64)


def test_attached_process_sees_the_same_memory(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    """A ring attached in another process shares slots, cursor and consumers."""
    with mi.RingBuffer(16, DTYPE, name=shm_name) as ring:
        poller = mi.EventPoller(ring, "here")
        start(spawn, children, child_produce, shm_name, 5, 10, "dict", 1)
        join_all(children)
        assert wait_until(lambda: ring.cursor == 9)
        batch = poller.next_batch()
        assert batch is not None
        np.testing.assert_array_equal(batch, records(5, 0, 10))
        assert batch["chk"][3] == checksum(5, 3)
        poller.close()
