"""Frozen statistics snapshots of rings, consumers, latencies and engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from market_intel.agent import CoreAgent
    from market_intel.enums import MessageType

__all__ = ["ConsumerStatistics", "EngineStatistics", "LatencyStatistics", "RingStatistics"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineStatistics:
    """A ``CoreEngine`` at one moment."""

    running: bool
    uptime_s: float
    """Seconds since ``start()`` (until ``stop()`` once stopped)."""
    messages_published: int
    messages_processed: int
    """Messages taken from the lanes by the busiest processor (each processor sees all)."""
    messages_delivered: int
    """Messages handed to agents, summed over agents."""
    messages_per_second: float
    """``messages_published / uptime_s``."""
    messages_by_type: dict[MessageType, int]
    """Published messages per type."""
    latency: LatencyStatistics | None
    """Publish-to-processed latency (with profiling on), in nanoseconds."""
    buffer_utilization: float
    """Fraction of the normal lane's slots published and not yet processed."""
    peak_buffer_utilization: float
    """Highest ``buffer_utilization`` any statistics call saw."""
    errors: int
    error_rate: float
    """Agent errors per message delivered."""
    dropped: int
    """Messages failed agents missed."""
    agents: tuple[CoreAgent, ...]
