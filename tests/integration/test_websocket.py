"""The live WebSocket feed against a real local server replaying recorded venue frames.

Every test runs ``RecordedVenueServer`` (a real ``websockets`` server on 127.0.0.1, free
port) over the recordings in ``shared/data/exchanges`` and checks what ``WebSocketFeed``
yields against parsing the same frames directly: drops, stalls, gaps, pings, malformed
frames, reconnection budgets and shutdown. Timeouts here only guard against deadlocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import socket
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard
from market_intel.adapters.normalize import FeedEvent, FeedItem, Update
from market_intel.adapters.venues import parser_for
from market_intel.adapters.websocket import (
    Backoff,
    WebSocketFeed,
    WebSocketFeedConfig,
    WebSocketFeedStatistics,
)
from market_intel.adapters.wsreplay import RecordedVenueServer, venue_pong
from market_intel.errors import ConfigError, FeedError, InvalidArgumentError, MalformedFrameError
from mi_data import SHARED_DATA

DATA = SHARED_DATA / "exchanges"
DEADLINE = 60.0
COINBASE_CHANNELS = ("trades", "candles", "quotes", "book", "heartbeats")
FAST = Backoff(initial_s=0.01, maximum_s=0.05, jitter=0.5, seed=7)

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="recordings not present")


@cache
def base(venue: str) -> RecordedVenueServer:
    """The recording, read once per venue (servers share its frames, never its state)."""
    return RecordedVenueServer.from_recording(DATA / f"{venue}.jsonl.zst")


def recording(venue: str, **options: Any) -> RecordedVenueServer:
    """A new server for a venue's recorded frames, with failure options."""
    b = base(venue)
    return RecordedVenueServer(
        b.frames, times=b.times, venue=b.venue, await_messages=b.await_messages, **options
    )


def header(venue: str) -> dict[str, list[str]]:
    """The recording's header config: channel -> symbols."""
    with open(DATA / f"{venue}.jsonl.zst", "rb") as raw:
        text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw))
        config: dict[str, list[str]] = json.loads(text.readline())["config"]
    return config


def feed_for(
    server: RecordedVenueServer, symbols: Sequence[str], channels: Sequence[str], **options: Any
) -> WebSocketFeed:
    """A feed of the server's venue; fast seeded backoff and no pings unless asked."""
    options.setdefault("backoff", FAST)
    options.setdefault("ping_interval_s", None)
    config = WebSocketFeedConfig(
        url=server.url, parser=server.venue, symbols=symbols, channels=channels, **options
    )
    return WebSocketFeed(config)


def coinbase_feed(server: RecordedVenueServer, **options: Any) -> WebSocketFeed:
    return feed_for(server, ["BTC-USD", "ETH-USD"], COINBASE_CHANNELS, **options)


def direct(venue: str, frames: Sequence[str | bytes]) -> tuple[list[Update], list[FeedEvent]]:
    """The updates and events of parsing ``frames`` directly with a fresh parser."""
    parser = parser_for(venue)
    updates: list[Update] = []
    events: list[FeedEvent] = []
    for frame in frames:
        parsed = parser.parse(frame, 0)
        updates.extend(parsed.updates)
        events.extend(parsed.events)
    return updates, events


def unstamped(items: Sequence[FeedItem]) -> list[Update]:
    """The updates among ``items`` with their receive times zeroed, for comparison."""
    return [
        msgspec.structs.replace(item, receive_ns=0)
        for item in items
        if not isinstance(item, FeedEvent | MalformedFrameError)
    ]


def events(items: Sequence[FeedItem], code: str) -> list[FeedEvent]:
    """The feed events of one code among ``items``."""
    return [item for item in items if isinstance(item, FeedEvent) and item.code == code]


def own(event: FeedEvent) -> bool:
    """Whether the feed made the event (rather than the parser, from a venue's frame)."""
    return event.code in {"connected", "disconnected", "reconnecting", "resync", "gap"} or (
        event.text.endswith("subscribe messages sent")
    )


