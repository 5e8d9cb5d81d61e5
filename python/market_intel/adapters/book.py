"""L2 order books built from a snapshot plus diffs, as each venue documents it.

``OrderBook`` holds one symbol's price levels (exact ``Decimal`` prices and sizes, sorted)
and answers queries: best bid and ask, levels to a depth, size at a price, spread, mid.

``BookBuilder`` keeps one book in sync with its venue's rules:

- **Binance spot** (``binance``, ``binance-us``): diffs that arrive before the REST snapshot
  are buffered; diffs with ``u <= lastUpdateId`` are dropped; the first diff applied must
  have ``U <= lastUpdateId + 1 <= u``; after it each diff's ``U`` must be the previous
  ``u + 1``.
- **Binance futures** (``binance-usdm``, ``binance-coinm``): diffs with ``u < lastUpdateId``
  are dropped; the first diff applied must have ``U <= lastUpdateId <= u``; after it each
  diff's ``pu`` must be the previous ``u``.
- **Other venues** (Coinbase, Kraken, ...): a snapshot replaces the book, updates apply in
  arrival order; the feed reports lost frames (a ``gap`` or ``resync`` feed event), after
  which the book waits for the venue's next snapshot.

A broken chain is a gap: the book is marked unsynced, a ``gap`` feed event names the ids,
and the builder waits for a new snapshot (``BookManager`` fetches one at once when given a
``snapshots`` source, e.g. ``adapters.snapshots.BinanceSnapshots``, so a
live feed can fetch one), buffering the diffs that arrive meanwhile. A book is never
published from an unsynced state.

``BookManager`` keeps one builder per venue and symbol and returns the top of book as a
``QuoteUpdate`` whenever it changes, which the ingestion agent publishes as market data.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import StrEnum
from typing import Final

from sortedcontainers import SortedDict

from market_intel.adapters.normalize import BookUpdate, FeedEvent, QuoteUpdate
from market_intel.errors import FeedError, InvalidArgumentError, MalformedFrameError

__all__ = ["BookBuilder", "BookManager", "BookRule", "BookState", "OrderBook"]

Level = tuple[Decimal, Decimal]

_SPOT: Final = frozenset({"binance", "binance-us"})
_FUTURES: Final = frozenset({"binance-usdm", "binance-coinm"})


class BookRule(StrEnum):
    """How a venue's diffs chain onto its snapshot."""

    BINANCE_SPOT = "binance-spot"
    BINANCE_FUTURES = "binance-futures"
    SNAPSHOT_THEN_UPDATES = "snapshot-then-updates"

    @classmethod
    def for_venue(cls, venue: str) -> BookRule:
        """Return the rule a venue documents."""
        if venue in _SPOT:
            return cls.BINANCE_SPOT
        if venue in _FUTURES:
            return cls.BINANCE_FUTURES
        return cls.SNAPSHOT_THEN_UPDATES


class BookState(StrEnum):
    """Where a builder stands."""

    AWAITING_SNAPSHOT = "awaiting-snapshot"
    SYNCING = "syncing"
    """A snapshot is in; the first diff that bridges it has not arrived yet."""
    SYNCED = "synced"


