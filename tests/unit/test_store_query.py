"""DuckDB over the archive: SQL, the trades, quotes and bars helpers against numpy and plain
Python computations over the same Binance records, partition pruning, and bad input."""

from __future__ import annotations

import math
import re
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pytest
from market_intel.adapters import binance
from market_intel.enums import MarketDataKind
from market_intel.errors import InvalidArgumentError, StorageError
from market_intel.records import MESSAGE_DTYPE
from market_intel.storage.archive import (
    NS_PER_DAY,
    ParquetArchive,
    ParquetArchiveConfig,
    partition_path,
)
from market_intel.storage.query import MarketStore, QueryResult

QUOTE, TRADE = int(MarketDataKind.QUOTE), int(MarketDataKind.TRADE)
S = 10**9


def event_ns(records: np.ndarray) -> np.ndarray:
    exchange, receive = records["exchange_ns"], records["receive_ns"]
    return np.where(exchange != 0, exchange, np.where(receive != 0, receive, records["created_ns"]))


@pytest.fixture(scope="module")
def records() -> np.ndarray:
    """The sample on 2024-08-08 and again, shifted by a day, on 2024-08-09."""
    sample = binance.load(binance.sample_paths())
    later = sample.copy()
    later["id"] += 1_000_000
    later["exchange_ns"] = np.where(
        sample["exchange_ns"] != 0, sample["exchange_ns"] + NS_PER_DAY, 0
    )
    later["receive_ns"] += NS_PER_DAY
    return np.concatenate([sample, later], dtype=MESSAGE_DTYPE)


@pytest.fixture(scope="module")
def root(records: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive")
    with ParquetArchive(path, ParquetArchiveConfig(max_buffered_rows=50_000, fsync=False)) as a:
        for lo in range(0, len(records), 8192):
            a.write(records[lo : lo + 8192])
    return path


@pytest.fixture(scope="module")
def store(root: Path) -> MarketStore:
    return MarketStore(root, threads=1)


def select(
    records: np.ndarray,
    kind: int,
    symbol: str,
    start: int | None = None,
    end: int | None = None,
    venue: str | None = None,
) -> np.ndarray:
    ts = event_ns(records)
    keep = (records["kind"] == kind) & (records["symbol"] == symbol.encode())
    if venue is not None:
        keep &= records["venue"] == venue.encode()
    if start is not None:
        keep &= ts >= start
    if end is not None:
        keep &= ts < end
    rows = records[keep]
    order = np.lexsort((rows["id"], rows["update_id"], rows["venue"], event_ns(rows)))
    return rows[order]


def column(result: QueryResult, name: str) -> np.ndarray:
    values = result.arrow().column(name)
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.int64())
    return values.to_numpy()


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, np.float64).view(np.uint64)


def assert_trades(result: QueryResult, expected: np.ndarray) -> None:
    assert result.column_names == [
        "ts", "venue", "symbol", "price", "size", "trade_id", "exchange_ns", "receive_ns", "id",
    ]  # fmt: skip
    assert len(result) == len(expected)
    assert np.array_equal(column(result, "ts"), event_ns(expected))
    assert np.array_equal(bits(column(result, "price")), bits(expected["last_price"]))
    assert np.array_equal(bits(column(result, "size")), bits(expected["last_size"]))
    for name, field in [("trade_id", "update_id"), ("exchange_ns", "exchange_ns"), ("id", "id")]:
        assert np.array_equal(column(result, name), expected[field]), name
    assert np.array_equal(column(result, "receive_ns"), expected["receive_ns"])
    venues = result.arrow().column("venue").to_pylist()
    assert venues == [v.decode() for v in expected["venue"]]
    assert set(result.arrow().column("symbol").to_pylist()) <= {
        s.decode() for s in expected["symbol"]
    }


def test_trades_of_a_symbol_match_numpy(records: np.ndarray, store: MarketStore) -> None:
    expected = select(records, TRADE, "BTC-USDT")
    assert len(expected) == 2 * (1381 + 2463)  # spot and USD-M, both days
    assert_trades(store.trades("BTC-USDT"), expected)
    assert_trades(
        store.trades("BTC-USDT", venue="binance-usdm"),
        select(records, TRADE, "BTC-USDT", venue="binance-usdm"),
    )