def codes(items: Sequence[FeedItem]) -> list[str]:
    """The codes of the feed's own events, in order."""
    return [item.code for item in items if isinstance(item, FeedEvent) and own(item)]


async def run(
    feed: WebSocketFeed, done: Callable[[WebSocketFeedStatistics], bool]
) -> list[FeedItem]:
    """Consume the feed in a task until ``done(statistics)``, then close it and return every
    item it yielded (the stream's own exception, if any, is raised)."""
    items: list[FeedItem] = []

    async def consume() -> None:
        async with contextlib.aclosing(feed.stream()) as stream:
            async for item in stream:
                items.append(item)

    task = asyncio.create_task(consume())
    try:
        async with asyncio.timeout(DEADLINE):
            while not task.done() and not done(feed.statistics()):
                await asyncio.sleep(0.005)
    finally:
        feed.close()
        async with asyncio.timeout(DEADLINE):
            await task
    return items


def all_frames(count: int) -> Callable[[WebSocketFeedStatistics], bool]:
    return lambda stats: stats.frames >= count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- (1) every recorded frame arrives and parses as it does directly ---------------------------


def test_coinbase_every_frame_arrives_parsed_and_counted() -> None:
    server = recording("COINBASE")
    expected_updates, expected_events = direct("coinbase", server.frames)
    subscribe = parser_for("coinbase").subscribe_messages(["BTC-USD", "ETH-USD"], COINBASE_CHANNELS)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = coinbase_feed(server)
            items = await run(feed, all_frames(len(server.frames)))
            return items, feed.statistics()

    items, stats = asyncio.run(main())
    # The subscribe messages sent are the parser's, which are the recorded ones.
    assert list(server.statistics().received[0]) == subscribe
    assert unstamped(items) == expected_updates
    venue_events = [e for e in items if isinstance(e, FeedEvent) and not own(e)]
    assert [msgspec.structs.replace(e, receive_ns=0) for e in venue_events] == expected_events
    assert codes(items) == ["connected", "subscribed", "disconnected"]
    last = items[-1]
    assert isinstance(last, FeedEvent)
    assert (last.venue, last.code, last.text) == (
        "coinbase",
        "disconnected",
        "closed by the client",
    )
    assert stats.frames == len(server.frames) == 1030
    assert stats.bytes == sum(len(f.encode() if isinstance(f, str) else f) for f in server.frames)
    assert stats.updates == len(expected_updates)
    assert stats.events == len(expected_events)
    assert (stats.malformed, stats.gaps) == (0, 0)
    assert (stats.connects, stats.reconnects, stats.disconnects) == (1, 0, 1)
    assert (stats.failed_attempts, stats.last_error) == (0, None)
    assert not stats.connected and stats.uptime_s == 0.0
    receive_times = [i.receive_ns for i in items if not isinstance(i, MalformedFrameError)]
    assert stats.last_receive_ns == max(
        i.receive_ns for i in items if not isinstance(i, FeedEvent | MalformedFrameError)
    )
    assert receive_times == sorted(receive_times)


# -- (2) an abrupt drop mid-stream: reconnect, resubscribe, resume, nothing lost ---------------


