"""One naming scheme and one exact form for what every adapter takes in.

Names:

- a venue is a lowercase id: ``binance``, ``binance-usdm``, ``binance-coinm``, ``coinbase``,
  ``kraken``, ``jse``; ``canonical_venue`` maps the spellings recordings use;
- a symbol is ``BASE-QUOTE`` in upper case (``BTC-USDT``), with ``-PERP`` for perpetual
  swaps (``BTC-USD-PERP``); venue aliases are folded (``XBT`` is ``BTC``). A venue symbol
  that is not a currency pair (an index, a FIX security id) is kept, upper-cased.

Numbers: prices and sizes arrive as decimal strings and are parsed with ``parse_decimal``
into ``decimal.Decimal``, exactly, never through a binary float. The update events below
(``QuoteUpdate``, ``TradeUpdate``, ``BookUpdate``) and the order books keep ``Decimal``.
Floats appear only after normalization, in the engine's ``CoreMessage`` payloads and
``MESSAGE_DTYPE`` records, where analytics want float64: ``to_float`` gives the nearest
double, and for every decimal of at most 15 significant digits Python's shortest ``repr`` of
that double gives the same decimal back (``float_is_exact`` checks it; the validator flags
a value that is not, as ``ValidationIssue.PRECISION``).

Times: ``exchange_ns`` is the venue's own event time (0 when a frame has none);
``receive_ns`` is when the frame reached us (the recording's or the socket's clock).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Final

import msgspec

from market_intel.enums import MarketDataKind, MessageType, Side
from market_intel.errors import MalformedFrameError
from market_intel.messages import CoreMessage, MarketData, MetadataValue

__all__ = [
    "BookUpdate",
    "FeedEvent",
    "FeedItem",
    "Parsed",
    "QuoteUpdate",
    "TradeUpdate",
    "Update",
    "canonical_venue",
    "float_is_exact",
    "normalize_symbol",
    "parse_decimal",
    "to_float",
]

_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_EXPIRY: Final = re.compile(r"(.+?)[_-](\d{6})", re.ASCII)
_VENUE: Final = re.compile(r"[a-z0-9][a-z0-9.\-]*")

_VENUE_ALIASES: Final = {
    "binance_futures": "binance-usdm",
    "binance-futures": "binance-usdm",
    "binance_delivery": "binance-coinm",
    "binance-delivery": "binance-coinm",
    "binance_us": "binance-us",
    "kraken_futures": "kraken-futures",
    "huobi_swap": "huobi-swap",
    "gateio_futures": "gateio-futures",
    "crypto.com": "cryptocom",
    "independent_reserve": "independent-reserve",
}

# Quote currencies, longest first so that "BTCUSDT" splits as BTC/USDT, not BTCUSD/T. TUSD is
# left out: it would split DOTUSD as DO/TUSD (bases ending in T are far more common).
_QUOTES: Final = (
    "FDUSD", "USDT", "USDC", "BUSD", "USDP", "DAI", "USD", "EUR", "GBP", "JPY",
    "AUD", "CAD", "CHF", "TRY", "BRL", "KRW", "BTC", "ETH", "BNB", "XBT",
)  # fmt: skip
_ASSET_ALIASES: Final = {"XBT": "BTC", "XDG": "DOGE", "ZUSD": "USD", "ZEUR": "EUR", "XXBT": "BTC"}


def canonical_venue(name: str) -> str:
    """Return the venue id for a venue name as recordings and configs spell it.

    Args:
        name: ``BINANCE_FUTURES``, ``binance-usdm``, ``COINBASE``, ...

    Raises:
        MalformedFrameError: ``name`` is empty or has characters a venue id cannot have.
    """
    lowered = name.strip().lower()
    venue = _VENUE_ALIASES.get(lowered, lowered.replace("_", "-"))
    if not _VENUE.fullmatch(venue):
        raise MalformedFrameError(
            name or "?", "venue", name, "a venue name of letters, digits, '.', '-' or '_'"
        )
    return venue


def _asset(code: str) -> str:
    return _ASSET_ALIASES.get(code, code)


def normalize_symbol(venue: str, raw: str) -> str:
    """Return the canonical ``BASE-QUOTE`` symbol of a venue's instrument name.

    ``BTCUSDT``, ``btcusdt``, ``BTC-USDT``, ``BTC/USDT`` and ``XBT/USDT`` all give
    ``BTC-USDT``; ``BTCUSD_PERP`` gives ``BTC-USD-PERP``. A name that is not a pair of known
    currencies (an index, a security id) is returned upper-cased. A dated future keeps its
    expiry: ``BCHUSD_210924`` gives ``BCH-USD-210924``.

    Args:
        venue: The venue id, used in the error message.
        raw: The venue's instrument name.

    Raises:
        MalformedFrameError: ``raw`` is empty or contains whitespace or control characters.
    """
    text = raw.strip().upper()
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise MalformedFrameError(venue, "symbol", raw, "a non-empty instrument name")
    suffix = ""
    dated = _EXPIRY.fullmatch(text)
    if dated:  # a dated future: BCHUSD_210924 is BCH-USD-210924
        text, suffix = dated.group(1), f"-{dated.group(2)}"
    for perp in ("_PERP", "-PERP", "PERP"):
        if text.endswith(perp) and len(text) > len(perp):
            text, suffix = text[: -len(perp)], "-PERP"
            break
    for sep in ("-", "/", "_", ":"):
        if sep in text:
            base, _, quote = text.partition(sep)
            if base and quote and sep not in quote:
                return f"{_asset(base)}-{_asset(quote)}{suffix}"
            return raw.strip().upper()
    for quote in _QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            return f"{_asset(text[: -len(quote)])}-{_asset(quote)}{suffix}"
    return text + suffix


def parse_decimal(text: str | bytes, *, venue: str, field: str) -> Decimal:
    """Parse a venue's decimal string exactly.

    Args:
        text: ``"65086.18"``, ``"0.00006547"``, ``"1e-8"``; bytes are read as ASCII.
        venue: The venue id, for the error message.
        field: The field the text came from, for the error message.

    Raises:
        MalformedFrameError: ``text`` is not a plain finite decimal number (``NaN``,
            ``Infinity``, empty strings, thousands separators and JSON numbers parsed to
            floats are all refused).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedFrameError(venue, field, text, "an ASCII decimal string") from None
    if type(text) is not str or not _DECIMAL.fullmatch(text):
        raise MalformedFrameError(venue, field, text, "a decimal string such as '65086.18'")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        raise MalformedFrameError(venue, field, text, "a decimal string") from None


