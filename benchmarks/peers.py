"""Python baselines ("peers"): what a Python developer would use today to move market data.

Every benchmark takes one size argument (events, records or round trips), verifies what it
received (count plus seq checksum, or the echoed payload for ping-pong) and raises
`BenchFailure` on any mismatch, so a benchmark that loses messages fails loudly.

Threads: producer thread -> consumer (main) thread, a `None` sentinel ends the stream.
Processes: start method 'fork'; producer and consumer are supervised children (see `procs`),
a sentinel (None / empty message) ends the stream. Payloads are described in `records`.
The unsynchronized shared-memory ceiling lives in `shm_ring`.
"""

from __future__ import annotations

import array
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier, Event
from typing import Any

import numpy as np

from benchmarks.harness import Bench, percentiles_ns
from benchmarks.procs import CTX, RUN_TIMEOUT_S, Job, run_pair, run_processes, throughput
from benchmarks.records import (
    BATCH,
    REC_DTYPE,
    RECORD,
    BenchFailure,
    batch_starts,
    batch_template,
    check,
    copy_records,
    make_record,
)
from benchmarks.shm_ring import RING_RECORDS, shm_ring

# ------------------------------------------------------------------------- threads (in-process)


def _threads_one_to_one(n: int, q: queue.SimpleQueue[Any] | queue.Queue[Any], what: str) -> float:
    errors: list[BaseException] = []
    base = time.time_ns()

    def produce() -> None:
        put = q.put
        try:
            for i in range(n):
                put(make_record(i, base))
        except BaseException as e:
            errors.append(e)
        finally:
            put(None)  # always terminate the consumer

    th = threading.Thread(target=produce, name="producer", daemon=True)
    t_start = time.perf_counter_ns()
    th.start()
    get = q.get
    count = checksum = 0
    while (rec := get()) is not None:
        count += 1
        checksum += rec[0]
    t_end = time.perf_counter_ns()
    th.join(RUN_TIMEOUT_S)
    if errors:
        raise BenchFailure(f"{what}: producer failed: {errors[0]!r}")
    check(what, n, count, checksum)
    return throughput(n, t_start, t_end)


def threads_simplequeue(n: int) -> float:
    """queue.SimpleQueue, producer thread -> consumer (main) thread, one tuple per put."""
    return _threads_one_to_one(n, queue.SimpleQueue(), "queue.SimpleQueue")


def threads_queue(n: int) -> float:
    """queue.Queue(maxsize=65536), producer thread -> consumer thread, one tuple per put."""
    return _threads_one_to_one(n, queue.Queue(maxsize=65536), "queue.Queue")


def threads_pingpong_simplequeue(n: int) -> dict[str, float]:
    """Round trips between two threads over two SimpleQueues; one-way = RTT/2 (ns)."""
    ping: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    pong: queue.SimpleQueue[int | None] = queue.SimpleQueue()

    def echo() -> None:
        while (m := ping.get()) is not None:
            pong.put(m)

    th = threading.Thread(target=echo, name="ponger", daemon=True)
    th.start()
    rtt = array.array("q", bytes(8 * n))
    bad = 0
    try:
        for i in range(n):
            t0 = time.perf_counter_ns()
            ping.put(i)
            reply = pong.get(timeout=RUN_TIMEOUT_S)
            rtt[i] = time.perf_counter_ns() - t0
            bad += reply != i
    finally:
        ping.put(None)
        th.join(RUN_TIMEOUT_S)
    if bad:
        raise BenchFailure(f"SimpleQueue ping-pong: {bad} of {n} echoes wrong")
    return percentiles_ns(np.frombuffer(rtt, dtype=np.int64) / 2.0)


# ------------------------------------------------------------------------- processes, 1 record/msg


def _mpq_producer(barrier: Barrier, n: int, q: Any) -> int:
    put = q.put
    base = time.time_ns()
    barrier.wait()
    t_start = time.perf_counter_ns()
    for i in range(n):
        put(make_record(i, base))
    put(None)
    return t_start


def _mpq_consumer(barrier: Barrier, n: int, q: Any) -> tuple[int, int, int]:
    get = q.get
    barrier.wait()
    count = checksum = 0
    while (rec := get()) is not None:
        count += 1
        checksum += rec[0]
    return time.perf_counter_ns(), count, checksum


