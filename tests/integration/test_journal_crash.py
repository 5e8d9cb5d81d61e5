"""The journal survives kill -9: a child process runs an engine whose StorageAgent journals
a deterministic Binance stream (fsync every batch) and prints each durable sequence as it is
acknowledged; the parent kills it at random moments, reopens the journal and checks that
every acknowledged record is there exactly once, in order, equal to the input, with no torn
garbage; a restarted child resumes contiguously; and replaying the journal into a fresh
engine rebuilds the state the input itself gives."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import market_intel as mi
import numpy as np
import pytest
from market_intel.agents import MarketDataCounterAgent
from market_intel.agents.storage import replay_into
from market_intel.codec import to_records
from market_intel.routing import MessageBatch
from market_intel.storage.journal import Journal

pytestmark = pytest.mark.slow

TOTAL = 12_000
CHUNK = 60
TIMEOUT = 60.0

CHILD = """
import sys, time
import market_intel as mi
from market_intel.agents.storage import StorageAgent, StorageAgentConfig
from market_intel.codec import from_records
sys.path.insert(0, sys.argv[4])
from test_journal_crash import stream

directory, total, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
records = stream(total)
out = sys.stdout

def acknowledged(sequence):
    out.write(f"ack {sequence}\\n")
    out.flush()

agent = StorageAgent(
    StorageAgentConfig(directory=directory, fsync="batch", segment_bytes=256 * 1024),
    on_durable=acknowledged,
)
start = agent.last_sequence
out.write(f"start {start} {agent.recovery.truncated_bytes}\\n")
out.flush()
engine = mi.CoreEngineBuilder().with_processors(1).build()
engine.register_agent(agent)
with engine:
    for lo in range(start, total, chunk):
        part = records[lo : lo + chunk]
        if (lo // chunk) % 3 == 2:  # every third chunk as message objects
            engine.publish_batch(from_records(part))
        else:
            engine.publish_batch(part)
        time.sleep(0.005)
agent.close()
out.write("done\\n")
out.flush()
"""


def stream(n: int) -> np.ndarray:
    """The first ``n`` records of the packaged Binance sample (repeated as needed), with
    ids 1..n and ``created_ns`` set, so the engine stamps only ``published_ns``."""
    from market_intel.adapters import binance

    sample = binance.load(binance.sample_paths())
    out = np.zeros(n, mi.MESSAGE_DTYPE)
    for lo in range(0, n, len(sample)):
        part = sample[: n - lo]
        out[lo : lo + len(part)] = part
    out["id"] = np.arange(1, n + 1, dtype=np.uint64)
    out["created_ns"] = out["receive_ns"]
    return out


HEADER = ("id", "created_ns", "correlation_id", "causation_id", "type", "priority", "kind")
MARKET = (
    "symbol", "source", "venue", "exchange_ns", "receive_ns", "bid", "ask", "bid_size",
    "ask_size", "last_price", "last_size", "volume", "update_id",
)  # fmt: skip


def assert_same_market_data(got: np.ndarray, expected: np.ndarray) -> None:
    """Equal in every field a market data message has, but the engine's ``published_ns``."""
    assert len(got) == len(expected)
    for name in HEADER + MARKET:
        floats = got[name].dtype.kind == "f"
        same = np.array_equal(got[name], expected[name], equal_nan=floats)
        assert same, f"field {name} differs"


class Child:
    """One run of the child process, its output lines collected as they come."""

    def __init__(self, directory: Path, script: Path) -> None:
        here = str(Path(__file__).resolve().parent)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(directory), str(TOTAL), str(CHUNK), here],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())
            if line.startswith("start"):
                self.started.set()
        self.proc.stdout.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.finish()

    def finish(self) -> int:
        code = self.proc.wait(timeout=TIMEOUT)
        self._reader.join(TIMEOUT)
        return code

    @property
    def start(self) -> int:
        return next(int(x.split()[1]) for x in self.lines if x.startswith("start"))

    @property
    def acks(self) -> list[int]:
        return [int(x.split()[1]) for x in self.lines if x.startswith("ack")]


def journal_records(directory: Path) -> tuple[np.ndarray, int]:
    """The whole journal as records (after recovery), and the bytes recovery cut."""
    with Journal.open(directory) as journal:
        assert journal.verify() == journal.last_sequence
        parts = []
        expected = 1
        for batch in journal.replay_batches():
            assert batch.first_sequence == expected
            expected += len(batch)
            parts.append(
                batch.records if batch.records is not None else to_records(batch.to_messages())
            )
        out = np.zeros(journal.last_sequence, mi.MESSAGE_DTYPE)
        i = 0
        for part in parts:
            out[i : i + len(part)] = part
            i += len(part)
        return out, journal.recovery.truncated_bytes


def test_kill_9_at_random_moments_loses_no_acknowledged_record(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    directory = tmp_path / "journal"
    expected = stream(TOTAL)
    rng = random.Random(20240808)
    # Seconds after the child's start line: at once, and at random moments mid-stream.
    delays = [0.0, rng.uniform(0.01, 0.1), rng.uniform(0.1, 0.4), rng.uniform(0.3, 0.8)]
    resumed_at = 0
    kills = 0
    for delay in delays:
        child = Child(directory, script)
        assert child.started.wait(TIMEOUT), f"the child never started: {child.lines}"
        assert child.start == resumed_at  # contiguous: it resumes after the last record
        time.sleep(delay)
        if child.proc.poll() is None:
            child.kill()
            kills += 1
        else:
            child.finish()
        journaled, _ = journal_records(directory)
        acks = child.acks
        assert acks == sorted(acks)
        if acks:
            assert acks[-1] <= len(journaled), "an acknowledged record was lost"
        assert_same_market_data(journaled, expected[: len(journaled)])
        resumed_at = len(journaled)
    assert kills >= 2

    final = Child(directory, script)
    assert final.finish() == 0 and final.lines[-1] == "done"
    assert final.start == resumed_at
    assert resumed_at == TOTAL or final.acks[-1] == TOTAL
    journaled, cut = journal_records(directory)
    assert cut == 0
    assert_same_market_data(journaled, expected)  # every record once, in order

    rebuilt = MarketDataCounterAgent()
    engine = mi.CoreEngineBuilder().with_processors(1).build()
    engine.register_agent(rebuilt)
    with engine:
        assert replay_into(engine, directory) == TOTAL
    direct = MarketDataCounterAgent()
    direct.process_batch(MessageBatch(expected, None, 1, "normal", lambda r, o: []))
    got, want = rebuilt.report(), direct.report()
    assert (got.messages, got.market_data, got.by_kind, got.by_venue, got.crossed_quotes) == (
        want.messages, want.market_data, want.by_kind, want.by_venue, want.crossed_quotes,
    )  # fmt: skip
