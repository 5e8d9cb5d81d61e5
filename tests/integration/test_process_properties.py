"""Property-based test with producers in other processes: random capacities, numbers of
producer processes, publishing methods, batch sizes and consumer graphs in this process."""

from __future__ import annotations

import multiprocessing.context
import multiprocessing.pool
from collections.abc import Iterator

import market_intel as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mi_graphs import CAPACITIES, ConsumerSpec, consumer_graphs, run_graph
from mi_testlib import DTYPE, PUBLISH_METHODS, SHM, child_produce, examples, unique_name

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pool(spawn: multiprocessing.context.SpawnContext) -> Iterator[multiprocessing.pool.Pool]:
    """Producer processes, started once (spawned: this process runs native threads)."""
    p = spawn.Pool(3)
    yield p
    p.terminate()
    p.join()


@settings(max_examples=examples(25))
@given(
    capacity=CAPACITIES,
    specs=consumer_graphs(max_consumers=3),
    use_disruptor=st.booleans(),
    producer_kind=st.sampled_from(["single", "multi"]),
    plan=st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(PUBLISH_METHODS), st.integers(1, 64)),
        min_size=1,
        max_size=3,
    ),
)
def test_records_of_producer_processes_reach_every_consumer_once_in_order(
    pool: multiprocessing.pool.Pool,
    capacity: int,
    specs: list[ConsumerSpec],
    use_disruptor: bool,
    producer_kind: str,
    plan: list[tuple[int, str, int]],
) -> None:
    if len(plan) > 1:
        producer_kind = "multi"
    name = unique_name("prop")
    full_plan = [(pid, n, method, batch) for pid, (n, method, batch) in enumerate(plan)]

    def publish_from_processes(ring: mi.RingBuffer, plan: list[tuple[int, int, str, int]]) -> None:
        jobs = [(name, pid, n, method, batch) for pid, n, method, batch in plan]
        assert pool.starmap_async(child_produce, jobs).get(timeout=90) == [n for _, n, _, _ in plan]

    try:
        if use_disruptor:
            disruptor: mi.Disruptor | None = mi.Disruptor(
                DTYPE, capacity=capacity, producer=producer_kind, name=name
            )
            assert disruptor is not None
            ring = disruptor.ring
        else:
            disruptor = None
            ring = mi.RingBuffer(capacity, DTYPE, producer=producer_kind, name=name)
        run_graph(ring, specs, disruptor, full_plan, publish_from_processes)
        assert not (SHM / name).exists()
    finally:
        (SHM / name).unlink(missing_ok=True)
