"""CoreEngine: the canonical example, the builder and its errors, the lifecycle, publishing
(objects, lists and numpy records), draining on stop, statistics and concurrent producers."""

from __future__ import annotations

import contextlib
import io
import threading

import market_intel as mi
import msgspec
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
    trade,
    wait_for,
)

CANONICAL = """
from market_intel import CoreEngineBuilder, CoreMessage, MessageType, MessagePayload
engine = CoreEngineBuilder().with_processors(4).with_profiling(True).build()
engine.start()
engine.publish_message(CoreMessage(MessageType.MARKET_DATA, MessagePayload.text("Hello World"), source="test_source"))
stats = engine.get_statistics()
print(stats.messages_per_second)
engine.stop()
"""  # noqa: E501


# -- the canonical example -------------------------------------------------------------------


def test_the_canonical_example_runs_exactly_as_written() -> None:
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(CANONICAL, "<canonical example>", "exec"), namespace)
    assert float(out.getvalue()) > 0.0
    e = namespace["engine"]
    assert isinstance(e, mi.CoreEngine) and not e.running
    stats = namespace["stats"]
    assert isinstance(stats, mi.EngineStatistics)
    assert stats.running and stats.messages_published == 1
    assert stats.messages_by_type[mi.MessageType.MARKET_DATA] == 1
    assert stats.latency is not None  # profiling on
    assert e.settings.processors == 4 and e.settings.profiling


# -- the builder -----------------------------------------------------------------------------


def test_builder_options_reach_the_settings() -> None:
    b = (
        mi.CoreEngineBuilder()
        .with_processors(3)
        .with_buffer_size(1024)
        .with_priority_buffer_size(64)
        .with_wait_strategy("sleeping")
        .with_profiling()
        .with_max_batch(32)
        .with_health(heartbeat_interval_ms=10, max_restarts=2, restart=False)
    )
    s = b.settings
    assert (s.processors, s.buffer_size, s.priority_buffer_size) == (3, 1024, 64)
    assert (s.wait_strategy, s.profiling, s.max_batch) == ("sleeping", True, 32)
    assert (s.heartbeat_interval_ms, s.max_restarts, s.restart) == (10, 2, False)
    e = b.build()
    assert e.settings == s and not e.running
    with running(e):
        assert e.running


@pytest.mark.parametrize(
    ("configure", "expected"),
    [
        (lambda b: b.with_processors(0), ["processors: 0", "expected 1..64"]),
        (lambda b: b.with_processors(65), ["processors: 65", "expected 1..64"]),
        (lambda b: b.with_processors("4"), ["processors: '4'", "expected an int"]),
        (lambda b: b.with_buffer_size(1000), ["buffer_size: 1000", "power of two"]),
        (lambda b: b.with_buffer_size(4), ["buffer_size: 4", "power of two >= 8"]),
        (lambda b: b.with_priority_buffer_size(100), ["priority_buffer_size: 100", "power"]),
        (lambda b: b.with_max_batch(0), ["max_batch: 0", "expected >= 1"]),
        (lambda b: b.with_wait_strategy("fast"), ["wait_strategy: 'fast'", "'blocking'"]),
        (
            lambda b: b.with_health(max_consecutive_errors=0),
            ["max_consecutive_errors: 0", "expected >= 1"],
        ),
        (
            lambda b: b.with_health(heartbeat_interval_ms=0),
            ["heartbeat_interval_ms: 0", "expected >= 1"],
        ),
        (lambda b: b.with_health(restart_backoff_ms=-1), ["restart_backoff_ms: -1", ">= 1"]),
        (
            lambda b: b.with_health(heartbeat_timeout_ms=50),
            ["heartbeat_timeout_ms: 50 with heartbeat_interval_ms 100; expected >"],
        ),
        (lambda b: b.with_health(max_restarts=-1), ["max_restarts: -1", ">= 0"]),
        (
            lambda b: b.with_health(restart=1),
            ["restart: 1 is not a bool", "expected True or False"],
        ),
    ],
)
def test_a_bad_builder_option_fails_at_build_naming_field_value_and_expectation(
    configure: object, expected: list[str]
) -> None:
    builder = configure(mi.CoreEngineBuilder())  # type: ignore[operator]
    with pytest.raises(mi.InvalidArgumentError) as e:
        builder.build()
    for part in expected:
        assert part in str(e.value)


