"""RingStatistics and ConsumerStatistics: frozen snapshots consistent with what happened."""

from __future__ import annotations

import dataclasses
import os

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, records


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_ring_statistics_follow_publishing_and_consuming(producer: str) -> None:
    ring = mi.RingBuffer(16, DTYPE, producer=producer)
    s = ring.statistics()
    assert (s.cursor, s.capacity, s.remaining_capacity, s.published) == (-1, 16, 16, 0)
    poller = mi.EventPoller(ring, "p", max_batch=4)
    ring.publish_batch(records(0, 0, 10))
    s = ring.statistics()
    assert (s.cursor, s.capacity, s.remaining_capacity, s.published) == (9, 16, 6, 10)
    assert ring.remaining_capacity() == 6
    poller.next_batch()
    poller.commit()
    s = ring.statistics()
    assert (s.cursor, s.remaining_capacity, s.published) == (9, 10, 10)
    ring.publish_batch(records(0, 10, 10))
    s = ring.statistics()
    assert (s.cursor, s.remaining_capacity, s.published) == (19, 0, 20)
    assert ring.cursor == 19


def test_published_counts_only_records_that_were_published_on_a_multi_producer_ring() -> None:
    ring = mi.RingBuffer(16, DTYPE, producer="multi")
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 3))
    claim = ring.claim(2)
    s = ring.statistics()
    # The cursor of a multi-producer ring counts claims; `published` does not.
    assert (s.cursor, s.published, s.remaining_capacity) == (4, 3, 11)
    claim.view[:] = records(0, 3, 2)
    claim.publish()
    assert ring.statistics().published == 5
    assert poller.next_batch() is not None


def test_consumer_statistics_follow_what_each_consumer_did() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    fast = mi.EventPoller(ring, "fast")
    slow = mi.EventPoller(ring, "slow", after=[fast], max_batch=2)
    ring.publish_batch(records(0, 0, 6))
    assert fast.next_batch() is not None
    fast.commit()
    for _ in range(2):
        slow.next_batch()
    slow.commit()
    by_name = {c.name: c for c in ring.consumer_statistics()}
    f, s = by_name["fast"], by_name["slow"]
    assert (f.consumer_id, s.consumer_id) == (fast.consumer_id, slow.consumer_id)
    assert (f.sequence, f.lag, f.events, f.batches, f.average_batch_size) == (5, 0, 6, 1, 6.0)
    assert (s.sequence, s.lag, s.events, s.batches, s.average_batch_size) == (3, 2, 4, 2, 2.0)
    assert f.errors == s.errors == 0
    assert f.pid == s.pid == os.getpid()
    assert f.active and s.active and not f.removed and not s.removed
    assert f.depends_on == () and s.depends_on == (fast.consumer_id,)


def test_consumer_statistics_before_any_event() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    p = mi.BatchEventProcessor(ring, lambda *a: None, name="idle")
    (c,) = ring.consumer_statistics()
    assert (c.name, c.sequence, c.lag, c.events, c.batches, c.errors) == ("idle", -1, 0, 0, 0, 0)
    assert c.average_batch_size == 0.0
    p.close()
    assert ring.consumer_statistics() == ()


def test_processor_statistics_count_events_batches_and_errors() -> None:
    ring = mi.RingBuffer(64, DTYPE)

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        if sequence == 8:
            raise ValueError("eight")

    p = mi.BatchEventProcessor(ring, handler, name="h", max_batch=4, on_error="log")
    ring.publish_batch(records(0, 0, 20))
    p.stop(timeout=10)
    (c,) = ring.consumer_statistics()
    assert (c.events, c.batches, c.errors, c.sequence, c.lag) == (20, 5, 1, 19, 0)
    assert c.average_batch_size == 4.0
    p.close()


@pytest.mark.parametrize(
    "snapshot",
    [
        lambda: mi.RingBuffer(8, DTYPE).statistics(),
        lambda: mi.LatencyHandler("x").statistics(),
    ],
)
def test_snapshots_are_frozen(snapshot: object) -> None:
    s = snapshot()  # type: ignore[operator]
    for field in dataclasses.fields(s):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(s, field.name, 1)


def test_consumer_statistics_are_frozen_and_comparable() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    (c,) = ring.consumer_statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lag = 5  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        c.extra = 1  # type: ignore[attr-defined]
    assert ring.consumer_statistics() == (c,)
    assert hash(c) == hash(ring.consumer_statistics()[0])
    poller.close()
