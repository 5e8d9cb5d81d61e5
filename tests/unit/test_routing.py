"""Routing: by type, symbol and predicate, priority overtaking, and partitioned agents that
share a stream by key."""

from __future__ import annotations

from collections import defaultdict

import market_intel as mi
import numpy as np
import pytest
from mi_engine import (
    TIMEOUT,
    BatchRecorder,
    GatedRecorder,
    Recorder,
    control,
    engine,
    one_of_each_type,
    order,
    quote,
    quote_records,
    running,
    text,
    trade,
)

SYMBOLS = [f"SYM{i}" for i in range(10)]

# -- by type, symbol and predicate -------------------------------------------------------------


def test_an_agent_gets_only_its_types_and_a_default_agent_gets_all() -> None:
    e = engine(2)
    orders = Recorder("orders")
    everything = Recorder("everything")
    order_rows = BatchRecorder("order_rows")
    e.register_agent(orders, message_types=[mi.MessageType.ORDER])
    e.register_agent(everything)
    e.register_agent(order_rows, message_types=["ORDER"])
    msgs = one_of_each_type() * 3
    with running(e):
        e.publish_batch(msgs)
        e.flush(TIMEOUT)
    assert everything.messages == msgs
    assert orders.messages == [m for m in msgs if m.type == mi.MessageType.ORDER]
    assert len(orders.messages) == 3
    assert order_rows.count == 3
    assert (order_rows.records["type"] == mi.MessageType.ORDER).all()
    assert all(len(b) for b in order_rows.batches)  # never handed an empty batch
    assert e.get_agent("orders").stats.messages == 3


def test_several_types_and_text_payloads_route_by_message_type() -> None:
    e = engine(1)
    r = Recorder()
    e.register_agent(r, message_types=[mi.MessageType.TRADE, mi.MessageType.EVENT])
    msgs = [trade(), text(mi.MessageType.EVENT), text(mi.MessageType.ORDER), quote()]
    with running(e):
        e.publish_batch(msgs)
        e.flush(TIMEOUT)
    assert r.messages == msgs[:2]


def test_the_symbols_filter_keeps_only_those_symbols() -> None:
    e = engine(2)
    objects = Recorder()
    vector = BatchRecorder()
    e.register_agent(objects, symbols=["SYM1", "SYM3"])
    e.register_agent(vector, symbols=["SYM1", "SYM3"])
    msgs = [quote(s, i) for i, s in enumerate(SYMBOLS * 3)]
    msgs += [order("SYM3"), control(), text(mi.MessageType.MARKET_DATA)]
    with running(e):
        e.publish_batch(msgs)
        e.publish_batch(quote_records(SYMBOLS, 20, start=100))
        e.flush(TIMEOUT)
    want = [m for m in msgs if getattr(m.payload, "symbol", None) in ("SYM1", "SYM3")]
    assert objects.messages[: len(want)] == want
    assert len(objects.messages) == len(want) + 4
    assert {m.payload.symbol for m in objects.messages} == {"SYM1", "SYM3"}  # type: ignore[union-attr]
    got = vector.records
    assert sorted(set(got["symbol"].tolist())) == [b"SYM1", b"SYM3"]
    assert len(got) == len(want) + 4


def test_an_object_agent_filter_gets_each_message() -> None:
    e = engine(1)
    r = Recorder()
    seen: list[object] = []

    def even(m: mi.CoreMessage) -> bool:
        seen.append(m)
        return m.payload.update_id % 2 == 0  # type: ignore[union-attr]

    e.register_agent(r, filter=even, message_types=[mi.MessageType.MARKET_DATA])
    with running(e):
        e.publish_batch([quote(i=i) for i in range(10)] + [order()])
        e.flush(TIMEOUT)
    assert r.update_ids() == [0, 2, 4, 6, 8]
    assert len(seen) == 10 and all(isinstance(m, mi.CoreMessage) for m in seen)