def test_every_bad_setting_is_reported_at_once() -> None:
    b = mi.CoreEngineBuilder().with_processors(0).with_buffer_size(1000).with_max_batch(0)
    with pytest.raises(mi.InvalidArgumentError) as e:
        b.build()
    text = str(e.value)
    assert "processors: 0" in text and "buffer_size: 1000" in text and "max_batch: 0" in text


def test_an_unknown_health_option_is_rejected_with_the_allowed_ones() -> None:
    with pytest.raises(mi.InvalidArgumentError) as e:
        mi.CoreEngineBuilder().with_health(heartbeat_ms=10)
    text = str(e.value)
    assert "with_health" in text and "heartbeat_ms" in text
    assert "expected" in text and "heartbeat_interval_ms" in text


def test_engine_settings_are_checked_by_the_engine_itself() -> None:
    with pytest.raises(mi.InvalidArgumentError, match="processors: 0"):
        mi.CoreEngine(mi.EngineSettings(processors=0))


# -- lifecycle -------------------------------------------------------------------------------


def test_the_context_manager_starts_and_stops() -> None:
    e = engine()
    r = Recorder()
    e.register_agent(r)
    with e as entered:
        assert entered is e and e.running
        e.publish_message(quote())
    assert not e.running
    assert len(r.messages) == 1  # stop drained
    assert r.started == 1 and r.stopped == 1
    assert e.get_agent(r.name).status == mi.AgentStatus.STOPPED


def test_start_twice_raises_engine_error() -> None:
    e = engine()
    with running(e), pytest.raises(mi.EngineError, match="start: the engine is running"):
        e.start()


def test_publishing_before_start_and_after_stop_raises_engine_error() -> None:
    e = engine()
    with pytest.raises(mi.EngineError, match=r"publish_message: .* not running; call start"):
        e.publish_message(quote())
    with pytest.raises(mi.EngineError, match=r"publish_batch: .* not running; call start"):
        e.publish_batch([quote()])
    with running(e):
        e.publish_message(quote())
    with pytest.raises(mi.EngineError, match="publish_message: the engine is not running"):
        e.publish_message(quote())
    with pytest.raises(mi.EngineError, match="publish_batch: the engine is not running"):
        e.publish_batch(quote_records(["A"], 2))


def test_stop_is_idempotent_and_stop_before_start_does_nothing() -> None:
    e = engine()
    e.stop()
    with running(e):
        pass
    e.stop()
    assert not e.running


def test_restart_after_stop_delivers_again() -> None:
    e = engine()
    r = Recorder()
    e.register_agent(r)
    with running(e):
        e.publish_message(quote(i=1))
    with running(e):
        e.publish_message(quote(i=2))
        e.flush(TIMEOUT)
        assert e.get_agent(r.name).status == mi.AgentStatus.RUNNING
    assert r.update_ids() == [1, 2]
    assert (r.started, r.stopped) == (2, 2)
    assert e.get_statistics().messages_published == 1  # counters of the last run


def test_statistics_after_stop_report_the_last_run() -> None:
    e = engine()
    e.register_agent(Recorder())
    with running(e):
        e.publish_batch([quote(i=i) for i in range(5)])
    s = e.get_statistics()
    assert not s.running
    assert s.messages_published == 5 and s.messages_delivered == 5
    assert s.uptime_s > 0


# -- publish_message ---------------------------------------------------------------------------


