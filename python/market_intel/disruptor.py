"""``Disruptor``: build a graph of consumers over one ring, start it, and stop it with a drain.

::

    d = Disruptor(dtype, capacity=1024)
    d.handle_events_with(journal, replicate).then(business_logic)    # a diamond
    d.start()
    d.ring.publish(...)
    d.stop()          # drains every published event, then stops every consumer
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt

from market_intel import _core
from market_intel.ring import RingBuffer
from market_intel.wait import WaitStrategyLike

__all__ = ["Disruptor", "EventHandler", "EventHandlerGroup"]


class EventHandler(Protocol):
    """A consumer's handler, called once per batch on the processor's thread.

    ``batch`` is a read-only numpy view of the records (valid during the call only; copy what
    you keep), ``sequence`` the sequence of its first record. Optional methods: ``on_start()``,
    ``on_shutdown()`` and ``on_timeout(sequence)`` (with a processor ``timeout``).
    """

    def on_event(self, batch: np.ndarray, sequence: int, end_of_batch: bool) -> None: ...


HandlerLike = (
    EventHandler
    | Callable[[np.ndarray, int, bool], Any]
    | _core.ChecksumHandler
    | _core.LatencyHandler
)


class EventHandlerGroup:
    """Consumers added together; ``then`` adds consumers that run after all of them."""

    def __init__(self, disruptor: Disruptor, processors: list[_core.BatchEventProcessor]) -> None:
        self._disruptor = disruptor
        self.processors: tuple[_core.BatchEventProcessor, ...] = tuple(processors)

    def then(self, *handlers: HandlerLike, **options: Any) -> EventHandlerGroup:
        """Add consumers that see each event only after every consumer of this group has."""
        return self._disruptor._add(handlers, self.processors, options)

    def and_(self, other: EventHandlerGroup) -> EventHandlerGroup:
        """A group of this group's consumers and ``other``'s (to run something after both)."""
        return EventHandlerGroup(self._disruptor, [*self.processors, *other.processors])


class Disruptor:
    """A ring plus a dependency graph of ``BatchEventProcessor`` consumers.

    Consumers are registered when added, so they gate the producer (and see every event)
    from that moment even before ``start()``. Options given to ``handle_events_with`` and
    ``then`` (``wait``, ``max_batch``, ``timeout``, ``on_error``, ``retries``, ``core``, ...)
    apply to each consumer added by that call.
    """

    def __init__(
        self,
        dtype: npt.DTypeLike,
        capacity: int = 65536,
        *,
        producer: Literal["single", "multi"] = "single",
        wait: WaitStrategyLike = "blocking",
        name: str | None = None,
        **ring_options: Any,
    ) -> None:
        self.ring = RingBuffer(capacity, dtype, producer=producer, name=name, **ring_options)
        self._wait = wait
        self._processors: list[_core.BatchEventProcessor] = []
        self._started = False

    @property
    def processors(self) -> tuple[_core.BatchEventProcessor, ...]:
        """Every consumer, in the order added."""
        return tuple(self._processors)

    def handle_events_with(self, *handlers: HandlerLike, **options: Any) -> EventHandlerGroup:
        """Add consumers that read straight from the producer."""
        return self._add(handlers, (), options)

    def after(self, *consumers: _core.BatchEventProcessor | str) -> EventHandlerGroup:
        """A group of existing consumers, to add more after them with ``then``."""
        by_name = {p.name: p for p in self._processors}
        chosen = [by_name[c] if isinstance(c, str) else c for c in consumers]
        return EventHandlerGroup(self, chosen)

    def _add(
        self,
        handlers: Iterable[HandlerLike],
        after: Iterable[_core.BatchEventProcessor],
        options: dict[str, Any],
    ) -> EventHandlerGroup:
        if self._started:
            raise RuntimeError("Disruptor: consumers must be added before start()")
        options.setdefault("wait", self._wait)
        names: list[str] | None = options.pop("names", None)
        added = []
        for i, handler in enumerate(handlers):
            name = names[i] if names else f"{len(self._processors)}-{_handler_name(handler)}"
            processor = _core.BatchEventProcessor(
                self.ring, handler, name=name[:48], after=list(after), **options
            )
            self._processors.append(processor)
            added.append(processor)
        return EventHandlerGroup(self, added)

    def start(self) -> RingBuffer:
        """Start every consumer's thread; returns the ring to publish to."""
        for p in self._processors:
            p.start()
        self._started = True
        return self.ring

    def stop(self, timeout: float | None = None) -> None:
        """Shut the ring, let every consumer handle everything published, then stop them.

        Raises ``HandlerError`` (the first one) if a handler halted its processor, and
        ``WaitTimeoutError`` if draining takes longer than ``timeout`` seconds.
        """
        self.ring.shutdown()
        target = self.ring.cursor
        for p in self._processors:
            p.drain(target)
        errors: list[BaseException] = []
        for p in self._processors:
            try:
                p.join(timeout)
            except Exception as e:  # reported below: the first one is raised
                errors.append(e)
        for p in self._processors:
            if not p.running:
                p.close()
        self._started = False
        if errors:
            raise errors[0]

    def halt(self) -> None:
        """Stop every consumer after its current batch, leaving later events unhandled."""
        self.ring.shutdown()
        for p in self._processors:
            try:
                p.halt()
            finally:
                p.close()
        self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self.halt()
        self.ring.close()


def _handler_name(handler: object) -> str:
    if isinstance(handler, _core.ChecksumHandler):
        return "checksum"
    if isinstance(handler, _core.LatencyHandler):
        return "latency"
    return getattr(handler, "__name__", None) or type(handler).__name__
