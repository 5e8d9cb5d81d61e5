"""Vectorized market data agents: count, check and summarise by symbol."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from market_intel.enums import MarketDataKind, MessageType
from market_intel.routing import MessageBatch
from market_intel.summary import SequenceCheck, SequenceReport, SymbolStats, SymbolSummary

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


_MIX = np.uint64(0x9E3779B97F4A7C15)


def _keys16(column: np.ndarray) -> np.ndarray:
    """One uint64 per 16-byte string (its two halves mixed): equal strings, equal keys."""
    words = np.ascontiguousarray(column).view(np.uint64).reshape(-1, 2)
    return words[:, 0] ^ (words[:, 1] * _MIX)


def _value_counts(column: np.ndarray, known: dict[int, bytes]) -> dict[bytes, int]:
    """Counts of each value of a 16-byte string column: compare keys with those seen before
    (one vectorized comparison each), sort only what is new."""
    keys = _keys16(column)
    out: dict[bytes, int] = {}
    rest = np.ones(len(keys), dtype=bool)
    for key, value in known.items():
        hit = keys == np.uint64(key)
        n = int(np.count_nonzero(hit))
        if n:
            out[value] = n
            rest &= ~hit
    if rest.any():
        new_keys, first, counts = np.unique(keys[rest], return_index=True, return_counts=True)
        values = column[rest][first]
        for k, v, c in zip(new_keys.tolist(), values.tolist(), counts.tolist(), strict=True):
            known[int(k)] = v
            out[v] = out.get(v, 0) + c
    return out


class MarketDataCounterAgent:
    """Count market data by kind and venue, and count crossed quotes."""

    def __init__(self, name: str = "counter") -> None:
        self.name = name
        self._messages = 0
        self._market_data = 0
        self._batches = 0
        self._crossed = 0
        self._kinds = np.zeros(256, dtype=np.int64)
        self._venues: Counter[bytes] = Counter()
        self._venue_keys: dict[int, bytes] = {}

    def process_batch(self, batch: MessageBatch) -> None:
        """Count one batch (columns only: no row is copied)."""
        records = batch.records
        self._batches += 1
        self._messages += len(records)
        md = records["type"] == MessageType.MARKET_DATA
        kinds = records["kind"][md]
        self._market_data += len(kinds)
        self._kinds += np.bincount(kinds, minlength=256)
        for venue, n in _value_counts(records["venue"][md], self._venue_keys).items():
            self._venues[venue] += n
        quote = md & (records["kind"] == MarketDataKind.QUOTE)
        self._crossed += int(np.count_nonzero(records["bid"][quote] > records["ask"][quote]))

    def report(self) -> CounterReport:
        """The counts so far."""
        return CounterReport(
            messages=self._messages,
            market_data=self._market_data,
            by_kind={k: int(self._kinds[k]) for k in MarketDataKind},
            by_venue={v.decode(): n for v, n in sorted(self._venues.items())},
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