def test_publish_message_stamps_published_ns_on_the_message_itself() -> None:
    e = engine(1)
    b = BatchRecorder(objects=True)
    e.register_agent(b)
    m = control(priority=mi.Priority.NORMAL)
    assert m.published_ns == 0
    with running(e):
        seq = e.publish_message(m)
        e.flush(TIMEOUT)
        assert e._lanes is not None
        in_ring = e._lanes.normal._peek(seq, seq)[0]
    assert seq == 0
    assert m.published_ns > m.created_ns > 0
    # The record in the ring carries the same stamp, and the agent gets the object itself.
    assert int(in_ring["published_ns"]) == m.published_ns
    assert int(in_ring["id"]) == m.id and int(in_ring["created_ns"]) == m.created_ns
    assert int(b.records["published_ns"][0]) == m.published_ns
    assert int(b.records["id"][0]) == m.id
    assert b.objects[0] is m


def test_publish_message_returns_the_sequence_in_the_message_lane() -> None:
    e = engine(1)
    e.register_agent(Recorder())
    with running(e):
        assert [e.publish_message(quote()) for _ in range(3)] == [0, 1, 2]
        assert e.publish_message(control()) == 0  # the priority lane has its own sequence
        assert e.publish_message(quote(priority=mi.Priority.HIGH)) == 1
        assert e.publish_message(quote(priority=mi.Priority.LOW)) == 3


@pytest.mark.parametrize("bad", [{"type": 1}, "hello", 42, None])
def test_publish_message_of_a_non_message_names_its_type(bad: object) -> None:
    e = engine(1)
    with running(e):
        with pytest.raises(mi.InvalidArgumentError) as err:
            e.publish_message(bad)  # type: ignore[arg-type]
        assert type(bad).__name__ in str(err.value) and "CoreMessage" in str(err.value)
        assert e.get_statistics().messages_published == 0


# -- publish_batch -----------------------------------------------------------------------------


def test_publish_batch_of_messages_delivers_them_in_order() -> None:
    e = engine()
    r = Recorder()
    e.register_agent(r)
    msgs = [quote(i=i) for i in range(100)]
    with running(e):
        assert e.publish_batch(msgs) == 100
        assert e.publish_batch([]) == 0
        e.flush(TIMEOUT)
        assert r.messages == msgs
        assert all(a is b for a, b in zip(r.messages, msgs, strict=True))


def test_records_reach_a_vectorized_agent_as_the_published_columns() -> None:
    e = engine()
    b = BatchRecorder()
    e.register_agent(b)
    records = quote_records(["BTCUSDT", "ETHUSDT"], 1000)
    records["id"] = np.arange(1, 1001, dtype=np.uint64)
    records["created_ns"] = 5
    before = records.copy()
    with running(e):
        assert e.publish_batch(records) == 1000
        e.flush(TIMEOUT)
    for name in mi.MESSAGE_DTYPE.names or ():  # the caller's array is not touched
        np.testing.assert_array_equal(records[name], before[name], err_msg=name)
    got = b.records
    assert len(got) == 1000
    assert (got["published_ns"] > 0).all()
    assert (got["flags"] == 0).all()
    for name in mi.MESSAGE_DTYPE.names or ():
        if name != "published_ns":
            np.testing.assert_array_equal(got[name], records[name], err_msg=name)


def test_records_reach_an_object_agent_decoded_as_from_records_of_the_same_rows() -> None:
    e = engine()
    r = Recorder()
    b = BatchRecorder()
    e.register_agent(r, affinity=0)
    e.register_agent(b, affinity=1)
    records = quote_records(["BTCUSDT", "ETHUSDT", "SOLUSDT"], 300)
    with running(e):
        e.publish_batch(records)
        e.flush(TIMEOUT)
    assert len(r.messages) == 300
    assert r.messages == mi.from_records(b.records)
    assert r.update_ids() == list(range(300))