def test_trades_in_a_time_range_match_numpy(records: np.ndarray, store: MarketStore) -> None:
    ts = event_ns(records[records["kind"] == TRADE])
    start = int(ts.min()) + 10 * S + 123  # ns ints, off the millisecond grid
    end = start + 20 * S
    got = store.trades("ETH-USDT", start, end, venue="binance")
    assert len(got) > 100
    assert_trades(got, select(records, TRADE, "ETH-USDT", start, end, "binance"))
    second_day = datetime(2024, 8, 9, tzinfo=UTC)
    got = store.trades("ETH-USD-PERP", second_day, second_day + timedelta(days=1))
    assert_trades(
        got,
        select(records, TRADE, "ETH-USD-PERP", int(second_day.timestamp()) * S, None),
    )
    by_date = store.trades("ETH-USD-PERP", date(2024, 8, 9), date(2024, 8, 10))
    assert by_date.arrow().equals(got.arrow())
    paris = datetime(2024, 8, 10, 1, 54, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23:54:30 UTC
    in_paris = store.trades("ETH-USD-PERP", end=paris)
    assert_trades(in_paris, select(records, TRADE, "ETH-USD-PERP", None, 1723247670 * S))
    assert len(in_paris) - len(select(records[: len(records) // 2], TRADE, "ETH-USD-PERP")) > 0


def test_quotes_match_numpy(records: np.ndarray, store: MarketStore) -> None:
    start = 1723161280 * S
    got = store.quotes("BTC-USD-PERP", start=start, end=start + 5 * S)
    expected = select(records, QUOTE, "BTC-USD-PERP", start, start + 5 * S)
    assert len(got) == len(expected) > 100
    assert got.column_names == [
        "ts", "venue", "symbol", "bid", "bid_size", "ask", "ask_size", "update_id",
        "exchange_ns", "receive_ns", "id",
    ]  # fmt: skip
    assert np.array_equal(column(got, "ts"), event_ns(expected))
    for name in ("bid", "bid_size", "ask", "ask_size"):
        assert np.array_equal(bits(column(got, name)), bits(expected[name])), name
    for name in ("update_id", "exchange_ns", "receive_ns", "id"):
        assert np.array_equal(column(got, name), expected[name]), name
    assert len(store.quotes("BTC-USDT", venue="binance")) == 2 * 5360


def python_bars(rows: np.ndarray, interval: int) -> list[dict[str, object]]:
    """OHLCV per venue and interval, computed in plain Python."""
    groups: dict[tuple[str, int], list[tuple[int, int, int, float, float]]] = defaultdict(list)
    for ts, row in zip(event_ns(rows).tolist(), rows, strict=True):
        key = (row["venue"].decode(), ts // interval * interval)
        trade = (ts, int(row["update_id"]), int(row["id"]))
        groups[key].append((*trade, float(row["last_price"]), float(row["last_size"])))
    bars = []
    for (venue, start), trades in sorted(groups.items()):
        trades.sort()
        prices = [t[3] for t in trades]
        volume = math.fsum(t[4] for t in trades)
        bars.append(
            {
                "ts": start, "venue": venue, "open": prices[0], "high": max(prices),
                "low": min(prices), "close": prices[-1], "volume": volume,
                "trades": len(trades), "vwap": math.fsum(t[3] * t[4] for t in trades) / volume,
            }
        )  # fmt: skip
    return bars


@pytest.mark.parametrize(
    ("symbol", "interval", "interval_ns", "venue"),
    [
        ("BTC-USDT", "1m", 60 * S, None),
        ("ETH-USDT", "5s", 5 * S, "binance-usdm"),
        ("BTC-USD-PERP", timedelta(milliseconds=2500), 2_500_000_000, None),
        ("ETH-USD-PERP", "1d", NS_PER_DAY, None),
    ],
)
def test_bars_match_a_plain_python_computation(
    records: np.ndarray,
    store: MarketStore,
    symbol: str,
    interval: str | timedelta,
    interval_ns: int,
    venue: str | None,
) -> None:
    got = store.bars(symbol, interval, venue=venue)
    expected = python_bars(select(records, TRADE, symbol, venue=venue), interval_ns)
    assert got.column_names == [
        "ts", "venue", "symbol", "open", "high", "low", "close", "volume", "trades", "vwap",
    ]  # fmt: skip
    assert got.arrow().schema.field("ts").type.unit == "ns"
    rows = got.arrow().drop_columns(["ts"]).to_pylist()
    assert len(rows) == len(expected) > 1
    assert column(got, "ts").tolist() == [want["ts"] for want in expected]
    for bar, want in zip(rows, expected, strict=True):
        assert bar["symbol"] == symbol
        for name in ("venue", "open", "high", "low", "close", "trades"):
            assert bar[name] == want[name], name
        for name in ("volume", "vwap"):
            assert math.isclose(bar[name], want[name], rel_tol=1e-12), name  # type: ignore[arg-type]


def test_bars_in_a_time_range(records: np.ndarray, store: MarketStore) -> None:
    start = datetime(2024, 8, 9, 23, 54, 30, tzinfo=UTC)
    got = store.bars("BTC-USDT", "10s", start=start, end=start + timedelta(seconds=30))
    start_ns = int(start.timestamp()) * S
    expected = python_bars(select(records, TRADE, "BTC-USDT", start_ns, start_ns + 30 * S), 10 * S)
    assert [(b["venue"], b["trades"]) for b in got.arrow().to_pylist()] == [
        (b["venue"], b["trades"]) for b in expected
    ]
    assert len(expected) == 6


def test_arrow_pandas_and_polars_agree(store: MarketStore) -> None:
    result = store.bars("ETH-USDT", "15s")
    table = result.arrow()
    frame = result.pandas()
    polars_frame = result.polars()
    assert list(frame.columns) == list(polars_frame.columns) == table.column_names
    assert len(frame) == polars_frame.height == table.num_rows == len(result)
    assert frame.equals(table.to_pandas())
    assert polars_frame.to_arrow().cast(table.schema).equals(table)
    assert frame["close"].tolist() == polars_frame["close"].to_list() == table["close"].to_pylist()
    assert str(frame["ts"].dtype).startswith("datetime64[ns,")
    assert frame["ts"].astype("int64").tolist() == table["ts"].cast(pa.int64()).to_pylist()
    assert "QueryResult(" in repr(result)


def test_missing_frame_libraries_are_named(
    store: MarketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = store.trades("ETH-USDT", venue="binance")
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    monkeypatch.setitem(sys.modules, "polars", None)
    with pytest.raises(ModuleNotFoundError, match=r"pandas is not installed.*\.arrow\(\)"):
        result.pandas()
    with pytest.raises(ModuleNotFoundError, match=r"polars is not installed"):
        result.polars()
    assert len(result.arrow()) == 2 * 1119


def test_sql_names_the_views_and_binds_parameters(store: MarketStore) -> None:
    counts = store.query(
        "SELECT venue, kind, count(*) AS n FROM market_data WHERE date = ? AND symbol = ? "
        "GROUP BY ALL ORDER BY ALL",
        [date(2024, 8, 8), "BTC-USDT"],
    ).arrow()
    assert counts.to_pylist()[:2] == [
        {"venue": "binance", "kind": "DEPTH", "n": 599},
        {"venue": "binance", "kind": "QUOTE", "n": 5360},
    ]
    named = store.query(
        "SELECT count(*) AS n FROM market_data WHERE symbol = $symbol", {"symbol": "ETH-USD-PERP"}
    )
    assert named.arrow().to_pylist() == [{"n": 2 * 7061}]
    assert len(store.trades("BTC' OR '1'='1")) == 0  # a value, never SQL
    assert store.query("SELECT count(*) AS n FROM orders").arrow().to_pylist() == [{"n": 0}]
    columns = store.query("DESCRIBE trades").arrow().column("column_name").to_pylist()
    assert columns[:5] == ["date", "venue", "symbol", "ts", "trade_id"]
    assert len(store.query("SET threads = 1").arrow()) == 0


def test_files_written_after_opening_are_seen(records: np.ndarray, tmp_path: Path) -> None:
    with MarketStore(tmp_path, threads=1) as store:
        assert len(store.trades("BTC-USDT")) == 0
        assert len(store.bars("BTC-USDT")) == 0
        with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
            archive.write(records[:20_000])
        assert len(store.trades("BTC-USDT")) == len(select(records[:20_000], TRADE, "BTC-USDT"))
        with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
            archive.write(records[20_000:40_000])
        assert len(store.trades("BTC-USDT")) == len(select(records[:40_000], TRADE, "BTC-USDT"))


def scanned_files(store: MarketStore, sql: str) -> tuple[int, int]:
    plan = store.query("EXPLAIN ANALYZE " + sql).arrow().column(1)[0].as_py()
    match = re.search(r"Scanning Files: (\d+)/(\d+)", plan)
    assert match, plan
    return int(match[1]), int(match[2])


def test_filters_on_partitions_prune_files(records: np.ndarray, tmp_path: Path) -> None:
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(records)
    # A corrupt file in a partition that sorts after every other: a query that opens it fails.
    corrupt = tmp_path / partition_path("market_data", "2099-12-31", "binance", "BTC-USDT")
    corrupt.mkdir(parents=True)
    (corrupt / "part-000000.parquet").write_bytes(b"not a parquet file")
    with MarketStore(tmp_path, threads=1) as store:
        with pytest.raises(StorageError, match=r"query failed: .*2099-12-31"):
            store.query("SELECT count(*) FROM market_data")
        with pytest.raises(StorageError, match=r"2099-12-31"):
            store.trades("BTC-USDT", venue="binance")  # no date bound: that file is read
        day = store.trades("BTC-USDT", date(2024, 8, 8), date(2024, 8, 10), venue="binance")
        assert len(day) == 2 * 1381  # pruned by date
        assert len(store.trades("BTC-USDT", venue="binance-usdm")) == 2 * 2463  # by venue
        assert len(store.bars("ETH-USDT")) > 0  # by symbol
        count = "SELECT count(*) FROM market_data WHERE date = DATE '2024-08-09'"
        assert store.query(count).arrow().column(0)[0].as_py() == len(records) // 2
        assert scanned_files(store, count) == (6, 13)
        eth = "SELECT count(*) FROM market_data WHERE symbol = 'ETH-USDT' AND venue = 'binance'"
        assert scanned_files(store, eth) == (2, 13)


def test_bad_arguments_name_the_field_and_value(store: MarketStore, tmp_path: Path) -> None:
    for interval in ("1x", "0m", "m", "1.5m", " 1m", "-1s", 60, timedelta(0)):
        with pytest.raises(InvalidArgumentError, match=r"interval: .* expected a positive"):
            store.bars("BTC-USDT", interval)  # type: ignore[arg-type]
    for symbol in ("", "ÄPFEL", "BTC\x00", "X" * 17, None, b"BTC-USDT"):
        with pytest.raises(InvalidArgumentError, match=r"symbol: .* expected a str of 1 to 16"):
            store.trades(symbol)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"venue: .*expected a str of 0 to 16"):
        store.quotes("BTC-USDT", venue="binance\n\x00")
    with pytest.raises(InvalidArgumentError, match=r"start: 2024-08-08T00:00:00 is a naive"):
        store.trades("BTC-USDT", start=datetime(2024, 8, 8))
    for bad in (-1, 2**63, 1.5, True, "2024-08-08"):
        with pytest.raises(InvalidArgumentError, match=r"end: .* is not a time; expected"):
            store.trades("BTC-USDT", end=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"end: .* is not after start"):
        store.bars("BTC-USDT", start=5 * S, end=5 * S)
    with pytest.raises(StorageError, match=r"query failed: .*no_such_table"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(InvalidArgumentError, match=r"sql: .* is not a str"):
        store.query(b"SELECT 1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"root: .* is not a directory"):
        MarketStore(tmp_path / "missing")
    globbed = tmp_path / "a[1]"
    globbed.mkdir()
    with pytest.raises(InvalidArgumentError, match=r"root: .* has a glob character"):
        MarketStore(globbed)
    with pytest.raises(InvalidArgumentError, match=r"threads: 0 is not a thread count"):
        MarketStore(tmp_path, threads=0)
