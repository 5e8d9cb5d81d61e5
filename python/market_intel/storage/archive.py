"""The columnar archive: market data, orders and trades written to Parquet files.

``ParquetArchive`` takes batches of ``MESSAGE_DTYPE`` records (or ``CoreMessage`` objects),
checks them and converts them to Arrow columns at once, buffers them per table and partition,
and writes each table's buffer as zstd-compressed Parquet files, one per partition, in a hive
layout::

    <root>/
    ├── market_data/                      MARKET_DATA records
    │   └── date=2024-08-08/              UTC date of the row's ts
    │       └── venue=binance/
    │           └── symbol=BTCUSDT/
    │               ├── part-000000.parquet
    │               └── part-000001.parquet
    ├── orders/                           ORDER records
    └── trades/                           TRADE records (fills)

Partitions:
    ``date`` is the UTC date of the row's event time ``ts``: ``exchange_ns`` when the venue
    gave one (non-zero), else ``receive_ns`` when set, else ``created_ns``. ``venue`` and
    ``symbol`` are the record's strings; a character other than ``A-Z a-z 0-9 _ . - ~`` is
    percent-encoded in the directory name (``BTC/USD`` is ``BTC%2FUSD``), which DuckDB and
    pyarrow decode back. The partition values live only in the path, not in
    the files.

Columns (in each file; the partition columns come from the path):
    - ``ts``: timestamp[ns, tz=UTC], the event time above.
    - Integers as themselves: ``id``, ``update_id``, ``order_id``, ``trade_id``,
      ``correlation_id`` and ``causation_id`` uint64; ``exchange_ns``, ``receive_ns``,
      ``created_ns`` and ``published_ns`` int64 ns since the epoch (0 where unset), exactly
      as in the record; ``flags`` uint8.
    - Enumerations (``kind``, ``priority``, ``side``, ``order_type``, ``time_in_force``,
      ``status``, ``liquidity``) as dictionary-encoded strings holding the member name
      (``"TRADE"``, ``"BUY"``), so SQL reads ``WHERE kind = 'TRADE'``.
    - Strings (``source``, ``client_order_id``) as dictionary-encoded UTF-8.
    - Prices and sizes as float64, NaN where a message does not carry one. A float64 is the
      nearest double to the venue's decimal string; Python's shortest ``repr`` gives that
      string back exactly for values of up to 15 significant digits.

    ``market_data``: ts, kind, bid, bid_size, ask, ask_size, last_price, last_size, volume,
    update_id, then the common columns. ``orders``: ts, order_id, client_order_id, side,
    order_type, time_in_force, status, price, quantity, filled_quantity, then the common
    columns. ``trades``: ts, trade_id, order_id, client_order_id, side, liquidity, price,
    quantity, fee, then the common columns. Common columns: exchange_ns, receive_ns, id,
    created_ns, published_ns, correlation_id, causation_id, priority, flags, source.

Within a ``market_data`` file the rows of each kind are together (QUOTE, TRADE, DEPTH, then
SNAPSHOT), each kind in input order, so a query for one kind (``WHERE kind = 'TRADE'``) skips
the row groups of the others by their statistics. ``orders`` and ``trades`` files keep the
input order.

Files are never overwritten and never visible half-written: each is written to a hidden
temporary name (``.part-<pid>-<token>.tmp``) in its partition directory, fsynced, and
published under the next free ``part-<n>.parquet`` name with a hard link, which fails rather
than replace an existing file; the temporary name is then removed. A crash leaves at most a
hidden temporary file, which no reader's ``*.parquet`` pattern matches. The file system must
support hard links (every local Linux file system does).

Rows kept: records of type MARKET_DATA, ORDER and TRADE whose payload is in the record
(``flags`` without ``FLAG_OBJECT``). Other rows are skipped and counted.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from market_intel import _config_schema as schema
from market_intel._config_schema import Boolean, Integer, kind
from market_intel.codec import to_records
from market_intel.enums import (
    Liquidity,
    MarketDataKind,
    MessageType,
    OrderStatus,
    OrderType,
    Priority,
    Side,
    TimeInForce,
)
from market_intel.errors import DtypeMismatchError, InvalidArgumentError, StorageError
from market_intel.messages import CoreMessage
from market_intel.records import FLAG_OBJECT, MESSAGE_DTYPE, RECORD_SIZE

__all__ = [
    "TABLES",
    "ArchiveStatistics",
    "ParquetArchive",
    "ParquetArchiveConfig",
    "partition_path",
    "table_schema",
]

Records = npt.NDArray[np.void]

TABLES: Final = ("market_data", "orders", "trades")
"""The archive's tables, one directory each under the root."""

