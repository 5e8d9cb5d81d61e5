"""The columnar archive: Parquet files of the Binance sample and of orders and fills, read
back through DuckDB and compared with the input bit for bit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from market_intel.adapters import binance
from market_intel.codec import from_records, to_records
from market_intel.enums import (
    Liquidity,
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Priority,
    Severity,
    Side,
    TimeInForce,
)
from market_intel.errors import (
    ConfigError,
    DtypeMismatchError,
    InvalidArgumentError,
    StorageError,
)
from market_intel.messages import CoreMessage, Event, Order, Text, Trade
from market_intel.records import MESSAGE_DTYPE
from market_intel.storage.archive import (
    NS_PER_DAY,
    TABLES,
    ParquetArchive,
    ParquetArchiveConfig,
    partition_path,
    table_schema,
)
from market_intel.storage.query import MarketStore

TRADE = int(MarketDataKind.TRADE)
ENUMS: dict[str, Any] = {
    "kind": MarketDataKind,
    "priority": Priority,
    "side": Side,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "status": OrderStatus,
    "liquidity": Liquidity,
}
TYPE_OF_TABLE = {
    "market_data": MessageType.MARKET_DATA,
    "orders": MessageType.ORDER,
    "trades": MessageType.TRADE,
}
PART = re.compile(r"part-\d{6}\.parquet")


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return binance.load(binance.sample_paths())


def event_ns(records: np.ndarray) -> np.ndarray:
    """The documented partition time: exchange_ns, else receive_ns, else created_ns."""
    exchange, receive = records["exchange_ns"], records["receive_ns"]
    return np.where(exchange != 0, exchange, np.where(receive != 0, receive, records["created_ns"]))


def read_back(root: Path, table: str) -> pa.Table:
    with MarketStore(root, threads=1) as store:
        return store.query(f"SELECT * FROM {table} ORDER BY id").arrow()


def as_records(rows: pa.Table, table: str) -> np.ndarray:
    """Rebuild records from a table's rows: every stored column back in its field."""
    out = np.zeros(rows.num_rows, MESSAGE_DTYPE)
    out["type"] = TYPE_OF_TABLE[table]
    out["symbol"] = [s.encode() for s in rows.column("symbol").to_pylist()]
    out["venue"] = [s.encode() for s in rows.column("venue").to_pylist()]
    for name in table_schema(table).names:
        values = rows.column(name).to_pylist()
        if name == "ts":
            continue
        if name in ENUMS:
            out[name] = [ENUMS[name][v] for v in values]
        elif name in ("source", "client_order_id"):
            out[name] = [v.encode() for v in values]
        else:
            out[name] = rows.column(name).to_numpy()
    return out


def fields_only(records: np.ndarray) -> np.ndarray:
    """The records with the padding between fields zeroed (numpy copies leave it undefined)."""
    out = np.zeros(len(records), MESSAGE_DTYPE)
    for name in MESSAGE_DTYPE.names or ():
        out[name] = records[name]
    return out


