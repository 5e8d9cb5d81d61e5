"""Every error: its class, and a message that names the field, the value and what was expected."""

from __future__ import annotations

import market_intel as mi
import numpy as np
import pytest
from mi_testlib import DTYPE, checksum, records


@pytest.mark.parametrize("capacity", [0, 1, 3, 6, 100, 1000, -8, 2**32])
def test_capacity_must_be_a_power_of_two(capacity: int) -> None:
    with pytest.raises(mi.InvalidArgumentError) as e:
        mi.RingBuffer(capacity, DTYPE)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    assert f"capacity: {capacity}" in msg and "power of two" in msg


@pytest.mark.parametrize("capacity", ["8", 8.0, None])
def test_capacity_of_the_wrong_type(capacity: object) -> None:
    with pytest.raises(mi.InvalidArgumentError, match=r"capacity: .* expected a power of two"):
        mi.RingBuffer(capacity, DTYPE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        ("not-a-dtype", "expected a numpy dtype"),
        (None, "expected a numpy dtype"),
        (np.dtype([]), "non-zero itemsize"),
        (np.dtype([("a", "O")]), "without Python objects"),
        (object, "without Python objects"),
    ],
)
def test_bad_dtypes(dtype: object, expected: str) -> None:
    with pytest.raises(mi.InvalidArgumentError, match="dtype: ") as e:
        mi.RingBuffer(8, dtype)  # type: ignore[arg-type]
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("producer", "many"),
        ("huge_pages", "always"),
        ("dead_consumers", "ignore"),
        ("on_stale", "delete"),
    ],
)
def test_bad_ring_options(option: str, value: str) -> None:
    with pytest.raises(mi.InvalidArgumentError) as e:
        mi.RingBuffer(8, DTYPE, **{option: value})  # type: ignore[arg-type]
    msg = str(e.value)
    assert option in msg and repr(value).strip("'") in msg and "expected one of" in msg


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "with space", "x" * 201, "ünï"])
def test_invalid_segment_names(name: str) -> None:
    with pytest.raises(mi.InvalidArgumentError) as e:
        mi.RingBuffer(8, DTYPE, name=name)
    assert "name: " in str(e.value) and "expected" in str(e.value)
    with pytest.raises(mi.InvalidArgumentError):
        mi.RingBuffer.attach(name)


def test_attach_needs_a_name() -> None:
    with pytest.raises(mi.InvalidArgumentError, match="name: None"):
        mi.RingBuffer(8, DTYPE, create=False)


def test_dtype_mismatch_on_publish_batch() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    other = np.zeros(2, dtype=[("producer", "<i8"), ("seq", "<i8"), ("chk", "<i4")])
    with pytest.raises(mi.DtypeMismatchError) as e:
        ring.publish_batch(other)
    msg = str(e.value)
    assert "array: dtype" in msg and "'<i4'" in msg and "ring's dtype" in msg
    with pytest.raises(mi.DtypeMismatchError):
        ring.publish_batch(np.zeros(2, dtype=np.int64))
    assert ring.cursor == -1


def test_publish_batch_argument_checks() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.InvalidArgumentError, match="array: list is not valid"):
        ring.publish_batch([(0, 0, 0)])  # type: ignore[arg-type]
    with pytest.raises(mi.InvalidArgumentError, match="2 dimensions"):
        ring.publish_batch(np.zeros((2, 2), dtype=DTYPE))
    with pytest.raises(mi.InvalidArgumentError, match="timeout: -1"):
        ring.publish_batch(records(0, 0, 1), timeout=-1)


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_batch_larger_than_the_capacity(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    with pytest.raises(mi.BatchTooLargeError) as e:
        ring.publish_batch(records(0, 0, 9))
    assert "9 records" in str(e.value) and "capacity 8" in str(e.value)
    assert ring.cursor == -1


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"producer": 1, "seq": 2}, "missing field(s) chk"),
        ({"producer": 1}, "missing field(s) seq, chk"),
        ({"producer": 1, "seq": 2, "chk": 3, "extra": 4}, "unknown field(s) extra"),
        ({"producer": 1, "seq": 2, "chek": 3}, "missing field(s) chk and unknown field(s) chek"),
        ((1, 2), "a tuple of 2 value(s) is not valid; expected 3 values"),
        ((1, 2, 3, 4), "a tuple of 4 value(s) is not valid; expected 3 values"),
        ((), "a tuple of 0 value(s)"),
        ([1, 2, 3], "expected a tuple, a dict or keywords"),
        (5, "expected a tuple, a dict or keywords"),
    ],
)
@pytest.mark.parametrize("producer", ["single", "multi"])
def test_record_shape_errors(record: object, expected: str, producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    with pytest.raises(mi.RecordError) as e:
        ring.publish(record)
    assert expected in str(e.value)
    assert "producer, seq, chk" in str(e.value)
    with pytest.raises(mi.RecordError):
        ring.try_publish(record)
    assert ring.cursor == -1  # a bad record never claims a slot


def test_publish_fields_missing_and_extra() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.RecordError, match=r"missing field\(s\) chk"):
        ring.publish_fields(producer=1, seq=1)
    with pytest.raises(mi.RecordError, match=r"unknown field\(s\) bogus"):
        ring.publish_fields(producer=1, seq=1, chk=1, bogus=2)
    with pytest.raises(mi.RecordError, match=r"nothing given|missing"):
        ring.publish_fields()
    assert ring.cursor == -1


