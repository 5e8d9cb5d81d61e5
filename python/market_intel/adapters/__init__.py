"""Adapters: turn a venue's recorded or live feed into engine messages.

- ``normalize``: one naming scheme, exact decimals, the update and feed-event types;
- ``validation``: checks applied by policy, counted;
- ``book``: L2 order books synced by each venue's snapshot and diff rules;
- ``backpressure``: block, drop or conflate when a lane is full;
- ``venues``: Binance, Coinbase and Kraken frame parsers;
- ``recording``: recorded WebSocket sessions read, replayed and fed to the engine;
- ``tickfile``: CSV and Parquet tick files through a column mapping;
- ``websocket``: live WebSocket feeds; ``wsreplay``: a local server replaying recordings;
- ``fix``: FIX 4.4 sessions, conversion and recorded FIX files;
- ``binance``: the main job's native decoder of the Binance recordings into records.
"""

from __future__ import annotations

from market_intel.adapters import binance

__all__ = ["binance"]