def assert_same_rows(rows: pa.Table, records: np.ndarray, table: str) -> None:
    """Every column equals the input: ints, strings, float bits, partition values and ts."""
    records = records[np.argsort(records["id"], kind="stable")]
    assert rows.num_rows == len(records)
    rebuilt = as_records(rows, table)
    for name in table_schema(table).names:
        if name == "ts":
            continue
        expected, got = records[name], rebuilt[name]
        if expected.dtype.kind == "f":
            expected, got = expected.view(np.uint64), got.view(np.uint64)
        assert np.array_equal(got, expected), name
    for name in ("symbol", "venue", "type"):
        assert np.array_equal(rebuilt[name], records[name]), name
    assert fields_only(rebuilt).tobytes() == fields_only(records).tobytes()  # every field byte
    ts = rows.column("ts").cast(pa.int64()).to_numpy()
    assert np.array_equal(ts, event_ns(records))
    days = rows.column("date").cast(pa.int32()).to_numpy()
    assert np.array_equal(days, event_ns(records) // NS_PER_DAY)


def parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def test_the_sample_reads_back_bit_for_bit(sample: np.ndarray, tmp_path: Path) -> None:
    config = ParquetArchiveConfig(max_buffered_rows=20_000, fsync=False)
    with ParquetArchive(tmp_path, config) as archive:
        accepted = sum(archive.write(sample[lo : lo + 4096]) for lo in range(0, len(sample), 4096))
    assert accepted == len(sample) == 58_108
    assert_same_rows(read_back(tmp_path, "market_data"), sample, "market_data")
    for table in ("orders", "trades"):
        assert read_back(tmp_path, table).num_rows == 0


def test_files_follow_the_hive_layout(sample: np.ndarray, tmp_path: Path) -> None:
    config = ParquetArchiveConfig(max_buffered_rows=20_000, fsync=False)
    with ParquetArchive(tmp_path, config) as archive:
        for lo in range(0, len(sample), 4096):
            archive.write(sample[lo : lo + 4096])
    files = parquet_files(tmp_path)
    partitions = {
        (v.decode(), s.decode()) for v, s in zip(sample["venue"], sample["symbol"], strict=True)
    }
    directories = {str(partition_path("market_data", "2024-08-08", v, s)) for v, s in partitions}
    assert {str(f.parent.relative_to(tmp_path)) for f in files} == directories
    assert "market_data/date=2024-08-08/venue=binance/symbol=BTC-USDT" in directories
    assert all(PART.fullmatch(f.name) for f in files)
    for directory in directories:  # a buffer of 20,000 rows made several parts, numbered
        names = sorted(p.name for p in (tmp_path / directory).iterdir())
        assert names == [f"part-{n:06d}.parquet" for n in range(len(names))]
    assert len(files) > len(directories)
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".parquet"] == []
    stats = archive.statistics()
    assert stats.files == len(files)
    assert stats.bytes_written == sum(f.stat().st_size for f in files)
    by_partition = {d: 0 for d in directories}
    for f in files:
        by_partition[str(f.parent.relative_to(tmp_path))] += pq.ParquetFile(f).metadata.num_rows
    for venue, symbol in partitions:
        expected = np.count_nonzero(
            (sample["venue"] == venue.encode()) & (sample["symbol"] == symbol.encode())
        )
        assert by_partition[str(partition_path("market_data", "2024-08-08", venue, symbol))] == (
            expected
        )


def test_files_are_zstd_with_the_documented_schema(sample: np.ndarray, tmp_path: Path) -> None:
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(sample)
    for path in parquet_files(tmp_path):
        file = pq.ParquetFile(path)
        assert file.schema_arrow == table_schema("market_data")
        group = file.metadata.row_group(0)
        assert {group.column(i).compression for i in range(group.num_columns)} == {"ZSTD"}
    schema = table_schema("market_data")
    assert schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert schema.field("bid").type == pa.float64()
    assert schema.field("update_id").type == pa.uint64()
    assert schema.field("kind").type == pa.dictionary(pa.int32(), pa.string())
    assert table_schema("orders").field("price").type == pa.float64()
    assert table_schema("trades").field("fee").type == pa.float64()
    with pytest.raises(InvalidArgumentError, match=r"table: 'quotes' is not a table"):
        table_schema("quotes")


def test_market_data_files_group_rows_by_kind(sample: np.ndarray, tmp_path: Path) -> None:
    config = ParquetArchiveConfig(row_group_rows=1024, fsync=False)
    with ParquetArchive(tmp_path, config) as archive:
        for lo in range(0, len(sample), 4096):
            archive.write(sample[lo : lo + 4096])
    for path in parquet_files(tmp_path):
        rows = pq.read_table(path, columns=["kind", "id"])
        kinds = rows.column("kind").to_pylist()
        assert kinds == sorted(kinds, key=lambda k: MarketDataKind[k])  # QUOTE, TRADE, ...
        ids = rows.column("id").to_numpy()
        for kind in set(kinds):  # each kind in input order
            assert np.all(np.diff(ids[np.array(kinds) == kind]) > 0)
    with MarketStore(tmp_path, threads=1) as store:
        sql = "SELECT count(*) FROM market_data WHERE symbol = 'BTC-USDT' AND kind = 'TRADE'"
        plan = store.query("EXPLAIN ANALYZE " + sql).arrow().column(1)[0].as_py()
    scanned = re.findall(r"Row Groups Scanned: (\d+) / (\d+)", plan)
    assert scanned, plan
    read, total = (sum(int(pair[i]) for pair in scanned) for i in (0, 1))
    assert read < total / 3  # the row groups of quotes and depth are skipped


