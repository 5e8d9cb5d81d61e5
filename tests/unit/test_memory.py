"""Memory options (prefault, lock, huge pages) and the size of a ring's memory."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, records, segment_exists


@contextmanager
def memory_warnings_only() -> Iterator[list[warnings.WarningMessage]]:
    """Record warnings; anything but MemoryOptionWarning fails the test."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    others = [w for w in caught if not issubclass(w.category, mi.MemoryOptionWarning)]
    assert others == []


def check_round_trip(ring: mi.RingBuffer) -> None:
    poller = mi.EventPoller(ring, "check")
    ring.publish_batch(records(0, 0, 8))
    b = poller.next_batch()
    assert b is not None
    np.testing.assert_array_equal(b, records(0, 0, 8))
    poller.close()


def check_warnings(ring: mi.RingBuffer, caught: list[warnings.WarningMessage], words: str) -> None:
    """Every fallback is both issued as a warning and listed in memory_warnings."""
    issued = [str(w.message) for w in caught]
    assert issued == ring.memory_warnings
    for message in issued:
        assert any(word in message for word in words.split("|")), message


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_prefault(producer: str, shm_name: str) -> None:
    with memory_warnings_only() as caught:
        private = mi.RingBuffer(1024, DTYPE, producer=producer, prefault=True)
        shared = mi.RingBuffer(1024, DTYPE, producer=producer, prefault=True, name=shm_name)
        attached = mi.RingBuffer.attach(shm_name, prefault=True)
    assert caught == []
    assert private.memory_warnings == shared.memory_warnings == attached.memory_warnings == []
    check_round_trip(private)
    check_round_trip(shared)
    shared.close()


@pytest.mark.parametrize("named", [False, True])
def test_lock_works_or_warns(named: bool, shm_name: str) -> None:
    with memory_warnings_only() as caught:
        ring = mi.RingBuffer(256, DTYPE, lock=True, name=shm_name if named else None)
    check_warnings(ring, caught, "lock")
    check_round_trip(ring)
    ring.close()


@pytest.mark.parametrize("huge_pages", ["transparent", "explicit"])
@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("prefault", [False, True])
def test_huge_pages_work_or_warn(
    huge_pages: Any, named: bool, prefault: bool, shm_name: str
) -> None:
    with memory_warnings_only() as caught:
        ring = mi.RingBuffer(
            4096,
            DTYPE,
            huge_pages=huge_pages,
            prefault=prefault,
            name=shm_name if named else None,
        )
    check_warnings(ring, caught, "huge_pages")
    if named and huge_pages == "explicit":
        # MAP_HUGETLB needs hugetlbfs: a /dev/shm ring always falls back.
        assert len(caught) >= 1 and "explicit" in str(caught[0].message)
    check_round_trip(ring)
    ring.close()


def test_all_memory_options_together(shm_name: str) -> None:
    with memory_warnings_only() as caught:
        ring = mi.RingBuffer(
            1024, DTYPE, producer="multi", prefault=True, lock=True, huge_pages="transparent"
        )
    check_warnings(ring, caught, "lock|huge_pages")
    check_round_trip(ring)


def test_a_memory_warning_turned_into_an_error_leaves_no_segment(shm_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", mi.MemoryOptionWarning)
        with pytest.raises(mi.MemoryOptionWarning, match="explicit"):
            mi.RingBuffer(8, DTYPE, name=shm_name, huge_pages="explicit")
    assert not segment_exists(shm_name)


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_a_million_64_byte_slots_fit_in_about_64_mib(producer: str) -> None:
    dt = np.dtype([("a", "<i8", (8,))])
    assert dt.itemsize == 64
    ring = mi.RingBuffer(1 << 20, dt, producer=producer)
    assert ring.capacity == 1 << 20 and ring.slot_size == 64
    assert 64 * 2**20 <= ring.nbytes <= 1.10 * 64 * 2**20


def test_nbytes_grows_with_capacity_and_slot_size() -> None:
    small = mi.RingBuffer(1024, np.int64)
    wide = mi.RingBuffer(1024, np.dtype("S256"))
    big = mi.RingBuffer(8192, np.int64)
    assert small.nbytes < wide.nbytes and small.nbytes < big.nbytes
    assert wide.nbytes >= 1024 * 256 and big.nbytes >= 8192 * 8
    for r in (small, wide, big):
        assert r.nbytes % 4096 == 0