@pytest.mark.parametrize(
    ("dtype", "record", "field", "value_text", "expected"),
    [
        (DTYPE, (1, "two", 3), "seq", "'two'", "an integer that fits int64"),
        (DTYPE, (1, 2, 2**63), "chk", str(2**63), "an integer that fits int64"),
        (DTYPE, (1.5, 2, 3), "producer", "1.5", "an integer that fits int64"),
        (DTYPE, (1, None, 3), "seq", "None", "an integer"),
        (np.dtype([("a", "i1")]), (128,), "a", "128", "fits int8"),
        (np.dtype([("a", "<u2")]), (-1,), "a", "-1", "fits uint16"),
        (np.dtype([("a", "<u8")]), (2**64,), "a", str(2**64), "fits uint64"),
        (np.dtype([("a", "<f8")]), ("x",), "a", "'x'", "a number"),
        (np.dtype([("a", "?")]), ("yes",), "a", "'yes'", "a bool"),
        (np.dtype([("a", "S2")]), (b"abc",), "a", "b'abc'", "at most 2 bytes"),
        (np.dtype([("a", "S2")]), (12,), "a", "12", "bytes or ASCII str"),
    ],
)
def test_bad_field_values_name_the_field(
    dtype: np.dtype, record: tuple, field: str, value_text: str, expected: str
) -> None:
    ring = mi.RingBuffer(4, dtype)
    with pytest.raises(mi.RecordError) as e:
        ring.publish(record)
    msg = str(e.value)
    assert f"field '{field}'" in msg and value_text in msg and expected in msg
    # The same through a dict and keywords.
    as_dict = dict(zip(dtype.names or (), record, strict=True))
    with pytest.raises(mi.RecordError, match=f"field '{field}'"):
        ring.publish(as_dict)
    with pytest.raises(mi.RecordError, match=f"field '{field}'"):
        ring.publish_fields(**as_dict)
    assert ring.cursor == -1


def test_bad_value_next_to_a_datetime_field_names_the_field() -> None:
    dt = np.dtype([("ts", "M8[ns]"), ("qty", "<i8")])
    ring = mi.RingBuffer(4, dt)
    with pytest.raises(mi.RecordError, match="field 'qty'"):
        ring.publish(("2024-01-01", "abc"))


@pytest.mark.parametrize("producer", ["single", "multi"])
def test_publishing_after_shutdown(producer: str) -> None:
    ring = mi.RingBuffer(8, DTYPE, producer=producer)
    ring.publish((0, 0, checksum(0, 0)))
    ring.shutdown()
    assert ring.closed
    attempts = {
        "publish": lambda: ring.publish((0, 1, 0)),
        "publish_fields": lambda: ring.publish_fields(producer=0, seq=1, chk=0),
        "try_publish": lambda: ring.try_publish((0, 1, 0)),
        "publish_batch": lambda: ring.publish_batch(records(0, 1, 2)),
        "claim": lambda: ring.claim(1),
    }
    for what, attempt in attempts.items():
        with pytest.raises(mi.RingClosedError) as e:
            attempt()
        assert isinstance(e.value, RuntimeError), what
        assert "shut down" in str(e.value), what
    assert ring.cursor == 0