def test_statistics_report_rows_bytes_and_compression(sample: np.ndarray, tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False))
    archive.write(sample[:1000])
    stats = archive.statistics()
    assert (stats.rows_buffered, stats.files, stats.bytes_written) == (1000, 0, 0)
    assert stats.compression_ratio == 0.0
    archive.write(sample[1000:])
    archive.close()
    stats = archive.statistics()
    assert dict(stats.rows) == {"market_data": len(sample), "orders": 0, "trades": 0}
    assert stats.rows_buffered == stats.rows_skipped == 0
    assert stats.raw_bytes == 192 * len(sample)
    assert stats.bytes_written == sum(f.stat().st_size for f in parquet_files(tmp_path))
    assert stats.compression_ratio == stats.raw_bytes / stats.bytes_written
    assert stats.compression_ratio > 5  # real market data: about 12
    assert stats.arrow_compression_ratio == stats.arrow_bytes / stats.bytes_written > 3
    with pytest.raises(AttributeError):
        stats.files = 0  # type: ignore[misc]


def test_rows_are_copied_on_write(sample: np.ndarray, tmp_path: Path) -> None:
    batch = sample[:4096].copy()
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(batch)
        batch["bid"] = 1.0  # the caller reuses its buffer (a ring batch) at once
        batch["symbol"] = b"REUSED"
    assert_same_rows(read_back(tmp_path, "market_data"), sample[:4096], "market_data")


def test_partition_date_falls_back_to_receive_then_created_time(
    sample: np.ndarray, tmp_path: Path
) -> None:
    rows = sample[sample["symbol"] == b"ETH-USDT"][:300].copy()
    rows["created_ns"] = rows["receive_ns"]
    no_exchange = rows[:100]
    no_exchange["exchange_ns"] = 0
    neither = rows[100:200]
    neither["exchange_ns"] = 0
    neither["receive_ns"] = 0
    neither["created_ns"] += 2 * NS_PER_DAY
    later = rows[200:]  # the next day
    later["exchange_ns"] = np.where(later["exchange_ns"] != 0, later["exchange_ns"] + NS_PER_DAY, 0)
    later["receive_ns"] += NS_PER_DAY
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        assert archive.write(rows) == 300
    back = read_back(tmp_path, "market_data")
    assert_same_rows(back, rows, "market_data")
    dates = {str(d) for d in back.column("date").to_pylist()}
    assert dates == {"2024-08-08", "2024-08-09", "2024-08-10"}


def test_existing_files_are_never_overwritten(sample: np.ndarray, tmp_path: Path) -> None:
    rows = sample[:5000]
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(rows)
    first = {f: f.read_bytes() for f in parquet_files(tmp_path)}
    again = rows.copy()
    again["id"] += 1_000_000
    with ParquetArchive(tmp_path) as archive:  # a new writer on the same root, fsync on
        archive.write(again)
    files = parquet_files(tmp_path)
    assert len(files) == 2 * len(first)
    assert all(f.read_bytes() == data for f, data in first.items())
    assert {f.name for f in files} == {"part-000000.parquet", "part-000001.parquet"}
    both = np.concatenate([rows, again], dtype=MESSAGE_DTYPE)
    assert_same_rows(read_back(tmp_path, "market_data"), both, "market_data")


def test_symbols_and_venues_that_need_encoding(sample: np.ndarray, tmp_path: Path) -> None:
    rows = sample[:400].copy()
    rows["symbol"][:100] = b"BTC/USD"
    rows["symbol"][100:200] = b".HIDDEN"
    rows["symbol"][200:300] = b"A'B %2F=x"
    rows["venue"][300:] = b""
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(rows)
    names = {p.name for p in (tmp_path / "market_data" / "date=2024-08-08").glob("*/*")}
    assert {"symbol=BTC%2FUSD", "symbol=.HIDDEN", "symbol=A%27B%20%252F%3Dx"} <= names
    assert (tmp_path / "market_data" / "date=2024-08-08" / "venue=").is_dir()
    assert_same_rows(read_back(tmp_path, "market_data"), rows, "market_data")
    with MarketStore(tmp_path, threads=1) as store:
        for symbol in ("BTC/USD", ".HIDDEN", "A'B %2F=x"):
            got = store.query("SELECT count(*) FROM market_data WHERE symbol = ?", [symbol])
            assert got.arrow().column(0)[0].as_py() == 100
        got = store.query("SELECT count(*) FROM market_data WHERE venue = ''").arrow()
        assert got.column(0)[0].as_py() == 100


