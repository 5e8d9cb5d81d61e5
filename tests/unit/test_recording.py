"""Recordings read back as frames and updates, and replayed deterministically and paced."""

from __future__ import annotations

import collections
import gzip
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
import zstandard
from market_intel.adapters import binance
from market_intel.adapters.normalize import (
    BookUpdate,
    FeedEvent,
    QuoteUpdate,
    TradeUpdate,
)
from market_intel.adapters.recording import (
    recorded_frames,
    recorded_updates,
    recording_venue,
    replay_messages,
)
from market_intel.adapters.validation import Validator
from market_intel.enums import MarketDataKind, MessageType
from market_intel.errors import InvalidArgumentError, MalformedFrameError
from market_intel.messages import MarketData
from mi_data import SHARED_DATA

EXCHANGES = SHARED_DATA / "exchanges"
KRAKEN = EXCHANGES / "KRAKEN.jsonl.zst"
SPOT = next(p for p in binance.sample_paths() if p.name.startswith("spot_btcusdt"))


def raw_lines(path: Path) -> list[bytes]:
    with path.open("rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle).read().splitlines()


def write_zst(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(zstandard.ZstdCompressor().compress(b"\n".join(lines) + b"\n"))
    return path


# Frames


def test_exchange_recording_times_are_exact() -> None:
    """``ts`` is epoch seconds as a JSON number; its text, not a float, gives the ns."""
    stamps = [
        re.search(rb'"ts":([0-9.]+)', line).group(1)  # type: ignore[union-attr]
        for line in raw_lines(KRAKEN)[1:]
    ]
    frames = list(recorded_frames(KRAKEN, order="file"))
    assert [f.receive_ns for f in frames] == [int(Decimal(s.decode()) * 10**9) for s in stamps]
    # a float would not do: e.g. 1618678132.3858151 s
    assert any(int(float(s) * 1e9) != int(Decimal(s.decode()) * 10**9) for s in stamps)
    kinds = collections.Counter((f.kind, f.connection) for f in frames)
    assert kinds[("recv", "KRAKEN.ws.50")] == 4321 and kinds[("send", "KRAKEN.ws.48")] == 1
    assert [f.line for f in frames] == list(range(2, len(frames) + 2))


def test_frames_in_receive_order_are_a_stable_sort_of_the_file() -> None:
    in_file = list(recorded_frames(KRAKEN, order="file"))
    ordered = list(recorded_frames(KRAKEN))
    assert ordered == sorted(in_file, key=lambda f: f.receive_ns)
    assert ordered != in_file  # the file groups lines by connection
    # a Binance recording is written in receive order, its snapshot among the diffs
    frames = list(recorded_frames(SPOT))
    assert frames == list(recorded_frames(SPOT, order="file"))
    (snapshot,) = [f for f in frames if f.kind == "http"]
    assert frames.index(snapshot) == snapshot.line - 1 == 7
    assert snapshot.symbol == "BTC-USDT" and snapshot.connection == "spot_btcusdt_20240808"
    with gzip.open(SPOT, "rt") as handle:
        first = handle.read().splitlines()[snapshot.line - 1]
    assert snapshot.receive_ns == int(first.split(" ", 1)[0])
    assert snapshot.data == first.split(" ", 1)[1]


def fits(snapshot: BookUpdate, diffs: list[BookUpdate]) -> bool:
    """Whether a snapshot's lastUpdateId falls where Binance says it must among the diffs:
    spot ids run on by one (some diff has U <= id + 1 <= u); futures ids are shared by all
    symbols, and a snapshot ends some diff (id is that diff's u, or a later diff's pu) or
    falls inside one (U <= id <= u)."""
    last = snapshot.last_update_id
    return any(
        d.first_update_id <= last + 1 <= d.last_update_id
        or d.first_update_id <= last <= d.last_update_id
        or (d.previous_update_id and d.previous_update_id == last)
        for d in diffs
    )


@pytest.mark.parametrize("name", ["BINANCE", "BINANCE_US", "BINANCE_FUTURES", "BINANCE_DELIVERY"])
def test_depth_snapshots_belong_to_the_symbol_their_url_names(name: str) -> None:
    """Each REST snapshot fits the diffs of the symbol its URL names, and on spot venues no
    other symbol's (futures ids are shared by all symbols, so their diffs' ranges overlap):
    the URL, not the order of the header's symbol list, says whose book it is."""
    path = EXCHANGES / f"{name}.jsonl.zst"
    updates = [u for u in recorded_updates(path) if isinstance(u, BookUpdate)]
    snapshots = [u for u in updates if u.snapshot]
    header = json.loads(raw_lines(path)[0])
    assert len(snapshots) == len(header["config"]["l2_book"])
    diffs = collections.defaultdict(list)
    for update in updates:
        if not update.snapshot:
            diffs[update.symbol].append(update)
    for snapshot in snapshots:
        assert fits(snapshot, diffs[snapshot.symbol]), snapshot.symbol
        others = [s for s in diffs if s != snapshot.symbol]
        if name in ("BINANCE", "BINANCE_US"):
            assert not any(fits(snapshot, diffs[s]) for s in others), snapshot.symbol
    if name == "BINANCE_US":  # requested in another order than the header lists
        requested = [s.symbol for s in sorted(snapshots, key=lambda u: u.receive_ns)]
        assert requested != header["config"]["l2_book"]


def test_recording_venue() -> None:
    assert recording_venue(KRAKEN) == "kraken"
    assert recording_venue(EXCHANGES / "BINANCE_DELIVERY.jsonl.zst") == "binance-coinm"
    assert recording_venue(SPOT) == "binance"
    with pytest.raises(InvalidArgumentError):
        recording_venue(EXCHANGES / "LICENSE")


# Updates


def test_recorded_updates_of_the_packaged_sample() -> None:
    counts = collections.Counter[str]()
    symbols = set()
    for path in binance.sample_paths():
        items = list(recorded_updates(path))
        assert isinstance(items[-1], FeedEvent) and items[-1].code == "end"
        times = [i.receive_ns for i in items]
        assert times == sorted(times)
        for item in items[:-1]:
            assert isinstance(item, QuoteUpdate | TradeUpdate | BookUpdate)
            assert item.venue == binance.venue_of(path)
            symbols.add(item.symbol)
            snapshot = isinstance(item, BookUpdate) and item.snapshot
            counts["snapshot" if snapshot else type(item).__name__] += 1
    assert counts == {
        "QuoteUpdate": 39_337,
        "TradeUpdate": 7_516,
        "BookUpdate": 11_249,
        "snapshot": 6,
    }
    assert symbols == {"BTC-USDT", "ETH-USDT", "BTC-USD-PERP", "ETH-USD-PERP"}


def test_feed_events_of_an_exchange_recording() -> None:
    events = [i for i in recorded_updates(KRAKEN) if isinstance(i, FeedEvent)]
    codes = collections.Counter(e.code for e in events)
    assert codes == {"connected": 3, "subscribed": 30, "end": 1}
    assert events[-1].code == "end"
    coinbase = [i for i in recorded_updates(EXCHANGES / "COINBASE.jsonl.zst")]
    assert not any(isinstance(i, FeedEvent) and i.code == "gap" for i in coinbase)


def test_a_skipped_sequence_number_is_a_gap(tmp_path: Path) -> None:
    lines = raw_lines(EXCHANGES / "COINBASE.jsonl.zst")
    dropped = [line for line in lines if b'\\"sequence_num\\":40,' not in line]
    assert len(dropped) == len(lines) - 1
    path = write_zst(tmp_path / "COINBASE.jsonl.zst", dropped)
    items = list(recorded_updates(path))
    (gap,) = [i for i in items if isinstance(i, FeedEvent) and i.code == "gap"]
    assert gap.text == "COINBASE.ws.2: sequence 41 after 39"
    validator = Validator()
    replay = replay_messages(path, validator=validator)
    assert sum(1 for _ in replay) > 1000
    assert validator.statistics().issues["gap"] == 1
    assert [e.code for e in replay.events()].count("gap") == 1


def test_broken_lines_are_yielded_not_raised(tmp_path: Path) -> None:
    lines = raw_lines(KRAKEN)
    recv = next(
        i for i, line in enumerate(lines) if b'"recv"' in line and b'[1664,{\\"b\\"' in line
    )
    broken = [
        *lines[:recv],
        b"not json at all",
        lines[recv][: len(lines[recv]) // 2],  # truncated line
        lines[recv].replace(b'\\"b\\":[[\\"', b'\\"b\\":[[\\"NaN', 1),
        b'{"t":"recv","conn":"KRAKEN.ws.50","ts":"later","data":"x"}',
        *lines[recv:],
    ]
    items = list(recorded_updates(write_zst(tmp_path / "KRAKEN.jsonl.zst", broken)))
    errors = [i for i in items if isinstance(i, MalformedFrameError)]
    assert [e.field.split(":")[0] for e in errors] == [
        f"line {recv + 1}",
        f"line {recv + 2}",
        f"line {recv + 3}",
        f"line {recv + 4}",
    ]
    assert "[1]." in errors[2].field  # the frame's own field, after the line
    assert sum(isinstance(i, BookUpdate) for i in items) == 4279


# Replay: deterministic, merged, paced, validated


def test_replay_is_deterministic() -> None:
    paths = [*binance.sample_paths()[2:4], KRAKEN]
    first = list(replay_messages(paths))
    second = list(replay_messages(paths))
    assert [m.to_msgpack() for m in first] == [m.to_msgpack() for m in second]
    assert [m.id for m in first] == list(range(1, len(first) + 1))
    created = [m.created_ns for m in first]
    assert created == sorted(created)
    payloads = [m.payload for m in first]
    assert all(isinstance(p, MarketData) for p in payloads)
    assert all(m.created_ns == p.receive_ns for m, p in zip(first, payloads, strict=True))  # type: ignore[union-attr]
    assert {m.source for m in first} == {"replay"}
    assert {m.type for m in first} == {MessageType.MARKET_DATA}
    kinds = collections.Counter(p.kind for p in payloads)  # type: ignore[union-attr]
    assert kinds[MarketDataKind.SNAPSHOT] == 2 + 10


def test_replay_merges_files_by_receive_time() -> None:
    paths = binance.sample_paths()
    replay = replay_messages(paths, source="sample")
    messages = list(replay)
    stats = replay.statistics()
    assert stats.messages == len(messages) == 58_108
    assert stats.events == 6 and stats.malformed == 0 and stats.rejected == 0
    times = [m.created_ns for m in messages]
    assert times == sorted(times)
    venues = collections.Counter(m.payload.venue for m in messages)  # type: ignore[union-attr]
    assert venues == {"binance": 14_136, "binance-usdm": 28_820, "binance-coinm": 15_152}
    assert [e.code for e in replay.events()] == ["end"] * 6


class FakeClock:
    """A clock that only moves when the replay sleeps."""

    def __init__(self) -> None:
        self.now = 1_000_000_000
        self.sleeps: list[float] = []

    def clock(self) -> int:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += round(seconds * 1e9)


@pytest.mark.parametrize("speed", [1.0, 10.0, 0.5])
def test_paced_replay_follows_receive_time_deltas(speed: float) -> None:
    fake = FakeClock()
    start = fake.now
    replay = replay_messages(SPOT, speed=speed, clock=fake.clock, sleep=fake.sleep)
    first_receive = None
    count = 0
    for message in replay:
        payload = message.payload
        assert isinstance(payload, MarketData)
        if first_receive is None:
            first_receive = payload.receive_ns
        due = start + (payload.receive_ns - first_receive) / speed
        assert abs(fake.now - due) <= 1  # yielded when due, never early
        count += 1
    assert count == 7_341
    total = sum(fake.sleeps)
    assert total == pytest.approx((payload.receive_ns - first_receive) / speed / 1e9, abs=1e-6)


def test_paced_replay_does_not_sleep_when_the_consumer_is_late() -> None:
    fake = FakeClock()

    def slow_clock() -> int:
        fake.now += 10_000_000_000  # every look at the clock: 10 s later
        return fake.now

    messages = list(replay_messages(SPOT, speed=1.0, clock=slow_clock, sleep=fake.sleep))
    assert len(messages) == 7_341 and fake.sleeps == []


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), float("inf")])
def test_replay_speed_must_be_positive(speed: float) -> None:
    with pytest.raises(InvalidArgumentError, match="speed"):
        replay_messages(SPOT, speed=speed)