def test_a_vectorized_agent_filter_gets_records_and_returns_a_mask() -> None:
    e = engine(1)
    v = BatchRecorder()
    calls: list[np.ndarray] = []

    def wide(records: np.ndarray) -> np.ndarray:
        calls.append(records.copy())
        return np.asarray(records["update_id"] % 3 == 0)

    e.register_agent(v, filter=wide, message_types=[mi.MessageType.MARKET_DATA])
    with running(e):
        e.publish_batch([order()] + [quote(i=i) for i in range(30)])
        e.publish_batch(quote_records(["A"], 30, start=30))
        e.flush(TIMEOUT)
    assert v.records["update_id"].tolist() == list(range(0, 60, 3))
    assert all(c.dtype == mi.MESSAGE_DTYPE for c in calls)
    # It is handed only the rows of its types, with the columns of object messages filled in.
    seen = np.concatenate([c["update_id"] for c in calls]).tolist()
    assert seen == list(range(60))


def test_a_vectorized_filter_returning_a_bad_mask_is_an_agent_error() -> None:
    e = engine(1)
    v = BatchRecorder()
    fine = Recorder()
    e.register_agent(v, filter=lambda records: [True])
    e.register_agent(fine)
    with running(e):
        e.publish_batch([quote(i=i) for i in range(3)])
        e.flush(TIMEOUT)
        assert len(fine.messages) == 3  # the processor survived and went on
        a = e.get_agent(v.name)
    assert a.stats.errors >= 1 and v.count == 0
    assert a.stats.last_error is not None
    assert "filter: returned a mask of shape (1,) for 3 records" in a.stats.last_error


# -- priority ----------------------------------------------------------------------------------


def flood_then(priority: mi.Priority, backlog: int = 50_000) -> tuple[list[mi.CoreMessage], int]:
    """Block the only agent in its first message, publish ``backlog`` NORMAL messages and then
    one CONTROL message of ``priority``, release: returns what the agent handled and the
    engine's ``max_batch``."""
    e = mi.CoreEngineBuilder().with_processors(1).with_buffer_size(65536).build()
    agent = GatedRecorder()
    e.register_agent(agent)
    flood = [text(mi.MessageType.MARKET_DATA, "flood") for _ in range(backlog)]
    kill = control("kill_switch", priority)
    with running(e):
        e.publish_message(quote())
        agent.gate.wait_entered()
        e.publish_batch(flood)
        e.publish_message(kill)
        agent.gate.release()
        e.flush(TIMEOUT)
    assert len(agent.messages) == backlog + 2
    return agent.messages, e.settings.max_batch


@pytest.mark.parametrize("priority", [mi.Priority.CRITICAL, mi.Priority.HIGH])
def test_a_critical_or_high_message_overtakes_the_normal_backlog(priority: mi.Priority) -> None:
    handled, max_batch = flood_then(priority)
    position = next(i for i, m in enumerate(handled) if m.type == mi.MessageType.CONTROL)
    assert handled[position].payload == mi.Control(command="kill_switch")
    # Handled after at most the rest of the batch the agent was blocked in: far before the
    # 50,000 messages published ahead of it.
    assert position <= max_batch + 2
    rest = [m for m in handled if m.type != mi.MessageType.CONTROL]
    assert len(rest) == 50_001  # the backlog itself kept its order, nothing lost
    assert rest[0].payload == quote().payload


@pytest.mark.parametrize("priority", [mi.Priority.NORMAL, mi.Priority.LOW])
def test_a_normal_or_low_message_waits_behind_the_backlog(priority: mi.Priority) -> None:
    handled, _ = flood_then(priority)
    assert handled[-1].type == mi.MessageType.CONTROL
    assert all(m.type == mi.MessageType.MARKET_DATA for m in handled[:-1])


def test_urgent_records_overtake_a_backlog_of_records() -> None:
    e = mi.CoreEngineBuilder().with_processors(1).with_max_batch(64).build()
    gate = GatedRecorder()
    rows = BatchRecorder()
    e.register_agent(gate, message_types=[mi.MessageType.CONTROL])
    e.register_agent(rows, message_types=[mi.MessageType.MARKET_DATA])
    urgent = quote_records(["URGENT"], 3, start=1_000_000)
    urgent["priority"] = mi.Priority.HIGH
    with running(e):
        e.publish_message(control(priority=mi.Priority.NORMAL))
        gate.gate.wait_entered()
        e.publish_batch(quote_records(["A"], 10_000))
        e.publish_batch(urgent)
        gate.gate.release()
        e.flush(TIMEOUT)
    first = next(i for i, lane in enumerate(rows.lanes) if lane == "priority")
    assert first <= 1  # at most one chunk of max_batch normal rows before it
    assert rows.batches[first]["update_id"].tolist() == [1_000_000, 1_000_001, 1_000_002]
    assert rows.count == 10_003


