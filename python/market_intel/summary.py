"""Per-symbol accumulators over batches of market data records, vectorized with numpy.

Both accumulators take ``MESSAGE_DTYPE`` batches through ``update(batch)`` and ignore rows
whose ``type`` is not ``MARKET_DATA``. Their results do not depend on how the stream is cut
into batches: counts and integer sums are order-free, float sums are added row by row in
stream order (``np.add.at``), and "last" values are the row with the greatest
``(receive_ns, position in the stream)``.

- ``SymbolSummary``: per (venue, symbol) frames by kind, receive time span, last trade price,
  last quote, traded volume (exact, as ``Decimal``), notional and VWAP.
- ``SequenceCheck``: per (venue, symbol, kind) update ids or trade ids must increase;
  duplicates, regressions and trade id gaps are counted, and so are receive time regressions
  in the stream as a whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from market_intel.enums import MarketDataKind, MessageType
from market_intel.errors import MessageValidationError

__all__ = [
    "VOLUME_DECIMALS",
    "SequenceCheck",
    "SequenceReport",
    "SequenceStats",
    "SymbolStats",
    "SymbolSummary",
]

VOLUME_DECIMALS: Final = 8
"""Trade sizes are summed exactly as integers of 10**-8 (Binance quantities have at most 8
decimals)."""

_SCALE: Final = 10.0**VOLUME_DECIMALS
_MAX_UNITS: Final = 2**52  # below this the integer of 10**-8 units is recovered exactly
_KINDS: Final = 5  # counted kinds: 0 (none or unknown), QUOTE, TRADE, DEPTH, SNAPSHOT
_NO_TIME: Final = np.iinfo(np.int64).min
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)  # the 64-bit golden ratio, a multiplicative hash

Records = NDArray[np.void]


@dataclass(frozen=True, slots=True)
class SymbolStats:
    """What ``SymbolSummary`` knows about one (venue, symbol).

    Attributes:
        venue: The venue.
        symbol: The symbol.
        frames: Market data rows of any kind.
        quotes: QUOTE rows.
        trades: TRADE rows.
        depth_updates: DEPTH rows.
        snapshots: SNAPSHOT rows.
        first_receive_ns: The earliest ``receive_ns``.
        last_receive_ns: The latest ``receive_ns``.
        last_price: The price of the last trade; NaN before any.
        bid: The bid of the last quote; NaN before any.
        ask: The ask of the last quote; NaN before any.
        volume: The sum of trade sizes, exact (in the venue's quantity unit: base asset on
            spot and USD-M, contracts on COIN-M).
        notional: The sum of price times size over trades.
        vwap: ``notional / volume``; NaN while the volume is 0.
    """

    venue: str
    symbol: str
    frames: int
    quotes: int
    trades: int
    depth_updates: int
    snapshots: int
    first_receive_ns: int
    last_receive_ns: int
    last_price: float
    bid: float
    ask: float
    volume: Decimal
    notional: float
    vwap: float

    @property
    def frames_by_kind(self) -> dict[MarketDataKind, int]:
        """Return the row count of each market data kind."""
        return {
            MarketDataKind.QUOTE: self.quotes,
            MarketDataKind.TRADE: self.trades,
            MarketDataKind.DEPTH: self.depth_updates,
            MarketDataKind.SNAPSHOT: self.snapshots,
        }


@dataclass(frozen=True, slots=True)
class SequenceStats:
    """The id sequence of one (venue, symbol, kind): ``update_id`` (the trade id for trades).

    Attributes:
        venue: The venue.
        symbol: The symbol.
        kind: The market data kind (a ``MarketDataKind`` when it is a known one).
        count: Rows seen.
        first_id: The first id seen.
        last_id: The last id seen.
        duplicates: Rows whose id equals the previous row's.
        out_of_order: Rows whose id is below the previous row's.
        gaps: For trades, rows whose id skips ids after the previous row's (Binance trade
            ids are consecutive per symbol); 0 for other kinds, whose ids may jump.
        missing_ids: For trades, the ids skipped by those gaps.
    """

    venue: str
    symbol: str
    kind: int
    count: int
    first_id: int
    last_id: int
    duplicates: int
    out_of_order: int
    gaps: int
    missing_ids: int


@dataclass(frozen=True, slots=True)
class SequenceReport:
    """What ``SequenceCheck`` found.

    Attributes:
        streams: The stats of every (venue, symbol, kind).
        rows: Market data rows seen.
        receive_regressions: Rows whose ``receive_ns`` is below the previous row's.
    """

    streams: Mapping[tuple[str, str, int], SequenceStats]
    rows: int
    receive_regressions: int

    @property
    def ok(self) -> bool:
        """Whether ids only increase and receive times never go back (gaps are allowed)."""
        return self.receive_regressions == 0 and all(
            s.duplicates == 0 and s.out_of_order == 0 for s in self.streams.values()
        )


class _Groups:
    """Dense ids for the keys of record rows, stable across batches.

    Rows are grouped by a 64-bit hash of their key bytes (an integer sort, far faster than
    sorting structured keys); the grouping is verified against the key bytes and falls
    back to sorting the keys themselves should two keys ever share a hash.
    """

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.fields = fields
        self.keys: list[tuple[Any, ...]] = []
        self._ids: dict[tuple[Any, ...], int] = {}
        # The hashes seen so far, sorted, with their group ids and key bytes: a batch whose
        # keys are all known is grouped by binary search instead of a sort.
        self._digests = np.zeros(0, dtype=np.uint64)
        self._digest_ids = np.zeros(0, dtype=np.intp)
        self._digest_keys = np.zeros((0, 0), dtype=np.uint8)

    def ids(self, rows: Records) -> NDArray[np.intp]:
        """Return each row's group id, adding the keys not seen before."""
        key_bytes, digest = self._hash(rows)
        known = self._digests
        if len(known):
            pos = np.minimum(np.searchsorted(known, digest), len(known) - 1)
            if (known[pos] == digest).all() and (self._digest_keys[pos] == key_bytes).all():
                return self._digest_ids[pos]
        dense = self._ids_by_sorting(rows, key_bytes, digest)
        merged = np.concatenate([known, digest])
        _, first = np.unique(merged, return_index=True)
        all_keys = np.concatenate([self._digest_keys.reshape(-1, key_bytes.shape[1]), key_bytes])
        all_ids = np.concatenate([self._digest_ids, dense])
        self._digests, self._digest_keys, self._digest_ids = (
            merged[first],
            all_keys[first],
            all_ids[first],
        )
        return dense

    def _hash(self, rows: Records) -> tuple[NDArray[np.uint8], NDArray[np.uint64]]:
        n = len(rows)
        columns = [np.ascontiguousarray(rows[f]).view(np.uint8).reshape(n, -1) for f in self.fields]
        width = sum(c.shape[1] for c in columns)
        pad = np.zeros((n, -width % 8), dtype=np.uint8)
        key_bytes = np.ascontiguousarray(np.concatenate([*columns, pad], axis=1))
        words = key_bytes.view(np.uint64)
        digest = np.zeros(n, dtype=np.uint64)
        for column in words.T:
            digest = (digest ^ column) * _MIX
        return key_bytes, digest

    def _ids_by_sorting(
        self, rows: Records, key_bytes: NDArray[np.uint8], digest: NDArray[np.uint64]
    ) -> NDArray[np.intp]:
        n = len(rows)
        _, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
        if not (key_bytes == key_bytes[first[inverse]]).all():  # a hash collision
            void = key_bytes.view(f"V{key_bytes.shape[1]}").reshape(n)
            _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
        dense = np.empty(len(first), dtype=np.intp)
        for i, key in enumerate(zip(*(rows[f][first].tolist() for f in self.fields), strict=True)):
            index = self._ids.get(key)
            if index is None:
                index = self._ids[key] = len(self.keys)
                self.keys.append(key)
            dense[i] = index
        return dense[inverse.reshape(-1)]