def test_replay_with_a_validator_drops_and_flags(tmp_path: Path) -> None:
    """A copy of a real recording with bad frames injected: each is rejected or flagged and
    counted, and the replay reads to the end."""
    with gzip.open(SPOT, "rb") as handle:
        lines = handle.read().splitlines()
    quote_at = next(i for i, line in enumerate(lines) if b"@bookTicker" in line and i > 100)
    trade_at = next(i for i, line in enumerate(lines) if b"@trade" in line and i > 100)
    stamp, _, quote = lines[quote_at].partition(b" ")
    data = json.loads(quote)["data"]
    crossed = json.loads(quote)
    crossed["data"] |= {"u": data["u"] + 1, "b": "99999.00000000"}  # bid above the ask
    stamp_t, _, trade = lines[trade_at].partition(b" ")
    negative = json.loads(trade)
    negative["data"]["q"] = "-0.5"
    negative["data"]["t"] += 1
    older = json.loads(quote)
    older["data"]["u"] -= 1000  # a quote id below the last: out of order
    injected = [
        lines[quote_at],  # the same quote again: a duplicate
        stamp + b" " + json.dumps(older).encode(),
        stamp + b" " + json.dumps(crossed).encode(),
        stamp_t + b" " + json.dumps(negative).encode(),
        stamp + b" {garbage",
        stamp + b' {"stream":"btcusdt@trade","data":\xff\xfe}',
    ]
    at = max(quote_at, trade_at) + 1
    copy = tmp_path / SPOT.name
    copy.write_bytes(gzip.compress(b"\n".join([*lines[:at], *injected, *lines[at:]]) + b"\n"))

    validator = Validator()
    replay = replay_messages(copy, validator=validator)
    messages = list(replay)
    stats = replay.statistics()
    assert stats.malformed == 2
    assert stats.rejected == 3  # duplicate, out of order, negative size
    assert stats.messages == 7_341 + 1  # the crossed quote is published, flagged
    flagged = [m for m in messages if m.metadata]
    assert [m.metadata for m in flagged] == [{"issues": "crossed"}]
    assert flagged[0].payload.bid == 99999.0  # type: ignore[union-attr]
    assert stats.flagged == 1
    issues = validator.statistics().issues
    assert (issues["duplicate"], issues["out_of_order"], issues["negative"]) == (1, 1, 1)
    assert issues["crossed"] == 1 and issues["malformed"] == 2
    assert [m.id for m in messages] == list(range(1, len(messages) + 1))
    assert len(stats.errors) == 2 and all("line" in text for text in stats.errors)
