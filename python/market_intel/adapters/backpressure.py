"""What a feed does when the engine's lane is full: a policy per adapter, always counted.

- ``BLOCK``: the reader waits for room (the venue's socket or the file waits with it);
  nothing is lost; each wait is counted.
- ``DROP``: the message is dropped and counted (per symbol too); a warning ``EVENT`` is
  published on the priority lane at most once a second while drops go on, so the loss is
  visible in the stream as well as in the statistics.
- ``CONFLATE``: quotes (``QUOTE`` market data: best bid and offer, book tops) waiting for
  room are kept, the latest per venue and symbol: a newer one replaces an older one (counted
  as conflated). They are published, in first-waiting order, as soon as there is room,
  before anything newer. Only the latest state of a quote is worth sending late; trades,
  depth, orders and every other message are never conflated: under this policy they wait
  for room as under ``BLOCK``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from market_intel.enums import MarketDataKind, MessageType, Priority, Severity
from market_intel.errors import InsufficientCapacity
from market_intel.messages import CoreMessage, Event, MarketData

if TYPE_CHECKING:
    from market_intel.engine import CoreEngine

__all__ = ["BackpressurePolicy", "BackpressureStatistics", "FeedPublisher"]

_WARN_EVERY_NS: Final = 1_000_000_000


class BackpressurePolicy(StrEnum):
    """What to do with a message when its lane is full."""

    BLOCK = "block"
    DROP = "drop"
    CONFLATE = "conflate"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackpressureStatistics:
    """A publisher's counters at one moment."""

    policy: BackpressurePolicy
    published: int
    blocked: int
    """Publishes that found the lane full and waited (``BLOCK``, and non-quotes under
    ``CONFLATE``)."""
    dropped: int
    conflated: int
    """Quotes replaced by a newer quote of the same key while waiting for room."""
    pending: int
    """Quotes waiting for room now."""
    dropped_by_symbol: dict[str, int] = field(default_factory=dict)


class FeedPublisher:
    """Publish into a running engine under a backpressure policy.

    Not thread-safe for publishing: one feed thread publishes through one publisher.
    ``statistics()`` may be read from any thread.
    """

    def __init__(
        self,
        engine: CoreEngine,
        policy: BackpressurePolicy | str = BackpressurePolicy.BLOCK,
        *,
        source: str = "",
    ) -> None:
        self.engine = engine
        self.policy = BackpressurePolicy(policy)
        self.source = source
        self._pending: dict[tuple[str, str, int], CoreMessage] = {}
        self._lock = threading.Lock()
        self._published = self._blocked = self._dropped = self._conflated = 0
        self._dropped_by_symbol: Counter[str] = Counter()
        self._last_warning_ns = 0
        self._warned_drops = 0

    def publish(self, message: CoreMessage) -> bool:
        """Publish one message under the policy; returns whether it went into a lane now.

        ``False`` means it was dropped (``DROP``) or is waiting, conflated (``CONFLATE``).
        """
        if self._pending and not self._flush_pending():
            return self._hold(message)
        try:
            self.engine.try_publish_message(message)
        except InsufficientCapacity:
            return self._full(message)
        self._published += 1
        return True

    def flush(self, *, block: bool = True) -> int:
        """Publish the quotes waiting under ``CONFLATE``; returns how many went out.

        With ``block`` the call waits for room for each of them (used when a feed stops, so
        the latest values are never lost) and first publishes a warning for drops not yet
        reported; without it, it stops at the first full lane.
        """
        sent = 0
        if block and self._dropped > self._warned_drops:
            self._warn(force=True)  # the drops not yet reported in the stream
        while self._pending:
            key, message = next(iter(self._pending.items()))
            if block:
                self.engine.publish_message(message)
            else:
                try:
                    self.engine.try_publish_message(message)
                except InsufficientCapacity:
                    break
            with self._lock:
                del self._pending[key]
            self._published += 1
            sent += 1
        return sent

    def statistics(self) -> BackpressureStatistics:
        """Return the counters."""
        with self._lock:
            return BackpressureStatistics(
                policy=self.policy,
                published=self._published,
                blocked=self._blocked,
                dropped=self._dropped,
                conflated=self._conflated,
                pending=len(self._pending),
                dropped_by_symbol=dict(self._dropped_by_symbol),
            )

    def _flush_pending(self) -> bool:
        self.flush(block=False)
        return not self._pending

    def _full(self, message: CoreMessage) -> bool:
        if self.policy is BackpressurePolicy.DROP:
            symbol = _symbol(message)
            with self._lock:
                self._dropped += 1
                self._dropped_by_symbol[symbol] += 1
            self._warn()
            return False
        if self.policy is BackpressurePolicy.CONFLATE and _key(message) is not None:
            return self._hold(message)
        self._blocked += 1
        self.engine.publish_message(message)
        self._published += 1
        return True

    def _hold(self, message: CoreMessage) -> bool:
        key = _key(message)
        if key is None:  # not a quote: wait for room behind the held quotes
            self.flush(block=True)
            self._blocked += 1
            self.engine.publish_message(message)
            self._published += 1
            return True
        with self._lock:
            if key in self._pending:
                self._conflated += 1
                del self._pending[key]  # the newest goes last: it arrived last
            self._pending[key] = message
        return False

    def _warn(self, *, force: bool = False) -> None:
        now = time.monotonic_ns()
        if not force and now - self._last_warning_ns < _WARN_EVERY_NS:
            return
        self._last_warning_ns = now
        with self._lock:
            total = self._dropped
            new = total - self._warned_drops
            self._warned_drops = total
            worst = ", ".join(f"{s} {n}" for s, n in self._dropped_by_symbol.most_common(3))
        event = CoreMessage(
            MessageType.EVENT,
            Event(
                code="backpressure.drop",
                severity=Severity.WARNING,
                text=f"{self.source or 'feed'}: lane full, dropped {new} ({total} in all; {worst})",
            ),
            priority=Priority.HIGH,
            source=self.source,
        )
        try:
            self.engine.try_publish_message(event)
        except InsufficientCapacity:  # the priority lane is full too: the counters still say it
            self._warned_drops -= new


def _key(message: CoreMessage) -> tuple[str, str, int] | None:
    payload = message.payload
    if isinstance(payload, MarketData) and payload.kind is MarketDataKind.QUOTE:
        return (payload.venue, payload.symbol, int(payload.kind))
    return None


def _symbol(message: CoreMessage) -> str:
    symbol = getattr(message.payload, "symbol", "")
    return symbol if isinstance(symbol, str) else ""
