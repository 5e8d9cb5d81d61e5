"""The Binance adapter (decoder, loader, replay) and the per-symbol accumulators."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import cast

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_intel import _core
from market_intel import summary as summary_module
from market_intel.adapters import binance
from market_intel.adapters.normalize import normalize_symbol
from market_intel.enums import MarketDataKind, MessageType, Priority
from market_intel.errors import InvalidArgumentError, MalformedFrameError, MessageValidationError
from market_intel.records import MESSAGE_DTYPE
from market_intel.summary import SequenceCheck, SymbolSummary
from mi_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
SHARED = SHARED_DATA / "binance"
NAMES = [
    "cm_btcusd_perp_20240808.gz",
    "cm_ethusd_perp_20240808.gz",
    "spot_btcusdt_20240808.gz",
    "spot_ethusdt_20240808.gz",
    "usdm_btcusdt_20240808.gz",
    "usdm_ethusdt_20240808.gz",
]
QUOTE, TRADE, DEPTH, SNAPSHOT = (int(k) for k in MarketDataKind)

SPOT_QUOTE = (
    b'1000 {"stream":"btcusdt@bookTicker","data":{"u":11,"s":"BTCUSDT","b":"61837.63000000",'
    b'"B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}'
)
USDM_QUOTE = (
    b'1001 {"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":12,"s":"BTCUSDT",'
    b'"b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256314}}'
)
TRADE_LINE = (
    b'1002 {"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
    b'"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}}'
)
DEPTH_LINE = (
    b'1003 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,'
    b'"s":"BTCUSDT","U":20,"u":25,"b":[["61730.17","0.5"],["61737.63","0.00000000"],'
    b'["61735.00","1.25"]],"a":[["61839.86","0"],["61845.11","0.32329"],["61840.00","2"]]}}'
)
SNAPSHOT_LINE = (
    b'1004 {"lastUpdateId":30,"bids":[["61837.63","3.7"],["61837.62","0.6"]],'
    b'"asks":[["61837.64","1.5"],["61840.00","0.1"]]}'
)


def decode(*lines: bytes, **kwargs: str) -> np.ndarray:
    return binance.decode_frames(list(lines), venue=kwargs.pop("venue", "binance"), **kwargs)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return binance.load()


def same_records(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two record arrays have the same dtype and fields (NaN equal to NaN)."""
    names = a.dtype.names or ()
    return a.dtype == b.dtype and all(
        np.array_equal(a[f], b[f], equal_nan=a.dtype[f].kind == "f") for f in names
    )


def records(rows: Sequence[Mapping[str, object]]) -> np.ndarray:
    """Market data records with NaN floats, built from a few fields per row."""
    out = np.zeros(len(rows), dtype=MESSAGE_DTYPE)
    for name in ("bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume"):
        out[name] = np.nan
    out["type"] = MessageType.MARKET_DATA
    out["venue"] = b"v"
    out["symbol"] = b"S"
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[name][i] = value
    return out


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "venue", "symbol"),
    [
        ("spot_btcusdt_20240808.gz", "binance", "BTC-USDT"),
        ("usdm_ethusdt_20240808.gz", "binance-usdm", "ETH-USDT"),
        ("/x/cm_btcusd_perp_20240808.gz", "binance-coinm", "BTC-USD-PERP"),
        ("cm_bchusd_210924_20210801.gz", "binance-coinm", "BCH-USD-210924"),
    ],
)
def test_venue_and_symbol_come_from_the_file_name(name: str, venue: str, symbol: str) -> None:
    assert binance.venue_of(name) == venue
    assert binance.symbol_of(name) == symbol
    assert len(venue.encode()) <= 16


def test_an_unknown_prefix_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError, match="prefix 'okx'"):
        binance.venue_of("okx_btcusdt_20240808.gz")


@pytest.mark.parametrize("name", ["spot_20240808.gz", "spot.gz", "spot_btc usdt_20240808.gz"])
def test_a_file_name_without_a_symbol_is_rejected(name: str) -> None:
    with pytest.raises(InvalidArgumentError, match="names no symbol"):
        binance.symbol_of(name)


# -- decoding ----------------------------------------------------------------------------------