def _ff_consumer_many(barrier: Barrier, n: int, q: Any) -> tuple[int, int, int]:
    get_many = q.get_many
    barrier.wait()
    count = checksum = 0
    while True:
        msgs = get_many(max_messages_to_get=BATCH)
        if msgs[-1] is None:
            for rec in msgs[:-1]:
                checksum += rec[0]
            count += len(msgs) - 1
            return time.perf_counter_ns(), count, checksum
        for rec in msgs:
            checksum += rec[0]
        count += len(msgs)


def process_mp_queue(n: int) -> float:
    """multiprocessing.Queue (unbounded), one pickled 4-tuple per put."""
    q = CTX.Queue()
    try:
        return run_pair(
            n,
            ("producer", _mpq_producer, (n, q)),
            ("consumer", _mpq_consumer, (n, q)),
            "multiprocessing.Queue",
        )
    finally:
        q.close()


def _faster_fifo(n: int, consumer: Callable[..., Any], what: str) -> float:
    import faster_fifo  # type: ignore[import-not-found]  # no type stubs

    q = faster_fifo.Queue(max_size_bytes=4 * 1024 * 1024)
    try:
        return run_pair(
            n, ("producer", _mpq_producer, (n, q)), ("consumer", consumer, (n, q)), what
        )
    finally:
        q.close()


def process_faster_fifo(n: int) -> float:
    """faster_fifo.Queue (4 MiB buffer), one pickled 4-tuple per put, consumer get()."""
    return _faster_fifo(n, _mpq_consumer, "faster_fifo get")


def process_faster_fifo_many(n: int) -> float:
    """faster_fifo.Queue, one pickled 4-tuple per put, consumer drains with get_many()."""
    return _faster_fifo(n, _ff_consumer_many, "faster_fifo get_many")


class _IpcPath:
    """A fresh ipc:// endpoint in a private temp dir, removed on exit."""

    def __enter__(self) -> str:
        self.dir = tempfile.mkdtemp(prefix="mi-bench-")
        return f"ipc://{os.path.join(self.dir, 'sock')}"

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _zmq_socket(kind: int, endpoint: str, bind: bool) -> tuple[Any, Any]:
    import zmq

    ctx = zmq.Context()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 5000)
    sock.setsockopt(zmq.RCVTIMEO, int(RUN_TIMEOUT_S * 1000))  # lost messages -> zmq.Again
    if bind:
        sock.bind(endpoint)
    else:
        sock.connect(endpoint)
    return ctx, sock


def _zmq_close_after(done: Event, ctx: Any, sock: Any) -> None:
    """Close a sending socket only once the consumer has everything.

    Closing a PUSH socket right after the last send can drop the tail of the stream even with
    a linger period (seen here: ~400 of 300k messages lost in 1 of ~15 runs), so the producer
    waits (untimed) for the consumer's done flag first.
    """
    done.wait(RUN_TIMEOUT_S)
    sock.close()
    ctx.term()


def _zmq_record_producer(barrier: Barrier, n: int, endpoint: str, done: Event) -> int:
    import zmq

    ctx, sock = _zmq_socket(zmq.PUSH, endpoint, bind=False)
    send, pack = sock.send, RECORD.pack
    base = time.time_ns()
    barrier.wait()
    t_start = time.perf_counter_ns()
    for i in range(n):
        send(pack(i, base + i, 100.0 + (i & 255) * 0.01, float((i & 7) + 1)))
    send(b"")
    _zmq_close_after(done, ctx, sock)
    return t_start


def _zmq_record_consumer(
    barrier: Barrier, n: int, endpoint: str, done: Event
) -> tuple[int, int, int]:
    import zmq

    ctx, sock = _zmq_socket(zmq.PULL, endpoint, bind=True)
    recv, unpack = sock.recv, RECORD.unpack
    barrier.wait()
    count = checksum = 0
    while msg := recv():
        checksum += unpack(msg)[0]
        count += 1
    t_end = time.perf_counter_ns()
    done.set()
    sock.close()
    ctx.term()
    return t_end, count, checksum


def process_zmq_push_pull(n: int) -> float:
    """pyzmq PUSH -> PULL over ipc://, one struct-packed 32-byte record per message."""
    done = CTX.Event()
    with _IpcPath() as ep:
        return run_pair(
            n,
            ("producer", _zmq_record_producer, (n, ep, done)),
            ("consumer", _zmq_record_consumer, (n, ep, done)),
            "pyzmq PUSH/PULL",
        )


# ------------------------------------------------------------------------- processes, batches


