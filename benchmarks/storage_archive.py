"""The columnar archive's benchmarks, each measured beside its baselines in the same run.

Topologies:
  archive_write  recorded Binance market data (the full recording in ../shared/data/binance,
                 332,200 frames, tiled with shifted timestamps beyond that) written with
                 ``ParquetArchive.write`` in batches of 4096, as a storage agent receives ring
                 batches, then ``close``; events/s from the first write until every file is
                 written and fsynced. The row's notes give the bytes per event on disk and the
                 compression ratio of that run. Baselines: the same records as one
                 unpartitioned zstd Parquet file (``pyarrow.parquet.write_table``, conversion
                 to Arrow included, no validation or partitioning) and as raw 192-byte records
                 (``numpy.ndarray.tofile``); both fsynced.
  query_day      a day of one symbol: public trades of spot BTC-USDT over one UTC day plus its
                 1-minute OHLCV bars (``MarketStore.trades`` then ``MarketStore.bars``, both
                 bounded to the day); latency of the pair, ns (kind "latency": each sample is
                 one pair). The day is built once per process from the full recording's spot
                 BTC-USDT and ETH-USDT frames (venue binance), its timestamps shifted to tile
                 2024-08-08 00:00 to 24:00 UTC (about 250 copies of the 346 s recording, 18.7
                 million rows, of which 10.3 million BTC-USDT with 2.4 million trades), written
                 with ParquetArchive; building it is not timed (it takes one to two minutes on
                 two cores) and it is removed at exit. Baseline: the same helpers with
                 DuckDB's filter pushdown off (no partition pruning and no row-group skipping,
                 so both symbols' files are read and filtered after the scan).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import SHARED_DATA, Bench, percentiles_ns

__all__ = ["benches"]

SHARED_BINANCE = SHARED_DATA / "binance"
BATCH = 4096
NS_PER_DAY = 86_400 * 10**9
DAY = "2024-08-08"
SYMBOL, VENUE = "BTC-USDT", "binance"


class BenchFailure(RuntimeError):
    """A benchmark wrote or read the wrong data."""


def _scratch(prefix: str) -> Path:
    """A temporary directory removed at exit."""
    path = Path(tempfile.mkdtemp(prefix=f"market-intel-{prefix}-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@cache
def _recording() -> np.ndarray:
    """The full recording when it is there, else the packaged sample."""
    from market_intel.adapters import binance

    full = sorted(SHARED_BINANCE.glob("*.gz"))
    return binance.load(full or binance.sample_paths())


def _event_ns(records: np.ndarray) -> np.ndarray:
    exchange = records["exchange_ns"]
    return np.where(exchange != 0, exchange, records["receive_ns"])


def _shifted(records: np.ndarray, shift_ns: int, id_offset: int) -> np.ndarray:
    """A copy of records moved by shift_ns (exchange_ns stays 0 where the venue gave none)."""
    out = records.copy()
    out["receive_ns"] += shift_ns
    out["exchange_ns"] = np.where(records["exchange_ns"] != 0, records["exchange_ns"] + shift_ns, 0)
    out["id"] += id_offset
    return out


def _span_ns(records: np.ndarray) -> int:
    return int(records["receive_ns"].max() - records["receive_ns"].min()) + 1


def _records(n: int) -> np.ndarray:
    """n records of the recording, tiled end to end in time beyond its length."""
    from market_intel.records import MESSAGE_DTYPE

    base = _recording()
    span = _span_ns(base)
    tiles = [_shifted(base, k * span, k * len(base)) for k in range(-(-n // len(base)))]
    return np.concatenate(tiles, dtype=MESSAGE_DTYPE)[:n]


# ---------------------------------------------------------------------------------------------
# archive_write


def _arrow_table(records: np.ndarray) -> Any:
    """Market data records as one Arrow table: every market data field as a plain column."""
    import pyarrow as pa

    strings = ("symbol", "venue", "source")
    numbers = (
        "id", "created_ns", "published_ns", "correlation_id", "causation_id", "priority",
        "kind", "flags", "exchange_ns", "receive_ns", "bid", "ask", "bid_size", "ask_size",
        "last_price", "last_size", "volume", "update_id",
    )  # fmt: skip
    columns = {"ts": pa.array(_event_ns(records), pa.timestamp("ns", tz="UTC"))}
    columns |= {name: pa.array(np.ascontiguousarray(records[name])) for name in numbers}
    columns |= {name: pa.array(records[name]).cast(pa.string()) for name in strings}
    return pa.table(columns)


def _write_rate(n: int, write: Any, check: Any, stash: dict[str, float] | None = None) -> float:
    records = _records(n)
    with tempfile.TemporaryDirectory(prefix="market-intel-archive-write-") as scratch:
        root = Path(scratch)
        t0 = time.perf_counter_ns()
        written = write(root, records)
        elapsed = time.perf_counter_ns() - t0
        check(root, records, written, stash)
    return n * 1e9 / elapsed


def _archive_write(root: Path, records: np.ndarray) -> Any:
    from market_intel.storage.archive import ParquetArchive

    with ParquetArchive(root) as archive:  # default config: zstd level 3, fsync on
        for lo in range(0, len(records), BATCH):
            archive.write(records[lo : lo + BATCH])
    return archive.statistics()


def _archive_check(root: Path, records: np.ndarray, stats: Any, stash: Any) -> None:
    on_disk = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    if stats.rows["market_data"] != len(records) or stats.bytes_written != on_disk:
        raise BenchFailure(f"archive_write: {stats} for {len(records)} rows, {on_disk} bytes")
    stash["bytes_per_event"] = stats.bytes_written / len(records)
    stash["ratio"] = stats.compression_ratio
    stash["arrow_ratio"] = stats.arrow_compression_ratio


def _pyarrow_write(root: Path, records: np.ndarray) -> int:
    import pyarrow.parquet as pq

    path = root / "all.parquet"
    pq.write_table(_arrow_table(records), path, compression="zstd", compression_level=3)
    _fsync(path)
    return path.stat().st_size


def _pyarrow_check(root: Path, records: np.ndarray, size: int, stash: Any) -> None:
    import pyarrow.parquet as pq

    if pq.ParquetFile(root / "all.parquet").metadata.num_rows != len(records) or size <= 0:
        raise BenchFailure("pyarrow write_table: wrong row count")


def _raw_write(root: Path, records: np.ndarray) -> int:
    path = root / "records.bin"
    records.tofile(path)
    _fsync(path)
    return path.stat().st_size


def _raw_check(root: Path, records: np.ndarray, size: int, stash: Any) -> None:
    if size != records.nbytes:
        raise BenchFailure(f"tofile: {size} bytes for {records.nbytes}")


def _archive_bench(quick: int, full: int) -> Bench:
    notes = (
        "ParquetArchive.write, batches of 4096, default config (zstd 3, fsync), partitioned "
        "by date/venue/symbol"
    )
    stash: dict[str, float] = {}

    def run(n: int) -> float:
        rate = _write_rate(n, _archive_write, _archive_check, stash)
        # The harness reads a row's notes after running it: they carry this run's figures.
        bench.notes = (
            f"{notes}; {stash['bytes_per_event']:.1f} B/event on disk, compression "
            f"{stash['ratio']:.1f}x vs 192-B records ({stash['arrow_ratio']:.1f}x vs Arrow)"
        )
        return rate

    bench = Bench("archive_write", "market-intel ParquetArchive", "throughput", run, quick, full)
    bench.notes = notes
    return bench


# ---------------------------------------------------------------------------------------------
# query_day


@cache
def _day() -> tuple[Path, int, int]:
    """Build the day's archive; return its root and the queried symbol's trade and bar counts."""
    from market_intel.records import MESSAGE_DTYPE
    from market_intel.storage.archive import ParquetArchive, ParquetArchiveConfig

    base = _recording()
    base = base[base["venue"] == VENUE.encode()]
    span = _span_ns(base)
    day0 = int(np.datetime64(DAY, "ns").astype(np.int64))
    shift0 = day0 - int(base["receive_ns"].min())
    root = _scratch("query-day")
    trades = 0
    minutes: set[int] = set()
    tiles = []
    config = ParquetArchiveConfig(max_buffered_rows=1_000_000, fsync=False)
    with ParquetArchive(root, config) as archive:
        for k in range(-(-NS_PER_DAY // span) + 1):
            tile = _shifted(base, shift0 + k * span, k * len(base))
            ts = _event_ns(tile)
            tiles.append(tile[(ts >= day0) & (ts < day0 + NS_PER_DAY)])
            mine = tiles[-1][(tiles[-1]["symbol"] == SYMBOL.encode()) & (tiles[-1]["kind"] == 2)]
            trades += len(mine)
            minutes.update((_event_ns(mine) // 60_000_000_000).tolist())
            if len(tiles) == 8:  # write about 600,000 rows at a time
                archive.write(np.concatenate(tiles, dtype=MESSAGE_DTYPE))
                tiles = []
        if tiles:
            archive.write(np.concatenate(tiles, dtype=MESSAGE_DTYPE))
    return root, trades, len(minutes)


def _check_day(trades: int, bars: int) -> None:
    _, expected_trades, expected_bars = _day()
    if (trades, bars) != (expected_trades, expected_bars):
        raise BenchFailure(
            f"query_day: {trades} trades and {bars} bars; expected {expected_trades} and "
            f"{expected_bars}"
        )


def _store_latency(samples: int, *, pushdown: bool) -> dict[str, float]:
    from market_intel.storage.query import MarketStore

    root, _, _ = _day()
    start = int(np.datetime64(DAY, "ns").astype(np.int64))
    end = start + NS_PER_DAY
    latencies = []
    with MarketStore(root) as store:
        if not pushdown:
            store.query("SET disabled_optimizers = 'filter_pushdown'")
        for _ in range(samples):
            t0 = time.perf_counter_ns()
            trades = store.trades(SYMBOL, start, end, venue=VENUE)
            bars = store.bars(SYMBOL, "1m", start, end, venue=VENUE)
            latencies.append(time.perf_counter_ns() - t0)
            _check_day(len(trades), len(bars))
    return percentiles_ns(latencies)


def _query_day(samples: int) -> dict[str, float]:
    """Trades and 1m bars of one symbol-day through MarketStore (partition pruning)."""
    return _store_latency(samples, pushdown=True)


def _query_day_no_pruning(samples: int) -> dict[str, float]:
    """The same with DuckDB's filter pushdown off: every file of the day is read."""
    return _store_latency(samples, pushdown=False)


