"""DuckDB over the columnar archive: SQL, trades, quotes and OHLCV bars.

``MarketStore(root)`` opens an in-memory DuckDB database with three views over the archive
that ``ParquetArchive`` writes, so SQL can name them::

    market_data   orders   trades

Each is ``read_parquet(<root>/<table>/*/*/*/*.parquet, hive_partitioning=true)`` with the
partition columns first: ``date`` (DATE), ``venue`` and ``symbol`` (VARCHAR), then the file
columns (``ts`` TIMESTAMPTZ_NS, enumerations as their member names; see
``market_intel.storage.archive``). The file list is read at each query, so files written
since the store opened are seen. A table with no file yet is an empty view of the same
columns.

Partition pruning: a filter on ``date``, ``venue`` or ``symbol`` (``WHERE symbol = ?``)
removes the files of other partitions before any is opened. The helpers turn ``start`` and
``end`` into a ``date`` range as well, so they read only the days they cover.

Caller values are always bound as parameters, never formatted into SQL; the only text built
into SQL is the archive's own file pattern, quoted as a string literal.

Results are ``QueryResult`` objects, materialized as Arrow, with ``.arrow()``, ``.pandas()``
and ``.polars()``; pandas and polars are optional and imported only when asked for::

    with MarketStore("archive") as store:
        bars = store.bars("BTC-USDT", "1m", venue="binance").polars()
        store.query("SELECT venue, count(*) FROM trades GROUP BY venue").pandas()

Helpers:
    ``trades`` and ``bars`` read public trades: ``market_data`` rows of kind ``TRADE``
    (``last_price``, ``last_size`` and ``update_id`` named ``price``, ``size`` and
    ``trade_id``). Our own fills are the ``trades`` view, for SQL. ``quotes`` reads rows of
    kind ``QUOTE``. Times are the rows' ``ts`` (exchange time, else receive time); ``start``
    is inclusive and ``end`` exclusive.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

import duckdb
import pyarrow as pa

from market_intel.errors import InvalidArgumentError, StorageError
from market_intel.storage.archive import NS_PER_DAY, TABLES, table_schema

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = ["MarketStore", "QueryResult"]

Time = datetime | date | int
"""A point in time: an aware ``datetime``, a ``date`` (its midnight, UTC) or ns since the
epoch."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_INTERVAL = re.compile(r"([1-9][0-9]*)(ns|us|ms|s|m|h|d)")
_UNIT_NS: Final = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3_600 * 10**9,
    "d": NS_PER_DAY,
}
_GLOB_CHARACTERS: Final = frozenset("*?[]{}")
_HIVE_TYPES: Final = "{'date': 'DATE', 'venue': 'VARCHAR', 'symbol': 'VARCHAR'}"
_SELECT: Final = "SELECT date, venue, symbol, * EXCLUDE (date, venue, symbol) FROM "

_TRADES: Final = """
SELECT ts, venue, symbol, last_price AS price, last_size AS size, update_id AS trade_id,
       exchange_ns, receive_ns, id
FROM market_data
WHERE kind = 'TRADE' AND symbol = $symbol{filters}
ORDER BY ts, venue, trade_id, id
"""
_QUOTES: Final = """
SELECT ts, venue, symbol, bid, bid_size, ask, ask_size, update_id, exchange_ns, receive_ns, id
FROM market_data
WHERE kind = 'QUOTE' AND symbol = $symbol{filters}
ORDER BY ts, venue, update_id, id
"""
_BARS: Final = """
SELECT epoch_ns(ts) // $interval * $interval AS bar_ns, venue, symbol,
       first(last_price ORDER BY ts, update_id, id) AS open,
       max(last_price) AS high,
       min(last_price) AS low,
       last(last_price ORDER BY ts, update_id, id) AS close,
       sum(last_size) AS volume,
       count(*) AS trades,
       sum(last_price * last_size) / sum(last_size) AS vwap
FROM market_data
WHERE kind = 'TRADE' AND symbol = $symbol{filters}
GROUP BY ALL
ORDER BY venue, bar_ns
"""


