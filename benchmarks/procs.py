"""Supervised producer/consumer processes (start method 'fork', Linux).

All cross-process benchmarks run *both* sides in child processes; the parent only supervises.
Children meet the parent at a barrier once they are set up, so setup is never timed; the parent
then collects one report per child with a deadline and always joins, then terminates, then kills
its children, so a benchmark can fail but never hang.

Timing convention: a producer returns `t_start` (perf_counter_ns right after the barrier), a
consumer returns `(t_end, count, checksum)`. `perf_counter_ns` is CLOCK_MONOTONIC on Linux, so
stamps from different processes are comparable.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from benchmarks.records import BenchFailure, check

CTX = mp.get_context("fork")
SETUP_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 120.0

# (process name, target, args): the target is called as target(barrier, *args).
Job = tuple[str, Callable[..., Any], tuple[Any, ...]]


def _child_main(target: Callable[..., Any], args: tuple[Any, ...], out: Connection) -> None:
    try:
        out.send(("ok", target(*args)))
    except BaseException:
        out.send(("error", traceback.format_exc()))
    finally:
        out.close()


def _stop(p: mp.process.BaseProcess, grace_s: float) -> None:
    p.join(grace_s)
    if p.is_alive():
        p.terminate()
        p.join(2.0)
    if p.is_alive():
        p.kill()
        p.join(2.0)


def run_processes(jobs: list[Job], timeout_s: float = RUN_TIMEOUT_S) -> list[Any]:
    """Fork one child per job, release them together through a barrier, return their results.

    Each target must call `barrier.wait()` once it is set up. Raises `BenchFailure` if a child
    fails, dies or misses the deadline (the first failure reported wins).
    """
    barrier = CTX.Barrier(len(jobs) + 1)
    procs: list[mp.process.BaseProcess] = []
    conns: list[Connection] = []
    ok = False
    try:
        for name, target, args in jobs:
            r, w = CTX.Pipe(duplex=False)
            p = CTX.Process(
                target=_child_main, args=(target, (barrier, *args), w), name=name, daemon=True
            )
            p.start()
            w.close()  # only the child holds the write end now: EOF means it died
            procs.append(p)
            conns.append(r)
        try:
            barrier.wait(SETUP_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise BenchFailure(f"children not ready within {SETUP_TIMEOUT_S:.0f} s") from None
        results = _collect(procs, conns, time.monotonic() + timeout_s, timeout_s)
        ok = True
        return results
    finally:
        for proc in procs:
            _stop(proc, 5.0 if ok else 0.2)
        for r in conns:
            r.close()


def _collect(
    procs: list[mp.process.BaseProcess], conns: list[Connection], deadline: float, timeout_s: float
) -> list[Any]:
    results: list[Any] = [None] * len(procs)
    pending = {r: i for i, r in enumerate(conns)}
    while pending:
        ready = mp.connection.wait(list(pending), max(0.0, deadline - time.monotonic()))
        if not ready:
            names = ", ".join(procs[i].name for i in pending.values())
            raise BenchFailure(
                f"{names} did not finish within {timeout_s:.0f} s (stall or lost messages)"
            )
        for r in ready:
            assert isinstance(r, Connection)
            i = pending.pop(r)
            try:
                status, payload = r.recv()
            except EOFError:
                procs[i].join(1.0)
                raise BenchFailure(
                    f"{procs[i].name} died (exit code {procs[i].exitcode})"
                ) from None
            if status != "ok":
                raise BenchFailure(f"{procs[i].name} failed:\n{payload}")
            results[i] = payload
    return results


def throughput(n: int, t_start: int, t_end: int) -> float:
    """Events per second for n events between two perf_counter_ns stamps."""
    return n * 1e9 / max(1, t_end - t_start)


def run_pair(n: int, producer: Job, consumer: Job, what: str) -> float:
    """Run a producer/consumer pair, verify the consumer's count and checksum, return events/s."""
    t_start, (t_end, count, checksum) = run_processes([producer, consumer])
    check(what, n, count, checksum)
    return throughput(n, t_start, t_end)