def test_messages_published_as_records_come_back_equal_but_for_the_publication_time() -> None:
    e = engine(1)
    r = Recorder()
    e.register_agent(r)
    msgs = [quote("BTCUSDT", i) for i in range(5)] + [order("ETHUSDT", 1), trade("SOLUSDT", 2)]
    with running(e):
        e.publish_batch(mi.to_records(msgs))
        e.flush(TIMEOUT)
    assert [m.published_ns > 0 for m in r.messages] == [True] * 7
    assert [msgspec.structs.replace(m, published_ns=0) for m in r.messages] == msgs


def test_records_without_ids_get_unique_ids_and_creation_times_from_the_engine() -> None:
    e = engine(1)
    b = BatchRecorder()
    e.register_agent(b)
    records = quote_records(["BTCUSDT"], 10)
    records["id"][5:] = np.arange(1_000, 1_005, dtype=np.uint64)  # kept as given
    assert (records["created_ns"] == 0).all()
    with running(e):
        e.publish_batch(records)
        e.publish_batch(quote_records(["BTCUSDT"], 10))
        e.flush(TIMEOUT)
    ids = b.records["id"]
    assert (ids > 0).all() and len(set(ids.tolist())) == 20
    np.testing.assert_array_equal(ids[5:10], np.arange(1_000, 1_005))
    assert (b.records["created_ns"] > 0).all()


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("type", int(mi.MessageType.EVENT), "row 3 has type 4; expected MARKET_DATA, ORDER"),
        ("type", 0, "row 3 has type 0"),
        ("priority", 9, "row 3 has priority 9; expected 0..3"),
    ],
)
def test_publish_batch_rejects_a_bad_row_naming_it_and_publishes_nothing(
    field: str, value: int, expected: str
) -> None:
    e = engine(1)
    b = BatchRecorder()
    e.register_agent(b)
    records = quote_records(["BTCUSDT"], 6)
    records[field][3] = value
    with running(e):
        with pytest.raises(mi.InvalidArgumentError) as err:
            e.publish_batch(records)
        assert expected in str(err.value)
        e.publish_message(quote())
        e.flush(TIMEOUT)
        assert b.count == 1
        assert e.get_statistics().messages_published == 1


def test_publish_batch_rejects_an_array_of_another_dtype() -> None:
    e = engine(1)
    with running(e):
        with pytest.raises(mi.InvalidArgumentError) as err:
            e.publish_batch(np.zeros(3, dtype=[("id", "<u8")]))
        assert "dtype" in str(err.value) and "MESSAGE_DTYPE" in str(err.value)
        with pytest.raises(mi.InvalidArgumentError, match="one-dimensional"):
            e.publish_batch(quote_records(["A"], 4).reshape(2, 2))


def test_publish_batch_of_a_list_with_a_non_message_names_its_type() -> None:
    e = engine(1)
    with running(e), pytest.raises(mi.InvalidArgumentError, match="str is not a CoreMessage"):
        e.publish_batch([quote(), "oops"])  # type: ignore[list-item]


def test_a_batch_larger_than_the_lane_is_published_in_chunks_in_order() -> None:
    e = mi.CoreEngineBuilder().with_processors(2).with_buffer_size(64).build()
    b = BatchRecorder()
    r = Recorder()
    e.register_agent(b, affinity=0)
    e.register_agent(r, affinity=1)
    records = quote_records(["BTCUSDT", "ETHUSDT"], 1000)
    with running(e):
        assert e.publish_batch(records) == 1000
        e.publish_batch([quote(i=1000 + i) for i in range(200)])  # objects past the capacity too
        e.flush(TIMEOUT)
    assert b.records["update_id"].tolist() == list(range(1200))
    assert r.update_ids() == list(range(1200))
    assert max(len(x) for x in b.batches) <= 64


