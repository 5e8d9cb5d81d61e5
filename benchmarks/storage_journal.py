"""The event journal's benchmarks, each beside its baseline in the same run.

Topologies:
  journal_append     Binance market data as CoreMessage objects appended in batches of 4096,
                     one row per fsync policy (every batch, every 10 ms, never), plus raw
                     records (``append_records``, never); events/s over the appends. Baseline:
                     the same MessagePack bytes written with ``file.write``, no framing and no
                     checksum, never synced.
  journal_recovery   a journal of n events, closed; timed: ``Journal.open`` (which scans and
                     checks the last segment) and replaying every event with
                     ``replay_batches``, events/s; the notes give seconds per million events.
                     Rows: messages decoded to CoreMessage objects, records as numpy batches,
                     and records replayed into an engine whose counter agent rebuilds its
                     state. Baseline: the same messages decoded from a plain file of
                     MessagePack arrays, no framing and no checksum.

Files are written to the system temporary directory and removed after each repetition.
"""

from __future__ import annotations

import os
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Bench

__all__ = ["benches"]

BATCH = 4096


class BenchFailure(RuntimeError):
    """A benchmark moved the wrong data."""


@cache
def _sample() -> np.ndarray:
    from market_intel.adapters import binance

    return binance.load(binance.sample_paths())


@cache
def _sample_messages() -> list[Any]:
    from market_intel.codec import from_records

    records = _sample().copy()
    records["created_ns"] = records["receive_ns"]
    return from_records(records)