def orders_and_fills(sample: np.ndarray) -> list[CoreMessage]:
    """Orders at the sample's public trade prices and the fills that follow from them."""
    public = sample[sample["kind"] == TRADE][:240]
    messages = []
    for i, row in enumerate(public):
        symbol, venue = row["symbol"].decode(), row["venue"].decode()
        price, size = float(row["last_price"]), float(row["last_size"])
        side = Side.BUY if i % 2 else Side.SELL
        market = i % 5 == 0
        order = CoreMessage(
            MessageType.ORDER,
            Order(
                order_id=10_000 + i, symbol=symbol, side=side, quantity=size,
                price=None if market else price,
                order_type=OrderType.MARKET if market else OrderType.LIMIT,
                time_in_force=list(TimeInForce)[i % 4], status=list(OrderStatus)[i % 7],
                filled_quantity=size / 2, client_order_id=f"c-{i}", venue=venue,
                exchange_ns=int(row["exchange_ns"]), receive_ns=int(row["receive_ns"]),
            ),
            priority=Priority.HIGH, source="oms",
        )  # fmt: skip
        fill = order.derive(
            MessageType.TRADE,
            Trade(
                trade_id=int(row["update_id"]), symbol=symbol, side=side, price=price,
                quantity=size, order_id=10_000 + i, client_order_id=f"c-{i}",
                liquidity=list(Liquidity)[i % 3], fee=-1e-4 * price * size if i % 3 else 0.07,
                venue=venue, exchange_ns=int(row["exchange_ns"]),
                receive_ns=int(row["receive_ns"]),
            ),
            source="gateway",
        )  # fmt: skip
        messages += [order, fill]
    return messages


def test_orders_and_fills_from_messages(sample: np.ndarray, tmp_path: Path) -> None:
    messages = orders_and_fills(sample)
    others = [
        CoreMessage(MessageType.EVENT, Event(code="halt", severity=Severity.WARNING)),
        CoreMessage(MessageType.TRADE, Text(text="a note about a trade")),
    ]
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        assert archive.write([*messages, *others]) == len(messages)
        assert archive.write([]) == 0
    stats = archive.statistics()
    assert dict(stats.rows) == {"market_data": 0, "orders": 240, "trades": 240}
    assert stats.rows_skipped == 2
    records = to_records(messages)
    for table in ("orders", "trades"):
        rows = read_back(tmp_path, table)
        expected = records[records["type"] == TYPE_OF_TABLE[table]]
        assert_same_rows(rows, expected, table)
        rebuilt = from_records(as_records(rows, table))
        by_id = {m.id: m for m in messages}
        assert rebuilt == [by_id[m.id] for m in rebuilt]  # the messages themselves
    with MarketStore(tmp_path, threads=1) as store:
        kinds = store.query(
            "SELECT order_type, count(*) AS n FROM orders GROUP BY ALL ORDER BY ALL"
        ).arrow()
        assert kinds.to_pylist() == [
            {"order_type": "LIMIT", "n": 192},
            {"order_type": "MARKET", "n": 48},
        ]
        rebates = store.query("SELECT count(*) FROM trades WHERE fee < 0").arrow()
        assert rebates.column(0)[0].as_py() == 160


def test_bad_input_is_refused_with_its_field_and_value(sample: np.ndarray, tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False))
    with pytest.raises(DtypeMismatchError, match=r"records: an array of dtype float64; expected"):
        archive.write(np.zeros(3))
    with pytest.raises(DtypeMismatchError, match=r"records: a dict; expected an array"):
        archive.write({"bid": 1.0})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"shape \(2, 2\); expected a one-dim"):
        archive.write(sample[:4].reshape(2, 2))
    bad = sample[:10].copy()
    bad["kind"][7] = 9
    with pytest.raises(
        InvalidArgumentError, match=r"records\[7\]\.kind: 9 is not a MarketDataKind"
    ):
        archive.write(bad)
    bad = sample[:10].copy()
    bad["symbol"][3] = b""
    with pytest.raises(InvalidArgumentError, match=r"records\[3\]\.symbol: b''; expected 1 to 16"):
        archive.write(bad)
    bad = sample[:10].copy()
    bad["symbol"][4] = "ÄPFEL".encode()
    with pytest.raises(InvalidArgumentError, match=r"records\[4\]\.symbol: .*ASCII"):
        archive.write(bad)
    bad = sample[:10].copy()
    bad["source"][5] = b"a\x00b"
    with pytest.raises(InvalidArgumentError, match=r"records\[5\]\.source: b'a\\x00b'; expected"):
        archive.write(bad)
    assert archive.statistics().rows_buffered == 0  # nothing of a refused batch is kept
    archive.close()
    archive.close()
    assert archive.closed
    with pytest.raises(StorageError, match=r"closed; expected open"):
        archive.write(sample[:1])
    assert parquet_files(tmp_path) == []
    with pytest.raises(ConfigError) as info:
        ParquetArchiveConfig(max_buffered_rows=0, compression_level=30, fsync=1)  # type: ignore[arg-type]
    assert [path for path, _ in info.value.violations] == [
        "storage.archive.compression_level",
        "storage.archive.fsync",
        "storage.archive.max_buffered_rows",
    ]
    with pytest.raises(TypeError):
        ParquetArchiveConfig(rows=5)  # type: ignore[call-arg]


