"""CSV and Parquet tick files made from the real Binance sample, read back exactly."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from market_intel.adapters import binance
from market_intel.adapters.normalize import QuoteUpdate, TradeUpdate
from market_intel.adapters.tickfile import ColumnMapping, read_ticks
from market_intel.enums import Side
from market_intel.errors import ConfigError, InvalidArgumentError, MalformedFrameError

SPOT = [p for p in binance.sample_paths() if p.name.startswith("spot_")]
SYMBOLS = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}

TRADES = ColumnMapping(
    time="time",
    time_unit="ms",
    receive_time="received",
    receive_time_unit="ns",
    symbol="symbol",
    fixed_venue="BINANCE",
    price="price",
    size="qty",
    side="is_buyer_maker",
    side_is_buyer_maker=True,
    trade_id="id",
)
TRADE_HEADER = ["id", "price", "qty", "time", "is_buyer_maker", "symbol", "received"]


@cache
def frames() -> list[tuple[int, dict[str, Any]]]:
    """(receive ns, data) of the spot sample's stream frames, both files, in file order."""
    out = []
    for path in SPOT:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                stamp, _, frame = line.partition(" ")
                raw = json.loads(frame)
                if "stream" in raw:
                    out.append((int(stamp), raw["data"]))
    return out


def trades() -> list[tuple[int, dict[str, Any]]]:
    return [(ns, d) for ns, d in frames() if d.get("e") == "trade"]


def quotes() -> list[tuple[int, dict[str, Any]]]:
    return [(ns, d) for ns, d in frames() if "e" not in d]


def trade_rows() -> list[list[Any]]:
    return [[d["t"], d["p"], d["q"], d["T"], str(d["m"]).lower(), d["s"], ns] for ns, d in trades()]


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def check_trades(items: list[Any], *, exact_digits: bool = True) -> None:
    expected = trades()
    assert len(items) == len(expected) == 2_500
    for item, (ns, d) in zip(items, expected, strict=True):
        assert isinstance(item, TradeUpdate), item
        assert item.venue == "binance" and item.symbol == SYMBOLS[d["s"]]
        assert item.trade_id == d["t"]
        assert (item.price, item.size) == (Decimal(d["p"]), Decimal(d["q"]))
        if exact_digits:
            assert (str(item.price), str(item.size)) == (d["p"], d["q"])
        assert item.side is (Side.SELL if d["m"] else Side.BUY)
        assert (item.exchange_ns, item.receive_ns) == (d["T"] * 1_000_000, ns)


def test_csv_trades_read_back_exactly(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "trades.csv", TRADE_HEADER, trade_rows())
    check_trades(list(read_ticks(path, TRADES)))
    # the same file twice gives the same updates
    assert list(read_ticks(path, TRADES)) == list(read_ticks(path, TRADES))


def test_csv_with_iso_times_text_sides_and_fixed_symbol(tmp_path: Path) -> None:
    btc = [(ns, d) for ns, d in trades() if d["s"] == "BTCUSDT"]
    rows = [[iso(d["T"]), "SELL" if d["m"] else "b", d["p"], d["q"]] for _, d in btc]
    path = write_csv(tmp_path / "btc.csv", ["when", "side", "px", "sz"], rows)
    mapping = ColumnMapping(
        time="when",
        time_unit="iso",
        fixed_symbol="btcusdt",
        fixed_venue="binance",
        price="px",
        size="sz",
        side="side",
    )
    items = list(read_ticks(path, mapping))
    assert len(items) == len(btc) > 1000
    for item, (_, d) in zip(items, btc, strict=True):
        assert isinstance(item, TradeUpdate)
        assert item.symbol == "BTC-USDT" and item.trade_id == 0
        assert item.exchange_ns == item.receive_ns == d["T"] * 1_000_000
        assert item.side is (Side.SELL if d["m"] else Side.BUY)


def test_csv_quotes(tmp_path: Path) -> None:
    rows = [[ns, d["s"], "binance", d["u"], d["b"], d["B"], d["a"], d["A"]] for ns, d in quotes()]
    header = ["ns", "sym", "venue", "u", "bid", "bid_qty", "ask", "ask_qty"]
    path = write_csv(tmp_path / "quotes.csv", header, rows)
    mapping = ColumnMapping(
        time="ns",
        symbol="sym",
        venue="venue",
        bid="bid",
        bid_size="bid_qty",
        ask="ask",
        ask_size="ask_qty",
        update_id="u",
    )
    items = list(read_ticks(path, mapping, kind="quote"))
    assert len(items) == len(quotes()) == 10_439
    for item, (ns, d) in zip(items, quotes(), strict=True):
        assert isinstance(item, QuoteUpdate)
        assert (item.bid, item.bid_size, item.ask, item.ask_size) == tuple(
            Decimal(d[k]) for k in "bBaA"
        )
        assert str(item.ask) == d["a"]
        assert (item.update_id, item.exchange_ns, item.symbol) == (d["u"], ns, SYMBOLS[d["s"]])