NS_PER_DAY: Final = 86_400 * 10**9
_PART = re.compile(r"part-(\d+)\.parquet")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_TS_TYPE: Final = pa.timestamp("ns", tz="UTC")

# ---------------------------------------------------------------------------------------------
# Columns


_ENUMS: Final[dict[str, type[IntEnum]]] = {
    "kind": MarketDataKind,
    "priority": Priority,
    "side": Side,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "status": OrderStatus,
    "liquidity": Liquidity,
}
_TEXTS: Final = frozenset({"source", "client_order_id"})
_COMMON: Final = (
    "exchange_ns", "receive_ns", "id", "created_ns", "published_ns", "correlation_id",
    "causation_id", "priority", "flags", "source",
)  # fmt: skip
_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "market_data": (
        "kind", "bid", "bid_size", "ask", "ask_size", "last_price", "last_size", "volume",
        "update_id", *_COMMON,
    ),
    "orders": (
        "order_id", "client_order_id", "side", "order_type", "time_in_force", "status", "price",
        "quantity", "filled_quantity", *_COMMON,
    ),
    "trades": (
        "trade_id", "order_id", "client_order_id", "side", "liquidity", "price", "quantity",
        "fee", *_COMMON,
    ),
}  # fmt: skip
_TABLE_OF_TYPE: Final = {
    int(MessageType.MARKET_DATA): "market_data",
    int(MessageType.ORDER): "orders",
    int(MessageType.TRADE): "trades",
}
_DICTIONARY_TYPE: Final = pa.dictionary(pa.int32(), pa.string())


def _arrow_type(name: str) -> pa.DataType:
    if name in _ENUMS or name in _TEXTS:
        return _DICTIONARY_TYPE
    return pa.from_numpy_dtype(MESSAGE_DTYPE[name])


def table_schema(table: str) -> pa.Schema:
    """Return the Arrow schema of a table's files (without the partition columns).

    Args:
        table: One of ``TABLES``.

    Raises:
        InvalidArgumentError: ``table`` is not one of ``TABLES``.
    """
    if table not in _COLUMNS:
        raise InvalidArgumentError(f"table: {table!r} is not a table; expected one of {TABLES}")
    fields = [pa.field("ts", _TS_TYPE, nullable=False)]
    fields += [pa.field(name, _arrow_type(name), nullable=False) for name in _COLUMNS[table]]
    return pa.schema(fields)


def _encode_value(value: str) -> str:
    """Percent-encode a partition value for a directory name."""
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


