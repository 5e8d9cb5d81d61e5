"""Venue parsers over the real recordings: every frame parses, exactly, and bad frames are
refused with the field named."""

from __future__ import annotations

import collections
import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from functools import cache, partial
from typing import Any

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from market_intel.adapters import binance
from market_intel.adapters.normalize import (
    BookUpdate,
    Parsed,
    QuoteUpdate,
    TradeUpdate,
    parse_decimal,
)
from market_intel.adapters.venues import VENUES, VenueParser, _decimals, parser_for
from market_intel.adapters.venues.binance import BinanceParser
from market_intel.adapters.venues.coinbase import CoinbaseParser
from market_intel.adapters.venues.kraken import KrakenParser
from market_intel.enums import Side
from market_intel.errors import InvalidArgumentError, MalformedFrameError
from mi_data import SHARED_DATA

EXCHANGES = SHARED_DATA / "exchanges"
RECORDINGS = {
    "binance": "BINANCE",
    "binance-usdm": "BINANCE_FUTURES",
    "binance-coinm": "BINANCE_DELIVERY",
    "binance-us": "BINANCE_US",
    "coinbase": "COINBASE",
    "kraken": "KRAKEN",
}


@cache
def lines(venue: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the lines of a venue's exchange recording, read independently."""
    path = EXCHANGES / f"{RECORDINGS[venue]}.jsonl.zst"
    with path.open("rb") as raw:
        text = zstandard.ZstdDecompressor().stream_reader(raw).read().decode()
    rows = [json.loads(line) for line in text.splitlines()]
    return rows[0], rows[1:]


def received(venue: str) -> list[str]:
    return [row["data"] for row in lines(venue)[1] if row["t"] == "recv"]


def parse_all(venue: str) -> Iterator[tuple[dict[str, Any] | list[Any], Parsed]]:
    parser = parser_for(venue)
    for number, frame in enumerate(received(venue)):
        yield json.loads(frame, parse_float=Decimal), parser.parse(frame, number)


@cache
def sample_frames() -> list[tuple[int, str]]:
    """The packaged Binance sample's lines, as (receive ns, frame)."""
    out = []
    for path in binance.sample_paths():
        with gzip.open(path, "rt") as handle:
            for line in handle:
                stamp, _, frame = line.rstrip("\n").partition(" ")
                out.append((int(stamp), frame))
    return out


def ms_to_ns(ms: int) -> int:
    return ms * 1_000_000


def iso_ns(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def levels(raw: list[list[str]]) -> tuple[tuple[Decimal, Decimal], ...]:
    return tuple((Decimal(p), Decimal(q)) for p, q, *_ in raw)


# Every frame of every recording parses


@pytest.mark.parametrize(
    ("venue", "expected"),
    [
        ("binance", {"BookUpdate": 177, "QuoteUpdate": 84, "TradeUpdate": 2, "empty": 2}),
        (
            "binance-usdm",
            {"BookUpdate": 764, "QuoteUpdate": 613, "TradeUpdate": 91, "empty": 67},
        ),
        (
            "binance-coinm",
            {"BookUpdate": 2047, "QuoteUpdate": 2240, "TradeUpdate": 51, "empty": 33},
        ),
        ("binance-us", {"BookUpdate": 336, "QuoteUpdate": 128, "TradeUpdate": 11, "empty": 5}),
        (
            "coinbase",
            {
                "BookUpdate": 775,
                "QuoteUpdate": 160,
                "TradeUpdate": 279,
                "subscribed": 29,
                "empty": 31,
            },
        ),
        (
            "kraken",
            {
                "BookUpdate": 4279,
                "QuoteUpdate": 18,
                "TradeUpdate": 10,
                "subscribed": 30,
                "empty": 95,
            },
        ),
    ],
)
def test_every_recorded_frame_parses(venue: str, expected: dict[str, int]) -> None:
    counts: collections.Counter[str] = collections.Counter()
    for _, parsed in parse_all(venue):
        counts.update(type(update).__name__ for update in parsed.updates)
        counts.update(event.code for event in parsed.events)
        if not parsed.updates and not parsed.events:
            counts["empty"] += 1
    assert dict(counts) == expected


def test_packaged_binance_sample_parses_by_stream_kind() -> None:
    parsers: dict[str, BinanceParser] = {}
    counts: collections.Counter[str] = collections.Counter()
    for path in binance.sample_paths():
        parser = parsers[path.name] = BinanceParser(
            binance.venue_of(path), snapshot_symbol=binance.symbol_of(path)
        )
        with gzip.open(path, "rt") as handle:
            for line in handle:
                stamp, _, frame = line.partition(" ")
                (update,) = parser.parse(frame, int(stamp)).updates
                if isinstance(update, BookUpdate) and update.snapshot:
                    counts["snapshot"] += 1
                else:
                    counts[type(update).__name__] += 1
    # the sample's README table: bookTicker, trade, depth, snapshot
    assert counts == {
        "QuoteUpdate": 39_337,
        "TradeUpdate": 7_516,
        "BookUpdate": 11_249,
        "snapshot": 6,
    }


# Exact decimals, canonical symbols, exact times


def test_binance_frames_are_exact() -> None:
    parser = BinanceParser("binance-usdm")  # one parser reads every Binance product's frames
    checked = collections.Counter[str]()
    for receive_ns, frame in sample_frames()[::7]:
        raw = json.loads(frame, parse_float=Decimal)
        if "stream" not in raw:
            continue
        data = raw["data"]
        (update,) = parser.parse(frame, receive_ns).updates
        assert update.receive_ns == receive_ns
        assert update.venue == "binance-usdm"
        assert update.symbol in {"BTC-USDT", "ETH-USDT", "BTC-USD-PERP", "ETH-USD-PERP"}
        if isinstance(update, QuoteUpdate):
            assert (update.bid, update.bid_size) == (Decimal(data["b"]), Decimal(data["B"]))
            assert (update.ask, update.ask_size) == (Decimal(data["a"]), Decimal(data["A"]))
            assert update.update_id == data["u"]
            assert update.exchange_ns == ms_to_ns(data.get("E", 0))
        elif isinstance(update, TradeUpdate):
            assert (update.price, update.size) == (Decimal(data["p"]), Decimal(data["q"]))
            assert str(update.price) == data["p"]  # trailing zeros kept, as sent
            assert update.trade_id == data["t"]
            assert update.side is (Side.SELL if data["m"] else Side.BUY)
            assert update.exchange_ns == ms_to_ns(data["T"])
        else:
            assert isinstance(update, BookUpdate)
            assert update.bids == levels(data["b"]) and update.asks == levels(data["a"])
            assert (update.first_update_id, update.last_update_id) == (data["U"], data["u"])
            assert update.previous_update_id == data.get("pu", 0)
            assert update.exchange_ns == ms_to_ns(data["E"])
        checked[type(update).__name__] += 1
    assert min(checked.values()) > 100


def test_binance_exchange_recordings_symbols_are_canonical() -> None:
    for venue in ("binance", "binance-us"):
        header, _ = lines(venue)
        symbols = {u.symbol for _, parsed in parse_all(venue) for u in parsed.updates}
        assert symbols == set(header["config"]["l2_book"])
    header, _ = lines("binance-usdm")
    symbols = {u.symbol for _, parsed in parse_all("binance-usdm") for u in parsed.updates}
    # USD-M perpetuals are named without a suffix (SUSHIUSDT), so SUSHI-USDT here
    assert symbols == {s.removesuffix("-PERP") for s in header["config"]["l2_book"]}


def test_binance_aggtrade_id_and_side() -> None:
    for raw, parsed in parse_all("binance-coinm"):
        assert isinstance(raw, dict)
        if raw.get("data", {}).get("e") == "aggTrade":
            (trade,) = parsed.updates
            assert isinstance(trade, TradeUpdate)
            assert trade.trade_id == raw["data"]["a"]
            assert trade.side is (Side.SELL if raw["data"]["m"] else Side.BUY)
            assert trade.exchange_ns == ms_to_ns(raw["data"]["T"])


def test_binance_snapshot_needs_a_symbol() -> None:
    receive_ns, frame = next(f for f in sample_frames() if f[1].startswith('{"lastUpdateId"'))
    raw = json.loads(frame)
    assert "symbol" in raw  # the first file is COIN-M: its snapshot names the symbol
    (update,) = BinanceParser("binance-coinm").parse(frame, receive_ns).updates
    assert isinstance(update, BookUpdate) and update.snapshot
    assert update.symbol == "BTC-USD-PERP"
    assert update.last_update_id == raw["lastUpdateId"]
    assert update.exchange_ns == ms_to_ns(raw["E"])
    spot = next(
        f for f in sample_frames() if f[1].startswith('{"lastUpdateId"') and '"symbol"' not in f[1]
    )
    with pytest.raises(MalformedFrameError) as info:
        BinanceParser().parse(spot[1], spot[0])
    assert info.value.field == "symbol"
    (update,) = BinanceParser().parse_snapshot(spot[1], spot[0], "ETHUSDT").updates
    assert isinstance(update, BookUpdate) and update.symbol == "ETH-USDT"
    assert update.bids == levels(json.loads(spot[1])["bids"])


def test_binance_raw_stream_frames_parse_like_wrapped_ones() -> None:
    parser = BinanceParser("binance-usdm")
    for receive_ns, frame in sample_frames()[:3000:13]:
        raw = json.loads(frame)
        if "stream" in raw:
            unwrapped = json.dumps(raw["data"])
            assert parser.parse(unwrapped, receive_ns) == parser.parse(frame, receive_ns)


def test_binance_replies_and_ignored_streams() -> None:
    parser = BinanceParser()
    ack = parser.parse('{"result":null,"id":1}', 5)
    assert ack.updates == [] and [e.code for e in ack.events] == ["subscribed"]
    error = parser.parse('{"error":{"code":2,"msg":"Invalid request"},"id":2}', 5)
    assert [e.code for e in error.events] == ["error"] and "Invalid request" in error.events[0].text
    assert parser.parse('{"code":-1121,"msg":"Invalid symbol."}', 5).events[0].code == "error"
    klines = [f for f in received("binance") if "@kline" in f]
    assert klines and all(parser.parse(f, 1) == Parsed([]) for f in klines)


def test_coinbase_frames_are_exact() -> None:
    counts = collections.Counter[str]()
    sequences = []
    for raw, parsed in parse_all("coinbase"):
        assert isinstance(raw, dict)
        sequences.append(parsed.sequence)
        assert parsed.sequence == raw["sequence_num"]
        channel = raw["channel"]
        if channel == "market_trades":
            trades = sorted(
                (t for e in raw["events"] for t in e["trades"]), key=lambda t: int(t["trade_id"])
            )
            assert [u.trade_id for u in parsed.updates] == [int(t["trade_id"]) for t in trades]
            for update, trade in zip(parsed.updates, trades, strict=True):
                assert isinstance(update, TradeUpdate)
                assert (update.price, update.size) == (
                    Decimal(trade["price"]),
                    Decimal(trade["size"]),
                )
                assert update.exchange_ns == iso_ns(trade["time"])
                assert update.side is (Side.BUY if trade["side"] == "SELL" else Side.SELL)
                assert update.symbol == trade["product_id"]
        elif channel == "ticker":
            tickers = [t for e in raw["events"] for t in e["tickers"]]
            for update, ticker in zip(parsed.updates, tickers, strict=True):
                assert isinstance(update, QuoteUpdate)
                assert update.bid == Decimal(ticker["best_bid"])
                assert update.ask_size == Decimal(ticker["best_ask_quantity"])
                assert update.exchange_ns == iso_ns(raw["timestamp"])
        elif channel == "l2_data":
            for update, event in zip(parsed.updates, raw["events"], strict=True):
                assert isinstance(update, BookUpdate)
                assert update.snapshot is (event["type"] == "snapshot")
                bids = [
                    (Decimal(u["price_level"]), Decimal(u["new_quantity"]))
                    for u in event["updates"]
                    if u["side"] == "bid"
                ]
                asks = [
                    (Decimal(u["price_level"]), Decimal(u["new_quantity"]))
                    for u in event["updates"]
                    if u["side"] == "offer"
                ]
                assert list(update.bids) == bids and list(update.asks) == asks
                assert update.exchange_ns == max(iso_ns(u["event_time"]) for u in event["updates"])
        counts[channel] += 1
    # one connection, every frame numbered, none lost
    assert sequences == list(range(len(sequences)))
    assert counts["l2_data"] == 775 and counts["market_trades"] == 59


def test_coinbase_trade_side_is_the_aggressors() -> None:
    """Coinbase sends the maker's side: trades at the best ask say SELL, so the aggressor
    bought. Checked against the recorded tickers."""
    best: dict[str, tuple[Decimal, Decimal]] = {}
    at_ask = collections.Counter[Side | None]()
    for _, parsed in parse_all("coinbase"):
        for update in parsed.updates:
            if isinstance(update, QuoteUpdate) and update.bid and update.ask:
                best[update.symbol] = (update.bid, update.ask)
            elif isinstance(update, TradeUpdate) and update.symbol in best:
                bid, ask = best[update.symbol]
                if update.price >= ask:
                    at_ask[update.side] += 1
                elif update.price <= bid:
                    at_ask[Side.SELL if update.side is Side.BUY else Side.BUY] += 1
    assert at_ask[Side.BUY] > 20 * at_ask[Side.SELL]


def test_kraken_frames_are_exact() -> None:
    header, _ = lines("kraken")
    symbols = set()
    kinds = collections.Counter[str]()
    for raw, parsed in parse_all("kraken"):
        if isinstance(raw, dict):
            continue
        name, pair = raw[-2], raw[-1]
        symbols.update(u.symbol for u in parsed.updates)
        assert all(u.symbol == pair.replace("XBT", "BTC").replace("/", "-") for u in parsed.updates)
        if name == "trade":
            for update, row in zip(parsed.updates, raw[1], strict=True):
                assert isinstance(update, TradeUpdate)
                assert (update.price, update.size) == (Decimal(row[0]), Decimal(row[1]))
                assert update.exchange_ns == int(Decimal(row[2]) * 10**9)
                assert update.side is {"b": Side.BUY, "s": Side.SELL}[row[3]]
        elif name == "ticker":
            (update,) = parsed.updates
            assert isinstance(update, QuoteUpdate)
            assert (update.bid, update.bid_size) == (
                Decimal(raw[1]["b"][0]),
                Decimal(raw[1]["b"][2]),
            )
            assert (update.ask, update.ask_size) == (
                Decimal(raw[1]["a"][0]),
                Decimal(raw[1]["a"][2]),
            )
        else:
            (update,) = parsed.updates
            assert isinstance(update, BookUpdate)
            payloads = raw[1:-2]
            merged = {k: v for payload in payloads for k, v in payload.items()}
            update_snapshot = "as" in merged
            assert update.snapshot is update_snapshot
            assert update.asks == levels(merged.get("as" if update_snapshot else "a", []))
            assert update.bids == levels(merged.get("bs" if update_snapshot else "b", []))
            times = [Decimal(lv[2]) for k in ("as", "bs", "a", "b") for lv in merged.get(k, [])]
            assert update.exchange_ns == int(max(times) * 10**9)
            kinds[
                "two payloads"
                if len(payloads) == 2
                else "snapshot"
                if update_snapshot
                else "update"
            ] += 1
    assert symbols == set(header["config"]["l2_book"])
    assert kinds == {"update": 4268, "snapshot": 10, "two payloads": 1}


def test_kraken_events() -> None:
    parser = KrakenParser()
    status = first("kraken", '"subscriptionStatus"')
    parsed = parser.parse(status, 7)
    assert parsed.updates == []
    assert [(e.code, e.symbol, e.text) for e in parsed.events] == [
        ("subscribed", "WAVES-EUR", "trade")
    ]
    error = json.loads(status) | {"status": "error", "errorMessage": "Currency pair not supported"}
    del error["channelID"]
    parsed = parser.parse(json.dumps(error), 8)
    assert [(e.code, e.text) for e in parsed.events] == [("error", "Currency pair not supported")]
    assert parser.parse('{"event":"heartbeat"}', 9) == Parsed([])
    assert parser.parse('{"event":"pong","reqid":42}', 9) == Parsed([])
    assert parser.ping_message() == '{"event":"ping"}'


# Subscriptions, spelled as the recordings sent them


def test_kraken_subscribe_messages_match_the_recording() -> None:
    _, rows = lines("kraken")
    sent = [json.loads(row["data"]) for row in rows if row["t"] == "send"]
    pairs = sent[0]["pair"]
    symbols = [p.replace("XBT", "BTC").replace("/", "-") for p in pairs]
    ours = [
        json.loads(m)
        for m in KrakenParser().subscribe_messages(symbols, ["trades", "quotes", "book"])
    ]
    assert ours == sent


def test_coinbase_subscribe_messages_match_the_recording() -> None:
    _, rows = lines("coinbase")
    sent = [json.loads(row["data"]) for row in rows if row["t"] == "send"]
    channels = ["trades", "candles", "quotes", "book", "heartbeats"]
    ours = [
        json.loads(m) for m in CoinbaseParser().subscribe_messages(["BTC-USD", "ETH-USD"], channels)
    ]
    assert ours == sent


def test_binance_subscribe_messages() -> None:
    parser = BinanceParser("binance-coinm")
    first = json.loads(
        parser.subscribe_messages(["BTC-USD-PERP", "ETH-USD-250328"], ["trades", "book"])[0]
    )
    assert first == {
        "method": "SUBSCRIBE",
        "params": [
            "btcusd_perp@trade",
            "ethusd_250328@trade",
            "btcusd_perp@depth@100ms",
            "ethusd_250328@depth@100ms",
        ],
        "id": 1,
    }
    second = json.loads(parser.subscribe_messages(["BTC-USD-PERP"], ["bookTicker"])[0])
    assert second["id"] == 2 and second["params"] == ["btcusd_perp@bookTicker"]
    usdm = json.loads(
        BinanceParser("binance-usdm").subscribe_messages(["BTC-USDT-PERP"], ["quotes"])[0]
    )
    assert usdm["params"] == ["btcusdt@bookTicker"]
    # the recording's combined-stream URL lists the same stream names
    _, rows = lines("binance")
    address = next(row["addr"] for row in rows if row["t"] == "connect")
    spot = json.loads(BinanceParser().subscribe_messages(["NKN-USDT", "BLZ-ETH"], ["l2_book"])[0])
    assert all(name in address for name in spot["params"])
    with pytest.raises(InvalidArgumentError):
        parser.subscribe_messages(["BTCUSDT"], ["trades"])
    with pytest.raises(InvalidArgumentError):
        parser.subscribe_messages(["BTC-USDT"], [])


def test_parser_for() -> None:
    for venue in VENUES:
        parser = parser_for(venue)
        assert isinstance(parser, VenueParser)
        assert parser.venue == venue
        assert parser_for(venue) is not parser
    assert parser_for("BINANCE_FUTURES").venue == "binance-usdm"
    assert parser_for("binance-coinm").ping_message() is None
    with pytest.raises(InvalidArgumentError, match="BITFINEX"):
        parser_for("BITFINEX")


# Malformed frames: every kind refused, the field named


def first(venue: str, needle: str) -> str:
    return next(f for f in received(venue) if needle in f)


@pytest.mark.parametrize(
    ("venue", "needle", "old", "new", "field"),
    [
        # truncated JSON
        ("binance-usdm", "@aggTrade", None, None, "frame"),
        ("coinbase", '"market_trades"', None, None, "frame"),
        ("kraken", ',{"b":[["', None, None, "frame"),
        # wrong types
        ("binance-usdm", '"bookTicker"', '"u":', '"u":"x",  "v":', "data.u"),
        ("binance-usdm", "@aggTrade", '"m":false', '"m":"no"', "data.m"),
        ("binance-usdm", "@aggTrade", '"p":"1.01100"', '"p":1.011', "data.p"),
        (
            "coinbase",
            '"market_trades","timestamp":"2026-08-09T21:05:48.251',
            '"sequence_num":9',
            '"sequence_num":"9"',
            "sequence_num",
        ),
        ("coinbase", '"l2_data"', '"side":"bid"', '"side":7', "events[0].updates[0].side"),
        ("kraken", '"trade","XMR/USD"', '"trade"', "5", "[2]"),
        ("kraken", ',{"b":[["', '"b":[[', '"b":[[7,', "[1].b[0][0]"),
        # missing fields
        ("binance-usdm", '"depthUpdate"', '"U":', '"V":', "data.U"),
        ("binance-usdm", "@aggTrade", '"a":16599292,', "", "data.a"),
        (
            "coinbase",
            '"market_trades","timestamp":"2026-08-09T21:05:48.251',
            '"price":',
            '"prize":',
            "events[0].trades[0].price",
        ),
        ("kraken", ',"ticker","', '"a":', '"z":', "[1].a"),
        # bad decimal strings
        ("binance-usdm", "@aggTrade", '"p":"1.01100"', '"p":"NaN"', "data.p"),
        ("binance-usdm", "@aggTrade", '"q":"10"', '"q":"1,0"', "data.q"),
        ("binance-usdm", "@aggTrade", '"q":"10"', '"q":" 10"', "data.q"),
        ("binance-usdm", "@aggTrade", '"q":"10"', '"q":"1_0"', "data.q"),
        ("binance-usdm", "@aggTrade", '"q":"10"', '"q":""', "data.q"),
        ("binance-usdm", '"bookTicker"', '"B":"', '"B":"Infinity', "data.B"),
        ("binance-usdm", '"depthUpdate"', '"b":[["', '"b":[["-inf', "data.b[0][0]"),
        (
            "coinbase",
            '"ticker","timestamp":"2026-08-09T21:05:48.298',
            '"best_bid":"',
            '"best_bid":"x',
            "events[0].tickers[0].best_bid",
        ),
        (
            "coinbase",
            '"l2_data"',
            '"price_level":"',
            '"price_level":"\\u0661',
            "events[0].updates[0].price_level",
        ),
        (
            "coinbase",
            '"market_trades","timestamp":"2026-08-09T21:05:48.251',
            '"time":"2026-',
            '"time":"26-',
            "events[0].trades[0].time",
        ),
        ("kraken", '"trade","XMR/USD"', '"354.11000000"', '"3e"', "[1][0][0]"),
        ("kraken", ',{"b":[["', '"b":[["', '"b":[["sNaN', "[1].b[0][0]"),
        ("kraken", '"trade","XMR/USD"', '"1618678142.557535"', '"1618678142,557535"', "[1][0][2]"),
    ],
)
def test_malformed_frames_name_the_field(
    venue: str, needle: str, old: str | None, new: str | None, field: str
) -> None:
    frame = first(venue, needle)
    if old is None:
        bad = frame[: len(frame) // 2]
    else:
        assert old in frame
        bad = frame.replace(old, new or "", 1)
    parser = parser_for(venue)
    assert parser.parse(frame, 1).updates  # the real frame parses
    with pytest.raises(MalformedFrameError) as info:
        parser.parse(bad, 1)
    assert info.value.venue == venue
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{venue}: {field}: ")


@pytest.mark.parametrize("venue", ["binance", "coinbase", "kraken"])
def test_non_utf8_and_non_json_frames(venue: str) -> None:
    parser = parser_for(venue)
    frame = received(venue)[-1].encode()
    assert parser.parse(frame, 1) == parser.parse(frame.decode(), 1)  # bytes are read too
    for bad in (
        frame.replace(b'"', b'"\xff', 1),
        b"",
        b"\x00\x01",
        b"[]",
        b"null",
        b'"text"',
        b"42",
    ):
        with pytest.raises(MalformedFrameError) as info:
            parser.parse(bad, 1)
        assert info.value.venue == venue


def test_bad_symbol_is_refused() -> None:
    frame = first("binance-usdm", "@aggTrade").replace('"s":"CTKUSDT"', '"s":"CTK USDT"')
    with pytest.raises(MalformedFrameError) as info:
        BinanceParser("binance-usdm").parse(frame, 1)
    assert info.value.field == "data.s"
    frame = first("kraken", ',"book-1000","XMR/USD"]').replace('"XMR/USD"', '"X/' + "W" * 20 + '"')
    with pytest.raises(MalformedFrameError):
        KrakenParser().parse(frame, 1)


def test_coinbase_levels_in_any_side_order() -> None:
    frame = next(
        f for f in received("coinbase") if '"l2_data"' in f and '"offer"' in f and '"bid"' in f
    )
    raw = json.loads(frame)
    event = raw["events"][0]
    event["updates"].reverse()  # offers before bids
    event["updates"].insert(1, event["updates"].pop())  # and a bid among the offers
    (update,) = CoinbaseParser().parse(json.dumps(raw), 1).updates
    assert isinstance(update, BookUpdate)
    pick = [
        (Decimal(u["price_level"]), Decimal(u["new_quantity"]), u["side"]) for u in event["updates"]
    ]
    assert list(update.bids) == [(p, q) for p, q, side in pick if side == "bid"]
    assert list(update.asks) == [(p, q) for p, q, side in pick if side == "offer"]
    assert update.bids and update.asks


@given(st.text(alphabet="0123456789.eE+- _xnaINfity", max_size=8))
def test_decimal_checks_agree_with_parse_decimal(text: str) -> None:
    """The parsers' batch check refuses exactly what ``parse_decimal`` refuses (among ASCII
    texts: the parsers also refuse non-ASCII digits such as '\u0661')."""
    try:
        expected: Decimal | None = parse_decimal(text, venue="x", field="f")
    except MalformedFrameError:
        expected = None
    try:
        got: Decimal | None = _decimals([text, "1"], "x", "f")[0]
    except MalformedFrameError:
        got = None
    assert got == expected and str(got) == str(expected)


@pytest.mark.parametrize(
    ("recording", "venue"),
    [("BINANCE", "binance"), ("BINANCE_FUTURES", "binance-usdm"), ("COINBASE", "coinbase"),
     ("KRAKEN", "kraken")],
)  # fmt: skip
def test_the_fast_path_gives_what_the_strict_path_gives(recording: str, venue: str) -> None:
    """Each parser decodes common frames on a fast path and everything else on a strict one;
    on every recorded frame both give the same result (or the same error)."""
    from market_intel.adapters.recording import recorded_frames

    path = EXCHANGES
    fast, strict = parser_for(venue), parser_for(venue)
    strict_parse = strict._parse  # type: ignore[attr-defined]
    if isinstance(strict, BinanceParser):
        strict_parse = partial(strict._parse, snapshot_symbol=None)
    compared = 0
    for frame in recorded_frames(path / f"{recording}.jsonl.zst"):
        if frame.kind != "recv":
            continue
        outcomes = []
        for parse in (fast.parse, strict_parse):
            try:
                outcomes.append(parse(frame.data, frame.receive_ns))
            except MalformedFrameError as e:
                outcomes.append(str(e))
        assert outcomes[0] == outcomes[1], frame.data[:200]
        compared += 1
    assert compared > 200


def test_the_fast_path_gives_what_the_strict_path_gives_on_the_binance_sample() -> None:
    for path in binance.sample_paths():
        venue = binance.venue_of(path)
        fast, strict = BinanceParser(venue), BinanceParser(venue)
        with gzip.open(path, "rt") as f:
            for line in f:
                ns, frame = line.rstrip("\n").split(" ", 1)
                if '"stream"' not in frame:
                    continue
                assert fast.parse(frame, int(ns)) == strict._parse(frame, int(ns), None)
