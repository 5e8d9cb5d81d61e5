"""Publishing: records, numpy batches and in-place claims, read back through a poller."""

from __future__ import annotations

import threading
import time

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, checksum, records


def drain(poller: mi.EventPoller, dtype: np.dtype = DTYPE) -> np.ndarray:
    """Every record readable now, copied, in order (across the ring end)."""
    out = []
    while (b := poller.next_batch()) is not None:
        out.append(b.copy())
    poller.commit()
    return np.concatenate(out) if out else np.zeros(0, dtype=dtype)


@pytest.fixture(params=["single", "multi"])
def producer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_publish_tuple_dict_and_fields(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    assert ring.publish((1, 0, checksum(1, 0))) == 0
    assert ring.publish({"seq": 1, "chk": checksum(1, 1), "producer": 1}) == 1
    assert ring.publish_fields(producer=1, seq=2, chk=checksum(1, 2)) == 2
    assert ring.try_publish((1, 3, checksum(1, 3))) == 3
    assert ring.cursor == 3
    got = drain(poller)
    np.testing.assert_array_equal(got, records(1, 0, 4))


def test_try_publish_raises_insufficient_capacity_on_a_full_ring(producer: str) -> None:
    ring = mi.RingBuffer(4, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    for i in range(4):
        ring.try_publish((0, i, checksum(0, i)))
    with pytest.raises(mi.InsufficientCapacity) as e:
        ring.try_publish((0, 4, checksum(0, 4)))
    assert "1 slot" in str(e.value) and "4" in str(e.value)
    assert ring.remaining_capacity() == 0
    # Nothing was claimed by the failed attempt: after reading, it fits again.
    drain(poller)
    assert ring.try_publish((0, 4, checksum(0, 4))) == 4
    assert ring.cursor == 4


def test_a_ring_without_consumers_never_fills() -> None:
    ring = mi.RingBuffer(4, DTYPE)
    for i in range(20):
        ring.try_publish((0, i, 0))
    assert ring.cursor == 19


def test_publish_batch_with_wrap_around_reads_back_exactly(producer: str) -> None:
    ring = mi.RingBuffer(16, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    first = records(1, 0, 11)
    assert ring.publish_batch(first) == 10
    np.testing.assert_array_equal(drain(poller), first)
    # 11..22 crosses the ring end at slot 15 -> 16.
    second = records(1, 11, 12)
    assert ring.publish_batch(second) == 22
    lo_batch = poller.next_batch()
    assert lo_batch is not None and len(lo_batch) == 5  # a view never wraps
    got = np.concatenate([lo_batch.copy(), drain(poller)])
    np.testing.assert_array_equal(got, second)


def test_publish_batch_of_a_non_contiguous_array_and_an_empty_one(producer: str) -> None:
    ring = mi.RingBuffer(16, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    base = records(2, 0, 12)
    assert ring.publish_batch(base[::2]) == 5
    np.testing.assert_array_equal(drain(poller), base[::2])
    assert ring.publish_batch(np.zeros(0, dtype=DTYPE)) == ring.cursor == 5


def test_publish_batch_with_timeout_on_a_full_ring_times_out(producer: str) -> None:
    ring = mi.RingBuffer(4, DTYPE, producer=producer)
    idle = mi.EventPoller(ring, "never-reads")
    ring.publish_batch(records(0, 0, 4))
    with pytest.raises(mi.WaitTimeoutError):
        ring.publish_batch(records(0, 4, 1), timeout=0.05)
    with pytest.raises(mi.WaitTimeoutError):
        ring.claim(1, timeout=0.05)
    assert ring.cursor == 3
    assert idle.sequence == -1


def test_claim_as_context_manager_publishes_on_exit(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    claim = ring.claim(3)
    assert (claim.sequence, claim.last_sequence, len(claim), claim.done) == (0, 2, 3, False)
    with claim as view:
        assert view.flags.writeable and len(view) == 3
        view[:] = records(5, 0, 3)
        assert ring.cursor in (-1, 2)  # multi-producer cursors count claims
        assert poller.next_batch() is None  # not published yet
    assert claim.done
    np.testing.assert_array_equal(drain(poller), records(5, 0, 3))


def test_claim_explicit_publish_and_double_use_is_an_error(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    claim = ring.claim(2)
    claim.view[:] = records(3, 0, 2)
    assert claim.publish() == 1
    with pytest.raises(mi.InvalidArgumentError, match="already published"):
        claim.publish()
    with pytest.raises(mi.InvalidArgumentError, match="already published"):
        claim.abort()
    assert "done=true" in repr(claim).lower()
    np.testing.assert_array_equal(drain(poller), records(3, 0, 2))


def test_single_producer_abort_takes_the_sequences_back() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "reader")
    ring.publish((0, 0, checksum(0, 0)))
    claim = ring.claim(3)
    claim.view[:] = records(9, 0, 3)
    assert claim.abort() is False
    assert claim.done
    with pytest.raises(mi.InvalidArgumentError, match="already aborted"):
        claim.publish()
    assert ring.cursor == 0
    # The next claim gets the same sequences again.
    assert ring.publish((0, 1, checksum(0, 1))) == 1
    np.testing.assert_array_equal(drain(poller), records(0, 0, 2))


def test_single_producer_claim_aborted_by_an_exception_in_the_with_block() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "reader")
    with pytest.raises(KeyError), ring.claim(2) as view:
        view[:] = records(1, 0, 2)
        raise KeyError("fill failed")
    assert ring.cursor == -1
    assert poller.next_batch() is None
    assert ring.publish((1, 0, checksum(1, 0))) == 0


def test_multi_producer_abort_publishes_zero_filled_records() -> None:
    ring = mi.RingBuffer(8, DTYPE, producer="multi")
    poller = mi.EventPoller(ring, "reader")
    claim = ring.claim(2)
    claim.view[:] = records(4, 0, 2)
    assert claim.abort() is True
    with pytest.raises(ValueError), ring.claim(1) as view:
        view[:] = records(4, 2, 1)
        raise ValueError("fill failed")
    got = drain(poller)
    np.testing.assert_array_equal(got, np.zeros(3, dtype=DTYPE))


def test_single_producer_refuses_to_publish_while_a_claim_is_open() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    claim = ring.claim(2)
    with pytest.raises(mi.ProducerConflictError, match=r"0\.\.1"):
        ring.publish((0, 0, 0))
    with pytest.raises(mi.ProducerConflictError):
        ring.publish_batch(records(0, 0, 1))
    with pytest.raises(mi.ProducerConflictError):
        ring.claim(1)
    claim.abort()
    assert ring.publish((0, 0, 0)) == 0


def test_claim_wrapping_the_ring_end_goes_through_a_scratch_copy(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    ring.publish_batch(records(0, 0, 6))
    drain(poller)
    claim = ring.claim(5)  # sequences 6..10: slots 6, 7, 0, 1, 2
    assert (claim.sequence, claim.last_sequence) == (6, 10)
    view = claim.view
    assert view.flags.writeable and len(view) == 5
    view[:] = records(0, 6, 5)
    claim.publish()
    np.testing.assert_array_equal(drain(poller), records(0, 6, 5))


def test_claim_argument_is_checked() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    for n in (0, -1, 9):
        with pytest.raises(mi.InvalidArgumentError, match=f"n: {n} is not valid"):
            ring.claim(n)
    with pytest.raises(mi.InvalidArgumentError, match="timeout"):
        ring.claim(1, timeout=-1.0)


def test_plain_scalar_dtype_ring(producer: str) -> None:
    ring = mi.RingBuffer(8, np.int64, producer=producer)
    assert ring.dtype == np.dtype(np.int64) and ring.slot_size == 8
    poller = mi.EventPoller(ring, "reader")
    ring.publish(5)
    ring.publish(np.int64(-6))
    ring.publish_fields(value=7)
    ring.publish_batch(np.arange(10, 13, dtype=np.int64))
    with ring.claim(2) as view:
        view[:] = [20, 21]
    got = drain(poller, np.dtype(np.int64))
    np.testing.assert_array_equal(got, [5, -6, 7, 10, 11, 12, 20, 21])
    with pytest.raises(mi.RecordError, match="one scalar of int64"):
        ring.publish((5,))
    with pytest.raises(mi.RecordError, match="field 'value'"):
        ring.publish(2**63)


def test_bytes_fields() -> None:
    dt = np.dtype([("sym", "S8"), ("px", "<f8"), ("qty", "<u4")])
    ring = mi.RingBuffer(8, dt)
    poller = mi.EventPoller(ring, "reader")
    ring.publish((b"AAPL", 1.5, 10))
    ring.publish(("MSFT", 2.25, 20))  # ASCII str accepted
    ring.publish_fields(sym=b"12345678", px=0.0, qty=0)  # exactly the width
    ring.publish((b"LONGNAME", 3.0, 4))
    ring.publish((b"X", -1.0, 2**32 - 1))
    # A shorter value overwrites a longer one completely (zero padded).
    got = drain(poller)
    assert got["sym"].tolist() == [b"AAPL", b"MSFT", b"12345678", b"LONGNAME", b"X"]
    assert got["px"].tolist() == [1.5, 2.25, 0.0, 3.0, -1.0]
    assert got["qty"].tolist() == [10, 20, 0, 4, 2**32 - 1]
    raw = ring._peek(4, 4).view(np.uint8)
    assert raw[:8].tolist() == [ord("X")] + [0] * 7
    with pytest.raises(mi.RecordError, match=r"field 'sym'.*9 bytes"):
        ring.publish((b"TOOLONG!!", 1.0, 1))


def test_datetime64_fields_go_through_numpy() -> None:
    dt = np.dtype([("ts", "M8[ns]"), ("qty", "<i8"), ("dur", "m8[us]")])
    ring = mi.RingBuffer(8, dt, producer="multi")
    poller = mi.EventPoller(ring, "reader")
    t = np.datetime64("2024-03-04T05:06:07.123456789", "ns")
    ring.publish((t, 1, np.timedelta64(5, "us")))
    ring.publish({"ts": "2024-01-02", "qty": 2, "dur": np.timedelta64(1, "ms")})
    ring.publish_fields(ts=np.datetime64("2000-01-01T00:00:00"), qty=3, dur=0)
    ring.try_publish((t, 4, np.timedelta64(0, "us")))
    arr = np.array([(t, 5, np.timedelta64(7, "us"))], dtype=dt)
    ring.publish_batch(arr)
    got = drain(poller)
    np.testing.assert_array_equal(
        got["ts"], np.array([t, "2024-01-02", "2000-01-01", t, t], dtype="M8[ns]")
    )
    assert got["qty"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(got["dur"], np.array([5, 1000, 0, 0, 7], dtype="m8[us]"))
    with pytest.raises(mi.RecordError, match=r"not a date|ts|datetime"):
        ring.publish(("not a date", 1, 0))
    assert ring.cursor == 4  # the bad record claimed nothing


def test_nested_and_subarray_fields() -> None:
    dt = np.dtype(
        [
            ("book", "<f8", (2, 3)),
            ("inner", [("a", "<i4"), ("b", "<f4"), ("tag", "S2")]),
            ("flag", "?"),
            ("be", ">i4"),
        ]
    )
    ring = mi.RingBuffer(4, dt)
    poller = mi.EventPoller(ring, "reader")
    book = np.arange(6, dtype=np.float64).reshape(2, 3)
    ring.publish((book, (7, 0.5, b"xy"), True, -2))
    ring.publish({"book": book * 2, "inner": (8, 1.5, b"z"), "flag": False, "be": 3})
    got = drain(poller)
    np.testing.assert_array_equal(got["book"][0], book)
    np.testing.assert_array_equal(got["book"][1], book * 2)
    assert got["inner"].tolist() == [(7, 0.5, b"xy"), (8, 1.5, b"z")]
    assert got["flag"].tolist() == [True, False]
    assert got["be"].tolist() == [-2, 3]
    with pytest.raises(mi.RecordError):
        ring.publish((np.zeros(5), (1, 1.0, b""), True, 0))


def test_dtype_with_many_direct_field_types_round_trips(producer: str) -> None:
    dt = np.dtype(
        [
            ("b", "?"),
            ("i1", "i1"),
            ("i2", "<i2"),
            ("i4", "<i4"),
            ("i8", "<i8"),
            ("u1", "u1"),
            ("u2", "<u2"),
            ("u4", "<u4"),
            ("u8", "<u8"),
            ("f4", "<f4"),
            ("f8", "<f8"),
        ],
        align=True,
    )
    ring = mi.RingBuffer(4, dt, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    lo = (False, -128, -(2**15), -(2**31), -(2**63), 0, 0, 0, 0, -1.5, -2.5)
    hi = (
        True,
        127,
        2**15 - 1,
        2**31 - 1,
        2**63 - 1,
        255,
        2**16 - 1,
        2**32 - 1,
        2**64 - 1,
        0.25,
        1e300,
    )
    ring.publish(lo)
    ring.publish(hi)
    got = drain(poller)
    assert got.tolist() == [lo, hi]


def test_shutdown_then_reopen(producer: str) -> None:
    ring = mi.RingBuffer(4, DTYPE, producer=producer)
    ring.publish((0, 0, 0))
    ring.shutdown()
    assert ring.closed
    with pytest.raises(mi.RingClosedError):
        ring.publish((0, 1, 0))
    ring.reopen()
    assert not ring.closed
    assert ring.publish((0, 1, 0)) == 1


def test_peek_reads_published_slots_and_checks_its_range() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    ring.publish_batch(records(1, 0, 3))
    np.testing.assert_array_equal(ring._peek(0, 2), records(1, 0, 3))
    assert not ring._peek(0, 2).flags.writeable
    with pytest.raises(mi.InvalidArgumentError, match=r"lo\.\.hi"):
        ring._peek(6, 9)


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_a_large_batch_copied_without_the_gil_wraps_correctly(producer: str) -> None:
    ring = mi.RingBuffer(8192, DTYPE, producer=producer)
    poller = mi.EventPoller(ring, "reader")
    ring.publish_batch(records(0, 0, 5000))
    assert len(drain(poller)) == 5000
    big = records(0, 5000, 8000)  # 192 kB, crossing the ring end
    ring.publish_batch(big)
    np.testing.assert_array_equal(drain(poller), big)


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_shutdown_wakes_a_producer_blocked_on_a_full_ring(producer: str) -> None:
    ring = mi.RingBuffer(4, DTYPE, producer=producer)
    idle = mi.EventPoller(ring, "idle")
    ring.publish_batch(records(0, 0, 4))
    timer = threading.Timer(0.1, ring.shutdown)
    timer.start()
    with pytest.raises(mi.RingClosedError):
        ring.publish((0, 4, checksum(0, 4)))
    timer.join()
    assert ring.cursor == 3 and idle.sequence == -1


def test_a_single_producer_ring_refuses_a_second_thread_while_the_first_waits() -> None:
    """The first thread waits on a full ring with the GIL released; a second publishing thread
    is told to use a multi-producer ring instead of silently racing it."""
    ring = mi.RingBuffer(4, DTYPE)
    poller = mi.EventPoller(ring, "reader")
    ring.publish_batch(records(0, 0, 4))
    first = threading.Thread(target=ring.publish, args=((0, 4, checksum(0, 4)),))
    first.start()
    conflict = None
    deadline = time.monotonic() + 20
    while conflict is None and time.monotonic() < deadline:
        try:
            ring.try_publish((1, 0, checksum(1, 0)))
        except mi.ProducerConflictError as e:
            conflict = e
        except mi.InsufficientCapacity:
            time.sleep(0.001)  # the first thread has not started waiting yet
    assert conflict is not None
    assert "two threads" in str(conflict) and "producer='multi'" in str(conflict)
    drain(poller)
    first.join(timeout=10)
    assert not first.is_alive()
    assert ring.cursor == 4
    np.testing.assert_array_equal(drain(poller), records(0, 4, 1))


def test_published_ignores_open_claims_without_consumers() -> None:
    ring = mi.RingBuffer(8, DTYPE, producer="multi")
    ring.publish_batch(records(0, 0, 3))
    claim = ring.claim(2)
    assert ring.statistics().published == 3
    claim.publish()
    assert ring.statistics().published == 5


def test_remaining_capacity_counts_an_open_claim_for_both_producer_kinds() -> None:
    for producer in ("multi", "single"):
        ring = mi.RingBuffer(8, DTYPE, producer=producer)  # type: ignore[arg-type]
        poller = mi.EventPoller(ring, "reader")
        claim = ring.claim(3)
        assert ring.remaining_capacity() == 5, producer
        assert ring.statistics().remaining_capacity == 5, producer
        claim.abort()
        poller.close()


def test_a_private_ring_accepts_a_wide_record() -> None:
    wide = np.dtype([(f"field_{i}", "<i8") for i in range(200)])
    ring = mi.RingBuffer(8, wide)
    assert ring.slot_size == 1600


def test_a_shared_ring_of_a_too_wide_record_is_refused_with_a_clear_message(
    shm_name: str,
) -> None:
    wide = np.dtype([(f"field_{i}", "<i8") for i in range(200)])
    with pytest.raises(mi.InvalidArgumentError, match=r"dtype: \d+ bytes of description"):
        mi.RingBuffer(8, wide, name=shm_name)
