"""Agents: the ``EventProcessor`` protocol users implement, the ``CoreAgent`` record the engine
reports, and the runtime state the engine keeps per agent.

An agent is any object with a ``name`` and either ``process_event(message)`` (called once per
message, in order) or ``process_batch(batch)`` (called once per batch with a ``MessageBatch``
whose records read as numpy columns). Optional hooks: ``on_start()`` and ``on_stop()``; and
for agents that publish (feeds, replays) ``on_running()``, called once the engine takes
messages (start publishing there), and ``on_drain()``, called by ``CoreEngine.stop`` before
the lanes close (return once the last message is published).

Lifecycle::

    STARTING ──> RUNNING <──> DEGRADED          (errors, or late heartbeats)
                    │            │
                    └──> FAILED <┘ ──(backoff)──> STARTING   (automatic restart)
    any ──> STOPPED                              (unregistered, or the engine stopped)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from market_intel import _core
from market_intel.enums import AgentStatus, AgentType, MessageType
from market_intel.errors import InvalidArgumentError
from market_intel.routing import MessageBatch, Route, partition_of

if TYPE_CHECKING:
    from market_intel.messages import CoreMessage

__all__ = ["AgentStatistics", "BatchProcessor", "CoreAgent", "EventProcessor"]

log = logging.getLogger("market_intel.agent")


@runtime_checkable
class EventProcessor(Protocol):
    """An agent handling one message at a time, on its processor's thread."""

    @property
    def name(self) -> str: ...

    def process_event(self, message: CoreMessage) -> None: ...


@runtime_checkable
class BatchProcessor(Protocol):
    """A vectorized agent handling whole batches (``batch.records`` are numpy columns)."""

    @property
    def name(self) -> str: ...

    def process_batch(self, batch: MessageBatch) -> None: ...


AgentLike = EventProcessor | BatchProcessor


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStatistics:
    """One agent's counters at one moment."""

    messages: int
    """Messages handed to the agent."""
    batches: int
    """Calls made (one per message for ``process_event`` agents, per batch otherwise)."""
    errors: int
    """Exceptions the agent raised."""
    consecutive_errors: int
    dropped: int
    """Messages the agent missed while failed (reported, never silent)."""
    processing_ns: int
    """Time spent inside the agent."""
    mean_processing_ns: float
    """``processing_ns`` per message."""
    lag: int
    """Messages published to the agent's processor and not yet handled by it."""
    restarts: int
    last_error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreAgent:
    """A registered agent as the engine sees it (a snapshot)."""

    id: int
    name: str
    agent_type: AgentType
    status: AgentStatus
    message_types: frozenset[MessageType]
    """The types it handles (all types when empty)."""
    stats: AgentStatistics
    last_heartbeat_ns: int
    """``time.time_ns()`` of the last sign of life of its processor (0 before the first)."""
    processor: int
    """Index of the processor thread it runs on."""
    thread_affinity: int | None
    """The CPU core its processor is pinned to, if any."""
    partition: tuple[int, int] | None
    """``(index, count)`` when it is one of several instances sharing a stream by key."""
    vectorized: bool
    restarts: int