def test_every_frame_kind_decodes_into_its_fields() -> None:
    out = decode(
        SPOT_QUOTE, USDM_QUOTE, TRADE_LINE, DEPTH_LINE, SNAPSHOT_LINE, symbol_hint="btcusdt"
    )
    assert out.dtype == MESSAGE_DTYPE
    assert out["id"].tolist() == [1, 2, 3, 4, 5]
    assert out["kind"].tolist() == [QUOTE, QUOTE, TRADE, DEPTH, SNAPSHOT]
    assert (out["type"] == MessageType.MARKET_DATA).all()
    assert (out["priority"] == Priority.NORMAL).all()
    assert (out["source"] == b"replay").all() and (out["venue"] == b"binance").all()
    assert (out["symbol"] == b"BTC-USDT").all()
    assert out["receive_ns"].tolist() == [1000, 1001, 1002, 1003, 1004]
    assert out["update_id"].tolist() == [11, 12, 3735683259, 25, 30]
    assert out["exchange_ns"].tolist() == [0, 1723161256314000000, 1723161255342000000,
                                           1723161255208000000, 0]  # fmt: skip
    spot, usdm, trade, depth, snap = out
    assert (spot["bid"], spot["bid_size"], spot["ask"], spot["ask_size"]) == (
        61837.63,
        3.78826,
        61837.64,
        1.54698,
    )
    assert (usdm["bid"], usdm["ask"], usdm["ask_size"]) == (61800.20, 61800.30, 2.510)
    assert (trade["last_price"], trade["last_size"]) == (61837.63, 0.02)
    # best levels with a non-zero quantity, whatever order the update lists them in
    assert (depth["bid"], depth["bid_size"], depth["ask"], depth["ask_size"]) == (
        61735.00,
        1.25,
        61840.00,
        2.0,
    )
    assert (snap["bid"], snap["bid_size"], snap["ask"], snap["ask_size"]) == (
        61837.63,
        3.7,
        61837.64,
        1.5,
    )
    for row, absent in [(spot, "last_price"), (trade, "bid"), (depth, "last_size")]:
        assert math.isnan(row[absent])
    assert np.isnan(out["volume"]).all()
    assert (out["created_ns"] == 0).all() and (out["published_ns"] == 0).all()


def test_a_depth_side_with_no_live_level_is_nan() -> None:
    line = (
        b'7 {"stream":"ethusd_perp@depth@0ms","data":{"e":"depthUpdate","E":5,"s":"ETHUSD_PERP",'
        b'"U":1,"u":2,"b":[["2657.70","0"]],"a":[]}}'
    )
    (row,) = decode(line, venue="binance-coinm")
    assert row["symbol"] == b"ETH-USD-PERP" and row["exchange_ns"] == 5_000_000
    assert all(math.isnan(row[f]) for f in ("bid", "bid_size", "ask", "ask_size"))


def test_lines_may_keep_their_newlines_and_blank_lines_are_skipped() -> None:
    out = decode(SPOT_QUOTE + b"\n", b"\n", TRADE_LINE + b"\n")
    assert out["kind"].tolist() == [QUOTE, TRADE]
    assert len(decode()) == 0


def test_a_snapshot_takes_its_own_symbol_or_the_hint() -> None:
    named = SNAPSHOT_LINE.replace(b'{"lastUpdateId"', b'{"symbol":"BTCUSD_PERP","lastUpdateId"')
    assert decode(named, symbol_hint="other")["symbol"].tolist() == [b"BTC-USD-PERP"]
    assert decode(SNAPSHOT_LINE, symbol_hint="ethusdt")["symbol"].tolist() == [b"ETH-USDT"]
    assert decode(SNAPSHOT_LINE, symbol_hint="ETH-USDT")["symbol"].tolist() == [b"ETH-USDT"]
    with pytest.raises(MessageValidationError, match="symbol_hint"):
        decode(SNAPSHOT_LINE)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        (b"no-space-here", "line 2: .*expected '<receive_ns> <json>'"),
        (b"12x4 {}", "line 2: receive time b'12x4'"),
        (b"99999999999999999999 {}", "line 2: b'99999999999999999999 {}'; expected '<receive"),
        (b"9999999999999999999 {}", "line 2: receive time b'9999999999999999999'"),
        (b" {}", "line 2: receive time b''"),
        (SPOT_QUOTE.replace(b"@bookTicker", b"@aggTrade"), "stream 'btcusdt@aggTrade'"),
        (SPOT_QUOTE.replace(b'"u":11,', b""), "line 2: QUOTE frame: .*required field `u`"),
        (TRADE_LINE.replace(b'"0.02000000"', b'"x"'), "TRADE frame"),
        (DEPTH_LINE.replace(b'"1.25"', b'"1,25"'), "depth levels"),
        (b'5 {"nothing":1}', "line 2: SNAPSHOT frame"),
        (TRADE_LINE[:-30], "line 2: TRADE frame: Input data was truncated"),
        (SPOT_QUOTE[:-1] + b",}", "line 2: QUOTE frame: JSON is malformed"),
    ],
)
def test_malformed_lines_are_reported_with_their_line(line: bytes, match: str) -> None:
    with pytest.raises(MessageValidationError, match=match):
        decode(SPOT_QUOTE, line, symbol_hint="x")