def test_drop_mid_stream_reconnects_and_delivers_every_frame_once() -> None:
    server = recording("COINBASE", drop_after=[150, 400])
    expected_updates, _ = direct("coinbase", server.frames)
    subscribe = parser_for("coinbase").subscribe_messages(["BTC-USD", "ETH-USD"], COINBASE_CHANNELS)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = coinbase_feed(server)
            items = await run(feed, all_frames(len(server.frames)))
            return items, feed.statistics()

    items, stats = asyncio.run(main())
    served = server.statistics()
    assert served.sent_by_connection == (150, 400, 480)
    assert served.drops == 2
    # Every connection subscribed again, with the same messages.
    assert [list(r) for r in served.received] == [subscribe] * 3
    # Together the connections delivered every frame exactly once, in order.
    assert unstamped(items) == expected_updates
    assert stats.frames == len(server.frames)
    assert (stats.connects, stats.reconnects, stats.disconnects) == (3, 2, 3)
    assert stats.gaps == 0  # the sequence restarts its check with each connection
    assert stats.last_error is not None and "no close frame" in stats.last_error
    once = ["disconnected", "reconnecting", "connected", "subscribed", "resync", "resync"]
    assert codes(items) == ["connected", "subscribed", *once, *once, "disconnected"]
    drops = events(items, "disconnected")
    assert all("no close frame" in d.text for d in drops[:2])
    resyncs = [e.symbol for e in events(items, "resync")]
    assert resyncs == ["BTC-USD", "ETH-USD"] * 2
    # The backoff delays are the seeded ones: attempt 1 after each drop.
    rng = random.Random(FAST.seed)
    delays = [f"attempt 1 in {FAST.delay(1, rng):.3f} s" for _ in range(2)]
    assert [e.text for e in events(items, "reconnecting")] == delays


def test_clean_close_reconnects_then_gives_up_on_empty_connections() -> None:
    server = RecordedVenueServer(base("COINBASE").frames[:40], venue="coinbase", end="close")
    backoff = Backoff(initial_s=0.01, jitter=0.0, max_attempts=2)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = coinbase_feed(server, backoff=backoff)
            items: list[FeedItem] = []
            with pytest.raises(FeedError) as raised:
                async with asyncio.timeout(DEADLINE):
                    async for item in feed.stream():
                        items.append(item)
            assert server.url in str(raised.value) and "2 connection attempts" in str(raised.value)
            return items, feed.statistics()

    items, stats = asyncio.run(main())
    assert stats.frames == 40 and unstamped(items) == direct("coinbase", server.frames[:40])[0]
    first = events(items, "disconnected")[0]
    assert "1000" in first.text  # a normal close frame, not a drop
    assert (stats.connects, stats.reconnects, stats.failed_attempts) == (3, 2, 2)


# -- (3) a skipped range of sequenced frames is a gap ------------------------------------------


def test_skipped_frames_are_a_gap_naming_expected_and_got() -> None:
    server = recording("COINBASE", skip=[(100, 110), (500, 501)])
    kept = [f for i, f in enumerate(server.frames) if not (100 <= i < 110 or i == 500)]
    expected_updates, _ = direct("coinbase", kept)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = coinbase_feed(server)
            return await run(feed, all_frames(len(kept))), feed.statistics()

    items, stats = asyncio.run(main())
    sequence = [json.loads(f)["sequence_num"] for f in server.frames]
    gaps = events(items, "gap")
    assert [g.text for g in gaps] == [
        f"expected {sequence[100]}, got {sequence[110]}",
        f"expected {sequence[500]}, got {sequence[501]}",
    ]
    assert gaps[0].text == "expected 100, got 110"
    assert stats.gaps == 2 and stats.frames == len(kept)
    assert unstamped(items) == expected_updates
    # The gap comes before the updates of the frame that revealed it.
    position = items.index(gaps[0])
    first_after = direct("coinbase", server.frames[110:])[0][0]
    after = unstamped([i for i in items[position + 1 :] if not isinstance(i, FeedEvent)])
    assert after[0] == first_after


# -- (4) keepalive pings and a stalled server --------------------------------------------------


def test_keepalive_pings_are_answered() -> None:
    server = recording("BINANCE", speed=100.0)  # the 30 s recording at 100x its pace
    symbols = header("BINANCE")["trades"]

    async def main() -> WebSocketFeedStatistics:
        async with server:
            feed = feed_for(server, symbols, ["trades"], ping_interval_s=0.02, ping_timeout_s=10)
            await run(feed, lambda s: s.frames >= len(server.frames) and s.pongs_received >= 3)
            return feed.statistics()

    stats = asyncio.run(main())
    assert stats.pongs_received >= 3 and stats.pings_sent >= stats.pongs_received
    assert stats.ping_timeouts == 0 and stats.latency_s is not None
    assert stats.app_pings_sent == 0  # Binance relies on WebSocket pings
    assert (stats.connects, stats.reconnects) == (1, 0)


