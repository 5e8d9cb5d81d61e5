"""Property-based tests: random capacities, producers, batch sizes, publishing methods, wait
strategies and consumer dependency graphs. Every consumer must see every record exactly once,
in each producer's order, intact, and never before the consumers it depends on."""

from __future__ import annotations

from typing import Any

import market_intel as mi
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from mi_graphs import CAPACITIES, ConsumerSpec, consumer_graphs, run_graph
from mi_testlib import DTYPE, PUBLISH_METHODS, checksum, examples, verify


@settings(max_examples=examples(40))
@given(
    capacity=CAPACITIES,
    specs=consumer_graphs(),
    use_disruptor=st.booleans(),
    producer_kind=st.sampled_from(["single", "multi"]),
    plan=st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from(PUBLISH_METHODS), st.integers(1, 64)),
        min_size=1,
        max_size=3,
    ),
)
def test_every_consumer_sees_every_record_once_in_order_after_its_dependencies(
    capacity: int,
    specs: list[ConsumerSpec],
    use_disruptor: bool,
    producer_kind: str,
    plan: list[tuple[int, str, int]],
) -> None:
    if len(plan) > 1:
        producer_kind = "multi"  # several producer threads need a multi-producer ring
    full_plan = [(pid, n, method, batch) for pid, (n, method, batch) in enumerate(plan)]
    if use_disruptor:
        disruptor = mi.Disruptor(DTYPE, capacity=capacity, producer=producer_kind)
        ring = disruptor.ring
    else:
        disruptor = None
        ring = mi.RingBuffer(capacity, DTYPE, producer=producer_kind)
    run_graph(ring, specs, disruptor, full_plan)


@settings(max_examples=examples(25))
@given(
    capacity=CAPACITIES,
    producer_kind=st.sampled_from(["single", "multi"]),
    batches=st.lists(st.integers(1, 1024), min_size=1, max_size=12),
    max_batch=st.one_of(st.none(), st.integers(1, 100)),
)
def test_batches_and_claims_of_any_size_round_trip_through_a_poller(
    capacity: int, producer_kind: str, batches: list[int], max_batch: int | None
) -> None:
    """Batches and claims of random sizes, wrapping anywhere, read back exactly."""
    ring = mi.RingBuffer(capacity, DTYPE, producer=producer_kind)
    poller = mi.EventPoller(ring, "reader", max_batch=max_batch)
    got: list[np.ndarray] = []
    seq = 0
    for i, size in enumerate(batches):
        size = min(size, capacity)
        recs = np.zeros(size, dtype=DTYPE)
        recs["producer"] = 0
        recs["seq"] = np.arange(seq, seq + size)
        recs["chk"] = checksum(recs["producer"], recs["seq"])
        if i % 2:
            with ring.claim(size) as view:
                view[:] = recs
        else:
            ring.publish_batch(recs)
        seq += size
        while (b := poller.next_batch()) is not None:
            if max_batch is not None:
                assert len(b) <= max_batch
            got.append(b.copy())
        poller.commit()
        assert ring.remaining_capacity() == capacity
    assert verify(got, {0: seq}) == []
    assert poller.sequence == ring.cursor == seq - 1


INT_RANGES = {
    "i1": (-(2**7), 2**7 - 1),
    "<i2": (-(2**15), 2**15 - 1),
    "<i4": (-(2**31), 2**31 - 1),
    "<i8": (-(2**63), 2**63 - 1),
    ">i4": (-(2**31), 2**31 - 1),
    "u1": (0, 2**8 - 1),
    "<u2": (0, 2**16 - 1),
    "<u4": (0, 2**32 - 1),
    "<u8": (0, 2**64 - 1),
}


@st.composite
def field_and_value(draw: st.DrawFn) -> tuple[Any, Any]:
    """A field type (direct or written through numpy) and a valid value for it."""
    kind = draw(st.sampled_from([*INT_RANGES, "?", "<f4", "<f8", "S", "M8[ns]", "sub"]))
    if kind in INT_RANGES:
        lo, hi = INT_RANGES[kind]
        return kind, draw(st.integers(lo, hi))
    if kind == "?":
        return kind, draw(st.booleans())
    if kind == "<f4":
        return kind, draw(st.floats(width=32, allow_nan=False))
    if kind == "<f8":
        return kind, draw(st.floats(allow_nan=False))
    if kind == "S":
        n = draw(st.integers(1, 12))
        return f"S{n}", draw(st.binary(max_size=n))
    if kind == "M8[ns]":
        return kind, np.datetime64(draw(st.integers(-(2**62), 2**62)), "ns")
    return ("<f8", (2,)), draw(st.lists(st.floats(allow_nan=False), min_size=2, max_size=2))


@settings(max_examples=examples(40))
@given(
    fields=st.lists(field_and_value(), min_size=1, max_size=6),
    align=st.booleans(),
    producer_kind=st.sampled_from(["single", "multi"]),
)
def test_records_are_written_exactly_as_numpy_writes_them(
    fields: list[tuple[Any, Any]], align: bool, producer_kind: str
) -> None:
    names = [f"f{i}" for i in range(len(fields))]
    dt = np.dtype(
        [
            (n, *((f,) if isinstance(f, str) else f))
            for n, (f, _) in zip(names, fields, strict=True)
        ],
        align=align,
    )
    values = tuple(v for _, v in fields)
    expected = np.zeros(1, dtype=dt)
    expected[0] = values
    ring = mi.RingBuffer(8, dt, producer=producer_kind)
    poller = mi.EventPoller(ring, "reader")
    as_dict = dict(zip(names, values, strict=True))
    ring.publish(values)
    ring.publish(as_dict)
    ring.publish_fields(**as_dict)
    ring.try_publish(values)
    ring.publish_batch(expected)
    with ring.claim(1) as view:
        view[0] = values
    got = poller.next_batch()
    assert got is not None and len(got) == 6
    for name in names:
        want = expected[name][0:1].tobytes()
        for i in range(6):
            assert got[name][i : i + 1].tobytes() == want, (name, i)