def test_mixed_priority_records_take_their_lanes_in_order() -> None:
    e = engine(1)
    b = BatchRecorder()
    e.register_agent(b)
    records = quote_records(["BTCUSDT"], 400)
    records["priority"] = [(0, 1, 2, 3)[i % 4] for i in range(400)]
    with running(e):
        e.publish_batch(records)
        e.flush(TIMEOUT)
    urgent = [int(u) for u in range(400) if u % 4 < 2]
    normal = [int(u) for u in range(400) if u % 4 >= 2]
    got_urgent, got_normal = [], []
    for batch, lane in zip(b.batches, b.lanes, strict=True):
        prio = batch["priority"]
        if lane == "priority":
            assert (prio <= mi.Priority.HIGH).all()
            got_urgent += batch["update_id"].tolist()
        else:
            assert (prio >= mi.Priority.NORMAL).all()
            got_normal += batch["update_id"].tolist()
    assert got_urgent == urgent and got_normal == normal
    counts = e.get_statistics().messages_by_type
    assert counts[mi.MessageType.MARKET_DATA] == 400


def test_a_vectorized_agent_sees_messages_published_as_objects_as_columns() -> None:
    e = engine(1)
    b = BatchRecorder(objects=True)
    e.register_agent(b)
    msgs = [quote("ETHUSDT", i) for i in range(50)]
    ctl = control(priority=mi.Priority.NORMAL)
    with running(e):
        for m in msgs:
            e.publish_message(m)
        e.publish_message(ctl)
        e.flush(TIMEOUT)
    got = b.records
    quotes = got[got["type"] == mi.MessageType.MARKET_DATA]
    assert quotes["bid"].tolist() == [m.payload.bid for m in msgs]  # type: ignore[union-attr]
    assert quotes["ask"].tolist() == [m.payload.ask for m in msgs]  # type: ignore[union-attr]
    assert quotes["symbol"].tolist() == [b"ETHUSDT"] * 50
    assert quotes["update_id"].tolist() == list(range(50))
    assert quotes["published_ns"].tolist() == [m.published_ns for m in msgs]
    # Every row has its header, and the batch hands back the published objects themselves.
    assert got["source"].tolist() == [b"test"] * 50 + [b"risk"]
    assert got["id"].tolist() == [m.id for m in [*msgs, ctl]]
    assert (got["flags"] == mi.FLAG_OBJECT).all()
    assert got["type"][-1] == mi.MessageType.CONTROL
    assert all(x is y for x, y in zip(b.objects, [*msgs, ctl], strict=True))


# -- stop drains -------------------------------------------------------------------------------


def test_stop_drains_every_lane_to_every_agent() -> None:
    e = mi.CoreEngineBuilder().with_processors(2).with_buffer_size(256).build()
    objects_all = Recorder("all")
    quotes_only = Recorder("quotes")
    vector = BatchRecorder("vector")
    e.register_agent(objects_all, affinity=0)
    e.register_agent(quotes_only, affinity=1, message_types=[mi.MessageType.MARKET_DATA])
    e.register_agent(vector, affinity=1)
    e.start()
    for i in range(2000):
        e.publish_message(quote(i=i))
    for _ in range(100):
        e.publish_message(control())
    e.publish_batch(quote_records(["BTCUSDT"], 3000, start=2000))
    e.stop()
    assert len(objects_all.messages) == 5100
    assert len(quotes_only.messages) == 5000
    assert quotes_only.update_ids() == list(range(5000))
    assert vector.count == 5100
    s = e.get_statistics()
    assert s.messages_published == 5100
    assert s.messages_delivered == 5100 + 5000 + 5100
    assert {a.name: a.stats.messages for a in s.agents} == {
        "all": 5100,
        "quotes": 5000,
        "vector": 5100,
    }


def test_stop_with_a_stuck_agent_times_out_naming_its_processor() -> None:
    e = engine(2)
    stuck = GatedRecorder("stuck")
    fine = Recorder("fine")
    e.register_agent(stuck, affinity=1)
    e.register_agent(fine, affinity=0)
    e.start()
    try:
        e.publish_message(quote(i=0))
        stuck.gate.wait_entered()
        e.publish_message(quote(i=1))
        with pytest.raises(mi.WaitTimeoutError) as err:
            e.stop(timeout=1.0)
        assert "processor(s) [1]" in str(err.value)  # processor 0 drained in time
        assert isinstance(err.value, TimeoutError)
        assert fine.update_ids() == [0, 1]
        assert not e.running
    finally:
        stuck.gate.release()
    processor = e._processors[1]
    wait_for(lambda: not processor.running, "the stuck processor to finish")
    # The stop gave up on what the stuck agent had not taken yet: it is counted as dropped.
    assert stuck.update_ids() == [0]
    assert e.get_agent("stuck").stats.dropped == 1


