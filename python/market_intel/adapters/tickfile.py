"""Generic CSV and Parquet tick files read as exact updates through a column mapping.

A ``ColumnMapping`` says which column holds what::

    mapping = ColumnMapping(
        time="time", time_unit="ms", fixed_symbol="BTC-USDT", fixed_venue="binance",
        price="price", size="qty", side="is_buyer_maker", side_is_buyer_maker=True,
        trade_id="id",
    )
    for item in read_ticks("trades.csv", mapping, kind="trade"):
        ...  # TradeUpdate, or MalformedFrameError for a row that cannot be read

Exactness: CSV cells are read as text and prices and sizes parsed with ``parse_decimal``.
Parquet decimal and integer columns are exact; string columns are parsed like CSV cells;
float columns are converted with ``Decimal(repr(x))``: the shortest decimal that reads back
as the same double, which is the decimal that was written whenever it had at most 15
significant digits, and otherwise the double's shortest form rather than its exact binary
value. Times are integers (or decimals) of the mapping's unit, ISO 8601 text (UTC unless it
says otherwise), or Parquet timestamps, and become ns exactly.

A row that cannot be read is yielded as a ``MalformedFrameError`` naming the row (1 is the
first data row), the column, the value and what was expected; reading goes on.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from market_intel.adapters.normalize import (
    FeedItem,
    QuoteUpdate,
    TradeUpdate,
    canonical_venue,
    normalize_symbol,
    parse_decimal,
)
from market_intel.enums import Side
from market_intel.errors import ConfigError, InvalidArgumentError, MalformedFrameError

__all__ = ["ColumnMapping", "TimeUnit", "read_ticks"]

TimeUnit = Literal["s", "ms", "us", "ns", "iso"]

_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_SIDES: Final = {"buy": Side.BUY, "b": Side.BUY, "sell": Side.SELL, "s": Side.SELL}
_TRUE: Final = frozenset(("true", "1", "t", "yes"))
_FALSE: Final = frozenset(("false", "0", "f", "no"))
_ISO: Final = re.compile(
    r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?", re.ASCII
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnMapping:
    """Which column of a tick file holds what. Column names are the file's header names.

    Attributes:
        time: The time column: the exchange's event time.
        time_unit: ``s``, ``ms``, ``us`` or ``ns`` for numbers since the epoch, ``iso`` for
            ISO 8601 text (Parquet timestamp columns carry their own unit).
        receive_time: A column of receive times; without one, an update's receive time is
            its ``time``.
        receive_time_unit: The unit of ``receive_time``; by default ``time_unit``.
        symbol: The symbol column; or ``fixed_symbol`` for one symbol for every row.
        fixed_symbol: The symbol of every row.
        venue: The venue column; or ``fixed_venue``.
        fixed_venue: The venue of every row.
        price: Trades: the price column.
        size: Trades: the size column.
        side: Trades: the aggressor side column (``buy``/``sell``/``b``/``s``, any case), or
            with ``side_is_buyer_maker`` a column of buyer-is-maker flags (true: the
            aggressor sold); without one, the side is unknown (``None``).
        side_is_buyer_maker: Read ``side`` as buyer-is-maker flags.
        trade_id: Trades: the trade id column (an integer); without one, ids are 0.
        bid: Quotes: the best bid column.
        ask: Quotes: the best ask column.
        bid_size: Quotes: the best bid size column.
        ask_size: Quotes: the best ask size column.
        update_id: Quotes: the update id column.

    Raises:
        ConfigError: Every violation at once: a symbol or venue given neither or both ways,
            an unknown time unit, an empty column name.
    """

    time: str
    time_unit: TimeUnit = "ns"
    receive_time: str | None = None
    receive_time_unit: TimeUnit | None = None
    symbol: str | None = None
    fixed_symbol: str | None = None
    venue: str | None = None
    fixed_venue: str | None = None
    price: str | None = None
    size: str | None = None
    side: str | None = None
    side_is_buyer_maker: bool = False
    trade_id: str | None = None
    bid: str | None = None
    ask: str | None = None
    bid_size: str | None = None
    ask_size: str | None = None
    update_id: str | None = None

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for name in ("time_unit", "receive_time_unit"):
            unit = getattr(self, name)
            if unit not in _UNIT_NS and unit != "iso" and not (name[0] == "r" and unit is None):
                problems.append((name, f"{unit!r} is not one of 's', 'ms', 'us', 'ns', 'iso'"))
        for name, fixed in (("symbol", "fixed_symbol"), ("venue", "fixed_venue")):
            if (getattr(self, name) is None) == (getattr(self, fixed) is None):
                problems.append((name, f"give exactly one of {name} (a column) and {fixed}"))
        for item in fields(self):
            value = getattr(self, item.name)
            if (
                item.name not in ("time_unit", "side_is_buyer_maker")
                and value is not None
                and (not isinstance(value, str) or not value)
            ):
                problems.append((item.name, f"{value!r}; expected a non-empty string"))
        if problems:
            raise ConfigError(problems, source="ColumnMapping")

    def columns(self, kind: Literal["trade", "quote"]) -> list[str]:
        """Return the columns a file must have to be read as ``kind`` ticks.

        Raises:
            InvalidArgumentError: ``kind`` is neither, or the mapping lacks a column the
                kind needs (trades need price and size; quotes a bid or an ask).
        """
        if kind == "trade":
            if self.price is None or self.size is None:
                raise InvalidArgumentError("ColumnMapping: trades need the price and size columns")
            wanted = [self.price, self.size, self.side, self.trade_id]
        elif kind == "quote":
            if self.bid is None and self.ask is None:
                raise InvalidArgumentError("ColumnMapping: quotes need a bid or an ask column")
            wanted = [self.bid, self.ask, self.bid_size, self.ask_size, self.update_id]
        else:
            raise InvalidArgumentError(f"kind: {kind!r}; expected 'trade' or 'quote'")
        common = [self.time, self.receive_time, self.symbol, self.venue]
        return list(dict.fromkeys(c for c in (*common, *wanted) if c is not None))


def read_ticks(
    path: str | os.PathLike[str],
    mapping: ColumnMapping,
    *,
    kind: Literal["trade", "quote"] = "trade",
) -> Iterator[FeedItem]:
    """Yield the ticks of a CSV or Parquet file as updates, in file order.

    Args:
        path: A ``.csv`` file (UTF-8, a header row, comma-separated) or a ``.parquet``
            file.
        mapping: Which column holds what.
        kind: ``trade`` gives ``TradeUpdate``s, ``quote`` ``QuoteUpdate``s.

    Yields:
        An update per row, or the ``MalformedFrameError`` of a row that cannot be read.

    Raises:
        InvalidArgumentError: The suffix is neither, ``kind`` is neither, the mapping lacks
            a column ``kind`` needs, or the file lacks a mapped column.
        OSError: The file cannot be read.
    """
    path = Path(path)
    wanted = mapping.columns(kind)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path, wanted)
    elif suffix in (".parquet", ".pq"):
        rows = _parquet_rows(path, wanted)
    else:
        raise InvalidArgumentError(f"path: {os.fspath(path)!r}; expected a .csv or .parquet file")
    reader = _RowReader(mapping, kind, path.name)
    return (reader.read(number, row) for number, row in rows)


def _missing(path: Path, header: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [column for column in wanted if column not in header]
    if missing:
        raise InvalidArgumentError(
            f"path: {path.name!r} has no column {', '.join(map(repr, missing))}; "
            f"its columns are {', '.join(map(repr, header))}"
        )


def _csv_rows(path: Path, wanted: list[str]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    with _open_csv(path) as handle:
        header = next(csv.reader(handle), [])
    _missing(path, header, wanted)
    return _csv_iter(path, header)


def _open_csv(path: Path) -> Any:
    return path.open(newline="", encoding="utf-8", errors="surrogateescape")


def _csv_iter(path: Path, header: list[str]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    width = len(header)
    with _open_csv(path) as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for number, cells in enumerate(reader, 1):
            if len(cells) != width:
                yield number, {"": cells}
            else:
                yield number, dict(zip(header, cells, strict=True))


def _parquet_rows(path: Path, wanted: list[str]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    _missing(path, source.schema_arrow.names, wanted)
    return _parquet_iter(source, wanted, pa)


def _parquet_iter(
    source: Any, wanted: list[str], pa: Any
) -> Iterator[tuple[int, Mapping[str, Any]]]:
    number = 0
    for batch in source.iter_batches(columns=wanted):
        columns: dict[str, list[Any]] = {}
        for name in wanted:
            array = batch.column(name)
            if pa.types.is_timestamp(array.type):
                array = array.cast(pa.timestamp("ns", tz=array.type.tz)).cast(pa.int64())
                columns[name] = [
                    _Nanoseconds(v) if v is not None else None for v in array.to_pylist()
                ]
            elif pa.types.is_floating(array.type):
                columns[name] = [None if v is None else _Float(v) for v in array.to_pylist()]
            else:
                columns[name] = array.to_pylist()
        for offset in range(batch.num_rows):
            number += 1
            yield number, {name: values[offset] for name, values in columns.items()}


class _Nanoseconds(int):
    """A Parquet timestamp, already in ns."""


class _Float(float):
    """A Parquet float cell, converted with ``Decimal(repr(x))``."""


class _RowReader:
    def __init__(self, mapping: ColumnMapping, kind: str, name: str) -> None:
        self._mapping = mapping
        self._kind = kind
        self._name = name
        self._venue = canonical_venue(mapping.fixed_venue) if mapping.fixed_venue else ""
        self._symbols: dict[tuple[str, str], str] = {}

    def read(self, number: int, row: Mapping[str, Any]) -> FeedItem:
        m = self._mapping
        venue = self._venue or self._name
        try:
            if "" in row:
                raise MalformedFrameError(
                    venue, f"row {number}", row[""], "a row with a cell per header column"
                )
            if m.venue is not None:
                venue = self._text(row, m.venue, number, venue)
                venue = canonical_venue(venue)
            symbol = self._symbol(row, venue, number)
            exchange_ns = self._time(row, m.time, m.time_unit, number, venue)
            receive_ns = exchange_ns
            if m.receive_time is not None:
                unit = m.receive_time_unit or m.time_unit
                receive_ns = self._time(row, m.receive_time, unit, number, venue)
            if self._kind == "trade":
                return self._trade(row, number, venue, symbol, exchange_ns, receive_ns)
            return self._quote(row, number, venue, symbol, exchange_ns, receive_ns)
        except MalformedFrameError as exc:
            if exc.field.startswith("row "):
                return exc
            located = MalformedFrameError(
                exc.venue, f"row {number}: {exc.field}", exc.value, exc.expected
            )
            located.__cause__ = exc
            return located

    def _trade(
        self,
        row: Mapping[str, Any],
        number: int,
        venue: str,
        symbol: str,
        exchange_ns: int,
        receive_ns: int,
    ) -> TradeUpdate:
        m = self._mapping
        assert m.price is not None and m.size is not None
        side: Side | None = None
        if m.side is not None:
            side = self._side(row, m.side, number, venue)
        trade_id = 0
        if m.trade_id is not None:
            trade_id = self._integer(row, m.trade_id, number, venue)
        return TradeUpdate(
            venue=venue,
            symbol=symbol,
            trade_id=trade_id,
            price=self._decimal(row, m.price, number, venue),
            size=self._decimal(row, m.size, number, venue),
            side=side,
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
        )

    def _quote(
        self,
        row: Mapping[str, Any],
        number: int,
        venue: str,
        symbol: str,
        exchange_ns: int,
        receive_ns: int,
    ) -> QuoteUpdate:
        m = self._mapping
        values = {
            name: None if column is None else self._decimal(row, column, number, venue, True)
            for name, column in (
                ("bid", m.bid),
                ("ask", m.ask),
                ("bid_size", m.bid_size),
                ("ask_size", m.ask_size),
            )
        }
        update_id = 0
        if m.update_id is not None:
            update_id = self._integer(row, m.update_id, number, venue)
        return QuoteUpdate(
            venue=venue,
            symbol=symbol,
            update_id=update_id,
            exchange_ns=exchange_ns,
            receive_ns=receive_ns,
            **values,
        )

    def _symbol(self, row: Mapping[str, Any], venue: str, number: int) -> str:
        m = self._mapping
        raw = m.fixed_symbol
        if m.symbol is not None:
            raw = self._text(row, m.symbol, number, venue)
        assert raw is not None
        key = (venue, raw)
        symbol = self._symbols.get(key)
        if symbol is None:
            symbol = normalize_symbol(venue, raw)
            if len(self._symbols) < 4096:
                self._symbols[key] = symbol
        return symbol

    def _fail(self, venue: str, number: int, column: str, value: object, expected: str) -> None:
        raise MalformedFrameError(venue, f"row {number}: {column}", value, expected)

    def _text(self, row: Mapping[str, Any], column: str, number: int, venue: str) -> str:
        value = row[column]
        if not isinstance(value, str) or not value:
            self._fail(venue, number, column, value, "a non-empty text")
        return str(value)

    def _decimal(
        self,
        row: Mapping[str, Any],
        column: str,
        number: int,
        venue: str,
        optional: bool = False,
    ) -> Any:
        value = row[column]
        if optional and (value is None or value == ""):
            return None
        if isinstance(value, str):
            return parse_decimal(value, venue=venue, field=f"row {number}: {column}")
        if isinstance(value, Decimal):
            if value.is_finite():
                return value
        elif isinstance(value, _Float):
            if value == value and abs(value) != float("inf"):
                return Decimal(repr(float(value)))
        elif isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        self._fail(venue, number, column, value, "a finite decimal number")
        return None  # pragma: no cover

    def _integer(self, row: Mapping[str, Any], column: str, number: int, venue: str) -> int:
        value = row[column]
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return int(value)
        self._fail(venue, number, column, value, "a non-negative integer")
        return 0  # pragma: no cover

    def _side(self, row: Mapping[str, Any], column: str, number: int, venue: str) -> Side:
        value = row[column]
        if self._mapping.side_is_buyer_maker:
            flag = value if isinstance(value, bool) else None
            if isinstance(value, str):
                lowered = value.lower()
                flag = True if lowered in _TRUE else False if lowered in _FALSE else None
            if flag is None:
                self._fail(venue, number, column, value, "a buyer-is-maker flag (true/false)")
            return Side.SELL if flag else Side.BUY
        side = _SIDES.get(value.lower()) if isinstance(value, str) else None
        if side is None:
            self._fail(venue, number, column, value, "'buy' or 'sell' (or 'b'/'s')")
        assert side is not None
        return side

    def _time(
        self, row: Mapping[str, Any], column: str, unit: TimeUnit, number: int, venue: str
    ) -> int:
        value = row[column]
        field = f"row {number}: {column}"
        if isinstance(value, _Nanoseconds):
            return int(value)
        if unit == "iso":
            if isinstance(value, str):
                return _iso_ns(value, venue, field)
            self._fail(venue, number, column, value, "an ISO 8601 time")
        scale = _UNIT_NS[unit]
        if isinstance(value, int) and not isinstance(value, bool):
            return value * scale
        amount: Decimal | None = None
        if isinstance(value, str):
            amount = parse_decimal(value, venue=venue, field=field) * scale
        elif isinstance(value, Decimal) and value.is_finite():
            amount = value * scale
        if amount is None or amount != amount.to_integral_value() or amount < 0:
            self._fail(venue, number, column, value, f"a time in whole ns, given in {unit}")
        assert amount is not None
        return int(amount)


def _iso_ns(text: str, venue: str, field: str) -> int:
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise MalformedFrameError(
            venue, field, text, "an ISO 8601 time such as '2024-08-08T23:54:00.1Z'"
        )
    head, fraction, zone = match.groups()
    if zone is None or zone == "Z":
        zone = "+00:00"
    try:
        moment = datetime.fromisoformat(head + zone)
    except ValueError:
        raise MalformedFrameError(venue, field, text, "a valid calendar time") from None
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + (int(fraction.ljust(9, "0")) if fraction else 0)