def test_a_priority_message_wakes_an_idle_processor() -> None:
    # With a one-minute heartbeat, an idle processor only wakes for the priority lane if the
    # publish alerts it: the flush below would otherwise wait past its timeout.
    e = (
        mi.CoreEngineBuilder()
        .with_processors(1)
        .with_health(
            heartbeat_interval_ms=60_000, heartbeat_timeout_ms=120_000, failure_timeout_ms=240_000
        )
        .build()
    )
    r = Recorder()
    e.register_agent(r)
    with running(e):
        e.flush(TIMEOUT)
        for i in range(3):
            e.publish_message(control(f"c{i}", mi.Priority.CRITICAL))
            e.flush(TIMEOUT)
            assert len(r.messages) == i + 1
        urgent = quote_records(["X"], 2)
        urgent["priority"] = mi.Priority.CRITICAL
        e.publish_batch(urgent)
        e.flush(TIMEOUT)
        assert len(r.messages) == 5


# -- partitioned agents ------------------------------------------------------------------------


def by_instance(agents: list[Recorder]) -> dict[str, int]:
    """symbol -> the one instance index that handled it (fails if two did)."""
    owner: dict[str, int] = {}
    for index, agent in enumerate(agents):
        for m in agent.messages:
            key = m.partition_key
            assert owner.setdefault(key, index) == index, f"{key} reached two instances"
    return owner


def test_partitioned_object_agents_split_a_stream_by_symbol() -> None:
    e = engine(3)
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder("part"))
        return made[-1]

    records = e.register_partitioned(factory, instances=3)
    assert [a.partition for a in records] == [(0, 3), (1, 3), (2, 3)]
    assert sorted(a.processor for a in records) == [0, 1, 2]
    msgs = [quote(SYMBOLS[i % 10], i) for i in range(3000)]
    with running(e):
        e.publish_batch(msgs)
        e.flush(TIMEOUT)
    assert sum(len(a.messages) for a in made) == 3000
    ids = [m.id for a in made for m in a.messages]
    assert sorted(ids) == sorted(m.id for m in msgs)  # each exactly once
    owner = by_instance(made)
    assert owner == {s: mi.partition_of(s, 3) for s in SYMBOLS}
    assert len(set(owner.values())) > 1  # ten symbols do not all land on one instance
    for agent in made:  # per-symbol order holds
        per: dict[str, list[int]] = defaultdict(list)
        for m in agent.messages:
            per[m.partition_key].append(m.payload.update_id)  # type: ignore[union-attr]
        for symbol, updates in per.items():
            assert updates == sorted(updates), symbol
            assert len(updates) == 300


def test_partitioned_vectorized_agents_split_records_by_symbol() -> None:
    e = engine(2)
    made: list[BatchRecorder] = []

    def factory() -> BatchRecorder:
        made.append(BatchRecorder("vparts"))
        return made[-1]

    e.register_partitioned(factory, 3)
    records = quote_records(SYMBOLS, 5000)
    with running(e):
        e.publish_batch(records[:2500])
        e.publish_batch(records[2500:])
        e.flush(TIMEOUT)
    assert sum(a.count for a in made) == 5000
    seen: dict[bytes, int] = {}
    for index, agent in enumerate(made):
        got = agent.records
        for symbol in set(got["symbol"].tolist()):
            assert seen.setdefault(symbol, index) == index
            updates = got["update_id"][got["symbol"] == symbol].tolist()
            assert updates == list(range(SYMBOLS.index(symbol.decode()), 5000, 10))
    assert seen == {s.encode(): mi.partition_of(s, 3) for s in SYMBOLS}


