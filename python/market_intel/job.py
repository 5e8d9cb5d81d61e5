"""The main job: replay recorded market data through the engine and summarise it.

``run_job(config)`` decodes the recordings (the packaged Binance sample by default), starts a
``CoreEngine`` with the configuration's agents, publishes the frames in batches at full speed
or at N times the recorded speed, stops the engine (which drains), and returns a ``JobReport``
whose every number comes from the replayed data: the agents' counts, checks and per-symbol
summaries, and the engine's statistics. With ``store`` a ``StorageAgent`` also journals every
frame and archives it to Parquet there, and the report says what DuckDB finds in the archive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from market_intel.adapters import binance
from market_intel.adapters.normalize import normalize_symbol
from market_intel.agents.market_data import (
    CounterReport,
    MarketDataCounterAgent,
    SequenceCheckAgent,
    SymbolSummaryAgent,
)
from market_intel.agents.storage import StorageAgent, StorageAgentConfig
from market_intel.config import EngineConfig, example_config_path, load_config
from market_intel.engine import CoreEngine, CoreEngineBuilder
from market_intel.errors import InvalidArgumentError
from market_intel.statistics import EngineStatistics
from market_intel.storage.archive import ParquetArchive
from market_intel.storage.journal import Journal
from market_intel.storage.query import MarketStore
from market_intel.summary import SequenceReport, SymbolStats

__all__ = ["JobReport", "StoreReport", "default_config", "run_job"]

Progress = Callable[[int, int], None]
"""Called after each published batch with (frames published, frames in all)."""


def default_config() -> EngineConfig:
    """The embedded default: the example configuration that ships with the package."""
    return load_config(example_config_path())


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What a replay with ``store`` kept, and what the archive answers."""

    directory: str
    journaled: int
    """Journal records written (one per frame)."""
    archived: int
    """Rows written to the Parquet archive."""
    files: int
    parquet_bytes: int
    compression_ratio: float
    """192-byte records / Parquet bytes."""
    trades: dict[tuple[str, str], int]
    """Trades per (venue, symbol), counted by DuckDB in the archive."""
    bars: dict[tuple[str, str], int]
    """One-minute bars per (venue, symbol), from the archive."""