def test_stalled_server_trips_the_ping_timeout_and_the_feed_resumes() -> None:
    server = recording("BINANCE", stall_after=[100])
    symbols = header("BINANCE")["trades"]
    expected_updates, _ = direct("binance", server.frames)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = feed_for(
                server,
                symbols,
                ["trades"],
                ping_interval_s=0.05,
                ping_timeout_s=1.0,
                close_timeout_s=0.2,
            )
            return await run(feed, all_frames(len(server.frames))), feed.statistics()

    items, stats = asyncio.run(main())
    assert server.statistics().stalls == 1
    assert server.statistics().sent_by_connection == (100, 165)
    assert stats.ping_timeouts == 1 and (stats.connects, stats.reconnects) == (2, 1)
    drop = events(items, "disconnected")[0]
    assert drop.text.startswith("keepalive: no pong within 1.0 s")
    assert unstamped(items) == expected_updates


# -- (5) Kraken's application-level ping, and Binance frames -----------------------------------


def test_kraken_app_level_ping_is_answered_with_pong() -> None:
    server = recording("KRAKEN")
    config = header("KRAKEN")
    expected_updates, _ = direct("kraken", server.frames)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = feed_for(
                server, config["trades"], ["trades", "quotes", "book"], ping_interval_s=0.02
            )

            def done(stats: WebSocketFeedStatistics) -> bool:
                pongs = server.statistics().pongs_sent
                return (
                    stats.frames >= len(server.frames) + 2
                    and pongs >= 2
                    and stats.pongs_received >= 1
                )

            items = await run(feed, done)
            return items, feed.statistics()

    items, stats = asyncio.run(main())
    served = server.statistics()
    sent = [json.loads(m) for m in served.received[0]]
    assert [m["event"] for m in sent[:3]] == ["subscribe"] * 3
    assert {"event": "ping"} in sent and served.pongs_sent >= 2
    assert stats.app_pings_sent >= 2 and stats.pongs_received >= 1
    # Every recorded frame arrived, and the pongs with them (the last may be in flight).
    assert len(server.frames) + 2 <= stats.frames <= len(server.frames) + served.pongs_sent
    assert stats.malformed == 0  # the pongs parse as empty frames
    assert unstamped(items) == expected_updates
    assert venue_pong('{"event":"ping","reqid":42}') == '{"event":"pong","reqid":42}'
    pong = json.loads(venue_pong('{"method":"ping","req_id":7}') or "")
    assert (pong["method"], pong["req_id"]) == ("pong", 7)
    assert venue_pong("ping") == "pong" and venue_pong('{"event":"subscribe"}') is None


def test_recording_merges_its_connections_in_time_order() -> None:
    kraken = base("KRAKEN")
    assert kraken.times is not None and list(kraken.times) == sorted(kraken.times)
    trades = RecordedVenueServer.from_recording(
        DATA / "KRAKEN.jsonl.zst", connections={"KRAKEN.ws.48"}
    )
    assert len(trades.frames) == 49 and set(trades.frames) < set(kraken.frames)
    assert (trades.venue, trades.await_messages, base("BINANCE").await_messages) == ("kraken", 1, 0)


def test_binance_frames_arrive_after_the_subscribe_request() -> None:
    server = recording("BINANCE")
    symbols = header("BINANCE")["trades"]
    channels = ["book", "trades"]
    expected_updates, _ = direct("binance", server.frames)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = feed_for(server, symbols, channels)
            return await run(feed, all_frames(len(server.frames))), feed.statistics()

    items, stats = asyncio.run(main())
    request = json.loads(server.statistics().received[0][0])
    assert request["method"] == "SUBSCRIBE" and request["id"] == 1
    assert "nknusdt@depth@100ms" in request["params"]
    assert unstamped(items) == expected_updates and stats.updates == len(expected_updates)
    assert (stats.frames, stats.malformed, stats.gaps) == (265, 0, 0)