def _zmq_batch_producer(barrier: Barrier, n: int, endpoint: str, done: Event) -> int:
    import zmq

    ctx, sock = _zmq_socket(zmq.PUSH, endpoint, bind=False)
    src, idx = batch_template()
    seq = src["seq"]
    barrier.wait()
    t_start = time.perf_counter_ns()
    for lo in batch_starts(n):
        k = min(BATCH, n - lo)
        np.add(idx, lo, out=seq)
        sock.send(src[:k], copy=True)  # the array's buffer (64 KiB), copied into the message
    sock.send(b"")
    _zmq_close_after(done, ctx, sock)
    return t_start


def _zmq_batch_consumer(
    barrier: Barrier, n: int, endpoint: str, done: Event
) -> tuple[int, int, int]:
    import zmq

    ctx, sock = _zmq_socket(zmq.PULL, endpoint, bind=True)
    recv = sock.recv
    barrier.wait()
    count = checksum = 0
    while True:
        frame = recv(copy=False)
        if len(frame) == 0:
            break
        arr = np.frombuffer(frame.buffer, dtype=REC_DTYPE)
        checksum += int(arr["seq"].sum())
        count += len(arr)
    t_end = time.perf_counter_ns()
    done.set()
    sock.close()
    ctx.term()
    return t_end, count, checksum


def process_zmq_batches(n: int) -> float:
    """pyzmq PUSH -> PULL over ipc://, one numpy batch (1024 x 64 B) per message; records/s."""
    done = CTX.Event()
    with _IpcPath() as ep:
        return run_pair(
            n,
            ("producer", _zmq_batch_producer, (n, ep, done)),
            ("consumer", _zmq_batch_consumer, (n, ep, done)),
            "pyzmq batches",
        )


def _mpq_batch_producer(barrier: Barrier, n: int, q: Any) -> int:
    src, idx = batch_template()
    barrier.wait()
    t_start = time.perf_counter_ns()
    for lo in batch_starts(n):
        k = min(BATCH, n - lo)
        arr = copy_records(src[:k])  # mp.Queue pickles later (feeder thread): own array per put
        np.add(idx[:k], lo, out=arr["seq"])
        q.put(arr)
    q.put(None)
    return t_start


def _mpq_batch_consumer(barrier: Barrier, n: int, q: Any) -> tuple[int, int, int]:
    get = q.get
    barrier.wait()
    count = checksum = 0
    while (arr := get()) is not None:
        checksum += int(arr["seq"].sum())
        count += len(arr)
    return time.perf_counter_ns(), count, checksum


def process_mp_queue_batches(n: int) -> float:
    """multiprocessing.Queue, one pickled numpy batch (1024 x 64 B) per put; records/s."""
    q = CTX.Queue()
    try:
        return run_pair(
            n,
            ("producer", _mpq_batch_producer, (n, q)),
            ("consumer", _mpq_batch_consumer, (n, q)),
            "mp.Queue batches",
        )
    finally:
        q.close()


# ------------------------------------------------------------------------- processes, ping-pong


def _pinger(n: int, send: Callable[[bytes], Any], recv: Callable[[], bytes]) -> dict[str, float]:
    rtt = array.array("q", bytes(8 * n))
    pack = RECORD.pack
    bad = 0
    for i in range(n):
        msg = pack(i, i, 0.0, 0.0)
        t0 = time.perf_counter_ns()
        send(msg)
        reply = recv()
        rtt[i] = time.perf_counter_ns() - t0
        bad += reply != msg
    send(b"")  # stop the ponger
    if bad:
        raise BenchFailure(f"ping-pong: {bad} of {n} echoes differ from what was sent")
    return percentiles_ns(np.frombuffer(rtt, dtype=np.int64) / 2.0)


def _pipe_pinger(barrier: Barrier, n: int, conn: Connection) -> dict[str, float]:
    barrier.wait()
    return _pinger(n, conn.send_bytes, conn.recv_bytes)


def _pipe_ponger(barrier: Barrier, n: int, conn: Connection) -> int:
    barrier.wait()
    count = 0
    while msg := conn.recv_bytes():
        conn.send_bytes(msg)
        count += 1
    return count


def _zmq_pinger(barrier: Barrier, n: int, endpoint: str, done: Event) -> dict[str, float]:
    import zmq

    ctx, sock = _zmq_socket(zmq.PAIR, endpoint, bind=False)
    barrier.wait()
    try:
        pct = _pinger(n, sock.send, sock.recv)
    except BaseException:
        sock.close(linger=0)
        ctx.term()
        raise
    _zmq_close_after(done, ctx, sock)
    return pct


