"""The fixed binary record every engine message occupies in the ring.

One numpy dtype, ``MESSAGE_DTYPE``, 192 bytes (three cache lines):

- a header every message fills (0..64): ``id``, ``created_ns``, ``published_ns``,
  ``correlation_id``, ``causation_id`` (0 means none), ``type`` (a ``MessageType``),
  ``priority`` (a ``Priority``), ``kind`` (a ``MarketDataKind`` for market data, else 0),
  ``flags`` (``FLAG_OBJECT``: the message object travels beside the record), ``symbol`` and
  ``source`` (at 176, after the body);
- a body (64..176) laid out per type. The hot types have their fields here, so a batch of
  market data, orders or trades reads as columns (``batch["bid"]``) with no Python object
  built. Fields of different types share bytes (``bid`` and ``order_id`` overlap); read only
  the fields of a row's ``type``.

Market data: ``venue``, ``bid``, ``ask``, ``bid_size``, ``ask_size``, ``last_price``,
``last_size``, ``volume``, ``update_id``, ``exchange_ns``, ``receive_ns``. A float field a
message does not carry is NaN.

Orders and trades (fills): ``venue``, ``order_id``, ``trade_id``, ``side``, ``order_type``,
``time_in_force``, ``status``, ``liquidity``, ``price``, ``quantity``, ``filled_quantity``,
``fee``, ``exchange_ns``, ``receive_ns``, ``client_order_id``.

Other types (event, control, health, analytics, text) carry only the header in the record;
the message object itself travels beside it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FLAG_OBJECT", "MESSAGE_DTYPE", "RECORD_SIZE", "SYMBOL_SIZE"]

RECORD_SIZE = 192
SYMBOL_SIZE = 16
FLAG_OBJECT = 1

_FIELDS: list[tuple[str, str, int]] = [
    # header
    ("id", "<u8", 0),
    ("created_ns", "<i8", 8),
    ("published_ns", "<i8", 16),
    ("correlation_id", "<u8", 24),
    ("causation_id", "<u8", 32),
    ("type", "u1", 40),
    ("priority", "u1", 41),
    ("kind", "u1", 42),
    ("flags", "u1", 43),
    ("symbol", f"S{SYMBOL_SIZE}", 48),
    # body shared by market data, orders and trades
    ("venue", "S16", 64),
    ("exchange_ns", "<i8", 144),
    ("receive_ns", "<i8", 152),
    # market data
    ("bid", "<f8", 80),
    ("ask", "<f8", 88),
    ("bid_size", "<f8", 96),
    ("ask_size", "<f8", 104),
    ("last_price", "<f8", 112),
    ("last_size", "<f8", 120),
    ("volume", "<f8", 128),
    ("update_id", "<u8", 136),
    # orders and trades
    ("order_id", "<u8", 80),
    ("trade_id", "<u8", 88),
    ("side", "u1", 96),
    ("order_type", "u1", 97),
    ("time_in_force", "u1", 98),
    ("status", "u1", 99),
    ("liquidity", "u1", 100),
    ("price", "<f8", 104),
    ("quantity", "<f8", 112),
    ("filled_quantity", "<f8", 120),
    ("fee", "<f8", 128),
    ("client_order_id", "S16", 160),
    # every type
    ("source", "S16", 176),
]

MESSAGE_DTYPE: np.dtype[np.void] = np.dtype(
    {
        "names": [f[0] for f in _FIELDS],
        "formats": [f[1] for f in _FIELDS],
        "offsets": [f[2] for f in _FIELDS],
        "itemsize": RECORD_SIZE,
        "aligned": True,
    }
)