# -- (6) the reconnection budget -----------------------------------------------------------------


def test_closed_port_exhausts_the_attempts_with_feed_error() -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    config = WebSocketFeedConfig(
        url=url,
        parser="coinbase",
        symbols=["BTC-USD"],
        channels=["trades"],
        backoff=Backoff(initial_s=0.01, maximum_s=0.02, jitter=0.0, max_attempts=3),
    )
    feed = WebSocketFeed(config)
    items: list[FeedItem] = []

    async def main() -> None:
        async with asyncio.timeout(DEADLINE):
            async for item in feed.stream():
                items.append(item)

    with pytest.raises(FeedError) as raised:
        asyncio.run(main())
    text = str(raised.value)
    assert url in text and "3 connection attempts" in text and "last error: connect:" in text
    assert isinstance(raised.value.__cause__, OSError)
    assert [i.text for i in items if isinstance(i, FeedEvent)] == [
        "attempt 2 in 0.010 s",
        "attempt 3 in 0.020 s",
    ]
    stats = feed.statistics()
    assert (stats.failed_attempts, stats.connects, stats.frames) == (3, 0, 0)


def test_connections_ending_before_any_frame_count_as_failures() -> None:
    server = RecordedVenueServer(base("COINBASE").frames[:5], venue="coinbase", drop_after=[0] * 3)
    backoff = Backoff(initial_s=0.01, jitter=0.0, max_attempts=3)

    async def main() -> WebSocketFeedStatistics:
        async with server:
            feed = coinbase_feed(server, backoff=backoff)
            with pytest.raises(FeedError, match="3 connection attempts"):
                async with asyncio.timeout(DEADLINE):
                    async for _ in feed.stream():
                        pass
            return feed.statistics()

    stats = asyncio.run(main())
    assert (stats.connects, stats.disconnects, stats.failed_attempts) == (3, 3, 3)


# -- (7) malformed frames are counted, yielded as errors, and the stream goes on ---------------


def test_malformed_frames_are_yielded_and_counted() -> None:
    truncated = '{"channel":"ticker","timestamp":"2026-08-09T21:05:48.2'
    garbage = b"\x00\xff\xfe not json"
    server = recording("COINBASE", inject={5: [truncated, garbage], 1030: ["[]"]})
    expected_updates, _ = direct("coinbase", server.frames)

    async def main() -> tuple[list[FeedItem], WebSocketFeedStatistics]:
        async with server:
            feed = coinbase_feed(server)
            return await run(feed, all_frames(len(server.frames) + 3)), feed.statistics()

    items, stats = asyncio.run(main())
    errors = [i for i in items if isinstance(i, MalformedFrameError)]
    assert len(errors) == 3 and stats.malformed == 3
    assert errors[0].venue == "coinbase" and errors[0].value == truncated.encode()
    assert errors[1].value == garbage
    assert stats.frames == len(server.frames) + 3 and server.statistics().injected_sent == 3
    assert unstamped(items) == expected_updates  # every real frame still parsed
    # The errors sit where the server injected them: after frame 4's items.
    before = unstamped(items[: items.index(errors[0])])
    assert before == direct("coinbase", server.frames[:5])[0]


# -- (8) close() while connected, and the thread-backed iterator -------------------------------


def test_close_while_connected_shuts_down_cleanly() -> None:
    server = recording("BINANCE")
    symbols = header("BINANCE")["trades"]

    async def main() -> tuple[list[FeedItem], WebSocketFeed]:
        async with server:
            feed = feed_for(server, symbols, ["trades"], ping_interval_s=0.05)
            items = await run(feed, lambda s: s.frames >= 100)
            assert feed.closed
            # A closed feed's new stream ends at once.
            assert [i async for i in feed.stream()] == []
            return items, feed

    items, feed = asyncio.run(main())
    last = items[-1]
    assert isinstance(last, FeedEvent) and (last.code, last.text) == (
        "disconnected",
        "closed by the client",
    )
    stats = feed.statistics()
    assert not stats.connected and stats.disconnects == 1 and stats.last_error is None
    feed.close()  # again, with the loop gone: harmless