def test_an_unwritable_root_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match=r"root: .*file/archive.* cannot be created"):
        ParquetArchive(blocker / "archive")


def test_a_failed_write_keeps_the_rows_buffered(sample: np.ndarray, tmp_path: Path) -> None:
    archive = ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False))
    archive.write(sample)
    (tmp_path / "market_data").write_bytes(b"")  # a file where the table's directory goes
    with pytest.raises(StorageError, match=r"58108 rows|rows could not be written"):
        archive.flush()
    assert archive.statistics().rows_buffered == len(sample)
    (tmp_path / "market_data").unlink()
    archive.close()
    assert archive.statistics().rows_buffered == 0
    assert_same_rows(read_back(tmp_path, "market_data"), sample, "market_data")


WRITER = textwrap.dedent(
    """
    import sys
    from market_intel.adapters import binance
    from market_intel.storage.archive import ParquetArchive, ParquetArchiveConfig
    records = binance.load(binance.sample_paths())
    archive = ParquetArchive(sys.argv[1], ParquetArchiveConfig(max_buffered_rows=10**7))
    while True:
        archive.write(records)
        archive.flush()
    """
)


def kill_mid_write(root: Path) -> bool:
    """Run a writer and SIGKILL it while a file is being written; True if that left a
    temporary file behind."""
    files, temporaries = set(root.rglob("*.parquet")), set(root.rglob(".part-*.tmp"))
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(root)])
    try:
        deadline = time.monotonic() + 60
        while not set(root.rglob("*.parquet")) - files:  # a flush done: the loop is warm
            assert child.poll() is None, "the writer died"
            assert time.monotonic() < deadline, "the writer wrote nothing"
            time.sleep(0.01)
        while not set(root.rglob(".part-*.tmp")) - temporaries:
            assert time.monotonic() < deadline, "no file was ever being written"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return bool(set(root.rglob(".part-*.tmp")) - temporaries)


def test_a_writer_killed_mid_write_leaves_only_complete_files(
    sample: np.ndarray, tmp_path: Path
) -> None:
    left_half_file = any(kill_mid_write(tmp_path) for _ in range(5))
    assert left_half_file  # the kill landed while a file was half-written
    expected = {
        str(partition_path("market_data", "2024-08-08", v.decode(), s.decode())): np.sort(
            sample["id"][(sample["venue"] == v) & (sample["symbol"] == s)]
        )
        for v, s in set(zip(sample["venue"], sample["symbol"], strict=True))
    }
    total = 0
    for path in parquet_files(tmp_path):  # every visible file is a whole partition's rows
        ids = np.sort(pq.read_table(path).column("id").to_numpy())
        assert np.array_equal(ids, expected[str(path.parent.relative_to(tmp_path))])
        total += len(ids)
    with MarketStore(tmp_path, threads=1) as store:  # the hidden leftovers are not read
        count = store.query("SELECT count(*) FROM market_data").arrow().column(0)[0].as_py()
    assert count == total > 0
    before = set(parquet_files(tmp_path))
    with ParquetArchive(tmp_path, ParquetArchiveConfig(fsync=False)) as archive:
        archive.write(sample)
    assert before < set(parquet_files(tmp_path))


def test_tables_are_the_three_hot_types() -> None:
    assert TABLES == ("market_data", "orders", "trades")