class QueryResult:
    """The rows of a query, held as an Arrow table.

    Args:
        table: The rows.
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def arrow(self) -> pa.Table:
        """Return the rows as a ``pyarrow.Table``."""
        return self._table

    def pandas(self) -> pandas.DataFrame:
        """Return the rows as a pandas ``DataFrame``.

        Raises:
            ModuleNotFoundError: pandas is not installed.
        """
        _optional("pandas")
        return self._table.to_pandas()

    def polars(self) -> polars.DataFrame:
        """Return the rows as a polars ``DataFrame``.

        Raises:
            ModuleNotFoundError: polars is not installed.
        """
        module: Any = _optional("polars")
        frame: polars.DataFrame = module.from_arrow(self._table)
        return frame

    @property
    def column_names(self) -> list[str]:
        """The names of the columns."""
        return list(self._table.column_names)

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def __repr__(self) -> str:
        return f"QueryResult({self._table.num_rows} rows: {', '.join(self.column_names)})"


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"{name} is not installed; install it (pip install 'market-intel[frames]') to "
            f"get results as {name} frames, or use .arrow()",
            name=name,
        ) from exc


def _name(value: object, field: str, *, required: bool) -> str:
    """Check a symbol or venue the way messages do: ASCII, no NUL, at most 16 characters."""
    least = 1 if required else 0
    if (
        not isinstance(value, str)
        or not least <= len(value) <= 16
        or not value.isascii()
        or "\x00" in value
    ):
        raise InvalidArgumentError(
            f"{field}: {value!r:.60} is not a {field}; expected a str of {least} to 16 ASCII "
            "characters without NUL"
        )
    return value


def _ns(value: object, field: str) -> int:
    """Return a point in time as ns since the epoch."""
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if 0 <= value < 2**63:
            return value
    elif isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            return (value - _EPOCH) // timedelta(microseconds=1) * 1_000
        raise InvalidArgumentError(
            f"{field}: {value.isoformat()} is a naive datetime; expected an aware datetime "
            "(with tzinfo, e.g. UTC), a date or ns since the epoch"
        )
    elif isinstance(value, date):
        return (value - _EPOCH.date()).days * NS_PER_DAY
    raise InvalidArgumentError(
        f"{field}: {value!r:.60} is not a time; expected an aware datetime, a date or an int "
        "of ns since the epoch in [0, 2**63)"
    )


def _interval_ns(interval: object) -> int:
    if isinstance(interval, timedelta):
        ns = interval // timedelta(microseconds=1) * 1_000
        if ns > 0:
            return ns
    elif isinstance(interval, str) and (match := _INTERVAL.fullmatch(interval)):
        return int(match[1]) * _UNIT_NS[match[2]]
    raise InvalidArgumentError(
        f"interval: {interval!r:.60} is not a bar interval; expected a positive count and a "
        "unit such as '1s', '5m', '1h' or '1d' (units ns, us, ms, s, m, h, d) or a positive "
        "timedelta"
    )


def _iso(ns: int) -> str:
    """Return a time as a TIMESTAMPTZ literal with its UTC offset (exact to the ns)."""
    seconds, fraction = divmod(ns, 10**9)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{fraction:09d}+00:00"


def _day(ns: int) -> date:
    return (_EPOCH + timedelta(days=ns // NS_PER_DAY)).date()


def _filters(
    symbol: object, start: object, end: object, venue: object
) -> tuple[str, dict[str, object]]:
    """Return the WHERE conditions after the symbol's and their parameters."""
    params: dict[str, object] = {"symbol": _name(symbol, "symbol", required=True)}
    conditions = []
    if venue is not None:
        params["venue"] = _name(venue, "venue", required=False)
        conditions.append("venue = $venue")
    start_ns = None if start is None else _ns(start, "start")
    end_ns = None if end is None else _ns(end, "end")
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise InvalidArgumentError(
            f"end: {end!r:.60} is not after start {start!r:.60}; expected end > start"
        )
    if start_ns is not None:
        params |= {"start": _iso(start_ns), "first_day": _day(start_ns)}
        conditions += ["date >= $first_day", "ts >= $start::TIMESTAMPTZ_NS"]
    if end_ns is not None:
        params |= {"end": _iso(end_ns), "last_day": _day(end_ns - 1)}
        conditions += ["date <= $last_day", "ts < $end::TIMESTAMPTZ_NS"]
    return "".join(f" AND {c}" for c in conditions), params