def _grow(array: NDArray[Any], size: int, fill: Any) -> NDArray[Any]:
    """Return ``array`` extended along its first axis to ``size`` rows of ``fill``."""
    if len(array) >= size:
        return array
    extra = np.full((size - len(array), *array.shape[1:]), fill, dtype=array.dtype)
    return np.concatenate((array, extra))


def _latest(groups: NDArray[np.intp], receive: NDArray[np.int64]) -> NDArray[np.intp]:
    """Return, per group present, the row with the greatest (receive time, position)."""
    order = np.lexsort((np.arange(len(groups)), receive, groups))
    last = np.flatnonzero(np.r_[groups[order][1:] != groups[order][:-1], True])
    return order[last]


def _kind(value: int) -> int:
    """Return a known kind as its ``MarketDataKind``, any other as the plain number."""
    try:
        return MarketDataKind(value)
    except ValueError:
        return int(value)


def _market_data(batch: Records) -> Records:
    mask = batch["type"] == MessageType.MARKET_DATA
    return batch if mask.all() else batch[mask]


def _size_units(size: NDArray[np.float64]) -> NDArray[np.int64]:
    """Return trade sizes as exact integers of 10**-8, or raise if one is not such a decimal."""
    units = np.rint(size * _SCALE)
    with np.errstate(invalid="ignore"):
        exact = np.isfinite(size) & (np.abs(units) <= _MAX_UNITS) & (units / _SCALE == size)
    if not exact.all():
        bad = float(size[np.flatnonzero(~exact)[0]])
        raise MessageValidationError(
            f"last_size: {bad!r} is not a decimal with at most {VOLUME_DECIMALS} places"
        )
    return units.astype(np.int64)


