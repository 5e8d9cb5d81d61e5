"""Convert ``CoreMessage`` objects to and from records of ``records.MESSAGE_DTYPE``.

Market data, orders and trades encode fully: ``from_records(to_records(messages))`` equals
``messages`` except for ``metadata``, which records do not carry (rebuilt messages have ``{}``).
Their rows have ``flags == 0``. Any other payload (event, control, health, analytics, text,
whatever the message type) fills only the header and sets ``FLAG_OBJECT``: the message object
travels beside the record, and ``from_records`` refuses such rows.

Absent floats are NaN, absent ``correlation_id`` and ``causation_id`` are 0, strings are UTF-8
(at most 16 bytes, which message validation guarantees and ``to_records`` checks again).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

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
from market_intel.errors import DtypeMismatchError, InvalidArgumentError, MessageValidationError
from market_intel.messages import CoreMessage, MarketData, Order, Trade
from market_intel.records import FLAG_OBJECT, MESSAGE_DTYPE, SYMBOL_SIZE

__all__ = ["from_records", "market_data_array", "records_to_message", "to_records"]

_MARKET_FLOATS = ("bid", "ask", "bid_size", "ask_size", "last_price", "last_size", "volume")
_TYPES = {m.value: m for m in MessageType}
_PRIORITIES = {m.value: m for m in Priority}
_KINDS = {m.value: m for m in MarketDataKind}
_SIDES = {m.value: m for m in Side}
_ORDER_TYPES = {m.value: m for m in OrderType}
_TIME_IN_FORCES = {m.value: m for m in TimeInForce}
_STATUSES = {m.value: m for m in OrderStatus}
_LIQUIDITIES = {m.value: m for m in Liquidity}
_NAN = math.nan


def market_data_array(n: int) -> npt.NDArray[np.void]:
    """Make ``n`` market data records to fill column by column.

    Every row has ``type`` MARKET_DATA, ``priority`` NORMAL, ``kind`` QUOTE and NaN in every
    float field; everything else is zero, including ``id`` and ``created_ns``, which the caller
    (or the engine) stamps.

    Args:
        n: The number of records.

    Returns:
        A new array of ``MESSAGE_DTYPE``.

    Raises:
        InvalidArgumentError: ``n`` is not an int >= 0.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise InvalidArgumentError(f"n: {n!r} is not a record count; expected an int >= 0")
    records = np.zeros(n, MESSAGE_DTYPE)
    records["type"] = MessageType.MARKET_DATA
    records["priority"] = Priority.NORMAL
    records["kind"] = MarketDataKind.QUOTE
    for name in _MARKET_FLOATS:
        records[name] = _NAN
    return records


def _encode(records: npt.NDArray[np.void], field: str, rows: Any, values: list[str]) -> None:
    """Store UTF-8 strings in a 16-byte column; fail rather than let numpy truncate them."""
    encoded = [value.encode() for value in values]
    for index, data in enumerate(encoded):
        if len(data) > SYMBOL_SIZE:
            row = index if isinstance(rows, slice) else int(rows[index])
            raise MessageValidationError(
                f"messages[{row}].{field}: {values[index]!r} is {len(data)} UTF-8 bytes; "
                f"expected at most {SYMBOL_SIZE} in a record"
            )
    records[field][rows] = encoded


def _floats(values: list[float | None]) -> list[float]:
    return [_NAN if value is None else value for value in values]


