"""Frozen statistics snapshots of rings, consumers and latencies."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConsumerStatistics", "LatencyStatistics", "RingStatistics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RingStatistics:
    """A ring at one moment."""

    cursor: int
    """Highest published (single producer) or claimed (multi producer) sequence."""
    capacity: int
    remaining_capacity: int
    """Slots free for producers now."""
    published: int
    """Records published since the ring was created."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerStatistics:
    """One consumer at one moment."""

    consumer_id: int
    name: str
    sequence: int
    """Last sequence the consumer released."""
    lag: int
    """Published records the consumer has not released yet."""
    events: int
    batches: int
    average_batch_size: float
    errors: int
    pid: int
    active: bool
    """True while it gates producers."""
    removed: bool
    """True if its process died and it was removed from gating."""
    depends_on: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyStatistics:
    """Latency percentiles in nanoseconds."""

    count: int
    min: int
    mean: float
    p50: int
    p90: int
    p99: int
    p999: int
    max: int