# ---------------------------------------------------------------------------------------------


def benches() -> list[Bench]:
    """The archive's rows for benchmarks.run."""
    day = (
        "spot BTC-USDT trades (2.4 M) + 1m bars (1440) for one UTC day; the day tiles the full "
        "recording's spot frames over 24 h (timestamps shifted; 18.7 M rows, 10.3 M of the "
        "symbol); latency of the pair"
    )
    return [
        _archive_bench(332_200, 1_000_000),
        Bench(
            "archive_write",
            "pyarrow write_table (one file)",
            "throughput",
            lambda n: _write_rate(n, _pyarrow_write, _pyarrow_check),
            332_200,
            1_000_000,
            "the same records as one unpartitioned zstd-3 Parquet file, pyarrow's default "
            "encodings, Arrow conversion included; no validation, no partitioning; fsync",
        ),
        Bench(
            "archive_write",
            "numpy tofile (raw records)",
            "throughput",
            lambda n: _write_rate(n, _raw_write, _raw_check),
            332_200,
            1_000_000,
            "the same records as raw 192-byte records, uncompressed; fsync",
        ),
        Bench(
            "query_day",
            "market-intel MarketStore (pruned)",
            "latency",
            _query_day,
            8,
            20,
            day + "; files of one date/venue/symbol partition read",
        ),
        Bench(
            "query_day",
            "MarketStore, filter pushdown off",
            "latency",
            _query_day_no_pruning,
            4,
            10,
            "the same helpers with SET disabled_optimizers = 'filter_pushdown': no partition "
            "pruning or row-group skipping; both symbols' files read",
        ),
    ]