def test_ring_closed_error_names_a_shared_ring(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name) as ring:
        ring.shutdown()
        with pytest.raises(mi.RingClosedError, match=shm_name):
            ring.publish((0, 0, 0))


def test_attaching_to_a_missing_segment(shm_name: str) -> None:
    with pytest.raises(mi.SegmentNotFoundError) as e:
        mi.RingBuffer.attach(shm_name)
    assert isinstance(e.value, FileNotFoundError)
    assert isinstance(e.value, mi.SharedMemoryError)
    assert shm_name in str(e.value)


def test_attaching_with_a_different_dtype_or_capacity(shm_name: str) -> None:
    with mi.RingBuffer(16, DTYPE, name=shm_name):
        with pytest.raises(mi.LayoutMismatchError) as e:
            mi.RingBuffer.attach(shm_name, np.dtype([("x", "<i8")]))
        msg = str(e.value)
        assert shm_name in msg and "dtype is" in msg and "expected" in msg
        with pytest.raises(mi.LayoutMismatchError) as e:
            mi.RingBuffer.attach(shm_name, capacity=32)
        assert "capacity is 16, expected 32" in str(e.value)
        assert isinstance(e.value, ValueError)
        # Matching expectations attach fine.
        other = mi.RingBuffer.attach(shm_name, DTYPE, capacity=16)
        assert (other.capacity, other.dtype, other.is_owner) == (16, DTYPE, False)


def test_creating_a_name_that_exists(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name):
        with pytest.raises(mi.SegmentExistsError) as e:
            mi.RingBuffer(8, DTYPE, name=shm_name)
        assert isinstance(e.value, FileExistsError)
        assert not isinstance(e.value, mi.StaleSegmentError)
        assert shm_name in str(e.value) and "in use" in str(e.value)
        # Not even with on_stale='reclaim': the segment is alive.
        with pytest.raises(mi.SegmentExistsError):
            mi.RingBuffer(8, DTYPE, name=shm_name, on_stale="reclaim")


@pytest.mark.parametrize(
    "wait",
    ["spin", "Blocking", "", "busy-spin", mi.WaitStrategy("nope")],  # type: ignore[arg-type]
)
def test_bad_wait_strategy_names(wait: object) -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.InvalidArgumentError, match=r"wait: .* expected 'blocking'"):
        mi.EventPoller(ring, "p", wait=wait)
    with pytest.raises(mi.InvalidArgumentError, match="wait: "):
        mi.BatchEventProcessor(ring, lambda *a: None, wait=wait)
    with pytest.raises(mi.InvalidArgumentError, match="wait: "):
        mi.Disruptor(DTYPE, 8, wait=wait).handle_events_with(lambda *a: None)  # type: ignore[arg-type]
    assert ring.consumer_statistics() == ()


@pytest.mark.parametrize("wait", [5, object()])
def test_wait_strategy_of_the_wrong_type(wait: object) -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.InvalidArgumentError, match="wait: "):
        mi.EventPoller(ring, "p", wait=wait)


@pytest.mark.parametrize("on_error", ["ignore", "HALT", "", "raise"])
def test_bad_on_error_values(on_error: str) -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.InvalidArgumentError) as e:
        mi.BatchEventProcessor(ring, lambda *a: None, on_error=on_error)  # type: ignore[arg-type]
    msg = str(e.value)
    assert "on_error" in msg and "'halt', 'log' or 'retry'" in msg
    assert ring.consumer_statistics() == ()