def test_object_and_vectorized_groups_split_messages_without_a_symbol_alike() -> None:
    e = engine(2)
    objects: list[Recorder] = []
    vectors: list[BatchRecorder] = []

    def object_instance() -> Recorder:
        objects.append(Recorder("o"))
        return objects[-1]

    def vector_instance() -> BatchRecorder:
        vectors.append(BatchRecorder("v"))
        return vectors[-1]

    e.register_partitioned(object_instance, 3)
    e.register_partitioned(vector_instance, 3)
    sources = [f"desk{i}" for i in range(8)]
    msgs = [
        mi.CoreMessage(mi.MessageType.CONTROL, mi.Control(command="c"), source=s) for s in sources
    ]
    msgs += [quote(s) for s in SYMBOLS]
    with running(e):
        e.publish_batch(msgs)
        e.flush(TIMEOUT)
    object_owner = {m.id: i for i, a in enumerate(objects) for m in a.messages}
    vector_owner = {int(row): i for i, a in enumerate(vectors) for row in a.records["id"].tolist()}
    assert len(object_owner) == len(vector_owner) == len(msgs)
    assert object_owner == vector_owner
    for m in msgs:
        assert object_owner[m.id] == mi.partition_of(m.partition_key, 3)


def test_partitioning_by_source() -> None:
    e = engine(2)
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder("s"))
        return made[-1]

    e.register_partitioned(factory, 2, key="source")
    msgs = [quote(SYMBOLS[i % 10], i, source=f"feed{i % 4}") for i in range(200)]
    with running(e):
        e.publish_batch(msgs)
        e.flush(TIMEOUT)
    for index, agent in enumerate(made):
        assert {m.source for m in agent.messages} == {
            f"feed{k}" for k in range(4) if mi.partition_of(f"feed{k}", 2) == index
        }
    assert sum(len(a.messages) for a in made) == 200


def test_partitioned_registration_errors_and_all_or_nothing() -> None:
    e = engine(2)
    for bad in (0, 65, True, 1.5):
        with pytest.raises(mi.InvalidArgumentError, match=r"instances: .*expected an integer"):
            e.register_partitioned(Recorder, bad)  # type: ignore[arg-type]
    with pytest.raises(mi.InvalidArgumentError, match="factory: 3 is not callable"):
        e.register_partitioned(3, 2)  # type: ignore[arg-type]
    with pytest.raises(mi.InvalidArgumentError, match="key: 'venue' is not valid"):
        e.register_partitioned(Recorder, 2, key="venue")
    e.register_agent(Recorder("p#1"))
    with pytest.raises(mi.InvalidArgumentError, match="name: 'p#1' is taken"):
        e.register_partitioned(lambda: Recorder("p"), 3)
    assert [a.name for a in e.agents()] == ["p#1"]  # p#0 was taken back


# -- the Route itself ----------------------------------------------------------------------------


def test_route_record_mask_combines_types_symbols_partition_and_predicate() -> None:
    records = quote_records(SYMBOLS, 40)
    records["type"][::4] = mi.MessageType.ORDER
    route = mi.Route.build(
        [mi.MessageType.MARKET_DATA],
        ["SYM1", "SYM2", "SYM5"],
        lambda r: r["update_id"] > 10,
        None,
        "symbol",
    )
    mask = route.record_mask(records)
    assert mask is not None
    want = [
        i
        for i in range(40)
        if i % 4 != 0 and SYMBOLS[i % 10] in ("SYM1", "SYM2", "SYM5") and i > 10
    ]
    assert np.flatnonzero(mask).tolist() == want
    assert mi.Route().record_mask(records) is None
    assert mi.Route().wants_all() and not route.wants_all()
    assert route.accepts_type(mi.MessageType.MARKET_DATA) and not route.accepts_type(2)
    assert mi.Route().codes.tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_partition_of_is_stable_and_in_range() -> None:
    assert mi.partition_of("BTCUSDT", 7) == mi.partition_of(b"BTCUSDT", 7)
    assert all(0 <= mi.partition_of(s, 3) < 3 for s in SYMBOLS)
    assert mi.partition_of("anything", 1) == 0
