"""EventPoller: pull batches, commit, poll with a handler, wait, alert and close."""

from __future__ import annotations

import threading
import time
from typing import Any

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, records


def test_next_batch_returns_none_when_nothing_is_published() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    assert (poller.name, poller.sequence) == ("p", -1)
    assert poller.next_batch() is None
    assert poller.next_batch(timeout=0.02) is None
    assert poller.wait(timeout=0.02) == 0


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_next_batch_views_are_read_only_and_commit_releases_slots(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 8))
    assert ring.remaining_capacity() == 0
    batch = poller.next_batch()
    assert batch is not None and len(batch) == 8
    assert not batch.flags.writeable
    with pytest.raises(ValueError):
        batch["seq"][0] = 99
    # Still held: the producer cannot overwrite it.
    assert ring.remaining_capacity() == 0
    assert poller.sequence == -1
    poller.commit()
    assert poller.sequence == 7
    assert ring.remaining_capacity() == 8
    poller.commit()  # nothing pending: no effect
    assert poller.sequence == 7


def test_next_batch_commits_the_previous_batch() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 3))
    assert poller.next_batch() is not None
    ring.publish_batch(records(0, 3, 2))
    b = poller.next_batch()
    assert poller.sequence == 2
    assert b is not None and b["seq"].tolist() == [3, 4]


def test_next_batch_respects_max_batch_and_never_wraps() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p", max_batch=3)
    ring.publish_batch(records(0, 0, 6))
    sizes = []
    while (b := poller.next_batch()) is not None:
        sizes.append(len(b))
    assert sizes == [3, 3]
    ring.publish_batch(records(0, 6, 6))  # 6..11: slots 6, 7 then 0..3
    sizes = []
    while (b := poller.next_batch()) is not None:
        sizes.append(len(b))
    assert sizes == [2, 3, 1]
    poller.commit()
    assert poller.sequence == 11


def test_next_batch_waits_for_a_producer_in_another_thread() -> None:
    ring = mi.RingBuffer(8, DTYPE, producer="multi")
    poller = mi.EventPoller(ring, "p", wait="blocking")
    t = threading.Timer(0.05, lambda: ring.publish_batch(records(1, 0, 2)))
    t.start()
    b = poller.next_batch(timeout=None)
    t.join()
    assert b is not None and b["seq"].tolist()[0] == 0


@pytest.mark.parametrize("wait", ["blocking", "sleeping", "yielding", "busy_spin"])
def test_wait_counts_readable_records(wait: str) -> None:
    ring = mi.RingBuffer(16, DTYPE)
    poller = mi.EventPoller(ring, "p", wait=wait)
    ring.publish_batch(records(0, 0, 5))
    assert poller.wait(timeout=1) == 5
    t = threading.Timer(0.05, lambda: ring.publish_batch(records(0, 5, 2)))
    poller.next_batch()
    poller.commit()
    t.start()
    assert poller.wait(timeout=10) >= 1
    t.join()


def test_alert_interrupts_a_wait_in_another_thread() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            outcome.append(poller.wait(timeout=20))
        except mi.AlertedError as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    poller.alert()
    t.join(timeout=10)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], mi.AlertedError)


def test_poll_calls_the_handler_and_commits() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    calls: list[tuple[list[int], int]] = []

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        calls.append((batch["seq"].tolist(), sequence))

    assert poller.poll(handler) == "idle"
    ring.publish_batch(records(0, 0, 6))
    assert poller.poll(handler) == "processing"
    assert calls == [([0, 1, 2, 3, 4, 5], 0)]
    assert poller.sequence == 5
    ring.publish_batch(records(0, 6, 5))  # crosses the ring end
    calls.clear()
    assert poller.poll(handler) == "processing"
    assert calls == [([6, 7], 6), ([8, 9, 10], 8)]
    assert poller.sequence == 10
    assert poller.poll(handler) == "idle"


def test_poll_handler_exception_leaves_the_batch_unreleased() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 3))

    def bad(batch: np.ndarray, sequence: int, end: bool) -> None:
        raise LookupError("no")

    with pytest.raises(LookupError):
        poller.poll(bad)
    assert poller.sequence == -1
    seen: list[int] = []
    assert poller.poll(lambda b, s, e: seen.extend(b["seq"].tolist())) == "processing"
    assert seen == [0, 1, 2]


def test_poll_end_of_batch_marks_the_first_of_two_chunks_false() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 6))
    poller.poll(lambda *a: None)
    ring.publish_batch(records(0, 6, 5))
    ends: list[bool] = []
    poller.poll(lambda b, s, e: ends.append(e))
    assert ends == [False, True]


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_poll_end_of_batch_is_true_for_a_single_chunk(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "p")
    ring.publish_batch(records(0, 0, 3))
    ends: list[bool] = []
    assert poller.poll(lambda b, s, e: ends.append(e)) == "processing"
    assert ends == [True]


