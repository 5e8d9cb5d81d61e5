"""The ring buffer, its consumers and native handlers, with Python conveniences on top."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import numpy.typing as npt

from market_intel import _core
from market_intel.statistics import ConsumerStatistics, LatencyStatistics, RingStatistics

__all__ = ["ChecksumHandler", "LatencyHandler", "RingBuffer"]


class RingBuffer(_core.RingBuffer):
    """A lock-free ring of fixed-size records described by a numpy dtype.

    Create a private ring with ``RingBuffer(capacity, dtype)``, a shared one with
    ``RingBuffer(capacity, dtype, name="ticks")``, and attach to a shared one from another
    process with ``RingBuffer.attach("ticks")``. ``capacity`` is a power of two. The whole ring
    (header, sequences, flags and slots) is one contiguous, cache-line aligned region.

    Producers call ``publish(record)`` (a tuple, a dict or keywords), ``publish_batch(array)``
    or ``claim(n)`` to fill a writable view in place. Consumers are ``EventPoller`` (pull) and
    ``BatchEventProcessor`` (push, on a native thread), or a whole graph built with
    ``Disruptor``.
    """

    @classmethod
    def attach(
        cls,
        name: str,
        dtype: npt.DTypeLike | None = None,
        *,
        capacity: int | None = None,
        prefault: bool = False,
    ) -> Self:
        """Attach to the shared ring ``name``; ``dtype`` and ``capacity`` are checked if given."""
        return cls(capacity, dtype, name=name, create=False, prefault=prefault)

    def statistics(self) -> RingStatistics:
        """A snapshot of the ring."""
        cursor, capacity, remaining, published = self._ring_stats()
        return RingStatistics(
            cursor=cursor, capacity=capacity, remaining_capacity=remaining, published=published
        )

    def consumer_statistics(self) -> tuple[ConsumerStatistics, ...]:
        """A snapshot of every consumer of the ring (in any process)."""
        cursor = self.cursor
        out = []
        for (
            cid,
            name,
            seq,
            events,
            batches,
            errors,
            pid,
            active,
            removed,
            deps,
        ) in self._consumer_stats():
            out.append(
                ConsumerStatistics(
                    consumer_id=cid,
                    name=name,
                    sequence=seq,
                    lag=max(cursor - seq, 0),
                    events=events,
                    batches=batches,
                    average_batch_size=events / batches if batches else 0.0,
                    errors=errors,
                    pid=pid,
                    active=active,
                    removed=removed,
                    depends_on=tuple(deps),
                )
            )
        return tuple(out)

    def close(self) -> None:
        """Shut the ring down and, in the process that created a shared ring, remove its segment.

        Mappings in other processes stay valid until they are dropped.
        """
        self.shutdown()
        if self.is_owner and self.name is not None:
            self.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ChecksumHandler(_core.ChecksumHandler):
    """A native handler that counts records and sums an 8-byte integer field (no GIL)."""


class LatencyHandler(_core.LatencyHandler):
    """A native handler recording ``CLOCK_MONOTONIC now - field`` per record (no GIL).

    The field holds ``time.monotonic_ns()`` (or ``market_intel.monotonic_ns()``) taken by the
    producer, in any process on the machine.
    """

    def statistics(self) -> LatencyStatistics:
        """Percentiles of what was recorded so far, in nanoseconds."""
        count, lo, mean, p50, p90, p99, p999, hi = self._snapshot()
        return LatencyStatistics(
            count=count, min=lo, mean=mean, p50=p50, p90=p90, p99=p99, p999=p999, max=hi
        )