def to_records(messages: Sequence[CoreMessage]) -> npt.NDArray[np.void]:
    """Encode messages as records, one per message, in order.

    Args:
        messages: The messages.

    Returns:
        A new array of ``MESSAGE_DTYPE``. Records carry no metadata.

    Raises:
        InvalidArgumentError: An item is not a ``CoreMessage``.
        MessageValidationError: A string does not fit its 16-byte field (a message built
            without validation).
    """
    n = len(messages)
    groups: dict[type, list[int]] = {MarketData: [], Order: [], Trade: []}
    objects: list[int] = []
    for index, message in enumerate(messages):
        if not isinstance(message, CoreMessage):
            raise InvalidArgumentError(
                f"messages[{index}]: {message!r:.80} is not a CoreMessage; expected CoreMessage"
            )
        groups.get(type(message.payload), objects).append(index)
    records = np.zeros(n, MESSAGE_DTYPE)
    if n == 0:
        return records
    records["id"] = [m.id for m in messages]
    records["created_ns"] = [m.created_ns for m in messages]
    records["published_ns"] = [m.published_ns for m in messages]
    records["correlation_id"] = [m.correlation_id or 0 for m in messages]
    records["causation_id"] = [m.causation_id or 0 for m in messages]
    records["type"] = [m.type for m in messages]
    records["priority"] = [m.priority for m in messages]
    _encode(records, "source", slice(None), [m.source for m in messages])
    if objects:
        records["flags"][objects] = FLAG_OBJECT
    for cls, indices in groups.items():
        if not indices:
            continue
        rows: Any = slice(None) if len(indices) == n else np.array(indices, np.intp)
        payloads: list[Any] = [messages[i].payload for i in indices]
        _encode(records, "symbol", rows, [p.symbol for p in payloads])
        _encode(records, "venue", rows, [p.venue for p in payloads])
        records["exchange_ns"][rows] = [p.exchange_ns for p in payloads]
        records["receive_ns"][rows] = [p.receive_ns for p in payloads]
        if cls is MarketData:
            records["kind"][rows] = [p.kind for p in payloads]
            records["update_id"][rows] = [p.update_id for p in payloads]
            for name in _MARKET_FLOATS:
                records[name][rows] = _floats([getattr(p, name) for p in payloads])
            continue
        _encode(records, "client_order_id", rows, [p.client_order_id for p in payloads])
        records["order_id"][rows] = [p.order_id for p in payloads]
        records["side"][rows] = [p.side for p in payloads]
        records["quantity"][rows] = [p.quantity for p in payloads]
        records["price"][rows] = _floats([p.price for p in payloads])
        if cls is Order:
            records["order_type"][rows] = [p.order_type for p in payloads]
            records["time_in_force"][rows] = [p.time_in_force for p in payloads]
            records["status"][rows] = [p.status for p in payloads]
            records["filled_quantity"][rows] = [p.filled_quantity for p in payloads]
        else:
            records["trade_id"][rows] = [p.trade_id for p in payloads]
            records["liquidity"][rows] = [p.liquidity for p in payloads]
            records["fee"][rows] = [p.fee for p in payloads]
    return records


def _text(data: bytes, where: str, field: str) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise MessageValidationError(
            f"{where}.{field}: {data!r} is not UTF-8; expected 0 to {SYMBOL_SIZE} UTF-8 bytes"
        ) from None


def _float(value: float) -> float | None:
    return None if value != value else value  # NaN is the only float unequal to itself


def _payload(c: dict[str, list[Any]], i: int, type_: MessageType, where: str) -> Any:
    """Rebuild row i's payload from its columns, or explain why it cannot be."""
    hot = c["kind"][i] != 0 if type_ is MessageType.MARKET_DATA else c["side"][i] != 0
    if type_ not in (MessageType.MARKET_DATA, MessageType.ORDER, MessageType.TRADE) or (
        c["flags"][i] & FLAG_OBJECT and not hot
    ):
        raise MessageValidationError(
            f"{where}: a record of type {type_.name} without a record payload; expected market "
            "data, an order or a trade (this payload travels only as an object beside the record)"
        )
    symbol = _text(c["symbol"][i], where, "symbol")
    venue = _text(c["venue"][i], where, "venue")
    exchange_ns, receive_ns = c["exchange_ns"][i], c["receive_ns"][i]
    if type_ is MessageType.MARKET_DATA:
        floats = [_float(c[name][i]) for name in _MARKET_FLOATS]
        bid, ask, bid_size, ask_size, last_price, last_size, volume = floats
        return MarketData(
            symbol=symbol, venue=venue, kind=_KINDS.get(c["kind"][i], c["kind"][i]),
            bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size, last_price=last_price,
            last_size=last_size, volume=volume, update_id=c["update_id"][i],
            exchange_ns=exchange_ns, receive_ns=receive_ns,
        )  # fmt: skip
    side = _SIDES.get(c["side"][i], c["side"][i])
    client_order_id = _text(c["client_order_id"][i], where, "client_order_id")
    if type_ is MessageType.ORDER:
        return Order(
            order_id=c["order_id"][i], symbol=symbol, side=side, quantity=c["quantity"][i],
            price=_float(c["price"][i]),
            order_type=_ORDER_TYPES.get(c["order_type"][i], c["order_type"][i]),
            time_in_force=_TIME_IN_FORCES.get(c["time_in_force"][i], c["time_in_force"][i]),
            status=_STATUSES.get(c["status"][i], c["status"][i]),
            filled_quantity=c["filled_quantity"][i], client_order_id=client_order_id,
            venue=venue, exchange_ns=exchange_ns, receive_ns=receive_ns,
        )  # fmt: skip
    return Trade(
        trade_id=c["trade_id"][i], symbol=symbol, side=side, price=c["price"][i],
        quantity=c["quantity"][i], order_id=c["order_id"][i], client_order_id=client_order_id,
        liquidity=_LIQUIDITIES.get(c["liquidity"][i], c["liquidity"][i]), fee=c["fee"][i],
        venue=venue, exchange_ns=exchange_ns, receive_ns=receive_ns,
    )  # fmt: skip


