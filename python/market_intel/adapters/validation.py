"""Checks on normalized updates, applied by policy, counted, and never fatal.

Every update an adapter parses goes through ``Validator.check`` before it is published.
Each problem found is an ``ValidationIssue``; the ``ValidationPolicy`` says what each issue does:

- ``ValidationAction.REJECT``: the update is dropped (counted, never published);
- ``ValidationAction.FLAG``: the update is published with the issue named in its message metadata
  (``metadata["issues"] = "crossed,precision"``) and counted;
- ``ValidationAction.ACCEPT``: the issue is counted only.

Issues and the default action:

==============  =======  ============================================================
issue           default  found when
==============  =======  ============================================================
MALFORMED       REJECT   a frame cannot be read (always rejected; reported by parsers)
NEGATIVE        REJECT   a negative size, or a price that is not positive
CROSSED         FLAG     best bid above best ask
LOCKED          FLAG     best bid equal to best ask
OUT_OF_ORDER    REJECT   an update id (or, without ids, exchange time) below the last seen
DUPLICATE       REJECT   an update id equal to the last seen for that stream
GAP             FLAG     a sequence gap (reported by books and feeds, which resync)
STALE           FLAG     no update on a stream for ``stale_after_s`` (see ``stale``)
PRECISION       FLAG     a quote or trade decimal whose float64 does not read back as the
                         same decimal (book levels stay exact ``Decimal`` in the book)
==============  =======  ============================================================

Streams are ordered per venue, symbol and update class (quotes, trades and book updates
are numbered separately by venues). Book snapshots are not ordered against diffs: a
snapshot restarts the chain, and the order book decides which diffs fit it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from market_intel.adapters.normalize import (
    BookUpdate,
    QuoteUpdate,
    TradeUpdate,
    Update,
    float_is_exact,
)
from market_intel.errors import InvalidArgumentError

__all__ = [
    "ValidationAction",
    "ValidationIssue",
    "ValidationPolicy",
    "ValidationStatistics",
    "ValidationVerdict",
    "Validator",
]


class ValidationIssue(StrEnum):
    """A problem found in an update or a feed."""

    MALFORMED = "malformed"
    NEGATIVE = "negative"
    CROSSED = "crossed"
    LOCKED = "locked"
    OUT_OF_ORDER = "out_of_order"
    DUPLICATE = "duplicate"
    GAP = "gap"
    STALE = "stale"
    PRECISION = "precision"


class ValidationAction(StrEnum):
    """What an issue does to the update that has it."""

    REJECT = "reject"
    FLAG = "flag"
    ACCEPT = "accept"


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationPolicy:
    """The action per issue, and when a quiet stream counts as stale."""

    negative: ValidationAction = ValidationAction.REJECT
    crossed: ValidationAction = ValidationAction.FLAG
    locked: ValidationAction = ValidationAction.FLAG
    out_of_order: ValidationAction = ValidationAction.REJECT
    duplicate: ValidationAction = ValidationAction.REJECT
    gap: ValidationAction = ValidationAction.FLAG
    stale: ValidationAction = ValidationAction.FLAG
    precision: ValidationAction = ValidationAction.FLAG
    stale_after_s: float = 5.0

    def __post_init__(self) -> None:
        for issue in ValidationIssue:
            if issue is ValidationIssue.MALFORMED:
                continue
            value = getattr(self, issue.value)
            if not isinstance(value, ValidationAction):
                try:
                    object.__setattr__(self, issue.value, ValidationAction(value))
                except ValueError:
                    raise InvalidArgumentError(
                        f"ValidationPolicy.{issue.value}: {value!r} is not an action; "
                        f"expected one of {', '.join(a.value for a in ValidationAction)}"
                    ) from None
        if not self.stale_after_s > 0:
            raise InvalidArgumentError(
                f"ValidationPolicy.stale_after_s: {self.stale_after_s!r}; expected seconds > 0"
            )

    def action(self, issue: ValidationIssue) -> ValidationAction:
        """Return what ``issue`` does under this policy."""
        if issue is ValidationIssue.MALFORMED:
            return ValidationAction.REJECT
        action: ValidationAction = getattr(self, issue.value)
        return action


@dataclass(frozen=True, slots=True)
class ValidationVerdict:
    """The outcome of one check."""

    accepted: bool
    issues: tuple[ValidationIssue, ...] = ()

    @property
    def flags(self) -> str:
        """The issues as the comma-separated text flagged messages carry."""
        return ",".join(issue.value for issue in self.issues)


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationStatistics:
    """Counters of one validator at one moment."""

    checked: int
    accepted: int
    rejected: int
    flagged: int
    issues: Mapping[str, int] = field(default_factory=dict)
    """Occurrences per issue name (every issue counted, whatever its action)."""


_OK: Final = ValidationVerdict(True)


class Validator:
    """Check updates against a ``ValidationPolicy``, remembering each stream's last id.

    Thread-safe: adapters on several threads may share one validator.
    """

    def __init__(self, policy: ValidationPolicy | None = None) -> None:
        self.policy = policy or ValidationPolicy()
        self._lock = threading.Lock()
        self._last_id: dict[tuple[str, str, str], int] = {}
        self._last_time: dict[tuple[str, str, str], int] = {}
        self._last_seen: dict[tuple[str, str], int] = {}
        self._stale: set[tuple[str, str]] = set()
        self._counts = dict.fromkeys(ValidationIssue, 0)
        self._checked = self._accepted = self._rejected = self._flagged = 0

    def check(self, update: Update) -> ValidationVerdict:
        """Check one update, count what is found, and say whether to publish it."""
        found: list[ValidationIssue] = []
        if isinstance(update, QuoteUpdate):
            stream = "quote"
            _check_quote(update, found)
            order_id = update.update_id
        elif isinstance(update, TradeUpdate):
            stream = "trade"
            if update.price <= 0 or update.size < 0:
                found.append(ValidationIssue.NEGATIVE)
            if not (float_is_exact(update.price) and float_is_exact(update.size)):
                found.append(ValidationIssue.PRECISION)
            order_id = update.trade_id
        else:
            stream = "book"
            _check_book(update, found)
            # A snapshot restarts a book's chain; the book itself decides which diffs fit it.
            order_id = 0 if update.snapshot else update.last_update_id
        key = (update.venue, update.symbol, stream)
        with self._lock:
            self._order(key, order_id, update.exchange_ns, found)
            if update.receive_ns:
                self._last_seen[(update.venue, update.symbol)] = update.receive_ns
                self._stale.discard((update.venue, update.symbol))
            return self._judge(found)

    def record(self, issue: ValidationIssue, count: int = 1) -> ValidationAction:
        """Count an issue found outside ``check`` (a malformed frame, a book's gap).

        Returns:
            What the policy says to do about it.
        """
        with self._lock:
            self._counts[issue] += count
            action = self.policy.action(issue)
            if action is ValidationAction.REJECT:
                self._rejected += count
            elif action is ValidationAction.FLAG:
                self._flagged += count
            return action

    def stale(self, now_ns: int) -> list[tuple[str, str]]:
        """Return the ``(venue, symbol)`` streams that went stale since the last call.

        A stream is stale when nothing arrived for ``policy.stale_after_s``; it is reported
        once per quiet spell and counted as ``ValidationIssue.STALE``.
        """
        limit = now_ns - int(self.policy.stale_after_s * 1e9)
        with self._lock:
            fresh = [
                key
                for key, seen in self._last_seen.items()
                if seen < limit and key not in self._stale
            ]
            self._stale.update(fresh)
            self._counts[ValidationIssue.STALE] += len(fresh)
        return fresh

    def forget(self, venue: str, symbol: str) -> None:
        """Drop a stream's ordering state (after a resync or a reconnect)."""
        with self._lock:
            for stream in ("quote", "trade", "book"):
                self._last_id.pop((venue, symbol, stream), None)
                self._last_time.pop((venue, symbol, stream), None)

    def statistics(self) -> ValidationStatistics:
        """Return the counters."""
        with self._lock:
            return ValidationStatistics(
                checked=self._checked,
                accepted=self._accepted,
                rejected=self._rejected,
                flagged=self._flagged,
                issues=MappingProxyType({i.value: n for i, n in self._counts.items()}),
            )

    def _order(
        self,
        key: tuple[str, str, str],
        order_id: int,
        exchange_ns: int,
        found: list[ValidationIssue],
    ) -> None:
        """Find ordering issues; only an update that is kept moves the stream's position."""
        if order_id:
            last = self._last_id.get(key)
            if last is not None and order_id == last:
                found.append(ValidationIssue.DUPLICATE)
            elif last is not None and order_id < last:
                found.append(ValidationIssue.OUT_OF_ORDER)
            elif not any(self.policy.action(i) is ValidationAction.REJECT for i in found):
                self._last_id[key] = order_id
        elif exchange_ns and key[2] != "book":
            last = self._last_time.get(key)
            if last is not None and exchange_ns < last:
                found.append(ValidationIssue.OUT_OF_ORDER)
            elif not any(self.policy.action(i) is ValidationAction.REJECT for i in found):
                self._last_time[key] = exchange_ns

    def _judge(self, found: list[ValidationIssue]) -> ValidationVerdict:
        self._checked += 1
        if not found:
            self._accepted += 1
            return _OK
        actions = [self.policy.action(issue) for issue in found]
        for issue in found:
            self._counts[issue] += 1
        if ValidationAction.REJECT in actions:
            self._rejected += 1
            return ValidationVerdict(False, tuple(found))
        self._accepted += 1
        flagged = tuple(
            i for i, a in zip(found, actions, strict=True) if a is ValidationAction.FLAG
        )
        if flagged:
            self._flagged += 1
        return ValidationVerdict(True, flagged)


def _check_quote(update: QuoteUpdate, found: list[ValidationIssue]) -> None:
    bid, ask, bid_size, ask_size = update.bid, update.ask, update.bid_size, update.ask_size
    exact = True
    negative = False
    for price in (bid, ask):
        if price is not None:
            negative = negative or price <= 0
            exact = exact and float_is_exact(price)
    for size in (bid_size, ask_size):
        if size is not None:
            negative = negative or size < 0
            exact = exact and float_is_exact(size)
    if negative:
        found.append(ValidationIssue.NEGATIVE)
    if bid is not None and ask is not None:
        if bid > ask:
            found.append(ValidationIssue.CROSSED)
        elif bid == ask:
            found.append(ValidationIssue.LOCKED)
    if not exact:
        found.append(ValidationIssue.PRECISION)


def _check_book(update: BookUpdate, found: list[ValidationIssue]) -> None:
    levels = (*update.bids, *update.asks)
    if any(price <= 0 or size < 0 for price, size in levels):
        found.append(ValidationIssue.NEGATIVE)
    if update.snapshot and update.bids and update.asks:
        best_bid = max((price for price, size in update.bids if size > 0), default=None)
        best_ask = min((price for price, size in update.asks if size > 0), default=None)
        if best_bid is not None and best_ask is not None:
            if best_bid > best_ask:
                found.append(ValidationIssue.CROSSED)
            elif best_bid == best_ask:
                found.append(ValidationIssue.LOCKED)
