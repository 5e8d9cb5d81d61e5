"""Processes that die: consumers killed while gating a producer, creators killed (stale
segments), producers that conflict or die; and removal of segments when their creator closes."""

from __future__ import annotations

import gc
import multiprocessing.context
import os
import signal
import threading
import time
from typing import Any

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import (
    DTYPE,
    SHM,
    checksum,
    child_attach_and_hang,
    child_create_and_hang,
    child_idle_consumer,
    child_publish_and_hang,
    child_try_publish,
    records,
    segment_exists,
)

pytestmark = pytest.mark.slow


def start(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], target: Any, *args: Any
) -> Any:
    p = spawn.Process(target=target, args=args, daemon=True)
    p.start()
    children.append(p)
    return p


def kill(p: Any) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=30)
    assert p.exitcode == -signal.SIGKILL


def start_idle_consumer(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], name: str, consumer: str
) -> Any:
    ready = spawn.Event()
    p = start(spawn, children, child_idle_consumer, name, consumer, ready)
    assert ready.wait(60)
    return p


# ---- dead consumers -------------------------------------------------------------------------


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_a_killed_consumer_is_removed_and_the_blocked_producer_goes_on(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str, producer: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name, producer=producer) as ring:
        victim = start_idle_consumer(spawn, children, shm_name, "victim")
        ring.publish_batch(records(0, 0, 8))
        assert ring.remaining_capacity() == 0
        killer = threading.Timer(0.3, kill, args=(victim,))
        killer.start()
        # Blocked on the full ring until the consumer's death is noticed.
        assert ring.publish_batch(records(0, 8, 4), timeout=30) == 11
        killer.join()
        (c,) = ring.consumer_statistics()
        assert c.name == "victim" and c.removed and not c.active
        assert c.pid == victim.pid and c.sequence == -1
        # Nothing gates the producer any more.
        for i in range(12, 40):
            ring.publish((0, i, checksum(0, i)))
        assert ring.check_dead_consumers() is False