def _messages(n: int) -> list[Any]:
    base = _sample_messages()
    return (base * (n // len(base) + 1))[:n]


def _records(n: int) -> np.ndarray:
    import market_intel as mi

    sample = _sample()
    out = np.zeros(n, mi.MESSAGE_DTYPE)  # not np.concatenate: it would repack the dtype
    for lo in range(0, n, len(sample)):
        part = sample[: n - lo]
        out[lo : lo + len(part)] = part
    out["id"] = np.arange(1, n + 1, dtype=np.uint64)
    return out


def _check_journal(directory: str, n: int, first: Any) -> None:
    from market_intel.storage.journal import Journal

    with Journal.open(directory) as journal:
        if journal.last_sequence != n:
            raise BenchFailure(f"journal holds {journal.last_sequence} of {n} events")
        head = next(journal.replay_batches(max_batch=1)).to_messages()[0]
        if head != first:
            raise BenchFailure(f"journal's first event {head!r:.80} differs from {first!r:.80}")


# -- journal_append ---------------------------------------------------------------------------


def _append(policy: Callable[[], Any]) -> Callable[[int], float]:
    def run(n: int) -> float:
        from market_intel.storage.journal import Journal

        messages = _messages(n)
        with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
            journal = Journal.open(directory, fsync=policy())
            t0 = time.perf_counter_ns()
            for lo in range(0, n, BATCH):
                journal.append(messages[lo : lo + BATCH])
            elapsed = time.perf_counter_ns() - t0
            journal.close()
            _check_journal(directory, n, messages[0])
        return n * 1e9 / elapsed

    return run


def append_records_never(n: int) -> float:
    """Raw records in batches of 4096, never synced."""
    from market_intel.codec import records_to_message
    from market_intel.storage.journal import FsyncPolicy, Journal

    records = _records(n)
    with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
        journal = Journal.open(directory, fsync=FsyncPolicy.never())
        t0 = time.perf_counter_ns()
        for lo in range(0, n, BATCH):
            journal.append_records(records[lo : lo + BATCH])
        elapsed = time.perf_counter_ns() - t0
        journal.close()
        _check_journal(directory, n, records_to_message(records[0]))
    return n * 1e9 / elapsed


def write_msgpack_baseline(n: int) -> float:
    """The same MessagePack bytes through ``file.write``: no framing, checksum or sync."""
    import msgspec

    messages = _messages(n)
    encode = msgspec.msgpack.Encoder().encode
    with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
        path = Path(directory) / "plain.msgpack"
        written = 0
        with open(path, "wb") as f:
            t0 = time.perf_counter_ns()
            for lo in range(0, n, BATCH):
                written += f.write(b"".join([encode(m) for m in messages[lo : lo + BATCH]]))
            f.flush()
            elapsed = time.perf_counter_ns() - t0
        if path.stat().st_size != written or written < n:
            raise BenchFailure(f"plain file holds {path.stat().st_size} of {written} bytes")
    return n * 1e9 / elapsed


# -- journal_recovery -------------------------------------------------------------------------


class _PerMillion:
    """A recovery row's notes, completed with the seconds per million events it measured."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.rates: dict[int, list[float]] = {}
        self.bench: Bench | None = None

    def record(self, n: int, rate: float) -> float:
        self.rates.setdefault(n, []).append(rate)
        if self.bench is not None:
            median = statistics.median(self.rates[max(self.rates)])
            self.bench.notes = f"{self.text}; {1e6 / median:.2f} s per million events (median)"
        return rate


def _recover(kind: str, notes: _PerMillion) -> Callable[[int], float]:
    def run(n: int) -> float:
        from market_intel.storage.journal import FsyncPolicy, Journal

        with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
            with Journal.open(directory, fsync=FsyncPolicy.never()) as journal:
                if kind == "messages":
                    messages = _messages(n)
                    for lo in range(0, n, BATCH):
                        journal.append(messages[lo : lo + BATCH])
                else:
                    records = _records(n)
                    for lo in range(0, n, BATCH):
                        journal.append_records(records[lo : lo + BATCH])
            t0 = time.perf_counter_ns()
            count = 0
            with Journal.open(directory) as journal:
                for batch in journal.replay_batches():
                    count += len(batch)
            elapsed = time.perf_counter_ns() - t0
        if count != n:
            raise BenchFailure(f"recovered {count} of {n} events")
        return notes.record(n, n * 1e9 / elapsed)

    return run


def _recover_into_engine(notes: _PerMillion) -> Callable[[int], float]:
    def run(n: int) -> float:
        import market_intel as mi
        from market_intel.agents import MarketDataCounterAgent
        from market_intel.agents.storage import replay_into
        from market_intel.storage.journal import FsyncPolicy, Journal

        records = _records(n)
        with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
            with Journal.open(directory, fsync=FsyncPolicy.never()) as journal:
                for lo in range(0, n, BATCH):
                    journal.append_records(records[lo : lo + BATCH])
            counter = MarketDataCounterAgent()
            engine = mi.CoreEngineBuilder().with_processors(1).with_max_batch(BATCH).build()
            engine.register_agent(counter)
            with engine:
                t0 = time.perf_counter_ns()
                replayed = replay_into(engine, directory)
                elapsed = time.perf_counter_ns() - t0
        if replayed != n or counter.report().market_data != n:
            raise BenchFailure(
                f"replayed {replayed}, counted {counter.report().market_data} of {n}"
            )
        return notes.record(n, n * 1e9 / elapsed)

    return run


def _recover_plain(notes: _PerMillion) -> Callable[[int], float]:
    def run(n: int) -> float:
        import msgspec
        from market_intel.messages import CoreMessage

        messages = _messages(n)
        encode = msgspec.msgpack.Encoder().encode
        decode = msgspec.msgpack.Decoder(list[CoreMessage]).decode
        size = struct.Struct("<I")
        with tempfile.TemporaryDirectory(prefix="mi-bench-journal-") as directory:
            path = os.path.join(directory, "plain.msgpack")
            with open(path, "wb") as f:
                for lo in range(0, n, BATCH):
                    data = encode(messages[lo : lo + BATCH])
                    f.write(size.pack(len(data)) + data)
            t0 = time.perf_counter_ns()
            count = 0
            with open(path, "rb") as f:
                data = f.read()
            at = 0
            while at < len(data):
                (length,) = size.unpack_from(data, at)
                count += len(decode(memoryview(data)[at + 4 : at + 4 + length]))
                at += 4 + length
            elapsed = time.perf_counter_ns() - t0
        if count != n:
            raise BenchFailure(f"decoded {count} of {n} events")
        return notes.record(n, n * 1e9 / elapsed)

    return run


def _recovery_row(
    name: str, text: str, make: Callable[[_PerMillion], Callable[[int], float]]
) -> Bench:
    notes = _PerMillion(text)
    bench = Bench("journal_recovery", name, "throughput", make(notes), 100_000, 1_000_000, text)
    notes.bench = bench
    return bench


def benches() -> list[Bench]:
    """The journal's rows for benchmarks.run."""
    from market_intel.storage.journal import FsyncPolicy

    rows = [
        Bench(
            "journal_append",
            "market-intel journal, fsync every batch",
            "throughput",
            _append(FsyncPolicy.every_batch),
            100_000,
            1_000_000,
            "Binance CoreMessages, batches of 4096; an fdatasync before each append returns",
        ),
        Bench(
            "journal_append",
            "market-intel journal, fsync every 10 ms",
            "throughput",
            _append(lambda: FsyncPolicy.every(10)),
            100_000,
            1_000_000,
            "the same; a background thread syncs at most every 10 ms",
        ),
        Bench(
            "journal_append",
            "market-intel journal, fsync never",
            "throughput",
            _append(FsyncPolicy.never),
            100_000,
            1_000_000,
            "the same; synced only on close (not timed)",
        ),
        Bench(
            "journal_append",
            "market-intel journal append_records, never",
            "throughput",
            append_records_never,
            200_000,
            2_000_000,
            "Binance records, batches of 4096, raw 192-byte records (no objects)",
        ),
        Bench(
            "journal_append",
            "file.write of the msgpack bytes (baseline)",
            "throughput",
            write_msgpack_baseline,
            100_000,
            1_000_000,
            "the same messages encoded one by one, one write per batch; no framing, checksum "
            "or sync",
        ),
    ]
    rows += [
        _recovery_row(
            "market-intel open + replay_batches, messages",
            "Journal.open + replay_batches() decoding CoreMessage objects",
            lambda notes: _recover("messages", notes),
        ),
        _recovery_row(
            "market-intel open + replay_batches, records",
            "Journal.open + replay_batches() of raw records",
            lambda notes: _recover("records", notes),
        ),
        _recovery_row(
            "market-intel replay_into engine, records",
            "Journal.open + publish_batch into an engine + counter agent, until handled",
            _recover_into_engine,
        ),
        _recovery_row(
            "msgspec decode of a plain file (baseline)",
            "the same messages as MessagePack arrays of 4096; no framing or checksum",
            _recover_plain,
        ),
    ]
    return rows