class OrderBook:
    """One symbol's L2 book: price levels per side, exact and sorted."""

    __slots__ = ("_asks", "_bids", "exchange_ns", "last_update_id", "receive_ns", "symbol", "venue")

    def __init__(self, venue: str, symbol: str) -> None:
        self.venue = venue
        self.symbol = symbol
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self.last_update_id = 0
        self.exchange_ns = 0
        self.receive_ns = 0

    def clear(self) -> None:
        """Remove every level."""
        self._bids.clear()
        self._asks.clear()

    def apply(self, update: BookUpdate) -> None:
        """Apply levels (a snapshot replaces the book; a size of zero removes a level)."""
        if update.snapshot:
            self.clear()
        _set_levels(self._bids, update.bids)
        _set_levels(self._asks, update.asks)
        if update.last_update_id:
            self.last_update_id = update.last_update_id
        self.exchange_ns = update.exchange_ns or self.exchange_ns
        self.receive_ns = update.receive_ns or self.receive_ns

    def best_bid(self) -> Level | None:
        """Return the highest bid ``(price, size)``, or ``None`` when there is none."""
        return self._bids.peekitem(-1) if self._bids else None

    def best_ask(self) -> Level | None:
        """Return the lowest ask ``(price, size)``, or ``None`` when there is none."""
        return self._asks.peekitem(0) if self._asks else None

    def bids(self, depth: int | None = None) -> list[Level]:
        """Return bid levels from the best down, at most ``depth`` of them."""
        keys = self._bids.keys()
        count = len(keys) if depth is None else min(depth, len(keys))
        return [(keys[-1 - i], self._bids[keys[-1 - i]]) for i in range(count)]

    def asks(self, depth: int | None = None) -> list[Level]:
        """Return ask levels from the best up, at most ``depth`` of them."""
        keys = self._asks.keys()
        count = len(keys) if depth is None else min(depth, len(keys))
        return [(keys[i], self._asks[keys[i]]) for i in range(count)]

    def size_at(self, side: str, price: Decimal) -> Decimal:
        """Return the size resting at ``price`` on ``side`` (``"bid"`` or ``"ask"``), or 0."""
        if side not in ("bid", "ask"):
            raise InvalidArgumentError(f"OrderBook.size_at side: {side!r}; expected 'bid' or 'ask'")
        levels = self._bids if side == "bid" else self._asks
        size: Decimal = levels.get(price, Decimal(0))
        return size

    def spread(self) -> Decimal | None:
        """Return best ask minus best bid, or ``None`` when a side is empty."""
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else ask[0] - bid[0]

    def mid(self) -> Decimal | None:
        """Return the mean of the best bid and ask, or ``None`` when a side is empty."""
        bid, ask = self.best_bid(), self.best_ask()
        return None if bid is None or ask is None else (ask[0] + bid[0]) / 2

    def is_crossed(self) -> bool:
        """Tell whether the best bid is at or above the best ask."""
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def top(self) -> QuoteUpdate:
        """Return the top of book as a quote stamped with the book's last update."""
        bid, ask = self.best_bid(), self.best_ask()
        return QuoteUpdate(
            venue=self.venue,
            symbol=self.symbol,
            bid=None if bid is None else bid[0],
            bid_size=None if bid is None else bid[1],
            ask=None if ask is None else ask[0],
            ask_size=None if ask is None else ask[1],
            update_id=self.last_update_id,
            exchange_ns=self.exchange_ns,
            receive_ns=self.receive_ns,
        )

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.venue}:{self.symbol}, {len(self._bids)} bids, "
            f"{len(self._asks)} asks, best {self.best_bid()} / {self.best_ask()})"
        )


def _set_levels(levels: SortedDict, changes: Iterable[Level]) -> None:
    for price, size in changes:
        if size:
            levels[price] = size
        else:
            levels.pop(price, None)