def test_iterate_gives_a_blocking_iterator_on_a_background_loop() -> None:
    symbols = header("BINANCE")["trades"]
    stop = threading.Event()
    watchdog = threading.Timer(DEADLINE, stop.set)  # a deadlock guard only
    watchdog.start()
    try:
        with recording("BINANCE", resume=False) as server:  # each client gets every frame
            feed = feed_for(server, symbols, ["book", "trades"])
            items: list[FeedItem] = []
            for item in feed.iterate(stop):
                items.append(item)
                if feed.statistics().frames >= len(server.frames):
                    stop.set()
            assert unstamped(items) == direct("binance", server.frames)[0]
            assert codes(items)[-1] == "disconnected"

            # Leaving the loop early closes the feed and its thread.
            early = feed_for(server, symbols, ["trades"])
            for count, _ in enumerate(early, 1):  # iter(feed) is feed.iterate()
                if count == 10:
                    break
            assert early.closed and not early.statistics().connected
            assert early.statistics().frames >= 8
    finally:
        watchdog.cancel()
    assert not [t for t in threading.enumerate() if t.name.startswith(("feed-", "replay-"))]


def test_iterate_raises_the_feed_error_in_the_consumer() -> None:
    config = WebSocketFeedConfig(
        url=f"ws://127.0.0.1:{free_port()}",
        parser="kraken",
        backoff=Backoff(initial_s=0.0, jitter=0.0, max_attempts=2),
    )
    with pytest.raises(FeedError, match="2 connection attempts"):
        list(WebSocketFeed(config).iterate(max_pending=1))


# -- configuration -------------------------------------------------------------------------------


def test_config_reports_every_violation() -> None:
    with pytest.raises(ConfigError) as raised:
        WebSocketFeedConfig(
            url="http://example.com",
            parser="nowhere",
            symbols=["BTC-USD"],
            ping_interval_s=0,
            open_timeout_s=-1,
            max_frame_bytes=0,
        )
    paths = [path for path, _ in raised.value.violations]
    assert paths == [
        "url",
        "parser",
        "channels",
        "ping_interval_s",
        "open_timeout_s",
        "max_frame_bytes",
    ]
    with pytest.raises(ConfigError) as raised:
        Backoff(initial_s=-1, multiplier=0.5, jitter=2, max_attempts=0)
    assert len(raised.value.violations) == 4
    with pytest.raises(TypeError):
        Backoff(initial=1)  # type: ignore[call-arg]


def test_backoff_grows_caps_and_jitters_within_its_fraction() -> None:
    plain = Backoff(initial_s=0.5, maximum_s=4.0, multiplier=2.0, jitter=0.0)
    rng = random.Random(1)
    assert [plain.delay(n, rng) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert plain.delay(10_000, rng) == 4.0
    jittered = Backoff(initial_s=1.0, maximum_s=1.0, jitter=0.25)
    delays = [jittered.delay(3, rng) for _ in range(200)]
    assert all(0.75 <= d <= 1.25 for d in delays) and len(set(delays)) > 1


def test_server_reports_every_bad_option() -> None:
    with pytest.raises(ConfigError) as raised:
        RecordedVenueServer(
            ["{}"], speed=0, drop_after=[-1], skip=[(0, 5)], inject={9: ["x"]}, port=70000
        )
    paths = [path for path, _ in raised.value.violations]
    assert paths == ["drop_after[0]", "inject[9]", "port", "skip[0]", "speed", "times"]


def test_a_file_that_is_not_a_recording_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(b'{"t":"header","exchange":"X"}\nnope\n'))
    with pytest.raises(InvalidArgumentError, match=r"line 2: 'nope\\n'; expected a JSON object"):
        RecordedVenueServer.from_recording(path)
