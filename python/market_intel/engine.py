"""``CoreEngine``: typed messages through two lock-free lanes to agents on processor threads.

::

    engine = CoreEngineBuilder().with_processors(2).with_profiling(True).build()
    engine.register_agent(MyAgent(), message_types=[MessageType.MARKET_DATA])
    with engine:                                   # start() ... stop(), which drains
        engine.publish_message(CoreMessage(MessageType.MARKET_DATA, payload))
    print(engine.get_statistics().messages_per_second)

Publishing is one native call (``publish_message``) or one copy of a numpy batch
(``publish_batch``). CRITICAL and HIGH messages take the priority lane and overtake the normal
lane's backlog. Every processor thread sees every message and hands its agents the ones their
routes select: by type, symbol, predicate, and partition key for agents registered as several
instances. Agent failures are counted, reported and (by default) healed by a restart with
backoff; they never stop a processor.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from market_intel import _core
from market_intel._health import assess
from market_intel._processor import LaneSet, Processor
from market_intel.agent import CoreAgent, _agent_name, _agent_type, _AgentRuntime
from market_intel.builder import CoreEngineBuilder, EngineSettings
from market_intel.enums import AgentStatus, AgentType, MessageType, Priority
from market_intel.errors import (
    AgentNotFoundError,
    EngineError,
    InsufficientCapacity,
    InvalidArgumentError,
    WaitTimeoutError,
)
from market_intel.records import FLAG_OBJECT, MESSAGE_DTYPE
from market_intel.ring import RingBuffer
from market_intel.routing import HOT_TYPES, Route
from market_intel.statistics import EngineStatistics, LatencyStatistics

if TYPE_CHECKING:
    from market_intel.messages import CoreMessage

__all__ = ["CoreEngine", "CoreEngineBuilder", "EngineSettings"]  # the builder's, for convenience

log = logging.getLogger("market_intel.engine")

_RAW_RECORD = np.dtype((np.void, MESSAGE_DTYPE.itemsize))
_HOT_CODES = np.array(sorted(int(t) for t in HOT_TYPES), dtype=np.uint8)


def _decode(view: np.ndarray, objects: list[Any] | None) -> list[Any]:
    """Messages of a batch: the published objects where they exist, decoded records elsewhere."""
    from market_intel.codec import from_records

    if objects is None:
        return from_records(view)
    flags = view["flags"]
    record_rows = np.flatnonzero((flags & FLAG_OBJECT) == 0)
    if len(record_rows) == 0:
        return list(objects)
    out = list(objects)
    for i, m in zip(record_rows.tolist(), from_records(view[record_rows]), strict=True):
        out[i] = m
    return out


def _encode(messages: list[Any]) -> np.ndarray:
    from market_intel.codec import to_records

    return to_records(messages)


class CoreEngine:
    """The engine. Build it with ``CoreEngineBuilder``; use it as a context manager."""

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.settings.check()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._agents: dict[int, _AgentRuntime] = {}
        self._lanes: LaneSet | None = None
        self._latency = _core._LatencyRecorder() if self.settings.profiling else None
        self._processors: list[Processor] = []
        self._monitor: threading.Thread | None = None
        self._monitor_stop = threading.Event()
        self._started_ns = 0
        self._stopped_ns = 0
        self._peak_utilization = 0.0
        self._last_counts: list[int] = [0] * 8
        self._old_switch_interval: float | None = None
        self._make_processors()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._lanes is not None

    def _make_processors(self) -> None:
        s = self.settings
        cores = s.processor_cores
        self._processors = [
            Processor(
                i,
                None,  # type: ignore[arg-type]  # lanes are made by start()
                wait=s.wait_strategy,
                max_batch=s.max_batch,
                heartbeat_s=s.heartbeat_interval_ms / 1000,
                core=cores[i % len(cores)] if cores else None,
                decode=_decode,
                encode=_encode,
                latency=self._latency,
            )
            for i in range(s.processors)
        ]

    def start(self) -> None:
        """Create the lanes, start every agent, their processors and the health monitor."""
        from market_intel.messages import CoreMessage

        with self._lock:
            if self.running:
                raise EngineError("start: the engine is running; expected a stopped engine")
            busy = [p.index for p in self._processors if p.running]
            if busy:  # a stop() that timed out left them draining the last run
                raise EngineError(
                    f"start: processor(s) {busy} still handling the last run; expected them "
                    "stopped (release the stuck agent, then start again)"
                )
            s = self.settings
            options: dict[str, Any] = {
                "producer": "multi",
                "prefault": s.prefault,
                "lock": s.lock,
                "huge_pages": s.huge_pages,
            }
            priority = RingBuffer(s.priority_buffer_size, MESSAGE_DTYPE, **options)
            normal = RingBuffer(s.buffer_size, MESSAGE_DTYPE, **options)
            lanes = LaneSet(priority, normal, CoreMessage)
            for p in self._processors:
                p.lanes = lanes
            self._lanes = lanes
            self._started_ns = time.monotonic_ns()
            self._stopped_ns = 0
            try:
                if s.switch_interval_us:
                    self._old_switch_interval = sys.getswitchinterval()
                    sys.setswitchinterval(s.switch_interval_us / 1e6)
                for agent in self._agents.values():
                    self._start_agent(agent)
                for p in self._processors:
                    if p.agents:
                        p.start()
                # The hot path is the native call itself, bound once per start.
                self.__dict__["publish_message"] = lanes.native.publish
                self.__dict__["try_publish_message"] = lanes.native.try_publish
                for agent in self._agents.values():  # producing agents may publish now
                    agent.running()
                if s.gc_freeze:
                    gc.freeze()
                self._monitor_stop.clear()
                self._monitor = threading.Thread(
                    target=self._monitor_loop, name="mi-health", daemon=True
                )
                self._monitor.start()
            except BaseException:  # leave a stopped engine, not a half-started one
                self.stop()
                raise

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking messages, let every processor handle everything published, stop the
        agents. Raises ``WaitTimeoutError`` if draining takes longer than ``timeout`` seconds."""
        # The health monitor takes the engine lock for each check: end it before taking the lock.
        self._monitor_stop.set()
        monitor = self._monitor
        if monitor is not None and monitor is not threading.current_thread():
            monitor.join()
        if self._lanes is not None:
            # Producing agents (feeds, replays) stop first and publish what they hold, while
            # the lanes still take messages; the drain below then handles all of it.
            for agent in list(self._agents.values()):
                agent.drain()
        with self._lock:
            lanes = self._lanes
            if lanes is None:
                return
            self.__dict__.pop("publish_message", None)
            self.__dict__.pop("try_publish_message", None)
            lanes.priority.shutdown()
            lanes.normal.shutdown()
            deadline = None if timeout is None else time.monotonic() + timeout
            late = []
            for p in self._processors:  # all drain at once; then each gets the time left
                p.request_stop(drain=True)
            for p in self._processors:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                p.join(left)
                if p.running:
                    late.append(p.index)
            self._monitor = None
            for agent in self._agents.values():
                agent.stop()
            self._stopped_ns = time.monotonic_ns()
            self._last_counts = lanes.native.counts()
            self._lanes = None
            if self._old_switch_interval is not None:
                sys.setswitchinterval(self._old_switch_interval)
                self._old_switch_interval = None
            if late:
                raise WaitTimeoutError(
                    f"stop: processor(s) {late} still draining after {timeout} s; "
                    "expected every published message handled"
                )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- asyncio face ----------------------------------------------------------------------
    # ``publish_message`` never awaits and never blocks while the lane has room, so async
    # code calls it directly on its hot path. The awaitables below run the calls that can
    # block (start, stop, flush, a publish into a full lane) off the event loop.

    async def astart(self) -> None:
        """``start()`` without blocking the event loop."""
        await asyncio.to_thread(self.start)

    async def astop(self, timeout: float | None = None) -> None:
        """``stop()`` (which drains) without blocking the event loop."""
        await asyncio.to_thread(self.stop, timeout)

    async def aflush(self, timeout: float | None = None) -> None:
        """``flush()`` without blocking the event loop."""
        await asyncio.to_thread(self.flush, timeout)

    async def apublish_message(self, message: CoreMessage) -> int:
        """Publish one message; if its lane is full, wait for room off the event loop."""
        lanes = self._lanes
        if lanes is None:
            raise EngineError("apublish_message: the engine is not running; call start() first")
        # The native call names the type of anything but a CoreMessage. A full lane never
        # blocks the event loop: the waiting publish runs in a worker thread.
        try:
            return int(lanes.native.try_publish(message))
        except InsufficientCapacity:
            return int(await asyncio.to_thread(lanes.native.publish, message))

    async def apublish_batch(self, batch: Sequence[CoreMessage] | np.ndarray) -> int:
        """``publish_batch()`` off the event loop."""
        return await asyncio.to_thread(self.publish_batch, batch)

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- publishing -----------------------------------------------------------------------

    def publish_message(self, message: CoreMessage) -> int:
        """Publish one message; returns its sequence in its lane.

        While the engine runs this attribute is the native publisher itself (no Python frame).
        """
        raise EngineError("publish_message: the engine is not running; call start() first")

    def try_publish_message(self, message: CoreMessage) -> int:
        """Publish one message if its lane has room; returns its sequence in its lane.

        Raises:
            InsufficientCapacity: the lane is full (nothing was published).

        While the engine runs this attribute is the native publisher itself (no Python frame).
        """
        raise EngineError("try_publish_message: the engine is not running; call start() first")

    def publish_batch(self, batch: Sequence[CoreMessage] | np.ndarray) -> int:
        """Publish many messages: a sequence of ``CoreMessage`` or a numpy array of
        ``MESSAGE_DTYPE`` records (market data, orders, trades), copied into the lanes in
        order. Returns how many were published."""
        lanes = self._lanes
        if lanes is None:
            raise EngineError("publish_batch: the engine is not running; call start() first")
        if not isinstance(batch, np.ndarray):
            return int(lanes.native.publish_many(batch))
        if batch.dtype != MESSAGE_DTYPE:
            raise InvalidArgumentError(
                f"publish_batch: array of dtype {batch.dtype}; expected market_intel.MESSAGE_DTYPE"
            )
        if batch.ndim != 1:
            raise InvalidArgumentError(
                f"publish_batch: array of shape {batch.shape}; expected a one-dimensional array"
            )
        n = len(batch)
        if n == 0:
            return 0
        types = batch["type"]
        priorities = batch["priority"]
        bad = np.flatnonzero(~np.isin(types, _HOT_CODES))
        if len(bad):
            i = int(bad[0])
            raise InvalidArgumentError(
                f"publish_batch: row {i} has type {int(types[i])}; expected MARKET_DATA, ORDER "
                "or TRADE records (publish other messages as CoreMessage objects)"
            )
        bad = np.flatnonzero(priorities > Priority.LOW)
        if len(bad):
            i = int(bad[0])
            raise InvalidArgumentError(
                f"publish_batch: row {i} has priority {int(priorities[i])}; expected 0..3"
            )
        urgent = priorities <= Priority.HIGH
        if urgent.any():
            self._copy_in(lanes.priority, batch[urgent])
            self._copy_in(lanes.normal, batch[~urgent])
            lanes.native.alert_all()
        else:
            self._copy_in(lanes.normal, batch)
        counts = np.bincount(types, minlength=8)
        for t in np.flatnonzero(counts).tolist():
            lanes.native.add_count(t, int(counts[t]))
        return n

    @staticmethod
    def _copy_in(ring: RingBuffer, records: np.ndarray) -> None:
        """Copy records into a lane, chunk by chunk; stamp ``published_ns``, and an ``id`` and
        ``created_ns`` where a row has none (0), as ``publish_message`` does for objects."""
        from market_intel import messages

        capacity = ring.capacity
        for lo in range(0, len(records), capacity):
            part = records[lo : lo + capacity]
            if len(part) == 0:
                continue
            with ring.claim(len(part)) as view:
                # Whole records as raw bytes: one memcpy (a structured assignment would copy
                # field by field, and the record's fields overlap).
                view.view(_RAW_RECORD)[:] = np.ascontiguousarray(part).view(_RAW_RECORD)
                now = time.time_ns()
                view["published_ns"] = now
                view["flags"] &= np.uint8(~FLAG_OBJECT & 0xFF)
                missing = np.flatnonzero(view["id"] == 0)
                if len(missing):
                    # The process-wide message id counter, read at call time (a fork redraws it).
                    ids = itertools.islice(messages._ids, len(missing))
                    view["id"][missing] = np.fromiter(ids, np.uint64, len(missing))
                created = view["created_ns"]
                created[created == 0] = now

    # -- agents ---------------------------------------------------------------------------

    def register_agent(
        self,
        agent: Any,
        *,
        name: str | None = None,
        agent_type: AgentType | str = AgentType.CUSTOM,
        message_types: Iterable[MessageType | int | str] | None = None,
        symbols: Iterable[str] | None = None,
        filter: Callable[[Any], Any] | None = None,
        affinity: int | None = None,
        factory: Callable[[], Any] | None = None,
    ) -> CoreAgent:
        """Register an agent (also while running: it receives messages from now on).

        ``agent`` has ``process_event(message)`` or ``process_batch(batch)``. ``message_types``:
        the types it receives (default: all). ``symbols``: only these symbols. ``filter``: a
        predicate on each message (or, for ``process_batch`` agents, on the batch's records,
        returning a boolean mask). ``affinity``: the processor index to run on (default: the
        least loaded). ``factory``: builds a fresh agent for restarts after failures.
        """
        route = Route.build(message_types, symbols, filter, None, "symbol")
        return self._register(agent, name, agent_type, route, affinity, factory)

    def register_partitioned(
        self,
        factory: Callable[[], Any],
        instances: int,
        *,
        key: str = "symbol",
        name: str | None = None,
        agent_type: AgentType | str = AgentType.CUSTOM,
        message_types: Iterable[MessageType | int | str] | None = None,
        symbols: Iterable[str] | None = None,
        filter: Callable[[Any], Any] | None = None,
    ) -> tuple[CoreAgent, ...]:
        """Register ``instances`` agents built by ``factory`` that share one stream: each
        message goes to exactly one of them, chosen by its partition key (the symbol by
        default), so the order of each key's messages holds. Instances are spread over the
        processors."""
        if (
            not isinstance(instances, int)
            or isinstance(instances, bool)
            or not 1 <= instances <= 64
        ):
            raise InvalidArgumentError(f"instances: {instances!r}; expected an integer 1..64")
        if not callable(factory):
            raise InvalidArgumentError(f"factory: {factory!r} is not callable; expected a callable")
        out = []
        with self._lock:
            loads = {p.index: len(p.agents) for p in self._processors}
            group = dict.fromkeys(loads, 0)  # instances of this group per processor
            try:
                for i in range(instances):
                    route = Route.build(message_types, symbols, filter, (i, instances), key)
                    target = factory()
                    base = name or _agent_name(target)
                    # Spread the group first (instances share the work), then by load.
                    affinity = min(loads, key=lambda k: (group[k], loads[k], k))
                    loads[affinity] += 1
                    group[affinity] += 1
                    out.append(
                        self._register(target, f"{base}#{i}", agent_type, route, affinity, factory)
                    )
            except BaseException:  # all instances or none: a partial group would lose keys
                for registered in out:
                    self.unregister_agent(registered)
                raise
        return tuple(out)

    def _register(
        self,
        agent: Any,
        name: str | None,
        agent_type: AgentType | str,
        route: Route,
        affinity: int | None,
        factory: Callable[[], Any] | None,
    ) -> CoreAgent:
        if not (hasattr(agent, "process_event") or hasattr(agent, "process_batch")):
            raise InvalidArgumentError(
                f"agent: {type(agent).__name__} has neither process_event nor process_batch; "
                "expected an EventProcessor"
            )
        kind = _agent_type(agent_type)
        name = name or _agent_name(agent)
        with self._lock:
            if any(a.name == name for a in self._agents.values()):
                raise InvalidArgumentError(f"name: {name!r} is taken; expected a unique agent name")
            n = len(self._processors)
            if affinity is None:
                index = min(range(n), key=lambda i: (len(self._processors[i].agents), i))
            elif isinstance(affinity, int) and not isinstance(affinity, bool) and 0 <= affinity < n:
                index = affinity
            else:
                raise InvalidArgumentError(
                    f"affinity: {affinity!r} is not a processor index; expected 0..{n - 1}"
                )
            runtime = _AgentRuntime(next(self._ids), name, kind, route, agent, factory, index)
            runtime.max_consecutive_errors = self.settings.max_consecutive_errors
            self._agents[runtime.id] = runtime
            processor = self._processors[index]
            lanes = self._lanes
            if lanes is not None:
                self._start_agent(runtime)
                # It receives what is published from now on, not the processor's backlog.
                runtime.joined = (lanes.priority.cursor, lanes.normal.cursor)
                if processor.running and processor._retiring:  # its last agent just left
                    if threading.current_thread() is processor._thread:
                        processor._retiring = False
                    else:
                        processor.join()
            processor.set_agents((*processor.agents, runtime))
            if lanes is not None and not processor.running:
                processor.start()
            if lanes is not None:
                runtime.running()
            return runtime.snapshot(processor.lag())

    def _start_agent(self, agent: _AgentRuntime) -> None:
        agent.joined = None  # sequences start anew with each run's lanes
        try:
            agent.start()
        except Exception as e:
            agent._failed(e, "on_start")
            agent.status = AgentStatus.FAILED
            agent.failed_at_ns = time.monotonic_ns()

    def unregister_agent(self, agent: CoreAgent | int | str) -> CoreAgent:
        """Remove an agent (also while running); returns its last record.

        Once this returns the agent is not called again (a call in progress on its processor
        is waited for, up to ``failure_timeout_ms``) and its ``on_stop`` has run. A processor
        left without agents ends and stops gating the lanes.
        """
        with self._lock:
            runtime = self._find(agent)
            processor = self._processors[runtime.processor]
            processor.set_agents(tuple(a for a in processor.agents if a is not runtime))
            del self._agents[runtime.id]
            started = runtime.status in (
                AgentStatus.RUNNING,
                AgentStatus.DEGRADED,
                AgentStatus.FAILED,
            )
            runtime.status = AgentStatus.STOPPED  # no delivery to it starts from now on
            if not processor.agents and processor.running:
                processor.request_stop(drain=False)  # it ends at its next loop
        if threading.current_thread() is processor._thread:
            runtime.cut_short()  # it unregistered itself (or a neighbour) mid-batch
        else:
            timeout = self.settings.failure_timeout_ms / 1000
            if not processor.wait_not_in(runtime, timeout):
                log.warning("unregister: agent %s still busy after %s s", runtime.name, timeout)
        if started:  # on_stop once per on_start: not for an agent never started or stopped
            runtime.stop()
        return runtime.snapshot(0)

    def _find(self, agent: CoreAgent | int | str) -> _AgentRuntime:
        if isinstance(agent, CoreAgent):
            agent = agent.id
        if isinstance(agent, str):
            for a in self._agents.values():
                if a.name == agent:
                    return a
        elif agent in self._agents:
            return self._agents[agent]
        raise AgentNotFoundError(f"agent {agent!r}: no registered agent has that id or name")

    def get_agent(self, agent: CoreAgent | int | str) -> CoreAgent:
        """The current record of an agent (by record, id or name)."""
        runtime = self._find(agent)
        return runtime.snapshot(self._processors[runtime.processor].lag())

    def agent_object(self, agent: CoreAgent | int | str) -> Any:
        """The live agent object (a restart with a factory replaces it with a new one)."""
        return self._find(agent).target

    def agents(self) -> tuple[CoreAgent, ...]:
        """Current records of every registered agent."""
        return tuple(
            a.snapshot(self._processors[a.processor].lag()) for a in list(self._agents.values())
        )

    # -- waiting and statistics -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every running processor has handled everything published so far."""
        lanes = self._lanes
        if lanes is None:
            return
        targets = (lanes.priority.cursor, lanes.normal.cursor)
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self._processors:
            while p.running and (pollers := p._pollers) is not None:
                prio, normal = pollers
                if prio.sequence >= targets[0] and normal.sequence >= targets[1]:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeoutError(
                        f"flush: processor {p.index} behind after {timeout} s "
                        f"(lag {p.lag()} messages); expected it to catch up"
                    )
                time.sleep(0.0002)

    def get_statistics(self) -> EngineStatistics:
        """A snapshot of the engine's counters."""
        lanes = self._lanes
        end = self._stopped_ns or time.monotonic_ns()
        uptime = (end - self._started_ns) / 1e9 if self._started_ns else 0.0
        by_type: dict[MessageType, int] = dict.fromkeys(MessageType, 0)
        utilization = 0.0
        if lanes is not None:
            counts = lanes.native.counts()
            n = lanes.normal
            utilization = 1.0 - n.remaining_capacity() / n.capacity if self._any_consumer() else 0.0
            self._peak_utilization = max(self._peak_utilization, utilization)
        else:
            counts = self._last_counts
        for t in MessageType:
            by_type[t] = int(counts[int(t)])
        published = sum(by_type.values())
        agents = self.agents()
        delivered = sum(a.stats.messages for a in agents)
        errors = sum(a.stats.errors for a in agents)
        latency = None
        if self._latency is not None:
            c, lo, mean, p50, p90, p99, p999, hi = self._latency._snapshot()
            latency = LatencyStatistics(
                count=c, min=lo, mean=mean, p50=p50, p90=p90, p99=p99, p999=p999, max=hi
            )
        return EngineStatistics(
            running=self.running,
            uptime_s=uptime,
            messages_published=published,
            messages_processed=max((p.messages for p in self._processors), default=0),
            messages_delivered=delivered,
            messages_per_second=published / uptime if uptime > 0 else 0.0,
            messages_by_type=by_type,
            latency=latency,
            buffer_utilization=utilization,
            peak_buffer_utilization=self._peak_utilization,
            errors=errors,
            error_rate=errors / delivered if delivered else 0.0,
            dropped=sum(a.stats.dropped for a in agents),
            agents=agents,
        )

    def _any_consumer(self) -> bool:
        return any(p.running for p in self._processors)

    # -- health -----------------------------------------------------------------------------

    def _monitor_loop(self) -> None:
        s = self.settings
        interval = s.heartbeat_interval_ms / 1000
        while not self._monitor_stop.wait(interval):
            try:
                self.check_health()
            except Exception:  # the monitor must outlive any one bad check
                log.exception("health monitor: check failed")

    def check_health(self) -> None:
        """Update every agent's status from heartbeats and errors; restart failed agents whose
        backoff has passed. The health monitor calls this every heartbeat interval."""
        s = self.settings
        now_wall = time.time_ns()
        now = time.monotonic_ns()
        with self._lock:
            for agent in list(self._agents.values()):
                p = self._processors[agent.processor]
                assess(agent, p, s, now_wall, now)
