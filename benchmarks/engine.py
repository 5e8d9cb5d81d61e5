"""The core engine's benchmarks, each measured beside its baseline in the same run.

Topologies:
  publish_message        pre-built messages, one ``publish_message`` call each, to one Python
                         agent's ``process_event`` on a processor thread; events/s counted until
                         the agent has handled the last one (baseline: NautilusTrader MessageBus,
                         which calls its one handler inside ``publish``)
  publish_batch          recorded Binance market data as numpy record batches of 4096 to one
                         vectorized agent (``process_batch`` sums a column); baseline: the same
                         messages one ``publish_message`` at a time to a ``process_event`` agent
  replay                 the main job's path: decoded Binance frames replayed through an engine
                         with the three built-in agents (count, check, summarise); frames/s from
                         the first publish until every agent has handled every frame
  kill_switch_latency    a CRITICAL CONTROL message published every 5 ms while a producer floods
                         the normal lane with market data: publish -> risk agent, ns; baseline:
                         the same message at NORMAL priority, queued behind the flood
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import numpy as np

from benchmarks.harness import SHARED_DATA, Bench, percentiles_ns

__all__ = ["benches"]


class BenchFailure(RuntimeError):
    """A benchmark moved the wrong data."""


class _Counter:
    """The handler of the baseline's: a bound method whose body is ``self.count += 1``."""

    name = "counter"

    def __init__(self) -> None:
        self.count = 0

    def process_event(self, message: Any) -> None:
        self.count += 1


