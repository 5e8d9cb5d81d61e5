"""The archive's tables as Arrow: each table's columns and schema, the partition
directories, and the checks and conversion that turn ``MESSAGE_DTYPE`` records into
partitioned Arrow tables.

``market_intel.storage.archive`` exports the public names and describes the layout and the
columns; import them from there.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

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
from market_intel.errors import InvalidArgumentError
from market_intel.records import FLAG_OBJECT, MESSAGE_DTYPE

__all__ = [
    "NS_PER_DAY",
    "TABLES",
    "WRITE_OPTIONS",
    "Records",
    "partition_path",
    "table_schema",
    "to_partitions",
]

Records = npt.NDArray[np.void]

TABLES: Final = ("market_data", "orders", "trades")
"""The archive's tables, one directory each under the root."""

NS_PER_DAY: Final = 86_400 * 10**9
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


def to_partitions(records: Records) -> list[tuple[str, list[tuple[Path, pa.Table]]]]:
    """Check and convert the archived rows of a batch of ``MESSAGE_DTYPE`` records.

    Rows of other message types, and rows whose payload travels as an object beside the
    record (``FLAG_OBJECT``), are left out.

    Args:
        records: A one-dimensional array of ``MESSAGE_DTYPE``.

    Returns:
        For each table with rows in the batch, its rows split by partition: the partition's
        directory (``partition_path``) and its rows, in input order, as an Arrow table.

    Raises:
        InvalidArgumentError: A row has a value the archive cannot store; the message names
            the row (its index in ``records``) and the field.
    """
    types = np.where((records["flags"] & FLAG_OBJECT) == 0, records["type"], 0)
    parts: list[tuple[str, list[tuple[Path, pa.Table]]]] = []
    for message_type, table in _TABLE_OF_TYPE.items():
        mask = types == message_type
        if mask.all():
            parts.append((table, _partitions(_Batch(records, None), table)))
        elif mask.any():
            parts.append((table, _partitions(_Batch(records, np.flatnonzero(mask)), table)))
    return parts


def _wide_integers(names: tuple[str, ...]) -> list[str]:
    return [n for n in names if MESSAGE_DTYPE[n].kind in "iu" and MESSAGE_DTYPE[n].itemsize == 8]


# The Parquet writer's options per table, as keyword arguments of ``pq.write_table``.
WRITE_OPTIONS: Final = {
    table: {
        "use_dictionary": [name for name in names if name in _ENUMS or name in _TEXTS],
        # ids and times mostly increase: delta encoding shrinks them before zstd does
        "column_encoding": dict.fromkeys(["ts", *_wide_integers(names)], "DELTA_BINARY_PACKED"),
    }
    for table, names in _COLUMNS.items()
}
