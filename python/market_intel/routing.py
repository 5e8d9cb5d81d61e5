"""Routing: which messages an agent receives (by type, symbol, predicate and partition key),
and the batch a vectorized agent is handed.

Every processor sees every message of both lanes; each of its agents takes the messages its
route selects. Priority is routing too: CRITICAL and HIGH messages travel in a lane of their
own, which processors drain before every chunk of the normal lane.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from market_intel.enums import MessageType
from market_intel.errors import InvalidArgumentError

__all__ = ["MessageBatch", "Route", "partition_of"]

HOT_TYPES = frozenset({MessageType.MARKET_DATA, MessageType.ORDER, MessageType.TRADE})

PartitionKey = Literal["symbol", "source"]


def partition_of(key: str | bytes, partitions: int) -> int:
    """The partition (``0 <= p < partitions``) of a key: CRC-32 of its UTF-8 bytes, modulo.

    The same in every process and every run, so a symbol always lands on the same instance.
    """
    data = key.encode() if isinstance(key, str) else key
    return zlib.crc32(data) % partitions


@dataclass(frozen=True, slots=True)
class Route:
    """What one agent receives.

    ``types``: the message types it handles (empty means all). ``symbols``: only messages whose
    payload has one of these symbols (empty means any). ``predicate``: a further filter; an
    object agent's predicate takes a ``CoreMessage``, a vectorized agent's takes the batch's
    records and returns a boolean mask. ``partition``: ``(index, count)`` when several
    instances share a stream by key.
    """

    types: frozenset[MessageType] = frozenset()
    symbols: frozenset[str] = frozenset()
    predicate: Callable[[Any], Any] | None = None
    partition: tuple[int, int] | None = None
    key: PartitionKey = "symbol"

    @staticmethod
    def build(
        types: Iterable[MessageType | int | str] | None,
        symbols: Iterable[str] | None,
        predicate: Callable[[Any], Any] | None,
        partition: tuple[int, int] | None,
        key: str,
    ) -> Route:
        """A route from user arguments, each checked with a clear error."""
        chosen: set[MessageType] = set()
        for t in types or ():
            chosen.add(_message_type(t))
        syms = frozenset(symbols or ())
        for s in syms:
            if not isinstance(s, str) or not s:
                raise InvalidArgumentError(
                    f"symbols: {s!r} is not a symbol; expected a non-empty str"
                )
        if predicate is not None and not callable(predicate):
            raise InvalidArgumentError(
                f"filter: {predicate!r} is not callable; expected a callable"
            )
        if key not in ("symbol", "source"):
            raise InvalidArgumentError(f"key: {key!r} is not valid; expected 'symbol' or 'source'")
        return Route(frozenset(chosen), syms, predicate, partition, key)  # type: ignore[arg-type]

    @property
    def codes(self) -> npt.NDArray[np.uint8]:
        """The handled type codes as an array (all seven when ``types`` is empty)."""
        types = self.types or frozenset(MessageType)
        return np.array(sorted(int(t) for t in types), dtype=np.uint8)

    def accepts_type(self, message_type: int) -> bool:
        """True if the route takes messages of this type."""
        return not self.types or message_type in self.types

    def wants_all(self) -> bool:
        """True if the route takes every message (no filter of any kind)."""
        return not self.types and not self.symbols and self.predicate is None and not self.partition

    def record_mask(self, records: np.ndarray) -> npt.NDArray[np.bool_] | None:
        """The rows of ``records`` this route takes (None: all of them)."""
        mask: npt.NDArray[np.bool_] | None = None
        if self.types and len(self.types) < len(MessageType):
            m = np.isin(records["type"], self.codes)
            mask = m
        if self.symbols:
            m = np.isin(records["symbol"], np.array([s.encode() for s in self.symbols]))
            mask = m if mask is None else mask & m
        if self.partition is not None:
            index, count = self.partition
            column = records["source"]
            if self.key == "symbol":
                # As ``CoreMessage.partition_key``: the symbol, or the source of a message
                # without one (so object and vectorized instances split a stream alike).
                symbols = records["symbol"]
                column = np.where(symbols != b"", symbols, column)
            uniq, inverse = np.unique(column, return_inverse=True)
            parts = np.array([partition_of(bytes(u), count) for u in uniq], dtype=np.int64)
            m = parts[inverse] == index
            mask = m if mask is None else mask & m
        if self.predicate is not None:
            selected = records if mask is None else records[mask]
            m = np.asarray(self.predicate(selected), dtype=bool)
            if m.shape != (len(selected),):
                raise InvalidArgumentError(
                    f"filter: returned a mask of shape {m.shape} for {len(selected)} records; "
                    f"expected a boolean array of shape ({len(selected)},)"
                )
            if mask is None:
                mask = m
            else:
                full = np.zeros(len(records), dtype=bool)
                full[np.flatnonzero(mask)[m]] = True
                mask = full
        return mask


def _message_type(value: MessageType | int | str) -> MessageType:
    try:
        if isinstance(value, str):
            return MessageType[value.upper()]
        if isinstance(value, bool):
            raise ValueError(value)
        return MessageType(value)
    except (KeyError, ValueError):
        names = ", ".join(t.name for t in MessageType)
        raise InvalidArgumentError(
            f"message_types: {value!r} is not a MessageType; expected one of {names}"
        ) from None


class MessageBatch:
    """The messages a vectorized agent receives in one call.

    ``records`` is a numpy array of ``MESSAGE_DTYPE`` (read columns: ``batch.records["bid"]``).
    It may be a read-only view of ring memory, valid only during the call: copy what you keep.
    ``messages()`` builds ``CoreMessage`` objects (the published objects themselves where they
    exist); call it only if the handler needs objects.
    """

    __slots__ = ("_decode", "_objects", "lane", "records", "sequence")

    def __init__(
        self,
        records: np.ndarray,
        objects: list[Any] | None,
        sequence: int,
        lane: Literal["priority", "normal"],
        decode: Callable[[np.ndarray, list[Any] | None], list[Any]],
    ) -> None:
        self.records = records
        self._objects = objects
        self.sequence = sequence
        self.lane = lane
        self._decode = decode

    def __len__(self) -> int:
        return len(self.records)

    def messages(self) -> list[Any]:
        """The batch as ``CoreMessage`` objects, in order."""
        return self._decode(self.records, self._objects)

    def __repr__(self) -> str:
        return f"MessageBatch({len(self)} messages, lane={self.lane!r}, sequence={self.sequence})"