class SymbolSummary:
    """Accumulate per (venue, symbol) statistics of market data batches.

    Example:
        >>> summary = SymbolSummary()
        >>> for batch in batches:  # doctest: +SKIP
        ...     summary.update(batch)
        >>> stats = summary.snapshot()[("binance", "BTC-USDT")]  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._groups = _Groups(("venue", "symbol"))
        self._counts = np.zeros((0, _KINDS), dtype=np.int64)
        self._first_receive = np.zeros(0, dtype=np.int64)
        self._last_receive = np.zeros(0, dtype=np.int64)
        self._units = np.zeros(0, dtype=np.int64)
        self._notional = np.zeros(0, dtype=np.float64)
        self._trade_receive = np.zeros(0, dtype=np.int64)
        self._last_price = np.zeros(0, dtype=np.float64)
        self._quote_receive = np.zeros(0, dtype=np.int64)
        self._bid = np.zeros(0, dtype=np.float64)
        self._ask = np.zeros(0, dtype=np.float64)

    def update(self, batch: Records) -> None:
        """Add a batch of ``MESSAGE_DTYPE`` records; rows of other types are ignored.

        Raises:
            MessageValidationError: A trade size is not a decimal of at most 8 places.
        """
        rows = _market_data(batch)
        if len(rows) == 0:
            return
        kind = rows["kind"]
        trade = np.flatnonzero(kind == MarketDataKind.TRADE)
        units = _size_units(rows["last_size"][trade])  # validate before changing any state
        group = self._groups.ids(rows)
        self._reserve(len(self._groups.keys))
        receive = rows["receive_ns"]

        kind_slot = np.where(kind < _KINDS, kind, 0)
        self._counts += np.bincount(
            group * _KINDS + kind_slot, minlength=self._counts.size
        ).reshape(self._counts.shape)
        np.minimum.at(self._first_receive, group, receive)
        np.maximum.at(self._last_receive, group, receive)

        if len(trade):
            tgroup = group[trade]
            np.add.at(self._units, tgroup, units)
            np.add.at(self._notional, tgroup, rows["last_price"][trade] * rows["last_size"][trade])
            self._take_latest(
                trade, tgroup, receive, self._trade_receive, (self._last_price, rows["last_price"])
            )
        quote = np.flatnonzero(kind == MarketDataKind.QUOTE)
        if len(quote):
            self._take_latest(
                quote,
                group[quote],
                receive,
                self._quote_receive,
                (self._bid, rows["bid"]),
                (self._ask, rows["ask"]),
            )

    def snapshot(self) -> dict[tuple[str, str], SymbolStats]:
        """Return the statistics of every (venue, symbol) seen, keyed by (venue, symbol)."""
        result = {}
        for i, (venue_raw, symbol_raw) in enumerate(self._groups.keys):
            venue, symbol = venue_raw.decode(), symbol_raw.decode()
            counts = self._counts[i].tolist()
            units = int(self._units[i])
            notional = float(self._notional[i])
            result[(venue, symbol)] = SymbolStats(
                venue=venue,
                symbol=symbol,
                frames=sum(counts),
                quotes=counts[MarketDataKind.QUOTE],
                trades=counts[MarketDataKind.TRADE],
                depth_updates=counts[MarketDataKind.DEPTH],
                snapshots=counts[MarketDataKind.SNAPSHOT],
                first_receive_ns=int(self._first_receive[i]),
                last_receive_ns=int(self._last_receive[i]),
                last_price=float(self._last_price[i]),
                bid=float(self._bid[i]),
                ask=float(self._ask[i]),
                volume=Decimal(units).scaleb(-VOLUME_DECIMALS),
                notional=notional,
                vwap=notional / (units / _SCALE) if units else float("nan"),
            )
        return result

    def _reserve(self, size: int) -> None:
        self._counts = _grow(self._counts, size, 0)
        self._first_receive = _grow(self._first_receive, size, np.iinfo(np.int64).max)
        self._last_receive = _grow(self._last_receive, size, _NO_TIME)
        self._units = _grow(self._units, size, 0)
        self._notional = _grow(self._notional, size, 0.0)
        self._trade_receive = _grow(self._trade_receive, size, _NO_TIME)
        self._last_price = _grow(self._last_price, size, np.nan)
        self._quote_receive = _grow(self._quote_receive, size, _NO_TIME)
        self._bid = _grow(self._bid, size, np.nan)
        self._ask = _grow(self._ask, size, np.nan)

    @staticmethod
    def _take_latest(
        rows: NDArray[np.intp],
        groups: NDArray[np.intp],
        receive: NDArray[np.int64],
        latest_receive: NDArray[np.int64],
        *targets: tuple[NDArray[np.float64], NDArray[np.float64]],
    ) -> None:
        """Store, per group, the values of its latest row if it is not older than the stored.

        A later batch wins a tie, as a later row of the same batch does.
        """
        pick = _latest(groups, receive[rows])
        group, row = groups[pick], rows[pick]
        newer = receive[row] >= latest_receive[group]
        group, row = group[newer], row[newer]
        latest_receive[group] = receive[row]
        for state, column in targets:
            state[group] = column[row]


class SequenceCheck:
    """Check that ids increase per (venue, symbol, kind) and receive times never go back."""

    def __init__(self) -> None:
        self._groups = _Groups(("venue", "symbol", "kind"))
        self._rows = 0
        self._regressions = 0
        self._last_receive: int | None = None
        self._seen = np.zeros(0, dtype=bool)
        self._count = np.zeros(0, dtype=np.int64)
        self._first_id = np.zeros(0, dtype=np.uint64)
        self._last_id = np.zeros(0, dtype=np.uint64)
        self._duplicates = np.zeros(0, dtype=np.int64)
        self._out_of_order = np.zeros(0, dtype=np.int64)
        self._gaps = np.zeros(0, dtype=np.int64)
        self._missing = np.zeros(0, dtype=np.int64)

    def update(self, batch: Records) -> None:
        """Add a batch of ``MESSAGE_DTYPE`` records; rows of other types are ignored."""
        rows = _market_data(batch)
        n = len(rows)
        if n == 0:
            return
        receive = rows["receive_ns"]
        previous = np.empty_like(receive)
        previous[1:] = receive[:-1]
        previous[0] = receive[0] if self._last_receive is None else self._last_receive
        self._regressions += int(np.count_nonzero(receive < previous))
        self._last_receive = int(receive[-1])
        self._rows += n

        group = self._groups.ids(rows)
        size = len(self._groups.keys)
        self._reserve(size)
        order = np.argsort(group, kind="stable")  # each group's rows in stream order
        g = group[order]
        ids = rows["update_id"][order]
        first = np.r_[True, g[1:] != g[:-1]]
        last = np.r_[g[1:] != g[:-1], True]

        prev = np.empty_like(ids)
        prev[1:] = ids[:-1]
        has_prev = ~first
        prev[first] = self._last_id[g[first]]
        has_prev[first] = self._seen[g[first]]
        duplicate = has_prev & (ids == prev)
        backward = has_prev & (ids < prev)
        is_trade = np.array([key[2] == MarketDataKind.TRADE for key in self._groups.keys])
        gap = has_prev & (ids > prev + np.uint64(1)) & is_trade[g]

        self._count += np.bincount(g, minlength=size)
        self._duplicates += np.bincount(g[duplicate], minlength=size)
        self._out_of_order += np.bincount(g[backward], minlength=size)
        self._gaps += np.bincount(g[gap], minlength=size)
        np.add.at(self._missing, g[gap], (ids[gap] - prev[gap] - np.uint64(1)).astype(np.int64))
        new = first & ~self._seen[g]
        self._first_id[g[new]] = ids[new]
        self._last_id[g[last]] = ids[last]
        self._seen[g] = True

    def snapshot(self) -> SequenceReport:
        """Return what was found so far."""
        streams = {}
        for i, (venue_raw, symbol_raw, kind_raw) in enumerate(self._groups.keys):
            venue, symbol = venue_raw.decode(), symbol_raw.decode()
            kind = _kind(kind_raw)
            streams[(venue, symbol, kind)] = SequenceStats(
                venue=venue,
                symbol=symbol,
                kind=kind,
                count=int(self._count[i]),
                first_id=int(self._first_id[i]),
                last_id=int(self._last_id[i]),
                duplicates=int(self._duplicates[i]),
                out_of_order=int(self._out_of_order[i]),
                gaps=int(self._gaps[i]),
                missing_ids=int(self._missing[i]),
            )
        return SequenceReport(
            streams=MappingProxyType(streams),
            rows=self._rows,
            receive_regressions=self._regressions,
        )

    def _reserve(self, size: int) -> None:
        self._seen = _grow(self._seen, size, False)
        self._count = _grow(self._count, size, 0)
        self._first_id = _grow(self._first_id, size, 0)
        self._last_id = _grow(self._last_id, size, 0)
        self._duplicates = _grow(self._duplicates, size, 0)
        self._out_of_order = _grow(self._out_of_order, size, 0)
        self._gaps = _grow(self._gaps, size, 0)
        self._missing = _grow(self._missing, size, 0)
