"""Agents, messages and waits shared by the engine tests.

The agents record what they are handed, so a test can compare what was published with what
each agent saw, in order. ``Gate`` blocks a processor inside an agent until the test releases
it: the way to build a backlog or a stuck agent without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import market_intel as mi
import numpy as np

TIMEOUT = 20.0
"""Seconds any wait in these tests may take before the test fails (never a timing claim)."""


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)


def quote(
    symbol: str = "BTCUSDT",
    i: int = 0,
    *,
    priority: mi.Priority = mi.Priority.NORMAL,
    source: str = "test",
) -> mi.CoreMessage:
    """A market data message whose ``update_id`` is ``i`` and whose prices derive from it."""
    payload = mi.MarketData(
        symbol=symbol, bid=100.0 + i, ask=100.5 + i, bid_size=1.0, ask_size=2.0, update_id=i
    )
    return mi.CoreMessage(mi.MessageType.MARKET_DATA, payload, priority=priority, source=source)


def order(symbol: str = "BTCUSDT", i: int = 0) -> mi.CoreMessage:
    """A limit order message whose ``order_id`` is ``i + 1``."""
    payload = mi.Order(order_id=i + 1, symbol=symbol, side=mi.Side.BUY, quantity=1.0, price=10.0)
    return mi.CoreMessage(mi.MessageType.ORDER, payload)


def trade(symbol: str = "BTCUSDT", i: int = 0) -> mi.CoreMessage:
    payload = mi.Trade(trade_id=i + 1, symbol=symbol, side=mi.Side.SELL, price=10.0, quantity=1.0)
    return mi.CoreMessage(mi.MessageType.TRADE, payload)


def control(
    command: str = "kill_switch", priority: mi.Priority = mi.Priority.CRITICAL
) -> mi.CoreMessage:
    return mi.CoreMessage(
        mi.MessageType.CONTROL, mi.Control(command=command), priority=priority, source="risk"
    )


def text(message_type: mi.MessageType, body: str = "x") -> mi.CoreMessage:
    return mi.CoreMessage(message_type, mi.MessagePayload.text(body))


def one_of_each_type() -> list[mi.CoreMessage]:
    """One message of every ``MessageType``, in type order."""
    return [
        quote(),
        order(),
        trade(),
        mi.CoreMessage(mi.MessageType.EVENT, mi.Event(code="halt")),
        control(priority=mi.Priority.NORMAL),
        mi.CoreMessage(mi.MessageType.HEALTH, mi.Health(agent="a", status=mi.AgentStatus.RUNNING)),
        mi.CoreMessage(mi.MessageType.ANALYTICS, mi.Analytics(name="vwap", query="BTC")),
    ]


def quote_records(symbols: list[str], n: int, *, start: int = 0) -> np.ndarray:
    """``n`` market data records cycling through ``symbols``; ``update_id`` is the row number
    plus ``start``, prices derive from it; ids and times are left for the engine to stamp."""
    r = mi.market_data_array(n)
    r["symbol"] = [symbols[i % len(symbols)].encode() for i in range(n)]
    r["update_id"] = np.arange(start, start + n, dtype=np.uint64)
    r["bid"] = 100.0 + r["update_id"]
    r["ask"] = r["bid"] + 0.5
    r["bid_size"] = 1.0
    r["ask_size"] = 2.0
    return r


class Recorder:
    """An object agent that keeps every message it is handed."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.messages: list[mi.CoreMessage] = []
        self.threads: set[str] = set()
        self.started = 0
        self.stopped = 0

    def on_start(self) -> None:
        self.started += 1

    def on_stop(self) -> None:
        self.stopped += 1

    def process_event(self, message: mi.CoreMessage) -> None:
        self.threads.add(threading.current_thread().name)
        self.messages.append(message)

    def update_ids(self) -> list[int]:
        return [m.payload.update_id for m in self.messages]  # type: ignore[union-attr]


class BatchRecorder:
    """A vectorized agent that keeps a copy of every batch's records, and the batches' lanes."""

    def __init__(self, name: str = "batches", *, objects: bool = False) -> None:
        self.name = name
        self.batches: list[np.ndarray] = []
        self.lanes: list[str] = []
        self.objects: list[mi.CoreMessage] = []
        self._decode = objects

    def process_batch(self, batch: mi.MessageBatch) -> None:
        self.batches.append(batch.records.copy())
        self.lanes.append(batch.lane)
        if self._decode:
            self.objects.extend(batch.messages())

    @property
    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def records(self) -> np.ndarray:
        # Not np.concatenate: numpy's dtype promotion would repack MESSAGE_DTYPE's layout.
        out = np.zeros(self.count, mi.MESSAGE_DTYPE)
        i = 0
        for b in self.batches:
            out[i : i + len(b)] = b
            i += len(b)
        return out


class Gate:
    """Makes an agent block inside a call until ``release()``; ``entered`` tells it is there."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()

    def block(self) -> None:
        self.entered.set()
        if not self._open.wait(TIMEOUT * 3):
            raise AssertionError("gate never released")

    def release(self) -> None:
        self._open.set()

    def wait_entered(self) -> None:
        assert self.entered.wait(TIMEOUT), "the agent never reached the gate"


class GatedRecorder(Recorder):
    """A ``Recorder`` that blocks in its first call (after recording it) until released."""

    def __init__(self, name: str = "gated") -> None:
        super().__init__(name)
        self.gate = Gate()

    def process_event(self, message: mi.CoreMessage) -> None:
        super().process_event(message)
        if len(self.messages) == 1:
            self.gate.block()


@contextmanager
def running(engine: mi.CoreEngine) -> Iterator[mi.CoreEngine]:
    """Start ``engine``; stop it afterwards even if the test failed half way (bounded wait)."""
    engine.start()
    try:
        yield engine
    finally:
        if engine.running:
            engine.stop(timeout=TIMEOUT)


def engine(processors: int = 2, **health: Any) -> mi.CoreEngine:
    """An engine with fast health checks when ``health`` options are given."""
    builder = mi.CoreEngineBuilder().with_processors(processors)
    if health:
        builder = builder.with_health(**health)
    return builder.build()
