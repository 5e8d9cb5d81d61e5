"""The packaged Binance sample, decoded and accumulated, against an independent reading.

The reference below uses the standard library only (gzip, json, decimal): no numpy and no
market-intel code. It reads the same packaged files and must agree exactly with
``load()`` + ``SymbolSummary``: trade counts, volumes as Decimal sums of the raw strings,
last trade prices and last quotes as the raw decimal strings, and frame counts by kind.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from market_intel.adapters import binance
from market_intel.summary import SequenceCheck, SymbolSummary
from mi_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "python" / "market_intel" / "data" / "binance"
SHARED = SHARED_DATA / "binance"
if TYPE_CHECKING:  # the accumulated side only; the reference never touches numpy
    from market_intel.adapters.binance import Records

VENUES = {"spot": "binance", "usdm": "binance-usdm", "cm": "binance-coinm"}
# The product's names of the sample's instruments (``BASE-QUOTE``, ``-PERP`` for perpetual
# swaps), spelled out so that the reference needs no market-intel code.
SYMBOLS = {
    "BTCUSDT": "BTC-USDT",
    "ETHUSDT": "ETH-USDT",
    "BTCUSD_PERP": "BTC-USD-PERP",
    "ETHUSD_PERP": "ETH-USD-PERP",
}


@dataclass
class Reference:
    """What the standard library reads from one file."""

    frames: dict[str, int] = field(default_factory=dict)
    trades: int = 0
    volume: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)
    last_price: str = ""
    bid: str = ""
    ask: str = ""
    first_receive_ns: int = 0
    last_receive_ns: int = 0
    trade_ids: list[int] = field(default_factory=list)


def read_reference(path: Path) -> tuple[tuple[str, str], Reference]:
    """Read one recording line by line: frames by kind, trades, volume and the last values."""
    venue = VENUES[path.name.split("_", 1)[0]]
    ref = Reference()
    symbol = ""
    with gzip.open(path, "rb") as lines:
        for line in lines:
            receive, _, text = line.partition(b" ")
            ref.first_receive_ns = ref.first_receive_ns or int(receive)
            ref.last_receive_ns = int(receive)
            frame = json.loads(text)
            if "stream" not in frame:
                kind = "snapshot"
            else:
                kind = frame["stream"].split("@")[1]
                data = frame["data"]
                symbol = SYMBOLS[data["s"]]
                if kind == "trade":
                    ref.trades += 1
                    ref.volume += Decimal(data["q"])
                    ref.notional += Decimal(data["p"]) * Decimal(data["q"])
                    ref.last_price = data["p"]
                    ref.trade_ids.append(data["t"])
                elif kind == "bookTicker":
                    ref.bid, ref.ask = data["b"], data["a"]
            ref.frames[kind] = ref.frames.get(kind, 0) + 1
    return (venue, symbol), ref


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, str], Reference]:
    paths = sorted(PACKAGED.glob("*.gz"))
    assert len(paths) == 6
    return dict(read_reference(path) for path in paths)


@pytest.fixture(scope="module")
def records() -> Records:
    return binance.load()


@pytest.mark.parametrize("batch_size", [4096, 1000, 333])
def test_the_summary_equals_the_standard_library_reading(
    reference: dict[tuple[str, str], Reference], records: Records, batch_size: int
) -> None:
    summary = SymbolSummary()
    for batch in binance.replay(records, batch_size=batch_size):
        summary.update(batch)
    stats = summary.snapshot()
    assert set(stats) == set(reference)
    for key, ref in reference.items():
        got = stats[key]
        depth = sum(n for kind, n in ref.frames.items() if kind.startswith("depth"))
        assert (got.quotes, got.trades, got.depth_updates, got.snapshots) == (
            ref.frames["bookTicker"],
            ref.frames["trade"],
            depth,
            ref.frames["snapshot"],
        ), key
        assert got.frames == sum(ref.frames.values())
        assert got.trades == ref.trades
        assert got.volume == ref.volume, key  # exact: Decimal against Decimal
        assert Decimal(str(got.last_price)) == Decimal(ref.last_price), key
        assert Decimal(str(got.bid)) == Decimal(ref.bid), key
        assert Decimal(str(got.ask)) == Decimal(ref.ask), key
        assert (got.first_receive_ns, got.last_receive_ns) == (
            ref.first_receive_ns,
            ref.last_receive_ns,
        )
        assert math.isclose(got.notional, float(ref.notional), rel_tol=1e-12)
        assert math.isclose(got.vwap, float(ref.notional / ref.volume), rel_tol=1e-12)


def test_the_sequence_check_agrees_with_the_raw_trade_ids(
    reference: dict[tuple[str, str], Reference], records: Records
) -> None:
    check = SequenceCheck()
    for batch in binance.replay(records, batch_size=2048):
        check.update(batch)
    report = check.snapshot()
    assert report.ok and report.receive_regressions == 0
    assert report.rows == sum(sum(ref.frames.values()) for ref in reference.values())
    for (venue, symbol), ref in reference.items():
        trades = report.streams[(venue, symbol, 2)]
        ids = ref.trade_ids
        gaps = sum(1 for a, b in itertools.pairwise(ids) if b > a + 1)
        assert (trades.count, trades.first_id, trades.last_id) == (len(ids), ids[0], ids[-1])
        assert trades.gaps == gaps == 0  # Binance trade ids are consecutive per symbol


def readme_frame_counts() -> dict[str, int]:
    """The ``| file | frames |`` table of the shared data README."""
    text = (SHARED.parent / "README.md").read_text()
    rows = re.findall(r"^\| (\w+\.gz) \| ([\d,]+) \|$", text, flags=re.MULTILINE)
    return {name: int(count.replace(",", "")) for name, count in rows}


@pytest.mark.skipif(not SHARED.exists(), reason="the full recording is not here")
def test_the_full_recording_has_the_frame_counts_its_readme_lists() -> None:
    expected = readme_frame_counts()
    assert len(expected) == 6
    paths = sorted(SHARED.glob("*.gz"))
    merged = binance.load(paths)
    counts = {}
    for path in paths:
        mine = (merged["venue"] == binance.venue_of(path).encode()) & (
            merged["symbol"] == binance.symbol_of(path).encode()
        )
        counts[path.name] = int(mine.sum())
    assert counts == expected
    assert len(merged) == sum(expected.values()) == 332_200
    check = SequenceCheck()
    check.update(merged)
    report = check.snapshot()
    assert report.ok and all(s.gaps == 0 for s in report.streams.values())