def test_error_lines_count_blank_lines() -> None:
    with pytest.raises(MessageValidationError, match="line 4: TRADE frame"):
        decode(SPOT_QUOTE, b"", TRADE_LINE, TRADE_LINE.replace(b'"t":', b'"x":'))


def test_a_venue_must_fit_its_field() -> None:
    with pytest.raises(InvalidArgumentError, match="venue: 'binance-coinm-perp'"):
        decode(SPOT_QUOTE, venue="binance-coinm-perp")


def _reference_row(line: bytes, hint: str) -> dict[str, object]:
    """What one line must decode to, from json and float() alone."""
    ts, _, text = line.partition(b" ")
    frame = json.loads(text)
    row: dict[str, object] = {"receive_ns": int(ts)}
    if "stream" not in frame:
        bids = [(float(p), float(q)) for p, q in frame["bids"] if float(q)]
        asks = [(float(p), float(q)) for p, q in frame["asks"] if float(q)]
        row.update(kind=SNAPSHOT, symbol=frame.get("symbol", hint), update_id=frame["lastUpdateId"])
        row.update(exchange_ns=frame.get("E", 0) * 1_000_000)
        (row["bid"], row["bid_size"]), (row["ask"], row["ask_size"]) = max(bids), min(asks)
        return row
    data, stream = frame["data"], frame["stream"]
    row.update(symbol=data["s"], exchange_ns=data.get("E", 0) * 1_000_000)
    if stream.endswith("@bookTicker"):
        row.update(kind=QUOTE, update_id=data["u"], bid=float(data["b"]), ask=float(data["a"]))
        row.update(bid_size=float(data["B"]), ask_size=float(data["A"]))
    elif stream.endswith("@trade"):
        row.update(kind=TRADE, update_id=data["t"], exchange_ns=data["T"] * 1_000_000)
        row.update(last_price=float(data["p"]), last_size=float(data["q"]))
    else:
        row.update(kind=DEPTH, update_id=data["u"])
        bids = [(float(p), float(q)) for p, q in data["b"] if float(q)]
        asks = [(float(p), float(q)) for p, q in data["a"] if float(q)]
        nan = (math.nan, math.nan)
        (row["bid"], row["bid_size"]) = max(bids) if bids else nan
        (row["ask"], row["ask_size"]) = min(asks) if asks else nan
    return row


@pytest.mark.parametrize("path", binance.sample_paths(), ids=lambda p: p.name)
def test_the_sample_decodes_as_json_and_float_read_it(path: Path) -> None:
    """Every field of every frame equals what the standard library reads from the line:
    msgspec's and the level parser's doubles are float()'s, bit for bit."""
    lines = gzip.decompress(path.read_bytes()).splitlines()
    hint = path.name.split("_20")[0].split("_", 1)[1].upper()
    out = binance.decode_frames(lines, venue=binance.venue_of(path), symbol_hint=hint)
    assert len(out) == len(lines)
    for got, line in zip(out, lines, strict=True):
        want = _reference_row(line, hint)
        for name, value in want.items():
            if name == "symbol":
                assert got["symbol"].decode() == normalize_symbol("binance", cast("str", value))
            elif isinstance(value, float) and math.isnan(value):
                assert math.isnan(got[name]), (name, line[:80])
            else:
                assert got[name] == value, (name, line[:80])


_FLOATS = ("bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume")


def _best_level(levels: list[list[str]], *, highest: bool) -> tuple[float, float]:
    """The best price with a non-zero quantity and that quantity (the last level's, where
    several share the price); NaN and NaN when there is none."""
    price = size = math.nan
    for p, q in levels:
        level_price, level_size = float(p), float(q)
        if level_size == 0:
            continue
        if math.isnan(price) or (level_price > price if highest else level_price < price):
            price, size = level_price, level_size
        elif level_price == price:
            size = level_size
    return price, size


