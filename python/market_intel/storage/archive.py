"""The columnar archive: market data, orders and trades written to Parquet files.

``ParquetArchive`` takes batches of ``MESSAGE_DTYPE`` records (or ``CoreMessage`` objects),
checks them and converts them to Arrow columns at once, buffers them per table and partition,
and writes each table's buffer as zstd-compressed Parquet files, one per partition, in a hive
layout::

    <root>/
    ├── market_data/                      MARKET_DATA records
    │   └── date=2024-08-08/              UTC date of the row's ts
    │       └── venue=binance/
    │           └── symbol=BTC-USDT/
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

The implementation, in a private module whose public names this module exports::

    archive.py              ParquetArchive: buffer, write and publish files; its config and
                            statistics
    _archive_columns.py     TABLES, table_schema, partition_path; records checked and
                            converted to Arrow columns, split by partition
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from market_intel import _config_schema as schema
from market_intel._config_schema import Boolean, Integer, kind
from market_intel.codec import to_records
from market_intel.errors import DtypeMismatchError, InvalidArgumentError, StorageError
from market_intel.messages import CoreMessage
from market_intel.records import MESSAGE_DTYPE, RECORD_SIZE
from market_intel.storage._archive_columns import NS_PER_DAY as NS_PER_DAY
from market_intel.storage._archive_columns import (
    TABLES,
    WRITE_OPTIONS,
    Records,
    partition_path,
    table_schema,
    to_partitions,
)

__all__ = [
    "TABLES",
    "ArchiveStatistics",
    "ParquetArchive",
    "ParquetArchiveConfig",
    "partition_path",
    "table_schema",
]

_PART = re.compile(r"part-(\d+)\.parquet")

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
        parts = to_partitions(records)
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
                    **WRITE_OPTIONS[table],
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
