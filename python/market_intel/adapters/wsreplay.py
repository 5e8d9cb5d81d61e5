"""A local WebSocket server that replays a venue's recorded frames, to test live feeds.

``RecordedVenueServer`` is a real ``websockets`` server. Each client that connects gets the
recorded frames, in order, once it has sent its subscribe messages; the recorded
acknowledgements (``subscriptions`` on Coinbase, ``subscriptionStatus`` on Kraken) are part
of the recorded frames and arrive where the venue sent them. Frames go out as fast as the
client reads them, or at the recorded pace times ``speed``. Failures are injected on
request:

==================  =========================================================================
option              effect
==================  =========================================================================
``drop_after``      abort connection *i* after ``drop_after[i]`` frames: the TCP connection
                    ends with no close frame (the frames already written are flushed first)
``stall_after``     after ``stall_after[i]`` frames, connection *i* goes silent: no frames,
                    no pongs (neither protocol pongs nor application pongs) until it is gone
``skip``            ``(start, stop)`` ranges of frame indices that are never sent (a
                    sequence gap the client should detect)
``inject``          ``{index: [frame, ...]}``: extra frames (garbage, truncated JSON) sent
                    once, just before recorded frame ``index`` (``len(frames)``: after the
                    last)
``end``             ``"hold"`` keeps a connection open once the frames run out; ``"close"``
                    closes it with a normal close frame
==================  =========================================================================

With ``resume`` (the default) a new connection continues where the previous one stopped,
so across reconnects every frame is delivered exactly once, except skipped ones (frames
already written when a connection is dropped are flushed first); this serves one client
at a time. Without it each connection, and each of several clients, starts from the first
frame.

Application-level pings are answered by ``pong`` (``venue_pong`` by default: Kraken's
``{"event": "ping", "reqid": n}`` gets ``{"event": "pong", "reqid": n}``, Kraken v2's
``{"method": "ping", "req_id": n}`` gets its ``pong``, and the text ``ping`` gets
``pong``); protocol pings are answered by ``websockets`` itself. A ping does not count as a
subscribe message.

Use it from a coroutine (``async with server:``) or, in synchronous code, from a background
thread (``with server:``); either way ``server.url`` is where to connect::

    server = RecordedVenueServer.from_recording("COINBASE.jsonl.zst", drop_after=[100])
    with server:
        feed = WebSocketFeed(WebSocketFeedConfig(url=server.url, parser=parser, ...))
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal

import zstandard
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from market_intel.adapters.normalize import canonical_venue
from market_intel.errors import ConfigError, InvalidArgumentError

__all__ = ["RecordedVenueServer", "ReplayServerStatistics", "venue_pong"]

Frame = str | bytes
PongFunction = Callable[[Frame], Frame | None]

_YIELD_EVERY: Final = 64
_FLUSH_POLL_S: Final = 0.001
_START_TIMEOUT_S: Final = 10.0


def venue_pong(message: Frame) -> Frame | None:
    """Return the venue's answer to an application-level ping, or ``None`` for anything else.

    Answers the shapes the venues document: Kraken's ``{"event": "ping", "reqid": 42}``
    with ``{"event": "pong", "reqid": 42}``; Kraken v2's ``{"method": "ping", "req_id": 42}``
    with ``{"method": "pong", "req_id": 42, "time_in": ..., "time_out": ...}``; the plain
    text ``ping`` with ``pong``.

    Args:
        message: A message the client sent.
    """
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    if text.strip() == "ping":
        return "pong"
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if body.get("event") == "ping":
        answer: dict[str, Any] = {"event": "pong"}
        if "reqid" in body:
            answer["reqid"] = body["reqid"]
        return json.dumps(answer, separators=(",", ":"))
    if body.get("method") == "ping":
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        answer = {"method": "pong", "time_in": now, "time_out": now}
        if "req_id" in body:
            answer["req_id"] = body["req_id"]
        return json.dumps(answer, separators=(",", ":"))
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayServerStatistics:
    """A ``RecordedVenueServer``'s counters at one moment."""

    connections: int
    """Clients that connected."""
    frames_sent: int
    """Recorded frames sent, over all connections (injected frames not included)."""
    injected_sent: int
    """Injected frames sent."""
    position: int
    """Index of the next recorded frame a resumed connection gets."""
    drops: int
    """Connections aborted by ``drop_after``."""
    stalls: int
    """Connections stalled by ``stall_after``."""
    pongs_sent: int
    """Application-level pings answered."""
    received: tuple[tuple[Frame, ...], ...]
    """The messages each connection's client sent, pings included, by connection."""
    sent_by_connection: tuple[int, ...]
    """Recorded frames sent on each connection."""