def to_float(value: Decimal) -> float:
    """Return the double nearest to ``value`` (the one ``float(str(value))`` gives)."""
    return float(value)


def float_is_exact(value: Decimal) -> bool:
    """Tell whether the shortest ``repr`` of ``to_float(value)`` reads back as ``value``."""
    # Fast path: at most 15 significant digits (a text of 15 characters holds no more) in
    # the normal range of doubles always read back exactly.
    if len(str(value)) <= 15 and -300 < value.adjusted() < 300:
        return True
    return Decimal(repr(float(value))) == value


class QuoteUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Best bid and offer at one moment. A side the venue left out is ``None``."""

    venue: str
    symbol: str
    bid: Decimal | None = None
    bid_size: Decimal | None = None
    ask: Decimal | None = None
    ask_size: Decimal | None = None
    update_id: int = 0
    exchange_ns: int = 0
    receive_ns: int = 0

    def to_message(
        self,
        *,
        source: str = "",
        message_id: int | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> CoreMessage:
        """Return the update as a ``MARKET_DATA`` message (kind ``QUOTE``).

        Args:
            source: The message's ``source`` (the adapter's name).
            message_id: A deterministic id (a replay numbers its messages); with one,
                ``created_ns`` is the update's ``receive_ns`` (or ``exchange_ns``) rather than
                the clock, so the same input gives the same message.
            metadata: The message's metadata (a validator's ``{"issues": "crossed"}``).
        """
        return _message(
            self,
            MarketData(
                symbol=self.symbol,
                venue=self.venue,
                kind=MarketDataKind.QUOTE,
                bid=_float_or_none(self.bid),
                ask=_float_or_none(self.ask),
                bid_size=_float_or_none(self.bid_size),
                ask_size=_float_or_none(self.ask_size),
                update_id=self.update_id,
                exchange_ns=self.exchange_ns,
                receive_ns=self.receive_ns,
            ),
            source,
            message_id,
            metadata,
        )


class TradeUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """One public trade. ``side`` is the aggressor's side, ``None`` when the venue omits it."""

    venue: str
    symbol: str
    trade_id: int
    price: Decimal
    size: Decimal
    side: Side | None = None
    exchange_ns: int = 0
    receive_ns: int = 0

    def to_message(
        self,
        *,
        source: str = "",
        message_id: int | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> CoreMessage:
        """Return the trade as a ``MARKET_DATA`` message (kind ``TRADE``)."""
        return _message(
            self,
            MarketData(
                symbol=self.symbol,
                venue=self.venue,
                kind=MarketDataKind.TRADE,
                last_price=float(self.price),
                last_size=float(self.size),
                update_id=self.trade_id,
                exchange_ns=self.exchange_ns,
                receive_ns=self.receive_ns,
            ),
            source,
            message_id,
            metadata,
        )


class BookUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """Changed L2 levels, or a whole book when ``snapshot`` is true.

    Each level is ``(price, size)``; a size of zero removes the level. ``first_update_id``
    and ``last_update_id`` are the venue's update ids the message covers (equal when the
    venue numbers messages one by one, 0 when it does not number them);
    ``previous_update_id`` is the id the venue says came just before (0 when it does not
    say).
    """

    venue: str
    symbol: str
    bids: tuple[tuple[Decimal, Decimal], ...] = ()
    asks: tuple[tuple[Decimal, Decimal], ...] = ()
    snapshot: bool = False
    first_update_id: int = 0
    last_update_id: int = 0
    previous_update_id: int = 0
    exchange_ns: int = 0
    receive_ns: int = 0

    def to_message(
        self,
        *,
        source: str = "",
        message_id: int | None = None,
        metadata: dict[str, MetadataValue] | None = None,
    ) -> CoreMessage:
        """Return the update as a ``MARKET_DATA`` message (kind ``DEPTH`` or ``SNAPSHOT``).

        The message carries the update's best changed bid and ask with a non-zero size; an
        order book (``adapters.book``) publishes the book's real top as ``QUOTE`` messages.
        """
        bid = max((lvl for lvl in self.bids if lvl[1] > 0), default=None)
        ask = min((lvl for lvl in self.asks if lvl[1] > 0), default=None)
        return _message(
            self,
            MarketData(
                symbol=self.symbol,
                venue=self.venue,
                kind=MarketDataKind.SNAPSHOT if self.snapshot else MarketDataKind.DEPTH,
                bid=None if bid is None else float(bid[0]),
                bid_size=None if bid is None else float(bid[1]),
                ask=None if ask is None else float(ask[0]),
                ask_size=None if ask is None else float(ask[1]),
                update_id=self.last_update_id,
                exchange_ns=self.exchange_ns,
                receive_ns=self.receive_ns,
            ),
            source,
            message_id,
            metadata,
        )


Update = QuoteUpdate | TradeUpdate | BookUpdate
"""What a venue parser produces."""


class FeedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """Something that happened to a feed rather than to a market.

    ``code`` is one of ``connected``, ``disconnected``, ``reconnecting``, ``subscribed``,
    ``gap`` (a sequence number skipped; ``text`` says which), ``resync`` (a book must be
    rebuilt from a new snapshot), ``synced`` (a book is in sync), ``stale``, ``error`` (a
    venue-side error message) or ``end`` (a recording ran out). ``symbol`` is empty
    when the event concerns the whole connection.
    """

    venue: str
    code: str
    symbol: str = ""
    text: str = ""
    receive_ns: int = 0


class Parsed(msgspec.Struct, frozen=True):
    """One frame's content, as a venue parser returns it.

    ``updates`` are the market updates the frame carried (none for acknowledgements and
    heartbeats); ``sequence`` is the venue's per-connection message number when the venue
    numbers its frames (a gap in it means frames were lost), else ``None``; ``events`` are
    feed events the frame announced (a subscription confirmed, a venue-side error).
    """

    updates: list[Update]
    sequence: int | None = None
    events: list[FeedEvent] = []


FeedItem = Update | FeedEvent | MalformedFrameError
"""What a feed source yields: an update, a feed event, or a frame it could not read (the
error itself, as a value: a malformed frame is counted and reported, never raised out of
the feed)."""


def _message(
    update: QuoteUpdate | TradeUpdate | BookUpdate,
    payload: MarketData,
    source: str,
    message_id: int | None,
    metadata: dict[str, MetadataValue] | None,
) -> CoreMessage:
    if message_id is None:
        return CoreMessage(MessageType.MARKET_DATA, payload, source=source, metadata=metadata or {})
    return CoreMessage(
        MessageType.MARKET_DATA,
        payload,
        source=source,
        id=message_id,
        created_ns=update.receive_ns or update.exchange_ns,
        metadata=metadata or {},
    )


def _float_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
