"""The whole path with real parts: a recorded Binance feed through the ingestion agent into a
running engine; the storage agent journals it and archives it to Parquet; DuckDB answers
questions about it; and a new engine rebuilds its state from the journal."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import market_intel as mi
import msgspec
from market_intel.adapters import binance
from market_intel.adapters.recording import RecordingSource
from market_intel.agents.ingestion import DataIngestionAgent, DataIngestionAgentConfig
from market_intel.agents.market_data import MarketDataCounterAgent
from market_intel.agents.storage import StorageAgent, StorageAgentConfig
from market_intel.storage.archive import ParquetArchive
from market_intel.storage.journal import Journal
from market_intel.storage.query import MarketStore
from mi_engine import Recorder, running

SAMPLE = {p.name: p for p in binance.sample_paths()}


def fields(m: mi.CoreMessage) -> tuple[object, ...]:
    return (m.id, m.created_ns, m.type, m.payload, m.priority, m.source, m.metadata)


def test_a_recorded_feed_is_journaled_archived_queried_and_recovered(tmp_path: Path) -> None:
    paths = [SAMPLE["spot_btcusdt_20240808.gz"], SAMPLE["spot_ethusdt_20240808.gz"]]
    engine = mi.CoreEngineBuilder().with_processors(2).build()
    feed = DataIngestionAgent(
        engine, RecordingSource(paths), DataIngestionAgentConfig(deterministic_ids=True)
    )
    archive = ParquetArchive(tmp_path / "archive")
    storage = StorageAgent(
        StorageAgentConfig(directory=tmp_path / "journal", fsync="batch"), archive=archive
    )
    collector = Recorder("collector")
    engine.register_agent(feed, message_types=[mi.MessageType.CONTROL])
    engine.register_agent(storage)
    engine.register_agent(collector)
    with running(engine):
        assert feed.wait_finished(60)
        engine.flush(timeout=60)
    storage.close()
    published = collector.messages
    assert feed.statistics().published == len(published)

    # The journal holds every published message, exactly once and exactly as published.
    with Journal.open(tmp_path / "journal") as journal:
        journaled = [m for batch in journal.replay_batches() for m in batch.to_messages()]
    assert sorted(map(fields, journaled)) == sorted(map(fields, published))
    assert len({m.id for m in journaled}) == len(journaled)

    # The archive answers with the same trades, and bars that add up.
    trades = [
        m.payload
        for m in published
        if isinstance(m.payload, mi.MarketData)
        and m.payload.kind is mi.MarketDataKind.TRADE
        and m.payload.symbol == "BTC-USDT"
    ]
    with MarketStore(tmp_path / "archive") as store:
        got = store.trades("BTC-USDT").arrow().to_pydict()
        bars = store.bars("BTC-USDT", "1m").arrow().to_pydict()
        eth_rows = store.query(
            "SELECT count(*) AS n FROM market_data WHERE symbol = ?", ["ETH-USDT"]
        ).arrow()
    assert sorted(zip(got["trade_id"], got["price"], got["size"], strict=True)) == sorted(
        (t.update_id, t.last_price, t.last_size) for t in trades
    )
    assert sum(bars["trades"]) == len(trades)
    volume = sum(Decimal(repr(t.last_size)) for t in trades)
    assert abs(Decimal(repr(sum(bars["volume"]))) - volume) < Decimal("1e-9")
    eth = [m for m in published if getattr(m.payload, "symbol", "") == "ETH-USDT"]
    assert eth_rows.to_pydict()["n"] == [len(eth)]
    assert archive.statistics().compression_ratio > 1

    # A new engine rebuilds its state from the journal alone.
    rebuilt = mi.CoreEngineBuilder().with_processors(1).build()
    counter = MarketDataCounterAgent(name="counter")
    rebuilt.register_agent(counter)
    again = StorageAgent(StorageAgentConfig(directory=tmp_path / "journal", fsync="never"))
    with running(rebuilt):
        assert again.recover(rebuilt) == len(published)
        rebuilt.flush(timeout=60)
    again.close()
    market = [m for m in published if m.type is mi.MessageType.MARKET_DATA]
    report = counter.report()
    assert (report.messages, report.market_data) == (len(published), len(market))


def test_the_journal_of_a_feed_survives_being_replayed_twice(tmp_path: Path) -> None:
    """Recovery publishes into a running engine, then journals only what comes after."""
    engine = mi.CoreEngineBuilder().with_processors(1).build()
    source = RecordingSource([SAMPLE["usdm_btcusdt_20240808.gz"]])
    feed = DataIngestionAgent(engine, source, DataIngestionAgentConfig(deterministic_ids=True))
    storage = StorageAgent(StorageAgentConfig(directory=tmp_path / "j", fsync="interval"))
    engine.register_agent(feed, message_types=[mi.MessageType.CONTROL])
    engine.register_agent(storage)
    with running(engine):
        assert feed.wait_finished(60)
        engine.flush(timeout=60)
    first = storage.last_sequence
    storage.close()
    second_engine = mi.CoreEngineBuilder().with_processors(1).build()
    again = StorageAgent(StorageAgentConfig(directory=tmp_path / "j", fsync="interval"))
    with running(second_engine):
        again.recover(second_engine)
        second_engine.publish_message(
            mi.CoreMessage(mi.MessageType.EVENT, mi.Event(code="after.recovery"))
        )
        second_engine.flush(timeout=60)
    assert again.last_sequence == first + 1
    again.close()
    with Journal.open(tmp_path / "j") as journal:
        last = list(journal.replay(first + 1))
    assert [msgspec.structs.asdict(m)["payload"].code for _, m in last] == ["after.recovery"]