def _stdlib_row(line: bytes, venue: str, hint: str) -> dict[str, object]:
    """Every field one line's record carries, from json, float() and normalize_symbol."""
    ts, _, text = line.partition(b" ")
    frame = json.loads(text)
    row: dict[str, object] = {"receive_ns": int(ts), "venue": venue.encode()}
    if "stream" not in frame:
        symbol = normalize_symbol(venue, frame.get("symbol") or hint)
        row.update(kind=SNAPSHOT, symbol=symbol.encode())
        row.update(update_id=frame["lastUpdateId"], exchange_ns=frame.get("E", 0) * 1_000_000)
        row["bid"], row["bid_size"] = _best_level(frame["bids"], highest=True)
        row["ask"], row["ask_size"] = _best_level(frame["asks"], highest=False)
        return row
    data, stream = frame["data"], frame["stream"]
    symbol = normalize_symbol(venue, data["s"])
    row.update(symbol=symbol.encode(), exchange_ns=data.get("E", 0) * 1_000_000)
    if stream.endswith("@bookTicker"):
        row.update(kind=QUOTE, update_id=data["u"], bid=float(data["b"]), ask=float(data["a"]))
        row.update(bid_size=float(data["B"]), ask_size=float(data["A"]))
    elif stream.endswith("@trade"):
        row.update(kind=TRADE, update_id=data["t"], exchange_ns=data["T"] * 1_000_000)
        row.update(last_price=float(data["p"]), last_size=float(data["q"]))
    else:
        row.update(kind=DEPTH, update_id=data["u"])
        row["bid"], row["bid_size"] = _best_level(data["b"], highest=True)
        row["ask"], row["ask_size"] = _best_level(data["a"], highest=False)
    return row


def _stdlib_records(rows: Sequence[Mapping[str, object]]) -> np.ndarray:
    """``MESSAGE_DTYPE`` records of ``rows``, ids from 1, the constant fields set, floats a
    row lacks NaN and every other byte 0."""
    out = np.zeros(len(rows), dtype=MESSAGE_DTYPE)
    out["id"] = range(1, len(rows) + 1)
    out["type"] = MessageType.MARKET_DATA
    out["priority"] = Priority.NORMAL
    out["source"] = b"replay"
    names = {name for row in rows for name in row}
    for name in names:
        default = math.nan if name in _FLOATS else 0
        out[name] = [row.get(name, default) for row in rows]
    for name in set(_FLOATS) - names:
        out[name] = math.nan
    return out


def test_the_records_equal_a_stdlib_reading_byte_for_byte() -> None:
    """Every byte of every record, per file and merged, equals a record built from what json,
    float() and normalize_symbol read from the sample's lines (NaN included: the same quiet
    NaN bits)."""
    everything: list[dict[str, object]] = []
    for path in binance.sample_paths():
        lines = gzip.decompress(path.read_bytes()).splitlines()
        venue, hint = binance.venue_of(path), binance.symbol_of(path)
        rows = [_stdlib_row(line, venue, hint) for line in lines]
        got = binance.decode_frames(lines, venue=venue, symbol_hint=hint)
        want = _stdlib_records(rows)
        assert got.dtype == MESSAGE_DTYPE and len(got) == len(want) == len(lines)
        if got.tobytes() != want.tobytes():
            diff = np.frombuffer(got.tobytes(), np.uint8) != np.frombuffer(want.tobytes(), np.uint8)
            row = int(np.flatnonzero(diff)[0]) // MESSAGE_DTYPE.itemsize
            pytest.fail(f"{path.name} line {row + 1}: {got[row]} != {want[row]}")
        everything.extend(rows)
    merged = sorted(everything, key=lambda row: cast("int", row["receive_ns"]))  # stable
    assert binance.load().tobytes() == _stdlib_records(merged).tobytes()


# -- symbols -----------------------------------------------------------------------------------


class _Data(msgspec.Struct):
    s: str


class _Frame(msgspec.Struct):
    """The symbol of a stream frame (``data.s``) or of a REST snapshot (``symbol``)."""

    data: _Data | None = None
    symbol: str = ""