# -- statistics --------------------------------------------------------------------------------


def test_statistics_count_types_deliveries_errors_and_latency() -> None:
    e = mi.CoreEngineBuilder().with_processors(2).with_profiling().build()
    everything = Recorder("everything")
    orders = Recorder("orders")
    e.register_agent(everything, affinity=0)
    e.register_agent(orders, affinity=1, message_types=[mi.MessageType.ORDER])
    with running(e):
        for _ in range(3):
            e.publish_batch(one_of_each_type())
        e.flush(TIMEOUT)
        s = e.get_statistics()
    assert s.running and s.uptime_s > 0 and s.messages_per_second > 0
    assert s.messages_by_type == dict.fromkeys(mi.MessageType, 3)
    assert s.messages_published == 21
    assert s.messages_processed == 21  # each processor takes every message
    assert s.messages_delivered == 21 + 3
    assert {a.name: a.stats.messages for a in s.agents} == {"everything": 21, "orders": 3}
    assert s.errors == 0 and s.error_rate == 0.0 and s.dropped == 0
    # The latency histogram has one entry per message per processor that took it.
    assert s.latency is not None
    assert s.latency.count == 21 * 2
    assert 0 < s.latency.min <= s.latency.p50 <= s.latency.p99 <= s.latency.max
    assert 0.0 <= s.buffer_utilization <= 1.0
    assert 0.0 <= s.peak_buffer_utilization <= 1.0


def test_latency_is_none_without_profiling() -> None:
    e = engine()
    with running(e):
        assert e.get_statistics().latency is None


def test_buffer_utilization_shows_a_backlog() -> None:
    e = mi.CoreEngineBuilder().with_processors(1).with_buffer_size(1024).build()
    gated = GatedRecorder()
    e.register_agent(gated)
    with running(e):
        e.publish_message(quote())
        gated.gate.wait_entered()
        for i in range(511):
            e.publish_message(quote(i=i))
        s = e.get_statistics()
        assert 0.49 <= s.buffer_utilization <= 0.5
        assert s.peak_buffer_utilization == s.buffer_utilization
        assert e.get_agent(gated.name).stats.lag >= 511
        gated.gate.release()
        e.flush(TIMEOUT)
        s = e.get_statistics()
        assert s.buffer_utilization == 0.0 and s.peak_buffer_utilization >= 0.49


def test_error_rate_is_errors_per_delivered_message() -> None:
    class FailsOnOdd:
        name = "odd"

        def process_event(self, m: mi.CoreMessage) -> None:
            if m.payload.update_id % 2:  # type: ignore[union-attr]
                raise ValueError("odd")

    e = engine(1)
    e.register_agent(FailsOnOdd())
    with running(e):
        e.publish_batch([quote(i=i) for i in range(20)])
        e.flush(TIMEOUT)
        s = e.get_statistics()
    assert (s.errors, s.messages_delivered, s.error_rate) == (10, 20, 0.5)