class RecordedVenueServer:
    """Serve recorded venue frames over WebSocket, with failures on request.

    Args:
        frames: The frames to serve, in order (``str`` goes out as a text frame, ``bytes``
            as a binary one).
        times: Each frame's recorded receive time in seconds, for ``speed``; required
            when ``speed`` is set.
        venue: The venue id, for messages.
        host: The address to listen on.
        port: The port; 0 picks a free one (read it from ``url``).
        await_messages: How many messages (pings aside) a client sends before frames
            start; 0 starts at once.
        speed: ``None`` sends as fast as the client reads; ``x`` sends at the recorded pace
            times ``x``.
        drop_after: Abort connection ``i`` after ``drop_after[i]`` recorded frames.
        stall_after: Go silent on connection ``i`` after ``stall_after[i]`` recorded frames.
        skip: ``(start, stop)`` index ranges never sent.
        inject: Extra frames sent once, before the recorded frame of each index.
        resume: Whether a new connection continues where the previous one stopped.
        end: ``"hold"`` or ``"close"``: what a connection does when the frames run out.
        pong: Answers application-level pings (``None``: never answer).

    Raises:
        ConfigError: Any option is invalid (every violation listed).
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        *,
        times: Sequence[float] | None = None,
        venue: str = "replay",
        host: str = "127.0.0.1",
        port: int = 0,
        await_messages: int = 0,
        speed: float | None = None,
        drop_after: int | Sequence[int] = (),
        stall_after: int | Sequence[int] = (),
        skip: Sequence[tuple[int, int]] = (),
        inject: Mapping[int, Sequence[Frame]] | None = None,
        resume: bool = True,
        end: Literal["hold", "close"] = "hold",
        pong: PongFunction | None = venue_pong,
    ) -> None:
        self.frames: tuple[Frame, ...] = tuple(frames)
        self.times: tuple[float, ...] | None = None if times is None else tuple(times)
        self.venue = venue
        self.host = host
        self.port = port
        self.await_messages = await_messages
        self.speed = speed
        self.drop_after = (drop_after,) if isinstance(drop_after, int) else tuple(drop_after)
        self.stall_after = (stall_after,) if isinstance(stall_after, int) else tuple(stall_after)
        self.skip = tuple((int(a), int(b)) for a, b in skip)
        self.inject = {int(k): tuple(v) for k, v in (inject or {}).items()}
        self.resume = resume
        self.end = end
        self.pong = pong
        self._check()
        self._skip_to = self._skip_table()
        self._position = 0
        self._injected_done: set[int] = set()
        self._received: list[list[Frame]] = []
        self._sent_by_connection: list[int] = []
        self._frames_sent = self._injected_sent = self._drops = self._stalls = 0
        self._pongs_sent = 0
        self._live: set[ServerConnection] = set()
        self._server: Server | None = None
        self._url: str | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_stop: asyncio.Event | None = None

    @classmethod
    def from_recording(
        cls,
        path: str | os.PathLike[str],
        *,
        connections: Collection[str] | None = None,
        await_messages: int | None = None,
        **options: Any,
    ) -> RecordedVenueServer:
        """Return a server for the ``recv`` frames of a recording (``<VENUE>.jsonl.zst``).

        A recording is zstd JSON lines: a header ``{"t": "header", "exchange": ...}``, then
        ``{"t": "recv" | "send" | "connect" | "http", "conn": ..., "ts": ..., "data": ...}``.
        Frames recorded on several connections are merged in receive-time order.

        Args:
            path: The recording.
            connections: Serve only the frames of these recorded connections (``"conn"``
                values); ``None`` serves all.
            await_messages: As in the constructor; ``None`` waits for one message when the
                recording has subscribe (``send``) messages, else for none.
            **options: The constructor's other keyword arguments.

        Raises:
            InvalidArgumentError: The file is not such a recording (the message names the
                line).
            OSError: The file cannot be read.
        """
        venue, received, sends = _read_recording(path, connections)
        received.sort(key=lambda pair: pair[0])
        options.setdefault("venue", venue)
        return cls(
            [frame for _, frame in received],
            times=[ts for ts, _ in received],
            await_messages=(1 if sends else 0) if await_messages is None else await_messages,
            **options,
        )

    @property
    def url(self) -> str:
        """The ``ws://host:port`` address of the running server.

        Raises:
            RuntimeError: The server is not running.
        """
        if self._url is None:
            raise RuntimeError(f"RecordedVenueServer({self.venue}): url: not started")
        return self._url

    def statistics(self) -> ReplayServerStatistics:
        """Return the counters (safe to call from any thread)."""
        return ReplayServerStatistics(
            connections=len(self._received),
            frames_sent=self._frames_sent,
            injected_sent=self._injected_sent,
            position=self._position,
            drops=self._drops,
            stalls=self._stalls,
            pongs_sent=self._pongs_sent,
            received=tuple(tuple(messages) for messages in list(self._received)),
            sent_by_connection=tuple(self._sent_by_connection),
        )

    async def start(self) -> None:
        """Start listening.

        Raises:
            RuntimeError: The server is already running.
            OSError: The address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError(f"RecordedVenueServer({self.venue}): start: already running")
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            ping_interval=None,
            max_size=None,
            compression=None,
        )
        sockname = next(iter(self._server.sockets)).getsockname()
        host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        self._url = f"ws://{host}:{sockname[1]}"

    async def stop(self) -> None:
        """Close every connection (stalled ones abruptly) and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        for connection in list(self._live):
            connection.transport.abort()
        server.close()
        await server.wait_closed()
        self._url = None

    async def __aenter__(self) -> RecordedVenueServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def __enter__(self) -> RecordedVenueServer:
        """Run the server on an event loop of its own, on a background thread."""
        if self._thread is not None:
            raise RuntimeError(f"RecordedVenueServer({self.venue}): already running in a thread")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._thread_stop.wait()
            finally:
                await self.stop()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name=f"replay-{self.venue}", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):  # pragma: no cover - a wedged machine
            raise RuntimeError(f"RecordedVenueServer({self.venue}): did not start in time")
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        thread, loop, stop = self._thread, self._thread_loop, self._thread_stop
        if thread is None or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join()
        self._thread = self._thread_loop = self._thread_stop = None

    # -- one connection ------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        index = len(self._received)
        messages: list[Frame] = []
        self._received.append(messages)
        self._sent_by_connection.append(0)
        self._live.add(connection)
        subscribed = asyncio.Event()
        if self.await_messages == 0:
            subscribed.set()
        reader = asyncio.create_task(self._read(connection, messages, subscribed))
        try:
            await subscribed.wait()
            await self._serve(connection, index)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._live.discard(connection)

    async def _read(
        self, connection: ServerConnection, messages: list[Frame], subscribed: asyncio.Event
    ) -> None:
        counted = 0
        try:
            async for message in connection:
                messages.append(message)
                answer = self.pong(message) if self.pong is not None else None
                if answer is not None:
                    await connection.send(answer)
                    self._pongs_sent += 1
                    continue
                counted += 1
                if counted >= self.await_messages:
                    subscribed.set()
        except ConnectionClosed:
            pass
        finally:
            subscribed.set()  # let the sender find the connection closed

    async def _serve(self, connection: ServerConnection, index: int) -> None:
        drop_at = self.drop_after[index] if index < len(self.drop_after) else None
        stall_at = self.stall_after[index] if index < len(self.stall_after) else None
        position = self._position if self.resume else 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_time: float | None = None
        sent = 0
        while True:
            position = self._skip_to.get(position, position)
            if drop_at is not None and sent >= drop_at:
                await self._drop(connection)
                return
            if stall_at is not None and sent >= stall_at:
                await self._stall(connection)
                return
            await self._send_injected(connection, position)
            if position >= len(self.frames):
                break
            if self.speed is not None and self.times is not None:
                if first_time is None:
                    first_time = self.times[position]
                due = started + (self.times[position] - first_time) / self.speed
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
            await connection.send(self.frames[position])
            position += 1
            sent += 1
            self._sent_by_connection[index] = sent
            self._frames_sent += 1
            if self.resume:
                self._position = position
            if sent % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        if self.end == "close":
            await connection.close()
        else:
            await connection.wait_closed()

    async def _send_injected(self, connection: ServerConnection, position: int) -> None:
        extra = self.inject.get(position)
        if extra is None or position in self._injected_done:
            return
        self._injected_done.add(position)
        for frame in extra:
            await connection.send(frame)
            self._injected_sent += 1

    async def _drop(self, connection: ServerConnection) -> None:
        transport = connection.transport
        while transport.get_write_buffer_size() and not transport.is_closing():
            await asyncio.sleep(_FLUSH_POLL_S)
        self._drops += 1
        transport.abort()

    async def _stall(self, connection: ServerConnection) -> None:
        self._stalls += 1
        connection.transport.pause_reading()
        await connection.wait_closed()

    # -- options ---------------------------------------------------------------------------

    def _skip_table(self) -> dict[int, int]:
        table: dict[int, int] = {}
        for start, stop in sorted(self.skip):
            for i in range(start, stop):
                table[i] = max(table.get(i, stop), stop)
        # Follow chains of adjacent ranges so one lookup lands past all of them.
        for i in sorted(table, reverse=True):
            target = table[i]
            table[i] = table.get(target, target)
        return table

    def _check(self) -> None:
        violations: list[tuple[str, str]] = []
        n = len(self.frames)
        for i, frame in enumerate(self.frames):
            if not isinstance(frame, str | bytes):
                violations.append((f"frames[{i}]", f"{frame!r} is not str or bytes"))
                break
        if self.times is not None and len(self.times) != n:
            violations.append(
                ("times", f"{len(self.times)} times for {n} frames; expected one per frame")
            )
        if self.speed is not None:
            if not self.speed > 0:
                violations.append(("speed", f"{self.speed!r}; expected a number > 0 or None"))
            if self.times is None:
                violations.append(("times", "None; expected frame times when speed is set"))
        if not 0 <= self.port <= 65535:
            violations.append(("port", f"{self.port!r}; expected 0..65535"))
        if self.await_messages < 0:
            violations.append(("await_messages", f"{self.await_messages!r}; expected >= 0"))
        for name, counts in (("drop_after", self.drop_after), ("stall_after", self.stall_after)):
            for i, count in enumerate(counts):
                if not isinstance(count, int) or count < 0:
                    violations.append((f"{name}[{i}]", f"{count!r}; expected a count >= 0"))
        for i, (start, stop) in enumerate(self.skip):
            if not 0 <= start < stop <= n:
                violations.append(
                    (f"skip[{i}]", f"({start}, {stop}); expected 0 <= start < stop <= {n}")
                )
        for index in self.inject:
            if not 0 <= index <= n:
                violations.append((f"inject[{index}]", f"index {index}; expected 0..{n}"))
        if self.end not in ("hold", "close"):
            violations.append(("end", f"{self.end!r}; expected 'hold' or 'close'"))
        if violations:
            raise ConfigError(sorted(violations), f"RecordedVenueServer({self.venue})")


def _read_recording(
    path: str | os.PathLike[str], connections: Collection[str] | None
) -> tuple[str, list[tuple[float, Frame]], list[str]]:
    received: list[tuple[float, Frame]] = []
    sends: list[str] = []
    venue = ""
    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw)
        with io.TextIOWrapper(reader, encoding="utf-8") as text:
            for number, line in enumerate(text, 1):
                try:
                    record = json.loads(line)
                    kind = record["t"]
                    if kind == "header":
                        venue = canonical_venue(str(record.get("exchange", "replay")))
                    elif connections is not None and record.get("conn") not in connections:
                        pass
                    elif kind == "recv":
                        received.append((float(record["ts"]), str(record["data"])))
                    elif kind == "send":
                        sends.append(str(record["data"]))
                except (ValueError, KeyError, TypeError):
                    raise InvalidArgumentError(
                        f"{os.fspath(path)}: line {number}: {line[:60]!r}; expected a JSON "
                        "object with 't' (and 'ts' and 'data' for recv and send lines)"
                    ) from None
    if not venue:
        raise InvalidArgumentError(
            f'{os.fspath(path)}: header: missing; expected a first line with "t": "header"'
        )
    return venue, received, sends