@lru_cache(maxsize=4096)
def partition_path(table: str, date: str, venue: str, symbol: str) -> Path:
    """Return a partition's directory relative to the archive root.

    Args:
        table: One of ``TABLES``.
        date: The UTC date, ``YYYY-MM-DD``.
        venue: The venue (may be empty).
        symbol: The symbol.

    Returns:
        ``<table>/date=<date>/venue=<venue>/symbol=<symbol>``, venue and symbol
        percent-encoded where needed.
    """
    return (
        Path(table) / f"date={date}" / f"venue={_encode_value(venue)}"
        / f"symbol={_encode_value(symbol)}"
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Config and statistics


@dataclass(frozen=True, kw_only=True, slots=True)
class ParquetArchiveConfig:
    """How a ``ParquetArchive`` buffers and writes.

    Attributes:
        max_buffered_rows: A table's buffer is written out when it holds this many rows
            (and on ``flush`` and ``close``); each write makes one file per partition.
        row_group_rows: The most rows in one Parquet row group, the unit a query skips by
            its statistics (min and max of each column).
        compression_level: The zstd level, 1 (fastest) to 22 (smallest).
        fsync: Flush each file and its directory to stable storage before it is published.

    Raises:
        ConfigError: A value is invalid (every violation, at once).
    """

    max_buffered_rows: int = field(default=262_144, metadata=kind(Integer(1, 100_000_000)))
    row_group_rows: int = field(default=32_768, metadata=kind(Integer(1_024, 100_000_000)))
    compression_level: int = field(default=3, metadata=kind(Integer(1, 22)))
    fsync: bool = field(default=True, metadata=kind(Boolean()))

    def __post_init__(self) -> None:
        schema.validate(self, "storage.archive")


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveStatistics:
    """What an archive has written, at one moment.

    Attributes:
        rows: Rows written to files, by table.
        rows_buffered: Rows accepted and not yet written.
        rows_skipped: Rows not archived: other message types, or a payload that travels
            only as an object beside the record.
        files: Parquet files written.
        bytes_written: Their size on disk.
        raw_bytes: The size of the written rows as records, 192 bytes each.
        arrow_bytes: The size of the written rows as Arrow columns in memory.
    """

    rows: Mapping[str, int]
    rows_buffered: int
    rows_skipped: int
    files: int
    bytes_written: int
    raw_bytes: int
    arrow_bytes: int

    @property
    def compression_ratio(self) -> float:
        """Record bytes per Parquet byte (``raw_bytes / bytes_written``); 0.0 before any
        file is written. This is the ratio the archive reports."""
        return self.raw_bytes / self.bytes_written if self.bytes_written else 0.0

    @property
    def arrow_compression_ratio(self) -> float:
        """Arrow in-memory bytes per Parquet byte (``arrow_bytes / bytes_written``)."""
        return self.arrow_bytes / self.bytes_written if self.bytes_written else 0.0


# ---------------------------------------------------------------------------------------------
# Checks and conversion


class _Batch:
    """The rows of one table in a batch: their columns, read once and copied out of the
    caller's memory, and their index in the caller's array for error messages."""

    def __init__(self, records: Records, rows: npt.NDArray[np.intp] | None) -> None:
        self.records = records
        self.rows = rows  # None: every row, in order

    def column(self, name: str) -> npt.NDArray[Any]:
        values = self.records[name]
        return values.copy() if self.rows is None else values[self.rows]

    def row(self, index: int) -> int:
        return index if self.rows is None else int(self.rows[index])


def _distinct(values: npt.NDArray[np.bytes_]) -> tuple[list[bytes], npt.NDArray[np.int32]]:
    """Return the distinct values of an S16 column (NUL-padded, in first-seen order) and the
    index of each row's value among them."""
    array = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(values.dtype.itemsize), len(values), [None, pa.py_buffer(values)]
    )
    encoded = array.dictionary_encode()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy()