def _rebuild(records: npt.NDArray[np.void], name: str, single: bool) -> list[CoreMessage]:
    c: dict[str, list[Any]] = {
        field: records[field].tolist() for field in MESSAGE_DTYPE.fields or ()
    }
    messages = []
    for i in range(len(records)):
        where = name if single else f"{name}[{i}]"
        try:
            raw_type = c["type"][i]
            type_ = _TYPES.get(raw_type)
            if type_ is None:
                raise MessageValidationError(
                    f"{where}.type: {raw_type} is not a MessageType; expected one of "
                    + ", ".join(MessageType.__members__)
                )
            message = CoreMessage(
                type_, _payload(c, i, type_, where),
                priority=_PRIORITIES.get(c["priority"][i], c["priority"][i]),
                source=_text(c["source"][i], where, "source"), id=c["id"][i],
                created_ns=c["created_ns"][i], published_ns=c["published_ns"][i],
                correlation_id=c["correlation_id"][i] or None,
                causation_id=c["causation_id"][i] or None,
            )  # fmt: skip
        except MessageValidationError as exc:
            if str(exc).startswith(where):
                raise
            raise MessageValidationError(f"{where}: {exc}") from exc
        messages.append(message)
    return messages


def _check_dtype(records: Any, name: str) -> None:
    dtype = getattr(records, "dtype", None)
    if not isinstance(records, np.ndarray | np.void) or dtype != MESSAGE_DTYPE:
        raise DtypeMismatchError(
            f"{name}: {type(records).__name__} of dtype {dtype}; expected MESSAGE_DTYPE records"
        )


def from_records(records: npt.NDArray[np.void]) -> list[CoreMessage]:
    """Rebuild the messages of market data, order and trade records.

    Args:
        records: A one-dimensional array of ``MESSAGE_DTYPE``.

    Returns:
        One message per record, with empty ``metadata`` (records carry none).

    Raises:
        DtypeMismatchError: ``records`` is not an array of ``MESSAGE_DTYPE``.
        InvalidArgumentError: ``records`` is not one-dimensional.
        MessageValidationError: A record is not a valid message, or its payload travels only
            as an object (``FLAG_OBJECT`` without a record payload); the text names the row.
    """
    _check_dtype(records, "records")
    if records.ndim != 1:
        raise InvalidArgumentError(
            f"records: an array of shape {records.shape}; expected a one-dimensional array"
        )
    return _rebuild(records, "records", single=False)


def records_to_message(record: np.void | npt.NDArray[np.void]) -> CoreMessage:
    """Rebuild the message of one record (a row of a ``MESSAGE_DTYPE`` array).

    Args:
        record: One record, e.g. ``records[3]``, or a zero-dimensional array.

    Returns:
        The message, with empty ``metadata``.

    Raises:
        DtypeMismatchError: ``record`` is not a ``MESSAGE_DTYPE`` record.
        MessageValidationError: The record is not a valid message, or its payload travels
            only as an object.
    """
    _check_dtype(record, "record")
    row = np.asarray(record)
    if row.ndim != 0:
        raise InvalidArgumentError(f"record: an array of shape {row.shape}; expected one record")
    return _rebuild(row.reshape(1), "record", single=True)[0]