def _zmq_ponger(barrier: Barrier, n: int, endpoint: str, done: Event) -> int:
    import zmq

    ctx, sock = _zmq_socket(zmq.PAIR, endpoint, bind=True)
    barrier.wait()
    count = 0
    while msg := sock.recv():
        sock.send(msg)
        count += 1
    done.set()  # got the stop message: the pinger may close now
    sock.close()
    ctx.term()
    return count


def _pingpong(n: int, pinger: Job, ponger: Job) -> dict[str, float]:
    pct, echoed = run_processes([pinger, ponger])
    if echoed != n:
        raise BenchFailure(f"ping-pong: ponger echoed {echoed} of {n}")
    return dict(pct)


def pingpong_pipe(n: int) -> dict[str, float]:
    """multiprocessing.Pipe (duplex socketpair), 32-byte send_bytes/recv_bytes; one-way ns."""
    a, b = CTX.Pipe()
    try:
        return _pingpong(n, ("pinger", _pipe_pinger, (n, a)), ("ponger", _pipe_ponger, (n, b)))
    finally:
        a.close()
        b.close()


def pingpong_zmq_pair(n: int) -> dict[str, float]:
    """pyzmq PAIR <-> PAIR over ipc://, 32-byte messages; one-way ns."""
    done = CTX.Event()
    with _IpcPath() as ep:
        return _pingpong(
            n, ("pinger", _zmq_pinger, (n, ep, done)), ("ponger", _zmq_ponger, (n, ep, done))
        )


# ------------------------------------------------------------------------- registry of peers

REC_NOTE = "tuple(4), pickled"
ZMQ_NOTE = "struct '<qqdd' 32 B"
BATCH_NOTE = "numpy 1024 x 64 B per msg; records/s"


def benches() -> list[Bench]:
    """All peer baselines with their quick/full sizes."""
    return [
        Bench(
            "one_to_one",
            "queue.SimpleQueue",
            "throughput",
            threads_simplequeue,
            200_000,
            2_000_000,
            "Python threads, tuple(4) per put",
        ),
        Bench(
            "one_to_one",
            "queue.Queue(65536)",
            "throughput",
            threads_queue,
            50_000,
            300_000,
            "Python threads, tuple(4) per put",
        ),
        Bench(
            "python_process_records",
            "mp.Queue",
            "throughput",
            process_mp_queue,
            50_000,
            200_000,
            REC_NOTE,
        ),
        Bench(
            "python_process_records",
            "faster_fifo get",
            "throughput",
            process_faster_fifo,
            50_000,
            200_000,
            REC_NOTE,
        ),
        Bench(
            "python_process_records",
            "faster_fifo get_many",
            "throughput",
            process_faster_fifo_many,
            50_000,
            200_000,
            REC_NOTE + ", drained 1024/call",
        ),
        Bench(
            "python_process_records",
            "pyzmq PUSH/PULL",
            "throughput",
            process_zmq_push_pull,
            300_000,
            1_500_000,
            ZMQ_NOTE + ", ipc://",
        ),
        Bench(
            "python_process_batches",
            "shm numpy ring (ceiling)",
            "throughput",
            shm_ring,
            4 * 1024 * 1024,
            32 * 1024 * 1024,
            f"unsynchronized plain stores, ring {RING_RECORDS} x 64 B; records/s",
        ),
        Bench(
            "python_process_batches",
            "pyzmq PUSH/PULL",
            "throughput",
            process_zmq_batches,
            2 * 1024 * 1024,
            16 * 1024 * 1024,
            BATCH_NOTE + ", ipc://",
        ),
        Bench(
            "python_process_batches",
            "mp.Queue",
            "throughput",
            process_mp_queue_batches,
            1024 * 1024,
            8 * 1024 * 1024,
            BATCH_NOTE + ", pickled",
        ),
        Bench(
            "ping_pong_latency",
            "mp.Pipe",
            "latency",
            pingpong_pipe,
            20_000,
            100_000,
            "processes, 32 B bytes",
        ),
        Bench(
            "ping_pong_latency",
            "pyzmq PAIR",
            "latency",
            pingpong_zmq_pair,
            10_000,
            50_000,
            "processes, 32 B, ipc://",
        ),
        Bench(
            "ping_pong_latency",
            "queue.SimpleQueue",
            "latency",
            threads_pingpong_simplequeue,
            20_000,
            100_000,
            "threads, int payload",
        ),
    ]
