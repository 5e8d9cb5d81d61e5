"""Order-book snapshots fetched over HTTP, for books that lost their chain and must resync.

A Binance book that finds a gap in its diffs needs a new REST depth snapshot (the venue's
documented procedure). ``BinanceSnapshots`` fetches one:

==================  ===================================
venue               endpoint
==================  ===================================
``binance``         ``/api/v3/depth?symbol=BTCUSDT``
``binance-us``      ``/api/v3/depth?symbol=BTCUSDT``
``binance-usdm``    ``/fapi/v1/depth?symbol=BTCUSDT``
``binance-coinm``   ``/dapi/v1/depth?symbol=BTCUSD_PERP``
==================  ===================================

and parses it exactly (``BinanceParser.parse_snapshot``) into a ``BookUpdate`` with
``snapshot=True``. ``DataIngestionAgent(snapshots=...)`` calls it when a book gaps, applies the
snapshot, and the diffs buffered meanwhile chain onto it. Point ``base_url`` at the venue, or
at any server that answers the same paths (the tests run a local one serving recorded
books).
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from typing import Final

from market_intel.adapters.normalize import BookUpdate
from market_intel.adapters.venues.binance import BinanceParser
from market_intel.errors import FeedError, InvalidArgumentError, MalformedFrameError

__all__ = ["BinanceSnapshots"]

_PATHS: Final = {
    "binance": "/api/v3/depth",
    "binance-us": "/api/v3/depth",
    "binance-usdm": "/fapi/v1/depth",
    "binance-coinm": "/dapi/v1/depth",
}


class BinanceSnapshots:
    """Fetch Binance depth snapshots over HTTP.

    Args:
        base_url: ``https://api.binance.com`` (spot), ``https://fapi.binance.com`` (USD-M),
            ``https://dapi.binance.com`` (COIN-M), or a server answering the same paths.
        limit: Levels per side to ask for.
        timeout_s: Seconds to wait for an answer.
    """

    def __init__(self, base_url: str, *, limit: int = 1000, timeout_s: float = 10.0) -> None:
        scheme = urllib.parse.urlsplit(base_url).scheme
        if scheme not in ("http", "https"):
            raise InvalidArgumentError(
                f"BinanceSnapshots.base_url: {base_url!r}; expected an http(s) URL"
            )
        if not 1 <= limit <= 5000:
            raise InvalidArgumentError(f"BinanceSnapshots.limit: {limit!r}; expected 1..5000")
        self.base_url = base_url.rstrip("/")
        self.limit = limit
        self.timeout_s = timeout_s
        self.fetched = 0

    def __call__(self, venue: str, symbol: str) -> BookUpdate:
        """Fetch the snapshot of a venue's symbol (canonical, ``BTC-USDT``).

        Raises:
            InvalidArgumentError: ``venue`` is not a Binance venue.
            FeedError: The request failed; the error names the URL.
            MalformedFrameError: The answer is not a depth snapshot.
        """
        path = _PATHS.get(venue)
        if path is None:
            raise InvalidArgumentError(
                f"venue: {venue!r} has no snapshot endpoint; expected one of {', '.join(_PATHS)}"
            )
        raw = symbol.replace("-PERP", "_PERP").replace("-", "")
        query = urllib.parse.urlencode({"symbol": raw, "limit": self.limit})
        url = f"{self.base_url}{path}?{query}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                body = response.read()
        except OSError as e:
            raise FeedError(f"snapshot {url}: {e}") from e
        parsed = BinanceParser(venue).parse_snapshot(body, time.time_ns(), symbol)
        books = [u for u in parsed.updates if isinstance(u, BookUpdate) and u.snapshot]
        if len(books) != 1:
            raise MalformedFrameError(venue, "snapshot", body[:80], "a REST depth snapshot")
        self.fetched += 1
        return books[0]
