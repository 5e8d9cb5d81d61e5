"""Adapters: turn a venue's recorded or live feed into engine message records.

- ``binance``: recorded Binance WebSocket frames (the packaged sample and the full recording)
  decoded into ``MESSAGE_DTYPE`` records, and a paced replay of them.
"""

from __future__ import annotations

from market_intel.adapters import binance

__all__ = ["binance"]