def parquet_table(price_type: pa.DataType) -> pa.Table:
    expected = trades()

    def prices(key: str) -> pa.Array:
        if pa.types.is_decimal(price_type):
            return pa.array([Decimal(d[key]) for _, d in expected], price_type)
        if pa.types.is_floating(price_type):
            return pa.array([float(d[key]) for _, d in expected], price_type)
        return pa.array([d[key] for _, d in expected], price_type)

    return pa.table(
        {
            "id": pa.array([d["t"] for _, d in expected], pa.int64()),
            "price": prices("p"),
            "qty": prices("q"),
            "time": pa.array([d["T"] for _, d in expected], pa.int64()),
            "is_buyer_maker": pa.array([d["m"] for _, d in expected], pa.bool_()),
            "symbol": pa.array([d["s"] for _, d in expected], pa.string()).dictionary_encode(),
            "received": pa.array([ns for ns, _ in expected], pa.timestamp("ns", tz="UTC")),
        }
    )


@pytest.mark.parametrize(
    ("price_type", "exact_digits"),
    [(pa.decimal128(20, 8), True), (pa.string(), True), (pa.float64(), False)],
)
def test_parquet_trades(tmp_path: Path, price_type: pa.DataType, exact_digits: bool) -> None:
    path = tmp_path / "trades.parquet"
    pq.write_table(parquet_table(price_type), path, row_group_size=700)
    check_trades(list(read_ticks(path, TRADES)), exact_digits=exact_digits)


def test_parquet_float_is_read_through_its_shortest_repr(tmp_path: Path) -> None:
    """A float column holds the nearest double; ``Decimal(repr(x))`` gives back the decimal
    that was written (here, 15 significant digits at most), not the double's binary value."""
    path = tmp_path / "floats.parquet"
    pq.write_table(parquet_table(pa.float64()), path)
    (first, *_) = read_ticks(path, TRADES)
    assert isinstance(first, TradeUpdate)
    written = trades()[0][1]["p"]
    assert first.price == Decimal(written) != Decimal(float(written))


# Bad rows: yielded, named, and reading goes on


def test_bad_csv_rows_are_named_and_skipped(tmp_path: Path) -> None:
    rows = trade_rows()[:20]
    bad = {
        3: (1, "abc", "a decimal string"),
        5: (2, "1,5", "a decimal string"),
        7: (3, "soon", "a decimal string"),
        9: (4, "maybe", "buyer-is-maker"),
        11: (0, "-7", "non-negative integer"),
        13: (5, "", "non-empty"),
        15: (6, "1.5", "whole ns"),
    }
    for index, (column, value, _) in bad.items():
        rows[index] = list(rows[index])
        rows[index][column] = value
    rows[17] = rows[17][:3]  # a short row
    path = write_csv(tmp_path / "bad.csv", TRADE_HEADER, rows)
    items = list(read_ticks(path, TRADES))
    assert len(items) == 20
    errors = {n: i for n, i in enumerate(items, 1) if isinstance(i, MalformedFrameError)}
    assert sorted(errors) == sorted([*(i + 1 for i in bad), 18])
    for index, (column, value, expected) in bad.items():
        error = errors[index + 1]
        assert error.field == f"row {index + 1}: {TRADE_HEADER[column]}"
        assert error.value == value and expected in error.expected
        assert error.venue == "binance"
    assert errors[18].field == "row 18"


def test_non_utf8_csv_cells(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", TRADE_HEADER, trade_rows()[:3])
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"BTCUSDT", b"BTC\xffUSDT")
    lines[3] = lines[3].replace(b"true", b"tr\xfe").replace(b"false", b"fa\xfe")
    path.write_bytes(b"\n".join(lines))
    first, second, third = read_ticks(path, TRADES)
    assert isinstance(first, MalformedFrameError) and first.field == "row 1: symbol"
    assert isinstance(second, TradeUpdate)
    assert isinstance(third, MalformedFrameError) and third.field == "row 3: is_buyer_maker"


def test_bad_parquet_cells(tmp_path: Path) -> None:
    table = parquet_table(pa.float64()).slice(0, 5)
    prices = table.column("price").to_pylist()
    prices[1] = float("nan")
    prices[3] = float("inf")
    table = table.set_column(1, "price", pa.array(prices, pa.float64()))
    path = tmp_path / "bad.parquet"
    pq.write_table(table, path)
    items = list(read_ticks(path, TRADES))
    assert [isinstance(i, MalformedFrameError) for i in items] == [False, True, False, True, False]
    assert items[1].field == "row 2: price"  # type: ignore[union-attr]


def test_mapping_reports_every_violation_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        ColumnMapping(time="", time_unit="minutes", price="p")  # type: ignore[arg-type]
    paths = [path for path, _ in info.value.violations]
    assert paths == ["time_unit", "symbol", "venue", "time"]
    mapping = ColumnMapping(time="t", fixed_symbol="BTC-USDT", fixed_venue="binance")
    with pytest.raises(InvalidArgumentError, match="price and size"):
        mapping.columns("trade")
    with pytest.raises(InvalidArgumentError, match="bid or an ask"):
        mapping.columns("quote")
    assert replace(mapping, bid="b").columns("quote") == ["t", "b"]


def test_missing_columns_and_unknown_files(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", TRADE_HEADER[:-1], [row[:-1] for row in trade_rows()])
    with pytest.raises(InvalidArgumentError, match="received"):
        read_ticks(path, TRADES)
    with pytest.raises(InvalidArgumentError, match=r"\.csv or \.parquet"):
        read_ticks(tmp_path / "t.json", TRADES)
    with pytest.raises(InvalidArgumentError, match="kind"):
        read_ticks(path, TRADES, kind="book")  # type: ignore[arg-type]