@dataclass(frozen=True, slots=True)
class JobReport:
    """What a replay did and found."""

    files: tuple[str, ...]
    frames: int
    """Frames replayed."""
    decode_s: float
    """Seconds spent decoding the recordings into records."""
    replay_s: float
    """Seconds from the first publish until the engine had handled every frame."""
    speed: float
    """0 for full speed, else the multiple of recorded speed."""
    engine: EngineStatistics
    notes: tuple[str, ...]
    """Configured values that do not apply here or that this version does not use."""
    summary: dict[tuple[str, str], SymbolStats] | None
    sequence: SequenceReport | None
    counter: CounterReport | None
    store: StoreReport | None = None

    @property
    def frames_per_second(self) -> float:
        """Frames replayed per second, decoding excluded."""
        return self.frames / self.replay_s if self.replay_s > 0 else 0.0

    @property
    def decode_frames_per_second(self) -> float:
        """Frames decoded per second."""
        return self.frames / self.decode_s if self.decode_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form; volumes are exact decimal strings."""
        e = self.engine
        out: dict[str, Any] = {
            "files": list(self.files),
            "frames": self.frames,
            "decode_s": self.decode_s,
            "replay_s": self.replay_s,
            "frames_per_second": self.frames_per_second,
            "speed": self.speed,
            "notes": list(self.notes),
            "engine": {
                "messages_published": e.messages_published,
                "messages_processed": e.messages_processed,
                "messages_delivered": e.messages_delivered,
                "errors": e.errors,
                "dropped": e.dropped,
                "latency_ns": None
                if e.latency is None
                else {
                    "count": e.latency.count,
                    "p50": e.latency.p50,
                    "p90": e.latency.p90,
                    "p99": e.latency.p99,
                    "p999": e.latency.p999,
                    "max": e.latency.max,
                },
                "agents": [
                    {
                        "name": a.name,
                        "status": a.status.name,
                        "messages": a.stats.messages,
                        "batches": a.stats.batches,
                        "errors": a.stats.errors,
                        "dropped": a.stats.dropped,
                        "mean_processing_ns": a.stats.mean_processing_ns,
                    }
                    for a in e.agents
                ],
            },
        }
        if self.summary is not None:
            out["symbols"] = [
                {
                    "venue": s.venue,
                    "symbol": s.symbol,
                    "frames": s.frames,
                    "quotes": s.quotes,
                    "trades": s.trades,
                    "depth_updates": s.depth_updates,
                    "snapshots": s.snapshots,
                    "last_price": _json_float(s.last_price),
                    "bid": _json_float(s.bid),
                    "ask": _json_float(s.ask),
                    "volume": str(s.volume),
                    "vwap": _json_float(s.vwap),
                }
                for s in self.summary.values()
            ]
        if self.sequence is not None:
            out["sequence"] = {
                "ok": self.sequence.ok,
                "rows": self.sequence.rows,
                "receive_regressions": self.sequence.receive_regressions,
                "trade_gaps": sum(s.gaps for s in self.sequence.streams.values()),
            }
        if self.store is not None:
            st = self.store
            out["store"] = {
                "directory": st.directory,
                "journaled": st.journaled,
                "archived": st.archived,
                "files": st.files,
                "parquet_bytes": st.parquet_bytes,
                "compression_ratio": st.compression_ratio,
                "trades": [{"venue": v, "symbol": s, "n": n} for (v, s), n in st.trades.items()],
                "bars_1m": [{"venue": v, "symbol": s, "n": n} for (v, s), n in st.bars.items()],
            }
        if self.counter is not None:
            c = self.counter
            out["counter"] = {
                "market_data": c.market_data,
                "by_kind": {k.name: v for k, v in c.by_kind.items()},
                "by_venue": c.by_venue,
                "crossed_quotes": c.crossed_quotes,
            }
        return out


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else value


def _find(engine: CoreEngine, kind: type) -> Any:
    for a in engine.agents():
        obj = engine.agent_object(a)
        if isinstance(obj, kind):
            return obj
    return None


def run_job(
    config: EngineConfig | None = None,
    *,
    files: list[Path] | None = None,
    speed: float | None = None,
    progress: Progress | None = None,
    engine_ready: Callable[[CoreEngine], None] | None = None,
    store: Path | None = None,
) -> JobReport:
    """Replay recordings through a new engine and report.

    Args:
        config: The configuration (default: ``default_config()``); its ``[replay]`` table
            chooses the files, speed, batch size and symbols, its agents are registered.
        files: Recordings to replay instead of the configured ones.
        speed: Replay speed instead of the configured one (0 = full speed).
        progress: Called after each batch with (frames published, frames in all).
        engine_ready: Called with the started engine before the first publish.
        store: A new or empty directory: every frame is journaled in ``store/journal`` and
            archived as Parquet in ``store/archive``.

    Raises:
        InvalidArgumentError: ``store`` exists and is not an empty directory.
    """
    config = config or default_config()
    replay = config.replay
    paths = files or list(replay.files) or binance.sample_paths()
    speed = replay.speed if speed is None else speed
    t0 = time.perf_counter()
    records = binance.load(paths)
    if replay.symbols:
        # Records carry canonical symbols; the config may spell them either way (BTCUSDT).
        wanted = np.array([normalize_symbol("replay", s).encode() for s in replay.symbols])
        records = records[np.isin(records["symbol"], wanted)]
    decode_s = time.perf_counter() - t0
    engine = CoreEngineBuilder().with_config(config).with_profiling(True).build()
    storage = archive = None
    if store is not None:
        storage, archive = _storage(engine, store)
    total = len(records)
    affinity = config.core.thread_affinity
    pinned = None
    if affinity.enabled and affinity.producer_core is not None:
        pinned = os.sched_getaffinity(0)
        try:
            os.sched_setaffinity(0, {affinity.producer_core})
        except OSError:
            pinned = None  # a core this machine lacks: reported as a config note
    try:
        with engine:
            if engine_ready is not None:
                engine_ready(engine)
            published = 0
            start = time.perf_counter()
            for batch in binance.replay(records, batch_size=replay.batch_size, speed=speed):
                published += engine.publish_batch(batch)
                if progress is not None:
                    progress(published, total)
            engine.flush()
            replay_s = time.perf_counter() - start
    finally:
        if pinned is not None:
            os.sched_setaffinity(0, pinned)
        if storage is not None:
            storage.close()
    summary = _find(engine, SymbolSummaryAgent)
    sequence = _find(engine, SequenceCheckAgent)
    counter = _find(engine, MarketDataCounterAgent)
    return JobReport(
        files=tuple(str(p) for p in paths),
        frames=total,
        decode_s=decode_s,
        replay_s=replay_s,
        speed=speed,
        engine=engine.get_statistics(),
        notes=engine.settings.notes,
        summary=summary.report() if summary else None,
        sequence=sequence.report() if sequence else None,
        counter=counter.report() if counter else None,
        store=None if archive is None or store is None else _stored(archive, store),
    )


def _storage(engine: CoreEngine, store: Path) -> tuple[StorageAgent, ParquetArchive]:
    """Register a storage agent journaling and archiving into ``store``."""
    if store.exists() and (not store.is_dir() or any(store.iterdir())):
        raise InvalidArgumentError(
            f"store: {str(store)!r} is not empty; expected a new or empty directory"
        )
    config = StorageAgentConfig(directory=store / "journal", fsync="interval")
    archive = ParquetArchive(store / "archive")
    storage = StorageAgent(config, archive=archive)
    engine.register_agent(storage)
    return storage, archive


def _stored(archive: ParquetArchive, store: Path) -> StoreReport:
    """What the journal and the archive hold, the archive counted by DuckDB."""
    with Journal.open(store / "journal") as journal:
        journaled = journal.last_sequence
    stats = archive.statistics()
    with MarketStore(store / "archive") as market:
        rows = market.query(
            "SELECT venue, symbol, count(*) AS n FROM market_data WHERE kind = 'TRADE' "
            "GROUP BY venue, symbol ORDER BY venue, symbol"
        ).arrow()
        keys = zip(rows["venue"].to_pylist(), rows["symbol"].to_pylist(), strict=True)
        trades = dict(zip(keys, rows["n"].to_pylist(), strict=True))
        bars = {
            (venue, symbol): len(market.bars(symbol, "1m", venue=venue)) for venue, symbol in trades
        }
    return StoreReport(
        directory=str(store),
        journaled=journaled,
        archived=sum(stats.rows.values()),
        files=stats.files,
        parquet_bytes=stats.bytes_written,
        compression_ratio=stats.compression_ratio,
        trades=trades,
        bars=bars,
    )
