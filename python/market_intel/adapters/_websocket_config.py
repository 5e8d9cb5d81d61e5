"""A WebSocket feed's settings and its counters: ``Backoff``, ``WebSocketFeedConfig`` (both
checked when made, every violation reported at once) and ``WebSocketFeedStatistics``.

``market_intel.adapters.websocket`` exports them; import them from there.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from websockets.exceptions import WebSocketException
from websockets.uri import parse_uri

from market_intel.adapters.venues import VenueParser, parser_for
from market_intel.errors import ConfigError, InvalidArgumentError

__all__ = ["Backoff", "ParserSource", "WebSocketFeedConfig", "WebSocketFeedStatistics"]

ParserSource = str | VenueParser | Callable[[], VenueParser]
"""A venue id (``parser_for`` makes a parser per connection), a parser factory (called per
connection), or one parser instance (shared by every connection)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """How long to wait before each reconnection attempt.

    Attempt ``n`` of a run of failures waits ``min(maximum_s, initial_s * multiplier **
    (n - 1))``, scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    Attributes:
        initial_s: The first delay.
        maximum_s: The longest delay (before jitter).
        multiplier: The growth of the delay from one attempt to the next (>= 1).
        jitter: The fraction of randomness in each delay, 0..1.
        max_attempts: Failed attempts in a row after which the feed gives up with
            ``FeedError``; ``None`` never gives up.
        seed: Seed of the jitter's random generator; ``None`` seeds from the system.

    Raises:
        ConfigError: Any value is out of range (every violation listed).
    """

    initial_s: float = 0.5
    maximum_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = 10
    seed: int | None = None

    def __post_init__(self) -> None:
        violations = self.violations("backoff")
        if violations:
            raise ConfigError(violations)

    def violations(self, path: str) -> list[tuple[str, str]]:
        """Return every ``(path, message)`` violation of the values."""
        found: list[tuple[str, str]] = []
        if not self.initial_s >= 0:
            found.append((f"{path}.initial_s", f"{self.initial_s!r}; expected seconds >= 0"))
        if not self.maximum_s >= self.initial_s:
            found.append((f"{path}.maximum_s", f"{self.maximum_s!r}; expected >= initial_s"))
        if not self.multiplier >= 1:
            found.append((f"{path}.multiplier", f"{self.multiplier!r}; expected >= 1"))
        if not 0 <= self.jitter <= 1:
            found.append((f"{path}.jitter", f"{self.jitter!r}; expected 0..1"))
        if self.max_attempts is not None and not (
            isinstance(self.max_attempts, int) and self.max_attempts >= 1
        ):
            found.append((f"{path}.max_attempts", f"{self.max_attempts!r}; expected >= 1 or None"))
        return found

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the delay in seconds before attempt ``attempt`` (1 for the first).

        Args:
            attempt: The attempt's number in the current run of failures, from 1.
            rng: The random generator of the jitter.
        """
        delay = self.initial_s
        for _ in range(attempt - 1):
            if delay >= self.maximum_s:
                break
            delay *= self.multiplier
        delay = min(delay, self.maximum_s)
        if self.jitter:
            delay *= 1.0 + self.jitter * rng.uniform(-1.0, 1.0)
        return max(0.0, delay)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketFeedConfig:
    """One WebSocket feed.

    Attributes:
        url: ``ws://`` or ``wss://`` address of the venue.
        parser: A venue id (``"coinbase"``), a parser factory, or a parser (see
            ``ParserSource``); venue parsers keep per-connection state, so an id or a
            factory is what a long-running feed wants.
        symbols: Canonical symbols to subscribe (``BTC-USD``); empty with empty
            ``channels`` when the url itself selects the streams (Binance ``/stream?``).
        channels: Channels to subscribe (``trades``, ``quotes``, ``book``, or the venue's
            own names).
        backoff: Reconnection delays and the attempt budget.
        ping_interval_s: Seconds between keepalive pings; ``None`` sends none.
        ping_timeout_s: Seconds to wait for a pong before the connection is deemed dead;
            ``None`` waits forever.
        open_timeout_s: Seconds allowed for the TCP, TLS and WebSocket handshakes.
        close_timeout_s: Seconds allowed for the closing handshake before the TCP
            connection is aborted.
        max_frame_bytes: The largest frame accepted (Coinbase's level2 snapshots run to a
            few MB); ``None`` accepts any size.

    Raises:
        ConfigError: Any value is invalid (every violation listed).
    """

    url: str
    parser: ParserSource
    symbols: Sequence[str] = ()
    channels: Sequence[str] = ()
    backoff: Backoff = field(default_factory=Backoff)
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 5.0
    max_frame_bytes: int | None = 16 * 2**20

    def __post_init__(self) -> None:
        object.__setattr__(self, "symbols", _strings(self.symbols))
        object.__setattr__(self, "channels", _strings(self.channels))
        found: list[tuple[str, str]] = []
        try:
            parse_uri(self.url)
        except (WebSocketException, TypeError, ValueError):
            found.append(("url", f"{self.url!r}; expected a ws:// or wss:// address"))
        if not (isinstance(self.parser, str | VenueParser) or callable(self.parser)):
            found.append(("parser", f"{self.parser!r}; expected a venue id, a parser or a factory"))
        elif isinstance(self.parser, str):
            try:
                parser_for(self.parser)
            except InvalidArgumentError as exc:
                found.append(("parser", str(exc)))
        for name in ("symbols", "channels"):
            for index, text in enumerate(getattr(self, name)):
                if not isinstance(text, str) or not text.strip():
                    found.append((f"{name}[{index}]", f"{text!r}; expected a non-empty str"))
        if bool(self.symbols) != bool(self.channels):
            found.append(
                (
                    "channels" if self.symbols else "symbols",
                    "empty; expected symbols and channels both given or both empty",
                )
            )
        if not isinstance(self.backoff, Backoff):
            found.append(("backoff", f"{self.backoff!r}; expected a Backoff"))
        for name in ("ping_interval_s", "ping_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                found.append((name, f"{value!r}; expected seconds > 0 or None"))
        for name in ("open_timeout_s", "close_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                found.append((name, f"{value!r}; expected seconds > 0"))
        if self.max_frame_bytes is not None and not self.max_frame_bytes >= 1:
            found.append(
                ("max_frame_bytes", f"{self.max_frame_bytes!r}; expected bytes >= 1 or None")
            )
        if found:
            raise ConfigError(found, "WebSocketFeedConfig")

    def new_parser(self) -> VenueParser:
        """Return the parser for a new connection."""
        source = self.parser
        if isinstance(source, str):
            return parser_for(source)
        if isinstance(source, VenueParser) and not isinstance(source, type):
            return source
        return source()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketFeedStatistics:
    """A ``WebSocketFeed``'s counters at one moment (totals over all its connections,
    except where a field says "current connection")."""

    url: str
    venue: str
    connected: bool
    connects: int
    """Connections opened."""
    reconnects: int
    """Connections opened after a disconnect."""
    disconnects: int
    failed_attempts: int
    """Connection attempts that failed, and connections that ended before any frame."""
    frames: int
    """Frames received (every one is parsed, malformed ones included)."""
    bytes: int
    """Payload bytes received."""
    updates: int
    events: int
    """Feed events the frames carried (acknowledgements, venue errors)."""
    malformed: int
    gaps: int
    pings_sent: int
    """WebSocket keepalive pings sent."""
    pongs_received: int
    """Keepalive pongs received in time."""
    ping_timeouts: int
    app_pings_sent: int
    """The venue's application-level pings sent."""
    latency_s: float | None
    """Round trip of the last keepalive ping."""
    last_receive_ns: int
    """``time.time_ns()`` of the last frame (0 before the first)."""
    connection_frames: int
    """Frames received on the current connection."""
    uptime_s: float
    """Age of the current connection (0 when disconnected)."""
    last_error: str | None


def _strings(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        return (values,)
    try:
        return tuple(values)
    except TypeError:
        return (values,)  # type: ignore[return-value]  # reported by the checks