def _texts(
    batch: _Batch, name: str, *, required: bool = False, ascii_only: bool = False
) -> tuple[list[str], npt.NDArray[np.int32]]:
    """Return a string column's distinct values, decoded, and each row's index among them;
    raise for a value the archive cannot store, naming the first row that has it."""
    values = batch.column(name)
    distinct, indices = _distinct(values)
    texts = []
    for number, raw in enumerate(distinct):
        value = raw.rstrip(b"\x00")
        try:
            text = value.decode("ascii" if ascii_only else "utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or "\x00" in text or (required and not text):
            row = batch.row(int(np.flatnonzero(indices == number)[0]))
            size = f"{'1' if required else '0'} to {values.dtype.itemsize}"
            expected = f"{size} {'ASCII characters' if ascii_only else 'UTF-8 bytes'} without NUL"
            raise InvalidArgumentError(f"records[{row}].{name}: {value!r}; expected {expected}")
        texts.append(text)
    return texts, indices


def _enum(batch: _Batch, name: str) -> pa.DictionaryArray:
    """Return an enum column as member names; raise for a value out of the enumeration."""
    members = sorted(_ENUMS[name], key=int)
    codes = np.full(256, -1, np.int32)
    codes[[int(m) for m in members]] = np.arange(len(members), dtype=np.int32)
    values = batch.column(name)
    indices = codes[values]
    bad = np.flatnonzero(indices < 0)
    if bad.size:
        shown = ", ".join(f"{m.name} ({int(m)})" for m in members)
        raise InvalidArgumentError(
            f"records[{batch.row(int(bad[0]))}].{name}: {int(values[bad[0]])} is not a "
            f"{_ENUMS[name].__name__}; expected one of {shown}"
        )
    return _dictionary(indices, [m.name for m in members])


def _dictionary(indices: npt.NDArray[Any], words: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices), pa.array(words, pa.string()))


def _partitions(batch: _Batch, table: str) -> list[tuple[Path, pa.Table]]:
    """Check and convert a table's rows, split by partition (input order kept in each)."""
    symbols, symbol_index = _texts(batch, "symbol", required=True, ascii_only=True)
    venues, venue_index = _texts(batch, "venue", ascii_only=True)
    exchange, receive = batch.column("exchange_ns"), batch.column("receive_ns")
    fallback = np.where(receive != 0, receive, batch.column("created_ns"))
    event_ns = np.where(exchange != 0, exchange, fallback)
    arrays: list[pa.Array] = [pa.array(event_ns, _TS_TYPE)]
    for name in _COLUMNS[table]:
        if name in _ENUMS:
            arrays.append(_enum(batch, name))
        elif name in _TEXTS:
            words, indices = _texts(batch, name)
            arrays.append(_dictionary(indices, words))
        else:
            arrays.append(pa.array(batch.column(name)))
    data = pa.Table.from_arrays(arrays, schema=table_schema(table))
    day = event_ns // NS_PER_DAY
    key = ((day - day.min()) * len(venues) + venue_index) * len(symbols) + symbol_index
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    if len(starts) > 1:
        data = data.take(pa.array(order))
    out = []
    for start, end in zip(starts.tolist(), [*starts[1:].tolist(), len(key)], strict=True):
        first = int(order[start])
        date = str(np.datetime64(int(day[first]), "D"))
        venue, symbol = venues[venue_index[first]], symbols[symbol_index[first]]
        out.append((partition_path(table, date, venue, symbol), data.slice(start, end - start)))
    return out


def _wide_integers(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if MESSAGE_DTYPE[n].kind in "iu" and MESSAGE_DTYPE[n].itemsize == 8]


_WRITE_OPTIONS: Final = {
    table: {
        "use_dictionary": [name for name in names if name in _ENUMS or name in _TEXTS],
        # ids and times mostly increase: delta encoding shrinks them before zstd does
        "column_encoding": dict.fromkeys(["ts", *_wide_integers(names)], "DELTA_BINARY_PACKED"),
    }
    for table, names in _COLUMNS.items()
}


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# The archive