class _AgentRuntime:
    """The engine's live state for one agent. Touched only with the GIL held."""

    def __init__(
        self,
        agent_id: int,
        name: str,
        agent_type: AgentType,
        route: Route,
        target: Any,
        factory: Callable[[], Any] | None,
        processor: int,
    ) -> None:
        self.id = agent_id
        self.name = name
        self.agent_type = agent_type
        self.route = route
        self.target = target
        self.factory = factory
        self.processor = processor
        self.core: int | None = None
        self.status = AgentStatus.STARTING
        self.vectorized = hasattr(target, "process_batch")
        self.messages = 0
        self.calls = 0
        self.errors = 0
        self.consecutive_errors = 0
        self.dropped = 0
        self.processing_ns = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.last_heartbeat_ns = 0
        self.failed_at_ns = 0
        self.max_consecutive_errors = 10
        self.joined: tuple[int, int] | None = None
        """Cursors of the (priority, normal) lanes when it was registered to a running engine:
        it receives only later messages."""
        self._partition_cache: dict[str, int] = {}
        self._delivering: Iterator[Any] | list[Any] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Call the agent's ``on_start`` (if any) and mark it running."""
        self.status = AgentStatus.STARTING
        hook = getattr(self.target, "on_start", None)
        if hook is not None:
            hook()
        self.consecutive_errors = 0
        self.status = AgentStatus.RUNNING
        self.last_heartbeat_ns = time.time_ns()

    def running(self) -> None:
        """Call the agent's ``on_running`` (if any): the engine takes messages now."""
        hook = getattr(self.target, "on_running", None)
        if hook is not None and self.status in (AgentStatus.RUNNING, AgentStatus.DEGRADED):
            try:
                hook()
            except Exception as e:
                self._failed(e, "on_running")
                self.status = AgentStatus.FAILED
                self.failed_at_ns = time.monotonic_ns()

    def drain(self) -> None:
        """Call the agent's ``on_drain`` (if any): a producing agent stops publishing."""
        hook = getattr(self.target, "on_drain", None)
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("agent %s: on_drain raised", self.name)

    def stop(self) -> None:
        """Call the agent's ``on_stop`` (if any) and mark it stopped."""
        hook = getattr(self.target, "on_stop", None)
        self.status = AgentStatus.STOPPED
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("agent %s: on_stop raised", self.name)

    def restart(self) -> None:
        """Count the restart; stop, rebuild from the factory (if registered with one), start."""
        self.restarts += 1
        hook = getattr(self.target, "on_stop", None)
        if hook is not None:
            try:
                hook()
            except Exception:
                log.exception("agent %s: on_stop raised during restart", self.name)
        if self.factory is not None:
            self.target = self.factory()
            self.vectorized = hasattr(self.target, "process_batch")
        self.start()
        self.running()

    @property
    def active(self) -> bool:
        """True while the agent takes messages."""
        return self.status in (AgentStatus.RUNNING, AgentStatus.DEGRADED)

    # -- delivery (on the processor thread) ------------------------------------------------

    def _failed(self, error: BaseException, where: str) -> None:
        self.errors += 1
        self.consecutive_errors += 1
        self.last_error = f"{type(error).__name__}: {error}"
        log.warning("agent %s: %s raised %s", self.name, where, self.last_error)
        if self.consecutive_errors >= self.max_consecutive_errors:
            if self.status != AgentStatus.FAILED:
                self.status = AgentStatus.FAILED
                self.failed_at_ns = time.monotonic_ns()
        elif self.status == AgentStatus.RUNNING:
            self.status = AgentStatus.DEGRADED

    def _succeeded(self) -> None:
        if self.consecutive_errors:
            self.consecutive_errors = 0
        if self.status == AgentStatus.DEGRADED:
            self.status = AgentStatus.RUNNING

    def _partition(self, key: str) -> int:
        p = self._partition_cache.get(key)
        if p is None:
            assert self.route.partition is not None
            p = partition_of(key, self.route.partition[1])
            self._partition_cache[key] = p
        return p

    def deliver_objects(self, messages: list[Any]) -> None:
        """Hand each selected message to ``process_event``; an exception costs one message."""
        t0 = time.perf_counter_ns()
        if self.route.wants_all():
            taken, taken_at_failure = self._deliver_all(list(messages))
        else:
            taken, taken_at_failure = self._deliver_routed(messages)
        self._delivering = None
        self.processing_ns += time.perf_counter_ns() - t0
        self.messages += taken
        self.calls += taken
        if taken > taken_at_failure:  # the last message it took went well
            self._succeeded()

    def _deliver_all(self, pending: list[Any]) -> tuple[int, int]:
        """Every message, through the native per-message loop; ``pending`` is this call's own
        list (``cut_short`` empties it)."""
        handle = self.target.process_event
        self._delivering = pending
        at = 0
        taken_at_failure = 0
        while True:
            at, error = _core._deliver(handle, pending, at)
            if error is None:
                break
            if not isinstance(error, Exception):
                raise error  # KeyboardInterrupt, SystemExit: not the agent's failure to count
            if at > taken_at_failure + 1:
                self.consecutive_errors = 0  # it handled messages since its last failure
            taken_at_failure = at
            m = pending[at - 1] if at - 1 < len(pending) else None
            self._failed(error, f"process_event(message id {getattr(m, 'id', '?')})")
            if self.status == AgentStatus.FAILED:
                self.dropped += max(len(pending) - at, 0)
                break
        return at, taken_at_failure

    def _deliver_routed(self, messages: list[Any]) -> tuple[int, int]:
        """The messages the route selects, filtered here, one call each."""
        route = self.route
        handle = self.target.process_event
        types = route.types
        symbols = route.symbols
        predicate = route.predicate
        partition = route.partition
        it = iter(messages)
        self._delivering = it
        taken = 0
        taken_at_failure = 0  # ``taken`` after the last failure: any more were handled well
        while True:
            m = None
            try:
                for m in it:
                    if types and m.type not in types:
                        continue
                    if symbols and getattr(m.payload, "symbol", None) not in symbols:
                        continue
                    if partition is not None:
                        key = m.partition_key if route.key == "symbol" else m.source
                        if self._partition(key) != partition[0]:
                            continue
                    if predicate is not None and not predicate(m):
                        continue
                    handle(m)
                    taken += 1
                break
            except Exception as e:  # the agent's failure costs this message, not the processor
                if taken > taken_at_failure:
                    self.consecutive_errors = 0  # it handled messages since its last failure
                taken += 1
                taken_at_failure = taken
                self._failed(e, f"process_event(message id {getattr(m, 'id', '?')})")
                if self.status == AgentStatus.FAILED:
                    self.dropped += sum(1 for _ in it)
                    break
        return taken, taken_at_failure

    def cut_short(self) -> None:
        """End the ``deliver_objects`` call in progress after the current message (called on
        the processor thread, from inside the agent, when it is unregistered)."""
        pending = self._delivering
        if isinstance(pending, list):
            pending.clear()
        elif pending is not None:
            for _ in pending:
                pass

    def deliver_batch(self, batch: MessageBatch) -> None:
        """Hand a batch to ``process_batch``."""
        t0 = time.perf_counter_ns()
        try:
            self.target.process_batch(batch)
        except Exception as e:  # the agent's failure costs this batch, not the processor
            self._failed(e, f"process_batch({len(batch)} messages from sequence {batch.sequence})")
        else:
            self._succeeded()
        self.processing_ns += time.perf_counter_ns() - t0
        self.messages += len(batch)
        self.calls += 1

    # -- reporting -----------------------------------------------------------------------

    def snapshot(self, lag: int) -> CoreAgent:
        """A ``CoreAgent`` record of the agent now."""
        stats = AgentStatistics(
            messages=self.messages,
            batches=self.calls,
            errors=self.errors,
            consecutive_errors=self.consecutive_errors,
            dropped=self.dropped,
            processing_ns=self.processing_ns,
            mean_processing_ns=self.processing_ns / self.messages if self.messages else 0.0,
            lag=lag,
            restarts=self.restarts,
            last_error=self.last_error,
        )
        return CoreAgent(
            id=self.id,
            name=self.name,
            agent_type=self.agent_type,
            status=self.status,
            message_types=self.route.types,
            stats=stats,
            last_heartbeat_ns=self.last_heartbeat_ns,
            processor=self.processor,
            thread_affinity=self.core,
            partition=self.route.partition,
            vectorized=self.vectorized,
            restarts=self.restarts,
        )


def _agent_name(agent: Any) -> str:
    name = getattr(agent, "name", None)
    if isinstance(name, str) and name:
        return name
    return type(agent).__name__


def _agent_type(value: AgentType | str) -> AgentType:
    if isinstance(value, AgentType):
        return value
    try:
        return AgentType[str(value).upper()]
    except KeyError:
        names = ", ".join(t.name.lower() for t in AgentType)
        raise InvalidArgumentError(
            f"agent_type: {value!r} is not an AgentType; expected one of {names}"
        ) from None
