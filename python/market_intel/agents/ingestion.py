"""``DataIngestionAgent``: a feed (a recording, a tick file, a WebSocket, a FIX session)
turned into engine messages, validated, booked and published under a backpressure policy.

The agent owns a reader thread. For each item its source yields:

- an update (``QuoteUpdate``, ``TradeUpdate``, ``BookUpdate``) is checked by the
  ``Validator``: rejected updates are counted and dropped, flagged ones are published with
  ``metadata["issues"]``. Book updates go through the ``BookManager``: the book's top is
  published as a ``QUOTE`` whenever it changes, and the update itself as ``DEPTH`` or
  ``SNAPSHOT`` market data (``publish_book_updates``);
- a ``FeedEvent`` (connected, gap, resync, ...) is published as an ``EVENT`` message
  ``feed.<code>``; a gap or resync also unsyncs the books it concerns;
- a ``MalformedFrameError`` is counted as ``ValidationIssue.MALFORMED`` and its text kept as
  the last error; the feed goes on.

Streams that go quiet for the policy's ``stale_after_s`` are reported as ``feed.stale``
events; a recorded source (``source.recorded`` true) is judged on its own clock, a live one
on the wall clock.

If the source raises, the agent publishes a ``feed.failed`` ``EVENT`` (severity ERROR, HIGH
priority), keeps the error in its statistics and stops reading: nothing fails silently.
``CoreEngine.stop`` calls ``on_drain``: the reader stops, waiting quotes are published, and
the engine then drains everything that was published.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from market_intel.adapters.backpressure import (
    BackpressurePolicy,
    BackpressureStatistics,
    FeedPublisher,
)
from market_intel.adapters.book import BookManager, OrderBook
from market_intel.adapters.normalize import BookUpdate, FeedEvent, FeedItem
from market_intel.adapters.validation import (
    ValidationIssue,
    ValidationPolicy,
    ValidationStatistics,
    Validator,
)
from market_intel.enums import MessageType, Priority, Severity
from market_intel.errors import InvalidArgumentError, MalformedFrameError
from market_intel.messages import CoreMessage, Event

if TYPE_CHECKING:
    from market_intel.engine import CoreEngine
    from market_intel.messages import Control

__all__ = ["DataIngestionAgent", "DataIngestionAgentConfig", "IngestionStatistics"]

log = logging.getLogger("market_intel.ingestion")

_SEVERITY: Final = {
    "gap": Severity.WARNING,
    "resync": Severity.WARNING,
    "disconnected": Severity.WARNING,
    "stale": Severity.WARNING,
    "failed": Severity.ERROR,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DataIngestionAgentConfig:
    """How a ``DataIngestionAgent`` publishes what its source yields."""

    name: str = "ingest"
    """The agent's name, and the ``source`` of every message it publishes."""
    backpressure: BackpressurePolicy = BackpressurePolicy.BLOCK
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    books: bool = True
    """Build L2 books from book updates and publish each change of the top as a quote."""
    publish_book_updates: bool = True
    """Publish book updates themselves as ``DEPTH`` / ``SNAPSHOT`` market data."""
    deterministic_ids: bool = False
    """Number messages 1, 2, 3, ... and stamp ``created_ns`` with the receive time, so a
    recording gives the same messages on every run (the default uses the engine's ids and
    the clock)."""
    stale_check_interval_s: float = 1.0
    drain_timeout_s: float = 10.0
    """How long ``CoreEngine.stop`` waits for the reader to leave its source."""

    def __post_init__(self) -> None:
        if not self.name:
            raise InvalidArgumentError("DataIngestionAgentConfig.name: ''; expected a name")
        try:
            object.__setattr__(self, "backpressure", BackpressurePolicy(self.backpressure))
        except ValueError:
            raise InvalidArgumentError(
                f"DataIngestionAgentConfig.backpressure: {self.backpressure!r}; expected one of "
                + ", ".join(p.value for p in BackpressurePolicy)
            ) from None
        if not self.drain_timeout_s > 0:
            raise InvalidArgumentError(
                f"DataIngestionAgentConfig.drain_timeout_s: {self.drain_timeout_s!r}; "
                "expected seconds > 0"
            )
        if not self.stale_check_interval_s > 0:
            raise InvalidArgumentError(
                "DataIngestionAgentConfig.stale_check_interval_s: "
                f"{self.stale_check_interval_s!r}; expected seconds > 0"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestionStatistics:
    """A ``DataIngestionAgent``'s counters at one moment."""

    items: int
    """Items read from the source (updates, feed events, malformed frames)."""
    updates: int
    published: int
    """Messages that went into the engine (updates, book tops, events)."""
    book_tops: int
    snapshots_fetched: int
    """Snapshots fetched to resync books after gaps."""
    feed_events: int
    malformed: int
    running: bool
    finished: bool
    """The source ran out (a recording's end) and everything was published."""
    error: str | None
    """Why the source failed, if it did."""
    last_malformed: str | None
    validation: ValidationStatistics
    backpressure: BackpressureStatistics
    source: dict[str, Any] = field(default_factory=dict)
    """The source's own statistics, when it offers ``statistics()``."""


class DataIngestionAgent:
    """Read a feed on a thread of its own and publish it into an engine.

    Args:
        engine: The engine to publish into (register this agent with the same engine).
        source: An iterable of ``FeedItem``s: a recording reader, a tick-file reader, a
            WebSocket feed's blocking iterator, a FIX market-data session. Optional
            attributes: ``close()`` (called to stop a live source), ``statistics()``,
            ``recorded`` (true for recordings: staleness is judged on their clock).
        config: Publishing options.
        snapshots: Fetches a book snapshot for ``(venue, symbol)`` when a book finds a gap
            (``adapters.snapshots.BinanceSnapshots``); the book resyncs on it, and the diffs
            buffered meanwhile chain on. Without one, a gapped book waits for the venue's
            next snapshot.
    """

    def __init__(
        self,
        engine: CoreEngine,
        source: Iterable[FeedItem],
        config: DataIngestionAgentConfig | None = None,
        *,
        snapshots: Callable[[str, str], BookUpdate] | None = None,
    ) -> None:
        self.config = config or DataIngestionAgentConfig()
        self.name = self.config.name
        self.engine = engine
        self.source = source
        self.validator = Validator(self.config.validation)
        self.books = BookManager(snapshots=snapshots)
        self.publisher = FeedPublisher(engine, self.config.backpressure, source=self.name)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._finished = threading.Event()
        self._error: str | None = None
        self._last_malformed: str | None = None
        self._items = self._updates = self._published = self._tops = 0
        self._events = self._malformed = 0
        self._next_id = 0
        self._last_stale_check = 0
        self._feed_now = 0
        self._recorded = bool(getattr(source, "recorded", False))

    # -- engine hooks -----------------------------------------------------------------------

    def on_running(self) -> None:
        """Start the reader thread (the engine takes messages now)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._finished.clear()
        self._thread = threading.Thread(target=self._run, name=f"mi-{self.name}", daemon=True)
        self._thread.start()

    def on_drain(self) -> None:
        """Stop reading, publish the quotes held back by backpressure, and return."""
        self._stop.set()
        self._paused.clear()
        close = getattr(self.source, "close", None)
        # A generator cannot be closed from another thread while it runs: the reader leaves
        # it at its next item and closes it itself.
        if callable(close) and not isinstance(self.source, types.GeneratorType):
            try:
                close()
            except Exception:
                log.exception("ingestion %s: closing the source raised", self.name)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.config.drain_timeout_s)
            if thread.is_alive():  # a source blocked in a read that close() cannot cut short
                log.warning(
                    "ingestion %s: the reader is still in its source after %s s; stopping "
                    "without it (what it publishes from now on is refused)",
                    self.name,
                    self.config.drain_timeout_s,
                )
                return
        if self.engine.running:
            self.publisher.flush(block=True)

    def on_stop(self) -> None:
        """Stop the reader (if ``on_drain`` has not already)."""
        self.on_drain()

    def process_event(self, message: CoreMessage) -> None:
        """Obey ``CONTROL`` commands addressed to the agent: ``<name>.pause``, ``.resume``."""
        payload: Control = message.payload  # type: ignore[assignment]
        command = getattr(payload, "command", "")
        if command == f"{self.name}.pause":
            self._paused.set()
        elif command == f"{self.name}.resume":
            self._paused.clear()

    # -- queries ----------------------------------------------------------------------------

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """Return the L2 book of a venue's symbol (``None`` before any book update)."""
        return self.books.book(venue, symbol)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until a finite source is exhausted and published; returns whether it was."""
        return self._finished.wait(timeout)

    def statistics(self) -> IngestionStatistics:
        """Return the agent's counters, its validator's, its publisher's and its source's."""
        stats = getattr(self.source, "statistics", None)
        source_stats: dict[str, Any] = {}
        if callable(stats):
            source_stats = _as_dict(stats())
        thread = self._thread
        return IngestionStatistics(
            items=self._items,
            updates=self._updates,
            published=self._published,
            book_tops=self._tops,
            snapshots_fetched=self.books.snapshots_fetched,
            feed_events=self._events,
            malformed=self._malformed,
            running=thread is not None and thread.is_alive(),
            finished=self._finished.is_set(),
            error=self._error,
            last_malformed=self._last_malformed,
            validation=self.validator.statistics(),
            backpressure=self.publisher.statistics(),
            source=source_stats,
        )

    # -- the reader -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            for item in self._items_of(self.source):
                self._handle(item)
            if isinstance(self.source, types.GeneratorType):
                self.source.close()
            if not self._stop.is_set():
                self.publisher.flush(block=True)
                self._finished.set()
        except Exception as e:  # the source or the engine failed: say so, loudly
            error = f"{type(e).__name__}: {e}"
            log.error("ingestion %s: the feed failed: %s", self.name, error)
            if self.engine.running:
                try:
                    self._publish_event(FeedEvent(venue="", code="failed", text=error))
                except Exception:  # the engine stopped meanwhile; the statistics keep it
                    log.exception("ingestion %s: could not publish the failure", self.name)
            self._error = error

    def _items_of(self, source: Iterable[FeedItem]) -> Iterator[FeedItem]:
        """The source's items until a stop; an item once read is always handled."""
        iterator = iter(source)
        while not self._stop.is_set():
            while self._paused.is_set() and not self._stop.is_set():
                time.sleep(0.01)
            try:
                item = next(iterator)
            except StopIteration:
                return
            yield item

    def _handle(self, item: FeedItem) -> None:
        self._items += 1
        if isinstance(item, MalformedFrameError):
            self._malformed += 1
            self._last_malformed = str(item)
            self.validator.record(ValidationIssue.MALFORMED)
            return
        if isinstance(item, FeedEvent):
            self._feed_event(item)
            return
        self._updates += 1
        if item.receive_ns > self._feed_now:
            self._feed_now = item.receive_ns
        verdict = self.validator.check(item)
        if verdict.accepted:
            if isinstance(item, BookUpdate) and self.config.books:
                if self.config.publish_book_updates:
                    self._publish(item.to_message(**self._stamp(verdict.flags)))
                self._book(item)
            else:
                self._publish(item.to_message(**self._stamp(verdict.flags)))
        self._check_stale()

    def _book(self, update: BookUpdate) -> None:
        top, events = self.books.apply(update)
        for event in events:
            if event.code == "gap":
                self.validator.record(ValidationIssue.GAP)
            self._publish_event(event)
        if top is not None:
            self._tops += 1
            self._publish(top.to_message(**self._stamp("")))

    def _feed_event(self, event: FeedEvent) -> None:
        if event.code in ("gap", "resync"):
            if event.code == "gap":
                self.validator.record(ValidationIssue.GAP)
                log.warning("ingestion %s: gap %s %s", self.name, event.venue, event.text)
            for book_event in self.books.invalidate(event.venue, event.symbol, event.text):
                self._publish_event(book_event)
            if event.symbol:
                self.validator.forget(event.venue, event.symbol)
        self._publish_event(event)

    def _check_stale(self) -> None:
        now = self._feed_now if self._recorded else time.time_ns()
        if now - self._last_stale_check < self.config.stale_check_interval_s * 1e9:
            return
        self._last_stale_check = now
        for venue, symbol in self.validator.stale(now):
            self._publish_event(
                FeedEvent(
                    venue=venue,
                    code="stale",
                    symbol=symbol,
                    text=f"nothing for {self.config.validation.stale_after_s} s",
                    receive_ns=now,
                )
            )

    def _stamp(self, flags: str) -> dict[str, Any]:
        """The ``to_message`` options of the next message: source, id, flagged issues."""
        stamp: dict[str, Any] = {"source": self.name}
        if flags:
            stamp["metadata"] = {"issues": flags}
        if self.config.deterministic_ids:
            self._next_id += 1
            stamp["message_id"] = self._next_id
        return stamp

    def _publish(self, message: CoreMessage) -> None:
        if self.publisher.publish(message):
            self._published += 1

    def _publish_event(self, event: FeedEvent) -> None:
        self._events += 1
        severity = _SEVERITY.get(event.code, Severity.INFO)
        where = ":".join(p for p in (event.venue, event.symbol) if p)
        payload = Event(
            code=f"feed.{event.code}", severity=severity, text=f"{where} {event.text}".strip()
        )
        priority = Priority.HIGH if severity >= Severity.WARNING else Priority.NORMAL
        if self.config.deterministic_ids:
            self._next_id += 1
            message = CoreMessage(
                MessageType.EVENT,
                payload,
                priority=priority,
                source=self.name,
                id=self._next_id,
                created_ns=event.receive_ns,
            )
        else:
            message = CoreMessage(MessageType.EVENT, payload, priority=priority, source=self.name)
        if self.publisher.publish(message):
            self._published += 1


def _as_dict(value: object) -> dict[str, Any]:
    if isinstance(value, msgspec.Struct):
        return msgspec.structs.asdict(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return dict(value)
    return {"value": value}