class ParquetArchive:
    """Market data, orders and trades written to Parquet (zstd), partitioned by date, venue
    and symbol; see the module docstring for the layout and the columns.

    ``write`` checks and converts a batch, then buffers it per table and partition; a table's
    buffer is written when it holds ``config.max_buffered_rows`` rows, and every buffer on
    ``flush`` and ``close``. The methods may be called from several threads. Use it as a
    context manager, or call ``close``::

        with ParquetArchive("archive") as archive:
            archive.write(records)
        archive.statistics().compression_ratio

    Args:
        root: The archive's directory; created if missing.
        config: Buffering and compression; the defaults when ``None``.

    Raises:
        StorageError: ``root`` cannot be created.
    """

    def __init__(
        self, root: str | os.PathLike[str], config: ParquetArchiveConfig | None = None
    ) -> None:
        self._root = Path(root).absolute()
        self._config = config if config is not None else ParquetArchiveConfig()
        if not isinstance(self._config, ParquetArchiveConfig):
            raise InvalidArgumentError(
                f"config: {self._config!r:.80} is not a ParquetArchiveConfig; expected one or None"
            )
        try:
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"root: {os.fspath(root)!r} cannot be created: {exc}") from exc
        self._lock = threading.RLock()
        self._buffers: dict[str, dict[Path, list[pa.Table]]] = {table: {} for table in TABLES}
        self._buffered: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._rows: dict[str, int] = dict.fromkeys(TABLES, 0)
        self._skipped = 0
        self._files = 0
        self._bytes = 0
        self._arrow_bytes = 0
        self._next_part: dict[Path, int] = {}
        self._closed = False

    @property
    def root(self) -> Path:
        """The archive's directory (absolute)."""
        return self._root

    @property
    def config(self) -> ParquetArchiveConfig:
        """The archive's configuration."""
        return self._config

    @property
    def closed(self) -> bool:
        """True after ``close``."""
        return self._closed

    def write(self, records: Records | Sequence[CoreMessage]) -> int:
        """Accept a batch of records or messages for the archive.

        The rows are copied, so the caller may reuse ``records`` (a ring batch) at once.

        Args:
            records: A one-dimensional array of ``MESSAGE_DTYPE``, or a sequence of
                ``CoreMessage`` (encoded with ``codec.to_records``).

        Returns:
            The rows accepted: market data, orders and trades whose payload is in the
            record. Other rows are skipped (``ArchiveStatistics.rows_skipped``).

        Raises:
            DtypeMismatchError: ``records`` is not an array of ``MESSAGE_DTYPE``.
            InvalidArgumentError: A row has a value the archive cannot store (an enum field
                out of its enumeration, an empty or non-ASCII symbol, a string with NUL or
                invalid UTF-8); the message names the row and the field, and nothing of the
                batch is accepted.
            StorageError: The archive is closed, or writing a full buffer failed.
        """
        if not isinstance(records, np.ndarray):
            if isinstance(records, Sequence) and not isinstance(records, str | bytes):
                records = to_records(records)
            else:
                raise DtypeMismatchError(
                    f"records: a {type(records).__name__}; expected an array of MESSAGE_DTYPE "
                    "records or a sequence of CoreMessage"
                )
        if records.dtype != MESSAGE_DTYPE:
            raise DtypeMismatchError(
                f"records: an array of dtype {records.dtype}; expected MESSAGE_DTYPE records"
            )
        if records.ndim != 1:
            raise InvalidArgumentError(
                f"records: an array of shape {records.shape}; expected a one-dimensional array"
            )
        if not len(records):
            return 0
        types = np.where((records["flags"] & FLAG_OBJECT) == 0, records["type"], 0)
        parts: list[tuple[str, list[tuple[Path, pa.Table]]]] = []
        for message_type, table in _TABLE_OF_TYPE.items():
            mask = types == message_type
            if mask.all():
                parts.append((table, _partitions(_Batch(records, None), table)))
            elif mask.any():
                parts.append((table, _partitions(_Batch(records, np.flatnonzero(mask)), table)))
        accepted = sum(len(data) for _, partitions in parts for _, data in partitions)
        with self._lock:
            if self._closed:
                raise StorageError(f"archive {os.fspath(self._root)!r}: closed; expected open")
            self._skipped += len(records) - accepted
            for table, partitions in parts:
                buffer = self._buffers[table]
                for directory, data in partitions:
                    buffer.setdefault(directory, []).append(data)
                    self._buffered[table] += len(data)
                if self._buffered[table] >= self._config.max_buffered_rows:
                    self._write_table(table)
        return accepted

    def flush(self) -> None:
        """Write every buffered row to files.

        Raises:
            StorageError: A file could not be written; rows not yet written stay buffered.
        """
        with self._lock:
            for table in TABLES:
                self._write_table(table)

    def close(self) -> None:
        """Flush and close; closing again does nothing.

        Raises:
            StorageError: A file could not be written (the archive is closed regardless).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.flush()

    def statistics(self) -> ArchiveStatistics:
        """Return what the archive has written so far."""
        with self._lock:
            written = sum(self._rows.values())
            return ArchiveStatistics(
                rows=MappingProxyType(dict(self._rows)),
                rows_buffered=sum(self._buffered.values()),
                rows_skipped=self._skipped,
                files=self._files,
                bytes_written=self._bytes,
                raw_bytes=written * RECORD_SIZE,
                arrow_bytes=self._arrow_bytes,
            )

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
        return f"ParquetArchive({os.fspath(self._root)!r})"

    # -- writing ------------------------------------------------------------------------------

    def _write_table(self, table: str) -> None:
        """Write a table's buffer, one file per partition; what fails stays buffered."""
        buffer = self._buffers[table]
        for directory in list(buffer):
            data = pa.concat_tables(buffer[directory])
            if table == "market_data":  # rows of each kind together, each kind in input order
                kinds = [chunk.indices.to_numpy() for chunk in data.column("kind").chunks]
                data = data.take(pa.array(np.argsort(np.concatenate(kinds), kind="stable")))
            else:  # one chunk per column: the Parquet writer is slow over many small ones
                data = data.combine_chunks()
            self._write_file(self._root / directory, data, table)
            del buffer[directory]
            self._buffered[table] -= len(data)

    def _write_file(self, directory: Path, data: pa.Table, table: str) -> None:
        """Write one file under a fresh part name, atomically; count it."""
        try:
            self._make_directory(directory)
            temporary = directory / f".part-{os.getpid()}-{secrets.token_hex(6)}.tmp"
            try:
                pq.write_table(
                    data,
                    temporary,
                    compression="zstd",
                    compression_level=self._config.compression_level,
                    row_group_size=self._config.row_group_rows,
                    **_WRITE_OPTIONS[table],
                )
                if self._config.fsync:
                    _fsync(temporary)
                final = self._publish(temporary, directory)
            finally:
                temporary.unlink(missing_ok=True)
            if self._config.fsync:
                _fsync(directory)
            size = final.stat().st_size
        except (OSError, pa.ArrowException) as exc:
            raise StorageError(
                f"{directory / 'part-<n>.parquet'}: {len(data)} rows could not be written: {exc}"
            ) from exc
        self._files += 1
        self._bytes += size
        self._rows[table] += len(data)
        self._arrow_bytes += data.nbytes

    def _publish(self, temporary: Path, directory: Path) -> Path:
        """Link the finished file under the next part number that no file has."""
        number = self._next_part.get(directory)
        if number is None:
            taken = [int(m[1]) for n in os.listdir(directory) if (m := _PART.fullmatch(n))]
            number = max(taken, default=-1) + 1
        while True:
            final = directory / f"part-{number:06d}.parquet"
            try:
                os.link(temporary, final)
            except FileExistsError:
                number += 1
                continue
            self._next_part[directory] = number + 1
            return final

    def _make_directory(self, directory: Path) -> None:
        if directory in self._next_part:
            return
        missing = []
        parent = directory
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        directory.mkdir(parents=True, exist_ok=True)
        if self._config.fsync:
            for made in missing:
                _fsync(made.parent)