class BookBuilder:
    """Keep one ``OrderBook`` in sync with its venue's snapshot and diff rules."""

    def __init__(
        self, venue: str, symbol: str, *, rule: BookRule | None = None, buffer_limit: int = 10_000
    ) -> None:
        if buffer_limit < 1:
            raise InvalidArgumentError(
                f"BookBuilder buffer_limit: {buffer_limit!r}; expected a count >= 1"
            )
        self.book = OrderBook(venue, symbol)
        self.rule = rule or BookRule.for_venue(venue)
        self.state = BookState.AWAITING_SNAPSHOT
        self.buffer_limit = buffer_limit
        self._pending: deque[BookUpdate] = deque()
        self._snapshot_id = 0
        self.applied = 0
        """Diffs and snapshots applied."""
        self.dropped = 0
        """Diffs older than the snapshot, dropped as the venue documents."""
        self.gaps = 0
        self.overflowed = 0
        """Buffered diffs discarded because the buffer was full while waiting for a snapshot."""

    @property
    def synced(self) -> bool:
        """Whether the book reflects the venue's book (a snapshot plus an unbroken chain)."""
        return self.state is BookState.SYNCED

    def apply(self, update: BookUpdate) -> list[FeedEvent]:
        """Apply a snapshot or a diff; return the feed events it caused (gaps, syncs)."""
        if update.snapshot:
            return self._snapshot(update)
        if self.state is BookState.AWAITING_SNAPSHOT:
            self._buffer(update)
            return []
        return self._diff(update)

    def invalidate(self, reason: str, receive_ns: int = 0) -> list[FeedEvent]:
        """Mark the book unsynced until the next snapshot (the feed lost frames)."""
        if self.state is BookState.AWAITING_SNAPSHOT:
            return []
        self.state = BookState.AWAITING_SNAPSHOT
        self._pending.clear()
        return [self._event("resync", reason, receive_ns)]

    def _snapshot(self, update: BookUpdate) -> list[FeedEvent]:
        self.book.apply(update)
        self.applied += 1
        self._snapshot_id = update.last_update_id
        events: list[FeedEvent] = []
        if self.rule is BookRule.SNAPSHOT_THEN_UPDATES:
            self.state = BookState.SYNCED
            self._pending.clear()
            return [self._event("synced", f"snapshot {update.last_update_id}", update.receive_ns)]
        self.state = BookState.SYNCING
        pending, self._pending = self._pending, deque()
        for diff in pending:
            events.extend(self._diff(diff))
        return events

    def _diff(self, update: BookUpdate) -> list[FeedEvent]:
        if self.rule is BookRule.SNAPSHOT_THEN_UPDATES:
            self.book.apply(update)
            self.applied += 1
            return []
        first, last = update.first_update_id, update.last_update_id
        if self.state is BookState.SYNCING:
            anchor = self._snapshot_id + (1 if self.rule is BookRule.BINANCE_SPOT else 0)
            if last < anchor:
                self.dropped += 1
                return []
            if first > anchor:
                return self._gap(
                    f"first diff {first}..{last} skips past snapshot {anchor - 1}", update
                )
            self.book.apply(update)
            self.applied += 1
            self.state = BookState.SYNCED
            return [self._event("synced", f"snapshot {self._snapshot_id}", update.receive_ns)]
        previous = self.book.last_update_id
        if self.rule is BookRule.BINANCE_SPOT:
            if last <= previous:
                self.dropped += 1
                return []
            if first != previous + 1:
                return self._gap(f"expected U={previous + 1}, got U={first}", update)
        elif update.previous_update_id != previous:
            if last <= previous:
                self.dropped += 1
                return []
            return self._gap(f"expected pu={previous}, got pu={update.previous_update_id}", update)
        self.book.apply(update)
        self.applied += 1
        return []

    def _gap(self, text: str, update: BookUpdate) -> list[FeedEvent]:
        self.gaps += 1
        self.state = BookState.AWAITING_SNAPSHOT
        self._pending.clear()
        self._buffer(update)
        return [self._event("gap", text, update.receive_ns)]

    def _buffer(self, update: BookUpdate) -> None:
        if len(self._pending) >= self.buffer_limit:
            self._pending.popleft()
            self.overflowed += 1
        self._pending.append(update)

    def _event(self, code: str, text: str, receive_ns: int) -> FeedEvent:
        return FeedEvent(
            venue=self.book.venue,
            code=code,
            symbol=self.book.symbol,
            text=text,
            receive_ns=receive_ns,
        )


