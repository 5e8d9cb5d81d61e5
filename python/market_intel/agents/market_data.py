"""Vectorized market data agents: count, check and summarise by symbol."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from market_intel.enums import MarketDataKind, MessageType
from market_intel.routing import MessageBatch
from market_intel.summary import (
    SequenceCheck,
    SequenceReport,
    SymbolStats,
    SymbolSummary,
    _Groups,
)

__all__ = [
    "CounterReport",
    "MarketDataCounterAgent",
    "SequenceCheckAgent",
    "SymbolSummaryAgent",
]


@dataclass(frozen=True, slots=True)
class CounterReport:
    """What ``MarketDataCounterAgent`` counted.

    Attributes:
        messages: Every message it received.
        market_data: Market data messages.
        by_kind: Market data messages per kind.
        by_venue: Market data messages per venue.
        batches: Batches received.
        crossed_quotes: QUOTE rows whose bid is above their ask.
    """

    messages: int
    market_data: int
    by_kind: dict[MarketDataKind, int]
    by_venue: dict[str, int]
    batches: int
    crossed_quotes: int


class MarketDataCounterAgent:
    """Count market data by kind and venue, and count crossed quotes."""

    def __init__(self, name: str = "counter") -> None:
        self.name = name
        self._messages = 0
        self._market_data = 0
        self._batches = 0
        self._crossed = 0
        self._kinds = np.zeros(256, dtype=np.int64)
        self._venues = _Groups(("venue",))
        self._venue_counts = np.zeros(0, dtype=np.int64)

    def process_batch(self, batch: MessageBatch) -> None:
        """Count one batch (columns only: no row is copied)."""
        records = batch.records
        self._batches += 1
        self._messages += len(records)
        md = records["type"] == MessageType.MARKET_DATA
        kinds = records["kind"][md]
        self._market_data += len(kinds)
        self._kinds += np.bincount(kinds, minlength=256)
        ids = self._venues.ids(records)[md]
        counts = np.bincount(ids, minlength=len(self._venues.keys))
        self._venue_counts = np.pad(self._venue_counts, (0, len(counts) - len(self._venue_counts)))
        self._venue_counts += counts
        quote = md & (records["kind"] == MarketDataKind.QUOTE)
        self._crossed += int(np.count_nonzero(records["bid"][quote] > records["ask"][quote]))

    def report(self) -> CounterReport:
        """The counts so far."""
        return CounterReport(
            messages=self._messages,
            market_data=self._market_data,
            by_kind={k: int(self._kinds[k]) for k in MarketDataKind},
            by_venue={
                key[0].decode(): int(n)
                for key, n in sorted(zip(self._venues.keys, self._venue_counts, strict=True))
                if n
            },
            batches=self._batches,
            crossed_quotes=self._crossed,
        )


class SequenceCheckAgent:
    """Check that update and trade ids only increase per stream and receive times never go
    back; count gaps in trade ids."""

    def __init__(self, name: str = "sequence_check") -> None:
        self.name = name
        self._check = SequenceCheck()

    def process_batch(self, batch: MessageBatch) -> None:
        """Check one batch."""
        self._check.update(batch.records)

    def report(self) -> SequenceReport:
        """What the check found so far."""
        return self._check.snapshot()


class SymbolSummaryAgent:
    """Summarise market data per (venue, symbol): last trade price, last quote, exact traded
    volume, notional and VWAP."""

    def __init__(self, name: str = "summary") -> None:
        self.name = name
        self._summary = SymbolSummary()

    def process_batch(self, batch: MessageBatch) -> None:
        """Fold one batch into the summary."""
        self._summary.update(batch.records)

    def report(self) -> dict[tuple[str, str], SymbolStats]:
        """The summary so far, by (venue, symbol)."""
        return self._summary.snapshot()
