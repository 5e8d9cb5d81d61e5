"""The ceiling: a hand-rolled, unsynchronized numpy ring in shared memory between two processes.

Layout of the shared block: two int64 counters on separate cache lines (head = records
published, written only by the producer; tail = records consumed, written only by the consumer),
then a ring of `cap` 64-byte records (`REC_DTYPE`).

The producer stamps seq into a 1024-record batch, copies it into the ring slice (wrap-around
handled) and then bumps head with a plain store; it spins while the ring is full. The consumer
spins on head, sums the seq column of every new record and bumps tail.

"Unsynchronized": no atomics, locks or fences, only plain numpy stores. On x86-64 the hardware
keeps stores in program order and CPython cannot reorder across these C calls, so it works here
(the seq checksum proves it on every run), but it is not a portable synchronisation scheme. It is
the upper bound for a ring driven from Python with numpy.
"""

from __future__ import annotations

import time
from multiprocessing.shared_memory import SharedMemory
from multiprocessing.synchronize import Barrier

import numpy as np

from benchmarks.procs import run_pair
from benchmarks.records import BATCH, REC_DTYPE, batch_template, raw

RING_RECORDS = 1 << 16  # 4 MiB of records
_HEAD_OFF, _TAIL_OFF, _RING_OFF = 0, 64, 128


def _views(shm: SharedMemory, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    buf = shm.buf
    head = np.ndarray((1,), dtype=np.int64, buffer=buf, offset=_HEAD_OFF)
    tail = np.ndarray((1,), dtype=np.int64, buffer=buf, offset=_TAIL_OFF)
    ring = np.ndarray((cap,), dtype=REC_DTYPE, buffer=buf, offset=_RING_OFF)
    return head, tail, ring


def ring_write(ring_raw: np.ndarray, start: int, src_raw: np.ndarray) -> None:
    """np.copyto raw records into the raw ring view from slot `start`, wrapping at the end."""
    first = min(len(src_raw), len(ring_raw) - start)
    np.copyto(ring_raw[start : start + first], src_raw[:first])
    if first < len(src_raw):
        np.copyto(ring_raw[: len(src_raw) - first], src_raw[first:])


def ring_sum(col: np.ndarray, start: int, count: int) -> int:
    """Sum of `count` ring entries of one column from slot `start`, wrapping at the end."""
    first = min(count, len(col) - start)
    total = int(col[start : start + first].sum())
    if first < count:
        total += int(col[: count - first].sum())
    return total


def _producer(barrier: Barrier, n: int, shm: SharedMemory, cap: int) -> int:
    head, tail, ring = _views(shm, cap)
    ring_raw = raw(ring)
    src, idx = batch_template()
    src_raw, seq = raw(src), src["seq"]
    barrier.wait()
    t_start = time.perf_counter_ns()
    pos = 0
    while pos < n:
        k = min(BATCH, n - pos)
        while pos + k - tail[0] > cap:  # ring full: spin until the consumer frees room
            pass
        np.add(idx, pos, out=seq)  # stamp seq (a short last batch uses the first k)
        ring_write(ring_raw, pos % cap, src_raw[:k])
        head[0] = pos + k  # publish: plain store after the data stores
        pos += k
    return t_start


def _consumer(barrier: Barrier, n: int, shm: SharedMemory, cap: int) -> tuple[int, int, int]:
    head, tail, ring = _views(shm, cap)
    col = ring["seq"]
    barrier.wait()
    pos = checksum = 0
    while pos < n:
        h = int(head[0])
        if h == pos:
            continue  # spin
        checksum += ring_sum(col, pos % cap, h - pos)
        tail[0] = h  # release the slots
        pos = h
    return time.perf_counter_ns(), pos, checksum


def shm_ring(n: int, cap: int = RING_RECORDS) -> float:
    """Records/s through the unsynchronized shared-memory ring (batches of 1024)."""
    shm = SharedMemory(create=True, size=_RING_OFF + cap * REC_DTYPE.itemsize)
    try:
        return run_pair(
            n,
            ("producer", _producer, (n, shm, cap)),
            ("consumer", _consumer, (n, shm, cap)),
            "shm ring",
        )
    finally:
        shm.close()
        shm.unlink()