def test_bad_consumer_arguments() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    with pytest.raises(mi.InvalidArgumentError, match="max_batch: 0"):
        mi.EventPoller(ring, "p", max_batch=0)
    with pytest.raises(mi.InvalidArgumentError, match="max_batch: -3"):
        mi.BatchEventProcessor(ring, lambda *a: None, max_batch=-3)
    with pytest.raises(mi.InvalidArgumentError, match="timeout: "):
        mi.BatchEventProcessor(ring, lambda *a: None, timeout=-0.5)
    with pytest.raises(mi.InvalidArgumentError, match="consumer name"):
        mi.EventPoller(ring, "")
    with pytest.raises(mi.InvalidArgumentError, match="consumer name"):
        mi.EventPoller(ring, "n" * 49)
    with pytest.raises(mi.InvalidArgumentError, match=r"after: .ghost. is not valid"):
        mi.EventPoller(ring, "p", after=["ghost"])
    with pytest.raises(mi.InvalidArgumentError, match="handler: 42 is not valid"):
        mi.BatchEventProcessor(ring, 42)
    first = mi.EventPoller(ring, "same")
    with pytest.raises(mi.InvalidArgumentError, match="not used by another consumer"):
        mi.EventPoller(ring, "same")
    with pytest.raises(mi.InvalidArgumentError, match="timeout"):
        first.next_batch(timeout=-1.0)
    assert [c.name for c in ring.consumer_statistics()] == ["same"]


def test_native_handler_arguments() -> None:
    ring = mi.RingBuffer(8, np.dtype([("px", "<f8"), ("n", "<i4"), ("ts", "<i8")]))
    with pytest.raises(mi.InvalidArgumentError, match=r"field: .px. has dtype"):
        mi.BatchEventProcessor(ring, mi.ChecksumHandler("px"))
    with pytest.raises(mi.InvalidArgumentError, match="expected an 8-byte integer"):
        mi.BatchEventProcessor(ring, mi.LatencyHandler("n"))
    with pytest.raises(mi.InvalidArgumentError, match=r"field: .nope. is not valid"):
        mi.BatchEventProcessor(ring, mi.LatencyHandler("nope"))
    handler = mi.ChecksumHandler("ts")
    p = mi.BatchEventProcessor(ring, handler, name="one")
    with pytest.raises(mi.InvalidArgumentError, match="already runs in a processor"):
        mi.BatchEventProcessor(ring, handler, name="two")
    p.close()
    plain = mi.RingBuffer(8, np.int64)
    with pytest.raises(mi.InvalidArgumentError, match="has no fields"):
        mi.BatchEventProcessor(plain, mi.ChecksumHandler("x"))


def test_too_many_consumers() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    pollers = [mi.EventPoller(ring, f"c{i}") for i in range(mi.MAX_CONSUMERS)]
    with pytest.raises(mi.TooManyConsumersError) as e:
        mi.EventPoller(ring, "one-too-many")
    assert str(mi.MAX_CONSUMERS) in str(e.value)
    with pytest.raises(mi.TooManyConsumersError):
        mi.BatchEventProcessor(ring, lambda *a: None)
    # Closing one frees its slot.
    pollers.pop().close()
    extra = mi.EventPoller(ring, "fits-now")
    assert len(ring.consumer_statistics()) == mi.MAX_CONSUMERS
    extra.close()


def test_poller_used_after_close() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    poller = mi.EventPoller(ring, "p")
    poller.close()
    for call in (poller.next_batch, poller.wait, lambda: poller.poll(lambda *a: None)):
        with pytest.raises(mi.InvalidArgumentError, match="poller 'p': closed"):
            call()


def test_processor_lifecycle_errors() -> None:
    ring = mi.RingBuffer(8, DTYPE)
    p = mi.BatchEventProcessor(ring, lambda *a: None, name="lc")
    p.start()
    with pytest.raises(mi.InvalidArgumentError, match="already started"):
        p.start()
    with pytest.raises(mi.InvalidArgumentError, match="still running"):
        p.close()
    with pytest.raises(mi.WaitTimeoutError, match="'lc'"):
        p.join(timeout=0.01)
    p.stop(timeout=10)
    p.close()


def test_attach_checks_the_producer_kind(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name):
        with pytest.raises(mi.LayoutMismatchError, match="producer is 'single', expected 'multi'"):
            mi.RingBuffer(None, None, name=shm_name, create=False, producer="multi")
        attached = mi.RingBuffer(None, None, name=shm_name, create=False)
        assert attached.producer == "single" and attached.dtype == DTYPE


def test_attach_reports_the_producer_kind_of_the_segment(shm_name: str) -> None:
    with mi.RingBuffer(8, DTYPE, name=shm_name, producer="multi"):
        attached = mi.RingBuffer.attach(shm_name)
        assert attached.producer == "multi"
        assert (
            mi.RingBuffer(None, None, name=shm_name, create=False, producer="multi").producer
            == "multi"
        )
