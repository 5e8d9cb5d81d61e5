"""market-intel: an LMAX-Disruptor engine for Python, with a lock-free ring buffer in Rust.

The public API is what this module exports; everything else is private.
"""

from __future__ import annotations

from market_intel._core import (
    MAX_CONSUMERS,
    BatchEventProcessor,
    Claim,
    EventPoller,
    monotonic_ns,
)
from market_intel.disruptor import Disruptor, EventHandler, EventHandlerGroup
from market_intel.errors import (
    AlertedError,
    BatchTooLargeError,
    ConsumerDiedError,
    ConsumerFailedError,
    DtypeMismatchError,
    HandlerError,
    InsufficientCapacity,
    InvalidArgumentError,
    LayoutMismatchError,
    MarketIntelError,
    MemoryOptionWarning,
    ProducerConflictError,
    RecordError,
    RingClosedError,
    SegmentExistsError,
    SegmentNotFoundError,
    SharedMemoryError,
    StaleSegmentError,
    TooManyConsumersError,
    WaitTimeoutError,
)
from market_intel.ring import ChecksumHandler, LatencyHandler, RingBuffer
from market_intel.statistics import ConsumerStatistics, LatencyStatistics, RingStatistics
from market_intel.wait import WaitStrategy, WaitStrategyLike

__version__ = "0.1.0"

__all__ = [
    "MAX_CONSUMERS",
    "AlertedError",
    "BatchEventProcessor",
    "BatchTooLargeError",
    "ChecksumHandler",
    "Claim",
    "ConsumerDiedError",
    "ConsumerFailedError",
    "ConsumerStatistics",
    "Disruptor",
    "DtypeMismatchError",
    "EventHandler",
    "EventHandlerGroup",
    "EventPoller",
    "HandlerError",
    "InsufficientCapacity",
    "InvalidArgumentError",
    "LatencyHandler",
    "LatencyStatistics",
    "LayoutMismatchError",
    "MarketIntelError",
    "MemoryOptionWarning",
    "ProducerConflictError",
    "RecordError",
    "RingBuffer",
    "RingClosedError",
    "RingStatistics",
    "SegmentExistsError",
    "SegmentNotFoundError",
    "SharedMemoryError",
    "StaleSegmentError",
    "TooManyConsumersError",
    "WaitStrategy",
    "WaitStrategyLike",
    "WaitTimeoutError",
    "__version__",
    "monotonic_ns",
]