def test_poll_respects_max_batch_across_the_ring_end() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p", max_batch=3)
    ring.publish_batch(records(0, 0, 6))
    while poller.next_batch() is not None:
        pass
    ring.publish_batch(records(0, 6, 4))  # 6, 7 | 8, 9
    calls: list[tuple[int, int, bool]] = []

    def handler(b: np.ndarray, s: int, e: bool) -> None:
        calls.append((s, len(b), e))

    assert poller.poll(handler) == "processing"
    assert calls == [(6, 2, False), (8, 1, True)]
    calls.clear()
    assert poller.poll(handler) == "processing"
    assert calls == [(9, 1, True)]
    assert poller.sequence == 9


def test_poll_reports_gating_when_a_dependency_holds_records_back() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    first = mi.EventPoller(ring, "first")
    second = mi.EventPoller(ring, "second", after=[first])
    ring.publish_batch(records(0, 0, 4))
    assert second.poll(lambda *a: None) == "gating"
    assert second.next_batch() is None
    first_batch = first.next_batch()
    assert first_batch is not None and len(first_batch) == 4
    assert second.next_batch() is None  # `first` has not committed yet
    first.commit()
    b = second.next_batch()
    assert b is not None and len(b) == 4


def test_pollers_gate_the_producer_until_all_commit() -> None:
    ring = mi.RingBuffer(4, DTYPE)
    a = mi.EventPoller(ring, "a")
    b = mi.EventPoller(ring, "b")
    ring.publish_batch(records(0, 0, 4))
    a.next_batch()
    a.commit()
    assert ring.remaining_capacity() == 0
    with pytest.raises(mi.InsufficientCapacity):
        ring.try_publish((0, 4, 0))
    b.next_batch()
    b.commit()
    assert ring.remaining_capacity() == 4


def test_a_poller_sees_only_what_is_published_after_it_registers() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    ring.publish_batch(records(0, 0, 3))
    poller = mi.EventPoller(ring, "late")
    assert poller.sequence == 2
    assert poller.next_batch() is None
    ring.publish_batch(records(0, 3, 1))
    b = poller.next_batch()
    assert b is not None and b["seq"].tolist() == [3]


def test_close_and_context_manager_free_the_consumer() -> None:
    ring = mi.RingBuffer(4, DTYPE)
    with mi.EventPoller(ring, "cm") as poller:
        assert [c.name for c in ring.consumer_statistics()] == ["cm"]
        ring.publish_batch(records(0, 0, 4))
    assert ring.consumer_statistics() == ()
    # It no longer gates the producer.
    ring.publish_batch(records(0, 4, 4))
    poller.close()  # closing twice is harmless
    # The name can be used again.
    again = mi.EventPoller(ring, "cm")
    assert again.sequence == ring.cursor
    del again
    assert ring.consumer_statistics() == ()


def test_pollers_depending_on_a_processor_and_the_other_way_round() -> None:
    ring = mi.RingBuffer(16, DTYPE)
    head = mi.EventPoller(ring, "head")
    seen: list[int] = []
    problems: list[str] = []

    def handler(batch: np.ndarray, sequence: int, end: bool) -> None:
        hi = sequence + len(batch) - 1
        if head.sequence < hi:
            problems.append(f"{hi} before head")
        seen.extend(range(sequence, hi + 1))

    mid = mi.BatchEventProcessor(ring, handler, name="mid", after=[head], wait="yielding")
    tail = mi.EventPoller(ring, "tail", after=["mid", head])
    mid.start()
    ring.publish_batch(records(0, 0, 10))
    assert tail.next_batch() is None
    while head.next_batch(timeout=0.01) is not None:
        pass
    head.commit()
    b = tail.next_batch(timeout=10)
    got = [] if b is None else b["seq"].tolist()
    while len(got) < 10:
        b = tail.next_batch(timeout=10)
        assert b is not None
        got += b["seq"].tolist()
    assert got == list(range(10))
    mid.stop(timeout=10)
    mid.close()
    assert problems == [] and seen == list(range(10))


def test_close_interrupts_a_waiting_poller() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            outcome.append(poller.next_batch(timeout=None))
        except mi.AlertedError as e:
            outcome.append(e)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.05)
    poller.close()
    t.join(timeout=10)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], mi.AlertedError)
    assert ring.consumer_statistics() == ()


def test_a_dependency_does_not_move_to_a_consumer_that_reuses_a_freed_slot() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    first = mi.EventPoller(ring, "first")
    second = mi.EventPoller(ring, "second", after=[first])
    first.close()
    unrelated = mi.EventPoller(ring, "unrelated")
    by_name = {c.name: c for c in ring.consumer_statistics()}
    assert unrelated.consumer_id not in by_name["second"].depends_on
    ring.publish_batch(records(0, 0, 2))
    b = second.next_batch()  # `first` is gone: nothing holds `second` back
    assert b is not None and len(b) == 2