def test_agent_records_describe_the_agents() -> None:
    e = mi.CoreEngineBuilder().with_processors(3).build()
    r = e.register_agent(
        Recorder("r"), agent_type="risk", message_types=["order", mi.MessageType.TRADE]
    )
    v = e.register_agent(BatchRecorder("v"), agent_type=mi.AgentType.ANALYTICS, affinity=2)
    parts = e.register_partitioned(lambda: Recorder("p"), 2)
    assert isinstance(r, mi.CoreAgent)
    assert (r.name, r.agent_type, r.status) == ("r", mi.AgentType.RISK, mi.AgentStatus.STARTING)
    assert r.message_types == frozenset({mi.MessageType.ORDER, mi.MessageType.TRADE})
    assert (r.processor, r.partition, r.vectorized) == (0, None, False)
    assert (v.processor, v.vectorized, v.message_types) == (2, True, frozenset())
    assert [p.name for p in parts] == ["p#0", "p#1"]
    assert [p.partition for p in parts] == [(0, 2), (1, 2)]
    assert {p.processor for p in parts} == {0, 1}  # spread over the least loaded processors
    assert [a.id for a in e.agents()] == [r.id, v.id, parts[0].id, parts[1].id]
    assert len({a.id for a in e.agents()}) == 4
    with running(e):
        e.publish_message(order())
        e.flush(TIMEOUT)
        got = e.get_agent("r")
        assert got == e.get_agent(r.id) == e.get_agent(r)
        assert got.status == mi.AgentStatus.RUNNING
        assert got.last_heartbeat_ns > 0
        assert got.stats.messages == 1 and got.stats.batches == 1
        assert got.stats.processing_ns > 0 and got.stats.mean_processing_ns > 0
        assert got.stats.lag == 0 and got.thread_affinity is None and got.restarts == 0
    with pytest.raises(mi.AgentNotFoundError):
        e.get_agent("nobody")
    with pytest.raises(KeyError):
        e.get_agent(999)


def test_registration_errors_name_the_argument() -> None:
    e = engine(2)
    cases: list[tuple[object, dict[str, object], str]] = [
        (object(), {}, "agent: object has neither process_event nor process_batch"),
        (Recorder(), {"agent_type": "wizard"}, "agent_type: 'wizard' is not an AgentType"),
        (Recorder(), {"message_types": ["quotes"]}, "message_types: 'quotes' is not a"),
        (Recorder(), {"message_types": [9]}, "message_types: 9 is not a MessageType"),
        (Recorder(), {"symbols": [""]}, "symbols: '' is not a symbol"),
        (Recorder(), {"filter": 3}, "filter: 3 is not callable"),
        (Recorder(), {"affinity": 2}, "affinity: 2 is not a processor index; expected 0..1"),
        (Recorder(), {"affinity": True}, "affinity: True is not a processor index"),
    ]
    for agent, kwargs, expected in cases:
        with pytest.raises(mi.InvalidArgumentError) as err:
            e.register_agent(agent, **kwargs)  # type: ignore[arg-type]
        assert expected in str(err.value)
    assert e.agents() == ()


# -- producers on several threads --------------------------------------------------------------


def test_four_producer_threads_lose_and_duplicate_nothing() -> None:
    e = mi.CoreEngineBuilder().with_processors(2).with_buffer_size(256).build()
    r = Recorder()
    b = BatchRecorder()
    e.register_agent(r, affinity=0)
    e.register_agent(b, affinity=1)
    per_thread = 3000
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def produce(t: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                e.publish_message(quote(f"T{t}", t * 1_000_000 + i))
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    with running(e):
        threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        e.flush(TIMEOUT)
    assert not errors
    ids = r.update_ids()
    assert len(ids) == 4 * per_thread == len(set(ids))
    for producer in range(4):
        mine = [i for i in ids if i // 1_000_000 == producer]
        assert mine == [producer * 1_000_000 + i for i in range(per_thread)]  # in its order
    assert b.records["update_id"].tolist() == ids  # both processors saw one order
    assert e.get_statistics().messages_published == 4 * per_thread


def test_the_switch_interval_applies_while_the_engine_runs() -> None:
    import sys

    before = sys.getswitchinterval()
    e = mi.CoreEngineBuilder().with_processors(1).with_switch_interval(250).build()
    with e:
        assert sys.getswitchinterval() == pytest.approx(250e-6)
    assert sys.getswitchinterval() == before
    with pytest.raises(mi.InvalidArgumentError, match=r"switch_interval_us: -1 is out of range"):
        mi.CoreEngineBuilder().with_switch_interval(-1).build()