class MarketStore:
    """DuckDB over a ``ParquetArchive``: SQL over the views ``market_data``, ``orders`` and
    ``trades``, and helpers for trades, quotes and bars; see the module docstring.

    Calls may come from several threads; they run one at a time.

    Args:
        root: The archive's directory.
        threads: DuckDB's worker threads; DuckDB's default (one per core) when ``None``.

    Raises:
        InvalidArgumentError: ``root`` is not a directory, or its path has a glob character
            (``* ? [ ] { }``); ``threads`` is not a positive int.
    """

    def __init__(self, root: str | os.PathLike[str], *, threads: int | None = None) -> None:
        path = Path(root).absolute()
        if not path.is_dir():
            raise InvalidArgumentError(
                f"root: {os.fspath(root)!r} is not a directory; expected an archive's root"
            )
        if _GLOB_CHARACTERS & set(str(path)):
            raise InvalidArgumentError(
                f"root: {str(path)!r} has a glob character; expected a path without * ? [ ] {{ }}"
            )
        config: dict[str, str | bool | int | float | list[str]] = {}
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise InvalidArgumentError(
                    f"threads: {threads!r:.60} is not a thread count; expected an int >= 1 or None"
                )
            config["threads"] = threads
        self._root = path
        self._lock = threading.Lock()
        self._connection = duckdb.connect(":memory:", config=config)
        self._on_files: set[str] = set()
        zone = self._connection.sql("SELECT current_setting('TimeZone')").fetchall()
        self._time_zone = str(zone[0][0])  # the zone DuckDB labels its timestamps with
        for table in TABLES:
            empty = table_schema(table)
            partitions = [("date", pa.date32()), ("venue", pa.string()), ("symbol", pa.string())]
            for name, kind in reversed(partitions):
                empty = empty.insert(0, pa.field(name, kind))
            self._connection.register(f"_empty_{table}", empty.empty_table())
            self._connection.execute(f"CREATE VIEW {table} AS {_SELECT}_empty_{table}")
        self._refresh()

    @property
    def root(self) -> Path:
        """The archive's directory (absolute)."""
        return self._root

    def query(
        self, sql: str, params: Sequence[object] | Mapping[str, object] | None = None
    ) -> QueryResult:
        """Run SQL over the archive's views and return its rows.

        Args:
            sql: One or more statements; the rows are the last one's.
            params: Values for the ``?`` (a sequence) or ``$name`` (a mapping) parameters.

        Raises:
            InvalidArgumentError: ``sql`` is not a str.
            StorageError: DuckDB refused or failed the query (its message says why).
        """
        if not isinstance(sql, str):
            raise InvalidArgumentError(f"sql: {sql!r:.60} is not a str; expected SQL text")
        with self._lock:
            self._refresh()
            try:
                relation = self._connection.sql(sql, params=params)
                table = None if relation is None else relation.to_arrow_table()
            except duckdb.Error as exc:
                raise StorageError(f"query failed: {exc}") from exc
        return QueryResult(table if table is not None else pa.table({}))

    def trades(
        self,
        symbol: str,
        start: Time | None = None,
        end: Time | None = None,
        venue: str | None = None,
    ) -> QueryResult:
        """Return the public trades of a symbol in a time range, oldest first.

        Args:
            symbol: The symbol.
            start: The earliest ``ts`` (inclusive); no bound when ``None``.
            end: The ``ts`` to stop before (exclusive); no bound when ``None``.
            venue: Only this venue's trades; every venue's when ``None``.

        Returns:
            Columns ``ts, venue, symbol, price, size, trade_id, exchange_ns, receive_ns, id``,
            ordered by ``ts`` then venue and trade id.

        Raises:
            InvalidArgumentError: A symbol, venue or time is not valid, or ``end`` is not
                after ``start``.
            StorageError: The query failed.
        """
        filters, params = _filters(symbol, start, end, venue)
        return self.query(_TRADES.format(filters=filters), params)

    def quotes(
        self,
        symbol: str,
        start: Time | None = None,
        end: Time | None = None,
        venue: str | None = None,
    ) -> QueryResult:
        """Return the top-of-book quotes of a symbol in a time range, oldest first.

        Args:
            symbol: The symbol.
            start: The earliest ``ts`` (inclusive); no bound when ``None``.
            end: The ``ts`` to stop before (exclusive); no bound when ``None``.
            venue: Only this venue's quotes; every venue's when ``None``.

        Returns:
            Columns ``ts, venue, symbol, bid, bid_size, ask, ask_size, update_id,
            exchange_ns, receive_ns, id``, ordered by ``ts`` then venue and update id.

        Raises:
            InvalidArgumentError: A symbol, venue or time is not valid, or ``end`` is not
                after ``start``.
            StorageError: The query failed.
        """
        filters, params = _filters(symbol, start, end, venue)
        return self.query(_QUOTES.format(filters=filters), params)

    def bars(
        self,
        symbol: str,
        interval: str | timedelta = "1m",
        start: Time | None = None,
        end: Time | None = None,
        venue: str | None = None,
    ) -> QueryResult:
        """Return OHLCV bars of a symbol's public trades, one per venue and interval.

        A bar covers ``[ts, ts + interval)``, aligned to the epoch (``1m`` bars start on
        the minute). Intervals without a trade have no bar. Open and close are the first and
        last trade by ``ts``, then trade id.

        Args:
            symbol: The symbol.
            interval: The bar length: a count and a unit (``"100ms"``, ``"1s"``, ``"5m"``,
                ``"1h"``, ``"1d"``; units ns, us, ms, s, m, h, d) or a ``timedelta``.
            start: The earliest trade ``ts`` (inclusive); no bound when ``None``.
            end: The trade ``ts`` to stop before (exclusive); no bound when ``None``.
            venue: Only this venue's trades; a bar series per venue when ``None``.

        Returns:
            Columns ``ts`` (the bar's start, timestamp[ns] in UTC), ``venue, symbol, open,
            high, low, close, volume`` (the sum of sizes), ``trades`` (their count) and
            ``vwap`` (sum of price x size over volume), ordered by venue, then ``ts``.

        Raises:
            InvalidArgumentError: The interval, symbol, venue or a time is not valid, or
                ``end`` is not after ``start``.
            StorageError: The query failed.
        """
        interval_ns = _interval_ns(interval)
        filters, params = _filters(symbol, start, end, venue)
        params["interval"] = interval_ns
        table = self.query(_BARS.format(filters=filters), params).arrow()
        starts = table.column("bar_ns").cast(pa.timestamp("ns", tz=self._time_zone))
        return QueryResult(table.set_column(0, "ts", starts))

    def close(self) -> None:
        """Close the DuckDB connection; the store cannot be used afterwards."""
        with self._lock:
            self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MarketStore({os.fspath(self._root)!r})"

    def _refresh(self) -> None:
        """Point the view of each table that has its first file now at its files."""
        for table in TABLES:
            if table in self._on_files:
                continue
            if next((self._root / table).glob("*/*/*/*.parquet"), None) is None:
                continue
            pattern = str(self._root / table / "*" / "*" / "*" / "*.parquet")
            literal = "'" + pattern.replace("'", "''") + "'"
            source = f"read_parquet({literal}, hive_partitioning=true, hive_types={_HIVE_TYPES})"
            self._connection.execute(f"CREATE OR REPLACE VIEW {table} AS {_SELECT}{source}")
            self._on_files.add(table)