class BookManager:
    """Books for every venue and symbol a feed carries, queryable from any thread."""

    def __init__(
        self,
        *,
        snapshots: Callable[[str, str], BookUpdate] | None = None,
        buffer_limit: int = 10_000,
    ) -> None:
        self._builders: dict[tuple[str, str], BookBuilder] = {}
        self._tops: dict[tuple[str, str], tuple[Level | None, Level | None]] = {}
        self._lock = threading.Lock()
        self._snapshots = snapshots
        self._buffer_limit = buffer_limit
        self.snapshots_fetched = 0
        """Snapshots fetched to resync books that found a gap."""

    def apply(self, update: BookUpdate) -> tuple[QuoteUpdate | None, list[FeedEvent]]:
        """Apply an update to its book; after a gap, fetch and apply a new snapshot.

        With a ``snapshots`` source, a book that finds a gap gets a new snapshot at once (the
        fetch runs outside the lock, so readers are not held up); the diffs buffered meanwhile
        chain onto it. A fetch that fails adds a ``snapshot_failed`` event, and the book waits
        for the venue's next snapshot.

        Returns:
            The new top of book when the book is synced and its best bid or ask (price or
            size) changed, else ``None``; and the feed events the update caused.
        """
        top, events = self._apply(update)
        if self._snapshots is None or not any(e.code == "gap" for e in events):
            return top, events
        try:
            snapshot = self._snapshots(update.venue, update.symbol)
        except (FeedError, MalformedFrameError) as e:
            failed = FeedEvent(
                venue=update.venue,
                code="snapshot_failed",
                symbol=update.symbol,
                text=str(e),
                receive_ns=update.receive_ns,
            )
            return top, [*events, failed]
        self.snapshots_fetched += 1
        resynced, more = self._apply(snapshot)
        return resynced or top, [*events, *more]

    def _apply(self, update: BookUpdate) -> tuple[QuoteUpdate | None, list[FeedEvent]]:
        key = (update.venue, update.symbol)
        with self._lock:
            builder = self._builders.get(key)
            if builder is None:
                builder = BookBuilder(update.venue, update.symbol, buffer_limit=self._buffer_limit)
                self._builders[key] = builder
            events = builder.apply(update)
            top = None
            if builder.synced:
                book = builder.book
                now = (book.best_bid(), book.best_ask())
                if self._tops.get(key) != now:
                    self._tops[key] = now
                    top = book.top()
            else:
                self._tops.pop(key, None)
        return top, events

    def invalidate(self, venue: str, symbol: str = "", reason: str = "") -> list[FeedEvent]:
        """Mark a venue's books (one symbol, or all when ``symbol`` is empty) unsynced."""
        with self._lock:
            events: list[FeedEvent] = []
            for (v, s), builder in self._builders.items():
                if v == venue and (not symbol or s == symbol):
                    events.extend(builder.invalidate(reason))
                    self._tops.pop((v, s), None)
            return events

    def depth(
        self, venue: str, symbol: str, levels: int | None = 10
    ) -> tuple[list[Level], list[Level]] | None:
        """Return a consistent copy of a book's bids and asks (best first), at most
        ``levels`` a side, or ``None`` before any update for it. Safe from any thread."""
        with self._lock:
            builder = self._builders.get((venue, symbol))
            if builder is None:
                return None
            return builder.book.bids(levels), builder.book.asks(levels)

    def top(self, venue: str, symbol: str) -> QuoteUpdate | None:
        """Return a book's top of book, or ``None`` unless the book is synced. Safe from
        any thread."""
        with self._lock:
            builder = self._builders.get((venue, symbol))
            return builder.book.top() if builder is not None and builder.synced else None

    def book(self, venue: str, symbol: str) -> OrderBook | None:
        """Return the live book of a venue's symbol, or ``None`` before any update for it.

        The feed's thread changes it as updates arrive: read it from that thread, after the
        feed ends, or use ``depth`` and ``top``, which copy under the manager's lock.
        """
        with self._lock:
            builder = self._builders.get((venue, symbol))
            return None if builder is None else builder.book

    def builder(self, venue: str, symbol: str) -> BookBuilder | None:
        """Return the builder of a venue's symbol (its state and counters)."""
        with self._lock:
            return self._builders.get((venue, symbol))

    def keys(self) -> list[tuple[str, str]]:
        """Return the ``(venue, symbol)`` pairs with a book."""
        with self._lock:
            return sorted(self._builders)