def test_a_killed_consumer_is_found_by_check_dead_consumers(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        victim = start_idle_consumer(spawn, children, shm_name, "victim")
        assert ring.check_dead_consumers() is False
        kill(victim)
        assert ring.check_dead_consumers() is True
        assert ring.consumer_statistics()[0].removed


def test_a_killed_consumer_with_policy_raise_fails_the_producer(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name, dead_consumers="raise") as ring:
        local = mi.EventPoller(ring, "local")
        victim = start_idle_consumer(spawn, children, shm_name, "victim")
        ring.publish_batch(records(0, 0, 8))
        killer = threading.Timer(0.3, kill, args=(victim,))
        killer.start()
        with pytest.raises(mi.ConsumerDiedError) as e:
            ring.publish((0, 8, checksum(0, 8)))
        killer.join()
        msg = str(e.value)
        assert "'victim'" in msg and f"pid {victim.pid}" in msg and "sequence -1" in msg
        # The slot that was being claimed was not taken: the cursor did not move.
        assert ring.cursor == 7
        with pytest.raises(mi.ConsumerDiedError):
            ring.publish_batch(records(0, 8, 1), timeout=10)
        with pytest.raises(mi.ConsumerDiedError):
            ring.check_dead_consumers()
        # The local consumer is alive and still gates normally.
        assert local.next_batch() is not None
        local.commit()


def test_a_processor_after_a_killed_consumer_keeps_running(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    """A consumer that depends on a consumer removed for dying is no longer held back by it."""
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        victim = start_idle_consumer(spawn, children, shm_name, "victim")
        seen: list[int] = []
        after = mi.BatchEventProcessor(
            ring, lambda b, s, e: seen.extend(b["seq"].tolist()), name="after", after=["victim"]
        )
        after.start()
        ring.publish_batch(records(0, 0, 4))
        time.sleep(0.05)
        assert seen == []
        kill(victim)
        assert ring.check_dead_consumers() is True
        ring.publish_batch(records(0, 4, 6), timeout=30)
        ring.publish_batch(records(0, 10, 6), timeout=30)
        after.stop(timeout=30)
        after.close()
        assert seen == list(range(16))


# ---- stale segments -------------------------------------------------------------------------


def test_a_segment_left_by_a_killed_creator_is_stale_until_reclaimed(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    ready = spawn.Event()
    creator = start(spawn, children, child_create_and_hang, shm_name, ready)
    assert ready.wait(60)
    kill(creator)
    assert segment_exists(shm_name)
    with pytest.raises(mi.StaleSegmentError) as e:
        mi.RingBuffer(8, DTYPE, name=shm_name)
    assert isinstance(e.value, mi.SegmentExistsError) and isinstance(e.value, FileExistsError)
    msg = str(e.value)
    assert shm_name in msg and "stale" in msg and str(creator.pid) in msg
    # Explicitly on_stale='raise' is the default.
    with pytest.raises(mi.StaleSegmentError):
        mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="raise")
    with mi.RingBuffer(16, np.int64, name=shm_name, on_stale="reclaim") as ring:
        assert ring.is_owner and ring.capacity == 16 and ring.dtype == np.int64
        assert ring.cursor == -1
        attached = mi.RingBuffer.attach(shm_name, np.int64, capacity=16)
        assert attached.capacity == 16
        del attached
    assert not segment_exists(shm_name)


def test_a_segment_whose_creator_died_is_not_stale_while_another_process_uses_it(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    ready = spawn.Event()
    creator = start(spawn, children, child_create_and_hang, shm_name, ready)
    assert ready.wait(60)
    user_ready = spawn.Event()
    user = start(spawn, children, child_attach_and_hang, shm_name, user_ready)
    assert user_ready.wait(60)
    kill(creator)
    with pytest.raises(mi.SegmentExistsError) as e:
        mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="reclaim")
    assert not isinstance(e.value, mi.StaleSegmentError)
    assert f"pid {user.pid}" in str(e.value)
    kill(user)
    with pytest.raises(mi.StaleSegmentError):
        mi.RingBuffer(8, DTYPE, name=shm_name)
    with mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="reclaim"):
        pass


# ---- producers ------------------------------------------------------------------------------


def test_a_second_single_producer_in_another_process_is_refused(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        ring.publish((0, 0, checksum(0, 0)))  # this process is now the producer
        out = spawn.Queue()
        child = start(spawn, children, child_try_publish, shm_name, out)
        cls, msg, _pid = out.get(timeout=60)
        child.join(timeout=30)
        assert cls == "ProducerConflictError"
        assert shm_name in msg and f"pid {os.getpid()}" in msg and "single-producer" in msg
        assert ring.cursor == 0


def test_a_multi_producer_ring_takes_producers_from_any_process(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name, producer="multi") as ring:
        ring.publish((0, 0, checksum(0, 0)))
        out = spawn.Queue()
        start(spawn, children, child_try_publish, shm_name, out)
        assert out.get(timeout=60)[0] is None
        assert ring.cursor == 1


def test_the_producer_role_is_free_again_when_the_producer_process_dies(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        ready = spawn.Event()
        producer = start(spawn, children, child_publish_and_hang, shm_name, ready)
        assert ready.wait(60)
        with pytest.raises(mi.ProducerConflictError, match=f"pid {producer.pid}"):
            ring.publish((0, 1, 0))
        kill(producer)
        assert ring.publish((0, 1, checksum(0, 1))) == 1


def test_a_producer_that_detaches_frees_the_producer_role(
    spawn: multiprocessing.context.SpawnContext, children: list[Any], shm_name: str
) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        out = spawn.Queue()
        child = start(spawn, children, child_try_publish, shm_name, out)
        assert out.get(timeout=60)[0] is None
        child.join(timeout=30)
        assert ring.publish((0, 1, checksum(0, 1))) == 1


# ---- cleanup --------------------------------------------------------------------------------


def test_close_and_the_context_manager_remove_the_segment(shm_name: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, name=shm_name)
    assert ring.name == shm_name and ring.is_owner and segment_exists(shm_name)
    ring.close()
    assert ring.closed and not segment_exists(shm_name)
    ring.close()  # again: harmless
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring2:
        assert segment_exists(shm_name)
    assert not segment_exists(shm_name)
    del ring, ring2


def test_an_attached_ring_closing_leaves_the_segment(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as owner:
        attached = mi.RingBuffer.attach(shm_name)
        assert not attached.is_owner
        attached.close()
        del attached
        gc.collect()
        assert segment_exists(shm_name)
        assert owner.name == shm_name
    assert not segment_exists(shm_name)


def test_unlink_removes_the_name_but_attached_mappings_stay_valid(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as owner:
        attached = mi.RingBuffer.attach(shm_name)
        poller = mi.EventPoller(attached, "reader")
        owner.unlink()
        assert not segment_exists(shm_name)
        with pytest.raises(mi.SegmentNotFoundError):
            mi.RingBuffer.attach(shm_name)
        owner.publish_batch(records(0, 0, 3))
        b = poller.next_batch()
        assert b is not None
        np.testing.assert_array_equal(b, records(0, 0, 3))
        poller.close()


def test_dropping_the_creator_removes_the_segment(shm_name: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, name=shm_name)
    assert segment_exists(shm_name)
    del ring
    gc.collect()
    assert not segment_exists(shm_name)


def test_dropping_an_old_closed_ring_does_not_remove_a_new_segment_of_the_same_name(
    shm_name: str,
) -> None:
    old = mi.RingBuffer(8, DTYPE, name=shm_name)
    old.close()
    new = mi.RingBuffer(8, DTYPE, name=shm_name)
    del old
    gc.collect()
    try:
        assert segment_exists(shm_name)
        attached = mi.RingBuffer.attach(shm_name)
        assert attached.capacity == 8
        del attached
    finally:
        new.close()


# ---- files that are not rings ---------------------------------------------------------------


def test_an_empty_file_is_a_stale_segment(shm_name: str) -> None:
    # What a creator that died between creating and sizing the file leaves behind.
    (SHM / shm_name).write_bytes(b"")
    with pytest.raises(mi.LayoutMismatchError) as e:
        mi.RingBuffer.attach(shm_name)
    assert shm_name in str(e.value) and "not a market-intel ring" in str(e.value)
    with pytest.raises(mi.StaleSegmentError):
        mi.RingBuffer(8, DTYPE, name=shm_name)
    with mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="reclaim") as ring:
        assert ring.capacity == 8
    assert not segment_exists(shm_name)


def test_a_short_foreign_file_is_never_reclaimed(shm_name: str) -> None:
    (SHM / shm_name).write_bytes(b"abc")
    with pytest.raises(mi.LayoutMismatchError) as e:
        mi.RingBuffer.attach(shm_name)
    assert "not a market-intel ring" in str(e.value)
    for on_stale in ("raise", "reclaim"):
        with pytest.raises(mi.LayoutMismatchError, match="belongs to something else"):
            mi.RingBuffer(8, DTYPE, name=shm_name, on_stale=on_stale)
    assert (SHM / shm_name).read_bytes() == b"abc"


def test_a_file_without_the_ring_marker(shm_name: str) -> None:
    content = bytes(range(256)) * 256
    (SHM / shm_name).write_bytes(content)
    with pytest.raises(mi.LayoutMismatchError, match="magic"):
        mi.RingBuffer.attach(shm_name)
    with pytest.raises(mi.LayoutMismatchError, match="belongs to something else"):
        mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="reclaim")
    assert (SHM / shm_name).read_bytes() == content