def _wait_count(agent: Any, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while agent.count < n:
        if time.monotonic() > deadline:
            raise BenchFailure(f"agent saw {agent.count} of {n} after {timeout} s")
        time.sleep(0.0002)


class _ColumnSum:
    name = "column-sum"

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.done = threading.Event()
        self.target = 0

    def process_batch(self, batch: Any) -> None:
        records = batch.records
        self.total += float(np.nansum(records["bid"]))
        self.count += len(records)
        if self.count >= self.target:
            self.done.set()


@cache
def _sample() -> np.ndarray:
    from market_intel.adapters import binance

    return binance.load()


def _records(n: int) -> np.ndarray:
    sample = _sample()
    reps = -(-n // len(sample))
    out = np.concatenate([sample] * reps, dtype=sample.dtype)[:n]
    out["id"] = np.arange(1, n + 1, dtype=np.uint64)
    return out


def _quote_messages(n: int) -> list[Any]:
    from market_intel import CoreMessage, MarketData, MessageType

    rows = _sample()
    quotes = rows[rows["kind"] == 1][:1000]
    base = [
        CoreMessage(
            MessageType.MARKET_DATA,
            MarketData(
                symbol=r["symbol"].decode(),
                venue=r["venue"].decode(),
                bid=float(r["bid"]),
                ask=float(r["ask"]),
                bid_size=float(r["bid_size"]),
                ask_size=float(r["ask_size"]),
                update_id=int(r["update_id"]),
                receive_ns=int(r["receive_ns"]),
            ),
            source="bench",
        )
        for r in quotes
    ]
    # Distinct objects, as the baseline's: each message is its own CoreMessage.
    return [
        CoreMessage(m.type, m.payload, source=m.source) for m in (base * (n // len(base) + 1))[:n]
    ]


def _engine(**options: Any) -> Any:
    from market_intel import CoreEngineBuilder

    b = CoreEngineBuilder().with_processors(options.pop("processors", 1))
    for key, value in options.items():
        b = getattr(b, f"with_{key}")(value)
    return b.build()


def publish_message(n: int) -> float:
    """Pre-built MarketData messages, one native call each, to one process_event agent."""
    messages = _quote_messages(n)
    engine = _engine()
    agent = _Counter()
    engine.register_agent(agent)
    with engine:
        publish = engine.publish_message
        t0 = time.perf_counter_ns()
        for m in messages:
            publish(m)
        _wait_count(agent, n)
        elapsed = time.perf_counter_ns() - t0
    if agent.count != n:
        raise BenchFailure(f"publish_message: agent saw {agent.count} of {n}")
    return n * 1e9 / elapsed


def publish_batch(n: int) -> float:
    """Binance records in numpy batches of 4096 to one vectorized agent."""
    records = _records(n)
    expected = float(np.nansum(records["bid"]))
    engine = _engine(max_batch=4096)
    agent = _ColumnSum()
    agent.target = n
    engine.register_agent(agent, message_types=["market_data"])
    with engine:
        t0 = time.perf_counter_ns()
        for lo in range(0, n, 4096):
            engine.publish_batch(records[lo : lo + 4096])
        if not agent.done.wait(60):
            raise BenchFailure(f"publish_batch: agent saw {agent.count} of {n}")
        elapsed = time.perf_counter_ns() - t0
    if agent.count != n or not np.isclose(agent.total, expected, rtol=1e-9):
        raise BenchFailure(f"publish_batch: count {agent.count}/{n}, sum {agent.total}/{expected}")
    return n * 1e9 / elapsed


def publish_batch_baseline(n: int) -> float:
    """The same market data as CoreMessages, one publish_message each, to process_event."""
    return publish_message(n)


def replay(n: int, processors: int = 2, max_batch: int = 4096) -> float:
    """The main job's path over n frames (the packaged sample, repeated): frames/s."""
    from market_intel.agents import (
        MarketDataCounterAgent,
        SequenceCheckAgent,
        SymbolSummaryAgent,
    )

    records = _records(n)
    engine = _engine(processors=processors, max_batch=max_batch)
    counter = MarketDataCounterAgent()
    for agent in (SymbolSummaryAgent(), SequenceCheckAgent(), counter):
        engine.register_agent(agent, message_types=["market_data"])
    with engine:
        t0 = time.perf_counter_ns()
        for lo in range(0, n, 4096):
            engine.publish_batch(records[lo : lo + 4096])
        engine.flush(60)
        elapsed = time.perf_counter_ns() - t0
    if counter.report().market_data != n:
        raise BenchFailure(f"replay: counter saw {counter.report().market_data} of {n}")
    return n * 1e9 / elapsed


SHARED_BINANCE = SHARED_DATA / "binance"


def replay_with_decode(n: int) -> float:
    """Decode recordings (gunzip included) and replay them through the three agents; frames/s.

    n >= 300_000 replays the full recording in ../shared/data/binance (332,200 frames) when it
    is there, else the packaged sample (58,108 frames)."""
    from market_intel.adapters import binance
    from market_intel.agents import (
        MarketDataCounterAgent,
        SequenceCheckAgent,
        SymbolSummaryAgent,
    )

    full = sorted(SHARED_BINANCE.glob("*.gz"))
    paths = full if n >= 300_000 and full else binance.sample_paths()
    engine = _engine(processors=1, max_batch=4096)
    counter = MarketDataCounterAgent()
    for agent in (SymbolSummaryAgent(), SequenceCheckAgent(), counter):
        engine.register_agent(agent, message_types=["market_data"])
    with engine:
        t0 = time.perf_counter_ns()
        records = binance.load(paths)
        for batch in binance.replay(records, batch_size=4096):
            engine.publish_batch(batch)
        engine.flush(60)
        elapsed = time.perf_counter_ns() - t0
    if counter.report().market_data != len(records):
        raise BenchFailure(f"replay: counter saw {counter.report().market_data} of {len(records)}")
    return len(records) * 1e9 / elapsed


class _Risk:
    name = "risk"

    def __init__(self) -> None:
        self.latencies: list[int] = []

    def process_event(self, message: Any) -> None:
        self.latencies.append(time.time_ns() - message.published_ns)


class _Flood:
    name = "market-data"

    def __init__(self) -> None:
        self.count = 0

    def process_batch(self, batch: Any) -> None:
        # Work in proportion to the batch, like an analytics agent.
        self.count += len(batch.records)
        float(np.nansum(batch.records["bid"] * batch.records["bid_size"]))


def _kill_switch(samples: int, priority: Any, **options: Any) -> dict[str, float]:
    from market_intel import Control, CoreMessage, MessageType

    records = _records(200_000)
    engine = _engine(processors=1, max_batch=512, **options)
    risk = _Risk()
    flood = _Flood()
    engine.register_agent(risk, message_types=["control"])
    engine.register_agent(flood, message_types=["market_data"])
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            engine.publish_batch(records[i : i + 1024])
            i = (i + 1024) % (len(records) - 1024)

    with engine:
        t = threading.Thread(target=produce, name="flood", daemon=True)
        t.start()
        time.sleep(0.05)  # the normal lane is full from here on
        for _ in range(samples):
            engine.publish_message(
                CoreMessage(
                    MessageType.CONTROL,
                    Control(command="kill_switch"),
                    priority=priority,
                    source="bench",
                )
            )
            time.sleep(0.005)
        stop.set()
        t.join()
    if len(risk.latencies) != samples:
        raise BenchFailure(f"kill switch: {len(risk.latencies)} of {samples} handled")
    return percentiles_ns(risk.latencies)


def kill_switch(samples: int) -> dict[str, float]:
    """Kill switch as CRITICAL under a market data flood."""
    from market_intel import Priority

    return _kill_switch(samples, Priority.CRITICAL)


def kill_switch_fast_switch(samples: int) -> dict[str, float]:
    """Kill switch as CRITICAL, with Python's thread switch interval at 0.1 ms."""
    from market_intel import Priority

    return _kill_switch(samples, Priority.CRITICAL, switch_interval=100)


def kill_switch_baseline(samples: int) -> dict[str, float]:
    """The same kill switch at NORMAL priority: behind the flood."""
    from market_intel import Priority

    return _kill_switch(samples, Priority.NORMAL)


def benches() -> list[Bench]:
    """The engine's rows for benchmarks.run."""
    return [
        Bench(
            "publish_message",
            "market-intel publish_message",
            "throughput",
            publish_message,
            200_000,
            1_000_000,
            "pre-built CoreMessage(MARKET_DATA, MarketData quote); one processor; counted until "
            "the agent handled the last",
        ),
        Bench(
            "publish_batch",
            "market-intel publish_batch",
            "throughput",
            publish_batch,
            500_000,
            2_000_000,
            "Binance records, batches of 4096, one vectorized agent",
        ),
        Bench(
            "publish_batch",
            "market-intel publish_message (per message)",
            "throughput",
            publish_batch_baseline,
            200_000,
            1_000_000,
            "the same kind of messages, one call each, to process_event",
        ),
        Bench(
            "replay",
            "market-intel replay (3 agents)",
            "throughput",
            replay,
            300_000,
            1_000_000,
            "decoded Binance frames, batches of 4096, summary + sequence check + counter; "
            "decoding excluded",
        ),
        Bench(
            "replay",
            "market-intel replay, decode included",
            "throughput",
            replay_with_decode,
            50_000,
            332_200,
            "gunzip + decode + merge + replay of the recordings (full: ../shared/data/binance)",
        ),
        Bench(
            "kill_switch_latency",
            "market-intel CRITICAL (priority lane)",
            "latency",
            kill_switch,
            100,
            400,
            "CONTROL every 5 ms while a thread floods the normal lane; publish -> handler",
        ),
        Bench(
            "kill_switch_latency",
            "market-intel CRITICAL, switch interval 0.1 ms",
            "latency",
            kill_switch_fast_switch,
            100,
            400,
            "as CRITICAL, with core.performance.switch_interval_us = 100",
        ),
        Bench(
            "kill_switch_latency",
            "market-intel NORMAL (behind the flood)",
            "latency",
            kill_switch_baseline,
            50,
            100,
            "the same message at NORMAL priority",
        ),
    ]
