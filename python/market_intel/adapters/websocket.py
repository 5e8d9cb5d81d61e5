"""A live venue feed over WebSocket: subscribe, keep alive, reconnect, and count everything.

``WebSocketFeed.stream()`` connects to ``config.url``, sends the venue parser's subscribe
messages and yields what each frame carries, as ``FeedItem`` values: the parser's updates,
its feed events, and ``MalformedFrameError`` values for frames it cannot read (counted,
never raised). Nothing is dropped: every frame received is counted and parsed, and the
stream only reads the socket as fast as its consumer pulls (a slow consumer slows the venue
through TCP, it never loses frames).

The life of a feed, as the feed events it yields::

    connected -> subscribed -> (frames ...) -> disconnected        clean close or abrupt drop
      -> reconnecting (after a backoff delay) -> connected -> subscribed
      -> resync (one per subscribed symbol: books rebuild from the next snapshot)
      -> (frames ...)

A connection attempt that fails, or a connection that ends before any frame arrived, counts
against ``Backoff.max_attempts``; when that many fail in a row the stream raises
``FeedError`` naming the url, the attempts and the last error.

Keepalive: every ``ping_interval_s`` the feed sends a WebSocket ping (and the venue's
application-level ping when the parser offers one); a pong that does not come within
``ping_timeout_s`` closes the connection (code 1011), which then reconnects.

Sequence gaps: when the parser reports ``Parsed.sequence`` (Coinbase's per-connection
``sequence_num``), each frame must carry the previous one plus one; otherwise a
``FeedEvent(code="gap", text="expected N, got M")`` comes before the frame's updates. The
numbering restarts with each connection.

Threads: ``iterate()`` (and ``iter(feed)``) runs the stream on an event loop of its own, on a
background thread, and hands its items to a blocking iterator, for ingestion code that is
not asyncio. ``close()`` may be called from any thread.

A consumer that stops pulling stops the socket being read, and with it the pongs: one that
stalls for longer than ``ping_timeout_s`` has its connection closed by the keepalive and
reopened (the ``disconnected`` event says so).

The implementation, in a private module whose public names this module exports::

    websocket.py            WebSocketFeed: connect, subscribe, keepalive, reconnect, count
    _websocket_config.py    Backoff, WebSocketFeedConfig, WebSocketFeedStatistics
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.frames import CloseCode

from market_intel.adapters._websocket_config import (
    Backoff,
    WebSocketFeedConfig,
    WebSocketFeedStatistics,
)
from market_intel.adapters._websocket_config import ParserSource as ParserSource
from market_intel.adapters.normalize import FeedEvent, FeedItem, normalize_symbol
from market_intel.adapters.venues import VenueParser
from market_intel.errors import EngineError, FeedError, InvalidArgumentError, MalformedFrameError

__all__ = ["Backoff", "WebSocketFeed", "WebSocketFeedConfig", "WebSocketFeedStatistics"]

_CONNECT_ERRORS: Final = (OSError, TimeoutError, WebSocketException)
_QUEUE_POLL_S: Final = 0.1
_OFFER_POLL_S: Final = 0.001


class _Counters:
    __slots__ = (
        "app_pings_sent",
        "bytes",
        "connects",
        "disconnects",
        "events",
        "failed_attempts",
        "frames",
        "gaps",
        "last_error",
        "last_receive_ns",
        "latency_s",
        "malformed",
        "ping_timeouts",
        "pings_sent",
        "pongs_received",
        "reconnects",
        "updates",
    )

    def __init__(self) -> None:
        self.connects = self.reconnects = self.disconnects = self.failed_attempts = 0
        self.frames = self.bytes = self.updates = self.events = self.malformed = 0
        self.gaps = self.pings_sent = self.pongs_received = self.ping_timeouts = 0
        self.app_pings_sent = self.last_receive_ns = 0
        self.latency_s: float | None = None
        self.last_error: str | None = None


class _Link:
    """One open connection and its per-connection state."""

    __slots__ = ("closer", "error", "expected", "frames", "keepalive", "opened", "parser", "ws")

    def __init__(self, ws: ClientConnection, parser: VenueParser) -> None:
        self.ws = ws
        self.parser = parser
        self.opened = time.monotonic()
        self.frames = 0
        self.expected: int | None = None
        self.error: str | None = None
        self.keepalive: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None


class _End:
    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class WebSocketFeed:
    """A venue's live feed over one WebSocket connection at a time.

    Args:
        config: The feed's settings.
        rng: The random generator of the backoff jitter (default: one seeded with
            ``config.backoff.seed``).
    """

    def __init__(self, config: WebSocketFeedConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random(config.backoff.seed)
        self._spare: VenueParser | None = config.new_parser()
        self.venue = self._spare.venue
        self._symbols = tuple(normalize_symbol(self.venue, s) for s in config.symbols)
        self._counters = _Counters()
        self._link: _Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._streaming = False
        self._closed = False

    # -- control ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the feed: close the connection (with a closing handshake) and end the stream.

        Safe to call from any thread, any number of times; the stream yields a last
        ``disconnected`` event and ends once the connection is closed. A closed feed stays
        closed: a later ``stream()`` ends at once.
        """
        self._closed = True
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request_stop()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._request_stop)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def statistics(self) -> WebSocketFeedStatistics:
        """Return the counters (safe to call from any thread)."""
        c = self._counters
        link = self._link
        return WebSocketFeedStatistics(
            url=self.config.url,
            venue=self.venue,
            connected=link is not None,
            connects=c.connects,
            reconnects=c.reconnects,
            disconnects=c.disconnects,
            failed_attempts=c.failed_attempts,
            frames=c.frames,
            bytes=c.bytes,
            updates=c.updates,
            events=c.events,
            malformed=c.malformed,
            gaps=c.gaps,
            pings_sent=c.pings_sent,
            pongs_received=c.pongs_received,
            ping_timeouts=c.ping_timeouts,
            app_pings_sent=c.app_pings_sent,
            latency_s=c.latency_s,
            last_receive_ns=c.last_receive_ns,
            connection_frames=0 if link is None else link.frames,
            uptime_s=0.0 if link is None else time.monotonic() - link.opened,
            last_error=c.last_error,
        )

    # -- the stream ------------------------------------------------------------------------

    async def stream(self) -> AsyncGenerator[FeedItem, None]:
        """Connect, subscribe, and yield every frame's updates and events, reconnecting
        after a disconnect, until ``close()``.

        Use it with ``contextlib.aclosing`` (or run it to its end) so an abandoned stream
        closes its connection at once.

        Yields:
            Updates, ``FeedEvent`` values and ``MalformedFrameError`` values, in the order
            the frames arrived.

        Raises:
            FeedError: ``backoff.max_attempts`` connection attempts failed in a row.
            EngineError: The feed is already streaming.
        """
        stop = self._begin()
        c = self._counters
        limit = self.config.backoff.max_attempts
        failures = 0
        connected_before = False
        try:
            while not stop.is_set():
                if failures or connected_before:
                    delay = self.config.backoff.delay(max(failures, 1), self._rng)
                    yield self._event("reconnecting", f"attempt {failures + 1} in {delay:.3f} s")
                    if await _wait(stop, delay):
                        break
                outcome = await self._open(stop)
                if outcome is None:
                    break
                if isinstance(outcome, BaseException):
                    failures += 1
                    c.failed_attempts += 1
                    c.last_error = f"connect: {_describe(outcome)}"
                    if limit is not None and failures >= limit:
                        raise self._gave_up(failures) from outcome
                    continue
                link = _Link(outcome, self._next_parser())
                self._link = link
                c.connects += 1
                if connected_before:
                    c.reconnects += 1
                reason = "closed by the client"
                try:
                    yield self._event("connected", self.config.url)
                    messages = (
                        link.parser.subscribe_messages(self._symbols, self.config.channels)
                        if self._symbols
                        else []
                    )
                    for message in messages:
                        await link.ws.send(message)
                    yield self._event("subscribed", f"{len(messages)} subscribe messages sent")
                    if connected_before:
                        for symbol in self._symbols:
                            yield self._event("resync", "reconnected", symbol)
                    if self.config.ping_interval_s is not None:
                        link.keepalive = asyncio.create_task(self._keepalive(link))
                    while True:
                        frame = await link.ws.recv(decode=False)
                        for item in self._receive(link, frame):
                            yield item
                except ConnectionClosed as exc:
                    if link.closer is None:
                        reason = _describe(exc)
                        if link.error is not None:
                            reason = f"{link.error}; {reason}"
                        c.last_error = reason
                finally:
                    await self._finish(link)
                connected_before = True
                yield self._event("disconnected", reason)
                if link.frames:
                    failures = 0
                elif not stop.is_set():
                    failures += 1
                    c.failed_attempts += 1
                    if limit is not None and failures >= limit:
                        raise self._gave_up(failures)
        finally:
            self._streaming = False
            self._stop = None

    def iterate(
        self, stop_event: threading.Event | None = None, *, max_pending: int = 4096
    ) -> Iterator[FeedItem]:
        """Run ``stream()`` on an event loop of its own, on a background thread, and return a
        blocking iterator over its items.

        The iterator ends when ``stop_event`` is set or ``close()`` is called; leaving it
        early (``break``) closes the feed. At most ``max_pending`` items wait between the
        two threads; when they are full the stream waits (the socket waits with it), so
        nothing is lost.

        Args:
            stop_event: Set it (from any thread) to close the feed and end the iterator.
            max_pending: Items buffered between the loop thread and the consumer.

        Raises:
            FeedError: From the stream, raised in the consuming thread.
            InvalidArgumentError: ``max_pending`` is below 1.
        """
        if max_pending < 1:
            raise InvalidArgumentError(f"max_pending: {max_pending!r}; expected a count >= 1")
        return self._iterate(stop_event, max_pending)

    def __iter__(self) -> Iterator[FeedItem]:
        """Return ``iterate()``, so a thread-based consumer can take the feed as an iterable
        source (it also offers ``close()`` and ``statistics()``)."""
        return self.iterate()

    def _iterate(self, stop_event: threading.Event | None, max_pending: int) -> Iterator[FeedItem]:
        out: queue.Queue[FeedItem | _End] = queue.Queue(max_pending)
        thread = threading.Thread(
            target=asyncio.run,
            args=(self._pump(out),),
            name=f"feed-{self.venue}",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                if stop_event is not None and stop_event.is_set() and not self._closed:
                    self.close()
                try:
                    item = out.get(timeout=_QUEUE_POLL_S)
                except queue.Empty:
                    if not thread.is_alive() and out.empty():
                        return
                    continue
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            self.close()
            thread.join()

    async def _pump(self, out: queue.Queue[FeedItem | _End]) -> None:
        end = _End(None)
        try:
            async with contextlib.aclosing(self.stream()) as items:
                async for item in items:
                    if not await self._offer(out, item):
                        break
        except Exception as exc:
            end = _End(exc)
        await self._offer(out, end)

    async def _offer(self, out: queue.Queue[FeedItem | _End], item: FeedItem | _End) -> bool:
        while True:
            try:
                out.put_nowait(item)
                return True
            except queue.Full:
                if self._closed:
                    return False  # the consumer stopped reading
                await asyncio.sleep(_OFFER_POLL_S)

    # -- one connection --------------------------------------------------------------------

    def _begin(self) -> asyncio.Event:
        if self._streaming:
            raise EngineError(f"WebSocketFeed({self.config.url}): stream: already streaming")
        self._streaming = True
        self._loop = asyncio.get_running_loop()
        self._stop = stop = asyncio.Event()
        if self._closed:
            stop.set()
        return stop

    def _request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        link = self._link
        if link is not None and link.closer is None and self._loop is not None:
            link.closer = self._loop.create_task(link.ws.close())

    def _next_parser(self) -> VenueParser:
        parser, self._spare = self._spare, None
        return parser if parser is not None else self.config.new_parser()

    async def _open(self, stop: asyncio.Event) -> ClientConnection | BaseException | None:
        """Open a connection; return it, the error that stopped it, or ``None`` if stopped."""
        cfg = self.config
        opening = asyncio.ensure_future(
            _connect(
                cfg.url,
                open_timeout=cfg.open_timeout_s,
                ping_interval=None,
                ping_timeout=None,
                close_timeout=cfg.close_timeout_s,
                max_size=cfg.max_frame_bytes,
            )
        )
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((opening, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (opening, stopping):
                task.cancel()
            outcome, _ = await asyncio.gather(opening, stopping, return_exceptions=True)
        if isinstance(outcome, ClientConnection):
            if stop.is_set():
                await outcome.close()
                return None
            return outcome
        if stop.is_set() or isinstance(outcome, asyncio.CancelledError):
            return None
        if isinstance(outcome, _CONNECT_ERRORS):
            return outcome
        raise outcome

    async def _finish(self, link: _Link) -> None:
        if link.keepalive is not None:
            link.keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link.keepalive
        if link.closer is not None:
            await link.closer
        await link.ws.close()
        self._link = None
        self._counters.disconnects += 1

    async def _keepalive(self, link: _Link) -> None:
        c = self._counters
        ws = link.ws
        interval = self.config.ping_interval_s or 0.0
        timeout = self.config.ping_timeout_s
        app_ping = getattr(link.parser, "ping_message", None)
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(interval)
                message = app_ping() if app_ping is not None else None
                if message is not None:
                    await ws.send(message)
                    c.app_pings_sent += 1
                pong = await ws.ping()
                c.pings_sent += 1
                try:
                    async with asyncio.timeout(timeout):
                        c.latency_s = await pong
                except TimeoutError:
                    c.ping_timeouts += 1
                    link.error = f"keepalive: no pong within {timeout} s"
                    await ws.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    return
                c.pongs_received += 1

    def _receive(self, link: _Link, frame: bytes) -> Sequence[FeedItem]:
        receive_ns = time.time_ns()
        c = self._counters
        c.frames += 1
        c.bytes += len(frame)
        c.last_receive_ns = receive_ns
        link.frames += 1
        try:
            parsed = link.parser.parse(frame, receive_ns)
        except MalformedFrameError as exc:
            c.malformed += 1
            return (exc,)
        except Exception as exc:  # a parser that trips on a frame must not end the feed
            c.malformed += 1
            error = MalformedFrameError(
                self.venue,
                "frame",
                frame,
                f"a frame the parser can read (it raised {type(exc).__name__}: {exc})",
            )
            error.__cause__ = exc
            return (error,)
        updates, sequence, events = parsed.updates, parsed.sequence, parsed.events
        c.updates += len(updates)
        if sequence is None or link.expected in (None, sequence):
            if sequence is not None:
                link.expected = sequence + 1
            if not events:
                return updates
            c.events += len(events)
            return [*updates, *events]
        c.gaps += 1
        c.events += len(events)
        gap = FeedEvent(
            venue=self.venue,
            code="gap",
            text=f"expected {link.expected}, got {sequence}",
            receive_ns=receive_ns,
        )
        link.expected = sequence + 1
        return [gap, *updates, *events]

    def _event(self, code: str, text: str = "", symbol: str = "") -> FeedEvent:
        return FeedEvent(
            venue=self.venue, code=code, symbol=symbol, text=text, receive_ns=time.time_ns()
        )

    def _gave_up(self, attempts: int) -> FeedError:
        return FeedError(
            f"{self.config.url}: {attempts} connection attempts failed in a row "
            f"(backoff.max_attempts = {self.config.backoff.max_attempts}); last error: "
            f"{self._counters.last_error}; expected a server that accepts the connection "
            "and sends frames"
        )


async def _connect(url: str, **options: object) -> ClientConnection:
    return await connect(url, **options)  # type: ignore[arg-type]


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop`` is set; return whether it was set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