def _expected_symbols(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The receive times of a recording's lines and, per line, ``normalize_symbol`` of the
    symbol its frame names (or of the file name's, for a snapshot that names none)."""
    lines = gzip.decompress(path.read_bytes()).splitlines()
    decoder = msgspec.json.Decoder(_Frame)
    venue, hint = binance.venue_of(path), binance.symbol_of(path)
    canonical: dict[str, bytes] = {}
    receive, symbols = [], []
    for line in lines:
        stamp, _, text = line.partition(b" ")
        frame = decoder.decode(text)
        raw = frame.data.s if frame.data is not None else frame.symbol or hint
        if raw not in canonical:
            canonical[raw] = normalize_symbol(venue, raw).encode()
        receive.append(int(stamp))
        symbols.append(canonical[raw])
    return np.array(receive, dtype=np.int64), np.array(symbols, dtype="S16")


_RECORDINGS = [
    pytest.param(binance.sample_paths(), id="sample"),
    pytest.param(
        sorted(SHARED.glob("*.gz")),
        id="full",
        marks=pytest.mark.skipif(not SHARED.exists(), reason="the full recording is not here"),
    ),
]


@pytest.mark.parametrize("paths", _RECORDINGS)
def test_native_symbols_agree_with_normalize_symbol_on_the_recordings(paths: list[Path]) -> None:
    """Every record of every file, alone and merged on all threads, carries the symbol
    ``normalize_symbol`` gives its frame's."""
    receive, symbols = [], []
    for path in paths:
        times, want = _expected_symbols(path)
        got = binance.load([path])["symbol"]
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (path.name, int(bad[0]) + 1, got[bad[0]], want[bad[0]])
        receive.append(times)
        symbols.append(want)
    order = np.argsort(np.concatenate(receive), kind="stable")
    merged = binance.load(paths)["symbol"]
    assert merged.tolist() == np.concatenate(symbols)[order].tolist()
    assert not np.isin(merged, [b"BTCUSDT", b"ETHUSDT", b"BTCUSD_PERP", b"ETHUSD_PERP"]).any()


# Names that are not the sample's: other quotes, aliases, dated futures, spelled-out pairs,
# and names that are not pairs. Each is a JSON string literal, escapes and all.
TRICKY_NAMES = [
    '"ETHBTC"', '"btcusdt"', '"BNBFDUSD"', '"USDCUSDT"', '"BTCDOMUSDT"', '"1000SHIBUSDT"',
    '"PAXGDAI"', '"BTCTRY"', '"ETHXBT"', '"XDGUSDT"', '"XBTEUR"', '"XBTUSD"',
    '"BTCUSD_PERP"', '"ethusd_perp"', '"DOTUSD_PERP"', '"BTCUSDTPERP"', '"BTC-USD-PERP"',
    '"BCHUSD_210924"', '"ETHUSDT_240927"', '"btcusd-240329"', '"BTC-USD-210924"',
    '"BTCUSD_21092"', '"X_210924"', '"BTCPERP_210924"',
    '"BTC-USDT"', '"xbt/eur"', '"XXBT_ZUSD"', '"ETH:USD"', '"A_B-C"', '"A-B-C"', '"-USDT"',
    '"BTC/"', '"A/B_C"',
    '"DEFIINDEX"', '"USDT"', '"BTC"', '"PERP"', '"_PERP"', '"X"', '"ABC123"', '"btc"',
    r'"  btcusdt\t"', r'"stra\u00dfe"', r'"\u0062tcusdt"', r'"\u0045THUSD_PERP"',
]  # fmt: skip


def _frames_naming(literal: str) -> list[tuple[bytes, str | None]]:
    """A line of every frame kind that names the symbol ``literal`` (a JSON string), and
    the symbol hint to decode it with."""
    name = literal.encode()
    return [
        (b'1 {"stream":"x@bookTicker","data":{"u":1,"s":%b,"b":"1","B":"1","a":"2","A":"1"}}'
         % name, None),
        (b'2 {"stream":"x@trade","data":{"e":"trade","E":1,"s":%b,"t":1,"p":"1","q":"1",'
         b'"T":1,"m":true}}' % name, None),
        (b'3 {"stream":"x@depth@100ms","data":{"e":"depthUpdate","E":1,"s":%b,"U":1,"u":2,'
         b'"b":[],"a":[]}}' % name, None),
        (b'4 {"symbol":%b,"lastUpdateId":1,"bids":[],"asks":[]}' % name, "other"),
        (b'5 {"lastUpdateId":1,"bids":[],"asks":[]}', json.loads(literal)),
    ]  # fmt: skip


@pytest.mark.parametrize("literal", TRICKY_NAMES)
def test_native_symbols_agree_with_normalize_symbol_on_tricky_names(literal: str) -> None:
    want = normalize_symbol("binance", json.loads(literal))
    assert len(want) <= 16
    for line, hint in _frames_naming(literal):
        (row,) = _core._decode_binance(line, "binance", hint, MESSAGE_DTYPE)
        assert row["symbol"].decode() == want, line


@pytest.mark.parametrize(
    "literal",
    ['""', '" "', '"BTC USDT"', r'"\tbtc\u0007"', r'"\u00e9"', '"ABCDEFGHIJKLUSDT"'],
    ids=["empty", "blank", "space", "control", "not ascii", "too long when canonical"],
)
def test_names_with_no_canonical_record_field_are_refused(literal: str) -> None:
    """A name ``normalize_symbol`` refuses, or whose canonical form does not fit the
    16-byte field, is a malformed frame, never a record with another symbol."""
    name = json.loads(literal)
    try:
        canonical = normalize_symbol("binance", name)
    except MalformedFrameError:
        pass
    else:
        assert len(canonical) > 16 or not canonical.isascii()
    frames = _frames_naming(literal)
    if not name:
        del frames[3]  # a snapshot whose symbol is "" takes the hint
    for line, hint in frames:
        with pytest.raises(MessageValidationError, match="symbol"):
            _core._decode_binance(line, "binance", hint, MESSAGE_DTYPE)


def _write_recording(folder: Path, name: str, *lines: bytes) -> Path:
    path = folder / name
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


def test_load_breaks_receive_time_ties_by_file_order(tmp_path: Path) -> None:
    quote = SPOT_QUOTE.split(b" ", 1)[1]
    a = _write_recording(tmp_path, "spot_btcusdt_1.gz", b"5 " + quote, b"7 " + quote)
    b = _write_recording(tmp_path, "usdm_btcusdt_1.gz", b"5 " + quote, b"6 " + quote)
    merged = binance.load([b, a])
    assert merged["receive_ns"].tolist() == [5, 5, 6, 7]
    assert merged["venue"].tolist() == [b"binance-usdm", b"binance", b"binance-usdm", b"binance"]
    assert merged["id"].tolist() == [1, 2, 3, 4]


def test_load_names_the_file_and_line_that_fail(tmp_path: Path) -> None:
    good = _write_recording(tmp_path, "spot_btcusdt_1.gz", SPOT_QUOTE)
    bad = _write_recording(tmp_path, "cm_btcusd_perp_1.gz", SPOT_QUOTE, b"", b"12x4 {}")
    with pytest.raises(MessageValidationError, match=r"cm_btcusd_perp_1\.gz: line 3: receive time"):
        binance.load([good, bad])
    with pytest.raises(FileNotFoundError, match=r"spot_ethusdt_1\.gz"):
        binance.load([good, tmp_path / "spot_ethusdt_1.gz"])
    broken = tmp_path / "usdm_ethusdt_1.gz"
    broken.write_bytes(good.read_bytes()[:-6])
    with pytest.raises(OSError, match=r"usdm_ethusdt_1\.gz"):
        binance.load([broken])
    with pytest.raises(InvalidArgumentError, match="prefix 'okx'"):
        binance.load([tmp_path / "okx_btcusdt_1.gz"])


def test_sample_paths_are_the_six_packaged_recordings() -> None:
    paths = binance.sample_paths()
    assert [p.name for p in paths] == NAMES
    folder = paths[0].parent
    assert (folder / "LICENSE").read_text().startswith("These files are raw public Binance")
    assert "hftbacktest" in (folder / "README.md").read_text()
    if SHARED.exists():
        assert (folder / "LICENSE").read_bytes() == (SHARED / "LICENSE").read_bytes()


def test_load_merges_the_files_by_receive_time_keeping_each_files_order(
    sample: np.ndarray,
) -> None:
    merged = sample
    assert merged.dtype == MESSAGE_DTYPE
    assert (np.diff(merged["receive_ns"]) >= 0).all()
    assert merged["id"].tolist() == list(range(1, len(merged) + 1))
    total = 0
    for path in binance.sample_paths():
        alone = binance.load([path])
        total += len(alone)
        venue, symbol = binance.venue_of(path).encode(), binance.symbol_of(path).encode()
        mine = merged[(merged["venue"] == venue) & (merged["symbol"] == symbol)]
        assert (mine["update_id"] == alone["update_id"]).all()
        assert (mine["receive_ns"] == alone["receive_ns"]).all()
    assert total == len(merged)
    assert len(binance.load([])) == 0


# -- replay ------------------------------------------------------------------------------------


class FakeTime:
    """A clock that only sleeping moves, recording every sleep."""

    def __init__(self) -> None:
        self.now = 5_000
        self.sleeps: list[float] = []

    def clock(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1e9)


def test_replay_without_pacing_yields_consecutive_views(sample: np.ndarray) -> None:
    data = sample[:1000]
    batches = list(binance.replay(data, batch_size=300))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    assert all(b.base is not None for b in batches)
    assert same_records(np.concatenate(batches, dtype=MESSAGE_DTYPE), data)


@pytest.mark.parametrize("speed", [1.0, 50.0])
def test_paced_replay_emits_each_batch_when_its_time_is_due(
    sample: np.ndarray, speed: float
) -> None:
    data = sample[:3000]
    fake = FakeTime()
    start = fake.now
    first = int(data["receive_ns"][0])
    span = 2_000_000
    emitted = []
    for batch in binance.replay(
        data, batch_size=64, speed=speed, max_span_ns=span, clock=fake.clock, sleep=fake.sleep
    ):
        emitted.append(batch)
        due = (batch["receive_ns"] - first) / speed
        elapsed = fake.now - start
        assert len(batch) <= 64
        assert batch["receive_ns"][-1] - batch["receive_ns"][0] < span
        assert abs(elapsed - due[0]) <= 1  # the batch's first record is on time
        assert (due - elapsed).max() <= span / speed + 1  # no record is early by more
    assert same_records(np.concatenate(emitted, dtype=MESSAGE_DTYPE), data)
    assert fake.now - start == pytest.approx((data["receive_ns"][-1] - first) / speed, abs=span)


def test_paced_replay_at_high_speed_keeps_real_time(sample: np.ndarray) -> None:
    data = sample
    window = data[data["receive_ns"] < data["receive_ns"][0] + 2_000_000_000]  # 2 s of data
    speed = 20.0  # 100 ms of wall time
    began = time.monotonic_ns()
    count = sum(len(b) for b in binance.replay(window, speed=speed))
    elapsed = time.monotonic_ns() - began
    expected = (window["receive_ns"][-1] - window["receive_ns"][0]) / speed
    assert count == len(window)
    assert expected - 1e6 <= elapsed < expected + 200e6


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size: 0"),
        ({"speed": -1.0}, "speed: -1.0"),
        ({"speed": math.inf}, "speed: inf"),
        ({"max_span_ns": 0}, "max_span_ns: 0"),
    ],
)
def test_replay_rejects_bad_arguments(
    sample: np.ndarray, kwargs: dict[str, float], match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        next(binance.replay(sample[:10], **kwargs))  # type: ignore[arg-type]


# -- accumulators ------------------------------------------------------------------------------


def test_symbol_summary_counts_sums_and_keeps_the_latest() -> None:
    batch = records(
        [
            {"kind": QUOTE, "receive_ns": 10, "bid": 1.0, "ask": 2.0},
            {"kind": TRADE, "receive_ns": 11, "last_price": 100.0, "last_size": 0.1},
            {"kind": TRADE, "receive_ns": 12, "last_price": 101.0, "last_size": 0.2},
            {"kind": TRADE, "receive_ns": 12, "last_price": 102.0, "last_size": 0.3},
            {"kind": DEPTH, "receive_ns": 13, "bid": 9.0},
            {"kind": QUOTE, "receive_ns": 9, "bid": 3.0, "ask": 4.0},  # older: not the last
            {"kind": SNAPSHOT, "receive_ns": 8},
        ]
    )
    summary = SymbolSummary()
    summary.update(batch)
    (stats,) = summary.snapshot().values()
    assert (stats.venue, stats.symbol, stats.frames) == ("v", "S", 7)
    assert stats.frames_by_kind == {
        MarketDataKind.QUOTE: 2, MarketDataKind.TRADE: 3,
        MarketDataKind.DEPTH: 1, MarketDataKind.SNAPSHOT: 1,
    }  # fmt: skip
    assert (stats.first_receive_ns, stats.last_receive_ns) == (8, 13)
    assert stats.last_price == 102.0  # the later of two trades at the same time
    assert (stats.bid, stats.ask) == (1.0, 2.0)
    assert stats.volume == Decimal("0.6")
    assert stats.notional == pytest.approx(100 * 0.1 + 101 * 0.2 + 102 * 0.3)
    assert stats.vwap == pytest.approx(stats.notional / 0.6)


def test_accumulators_ignore_rows_of_other_types() -> None:
    batch = records([{"kind": TRADE, "receive_ns": 1, "last_price": 5.0, "last_size": 1.0}] * 3)
    batch["type"][1] = MessageType.ORDER
    batch["price"][1] = 7.0  # an order's fields overlap market data's
    batch["type"][2] = MessageType.HEALTH
    summary, check = SymbolSummary(), SequenceCheck()
    summary.update(batch)
    check.update(batch)
    summary.update(batch[1:])
    (stats,) = summary.snapshot().values()
    assert (stats.frames, stats.trades, stats.volume) == (1, 1, Decimal(1))
    assert check.snapshot().rows == 1


def test_a_symbol_with_no_trade_has_nan_prices_and_zero_volume() -> None:
    summary = SymbolSummary()
    summary.update(records([{"kind": DEPTH, "receive_ns": 1}]))
    (stats,) = summary.snapshot().values()
    assert stats.volume == 0 and stats.notional == 0.0
    assert math.isnan(stats.vwap) and math.isnan(stats.last_price) and math.isnan(stats.bid)


@pytest.mark.parametrize("size", [0.123456789, math.nan, 1e12])
def test_a_size_with_more_than_8_decimals_is_rejected_before_any_change(size: float) -> None:
    summary = SymbolSummary()
    bad = records([{"kind": TRADE, "last_price": 1.0, "last_size": size}])
    with pytest.raises(MessageValidationError, match="last_size"):
        summary.update(bad)
    assert summary.snapshot() == {}


def test_volume_is_exact_where_float_sums_are_not() -> None:
    summary = SymbolSummary()
    rows = [{"kind": TRADE, "last_price": 1.0, "last_size": 0.1}] * 10
    rows += [{"kind": TRADE, "last_price": 1.0, "last_size": 0.00000001}]
    summary.update(records(rows))
    (stats,) = summary.snapshot().values()
    assert sum([0.1] * 10) != 1.0
    assert stats.volume == Decimal("1.00000001")


def test_sequence_check_counts_duplicates_regressions_and_trade_gaps() -> None:
    ids = [(TRADE, 5), (TRADE, 6), (TRADE, 6), (TRADE, 9), (TRADE, 8), (TRADE, 9)]
    ids += [(QUOTE, 100), (QUOTE, 250), (QUOTE, 240), (DEPTH, 7)]
    receive = [1, 2, 3, 3, 2, 4, 5, 6, 7, 8]
    rows = [
        {"kind": k, "update_id": u, "receive_ns": r} for (k, u), r in zip(ids, receive, strict=True)
    ]
    check = SequenceCheck()
    check.update(records(rows[:5]))
    check.update(records(rows[5:]))
    report = check.snapshot()
    trades = report.streams[("v", "S", MarketDataKind.TRADE)]
    quotes = report.streams[("v", "S", MarketDataKind.QUOTE)]
    assert (trades.count, trades.first_id, trades.last_id) == (6, 5, 9)
    assert (trades.duplicates, trades.out_of_order, trades.gaps, trades.missing_ids) == (1, 1, 1, 2)
    assert (quotes.out_of_order, quotes.gaps, quotes.duplicates) == (1, 0, 0)  # jumps are fine
    assert report.streams[("v", "S", MarketDataKind.DEPTH)].count == 1
    assert (report.rows, report.receive_regressions, report.ok) == (10, 1, False)
    clean = SequenceCheck()
    clean.update(records(rows[6:8]))
    assert clean.snapshot().ok


def _results(data: np.ndarray, bounds: list[int]) -> str:
    """Both accumulators' results after feeding ``data`` cut at ``bounds``, as text (so NaN
    compares equal to NaN and floats compare bit for bit through their repr)."""
    summary, check = SymbolSummary(), SequenceCheck()
    for a, b in itertools.pairwise([0, *sorted(set(bounds)), len(data)]):
        summary.update(data[a:b])
        check.update(data[a:b])
    return repr((sorted(summary.snapshot().items()), sorted(check.snapshot().streams.items()),
                 check.snapshot().rows, check.snapshot().receive_regressions))  # fmt: skip


_WHOLE: dict[int, str] = {}


@given(
    size=st.sampled_from([7, 97, 1000, 4096]),
    cuts=st.lists(st.integers(0, 58_108), max_size=40),
)
def test_results_do_not_depend_on_how_the_stream_is_batched(
    sample: np.ndarray, size: int, cuts: list[int]
) -> None:
    data = sample[:4000] if size < 100 else sample  # a small batch size on a prefix, for time
    if len(data) not in _WHOLE:
        _WHOLE[len(data)] = _results(data, [])
    bounds = [c for c in cuts if c < len(data)] + list(range(0, len(data), size))
    assert _results(data, bounds) == _WHOLE[len(data)]


@pytest.mark.parametrize("size", [1, 2, 3, 4096])
def test_single_row_batches_match_one_batch(sample: np.ndarray, size: int) -> None:
    data = sample[::97]  # every kind, every symbol, 600 rows
    assert _results(data, list(range(0, len(data), size))) == _results(data, [])


def test_grouping_survives_hash_collisions(
    sample: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a hash that maps every key to 0, grouping falls back to sorting the keys."""
    data = sample[::31]
    expected = _results(data, list(range(0, len(data), 500)))
    monkeypatch.setattr(summary_module, "_MIX", np.uint64(0))
    assert _results(data, list(range(0, len(data), 500))) == expected
