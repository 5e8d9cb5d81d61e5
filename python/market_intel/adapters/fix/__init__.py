"""FIX: sessions over TCP, recorded FIX files, and FIX <-> engine message conversion.

::

    counterparty ──TCP──> FixSession (initiator)  ──FixMessage──> FixConverter ──> CoreMessage
                          FixAcceptor ─> FixSession (one per counterparty)         MarketData
                              │   sequence numbers, sent messages                 Order, Trade
                              └── FixSessionStore (files, fsync)
    recording (.fix) ──> FixFrameReader (simplefix + BodyLength/CheckSum checks) ──> replay_file

- ``session``: FIX 4.0-4.4 / FIXT.1.1 session layer (logon, heartbeats, test requests,
  sequence checks, resend and gap fill, reject, logout), blocking API, one reader thread.
- ``store``: sequence numbers and sent messages, persisted, so restarts resume.
- ``convert``: W/X market data, D/F/G orders and 8 execution reports to engine messages
  (prices exact through ``parse_decimal``), and builders for D/F/G/V/W/Y.
- ``replay``: validated framing of FIX byte streams and deterministic replay of recordings;
  malformed messages are reported as ``MalformedFrameError`` values, never raised.

Messages are ``simplefix.FixMessage`` objects.
"""

from __future__ import annotations

from market_intel.adapters.fix.convert import (
    FixConverter,
    FixMessage,
    MarketDataEntry,
    MarketDataRequest,
    fix_id,
    format_decimal,
    format_utc_timestamp,
    market_data_request,
    market_data_request_reject,
    market_data_snapshot,
    new_message,
    parse_market_data_request,
    parse_utc_timestamp,
)
from market_intel.adapters.fix.replay import (
    FixFrame,
    FixFrameReader,
    FixReplay,
    read_frames,
    replay_file,
)
from market_intel.adapters.fix.session import (
    FixAcceptor,
    FixSession,
    FixSessionConfig,
    FixSessionState,
    FixSessionStatistics,
    MessageHandler,
)
from market_intel.adapters.fix.store import FixSessionStore

__all__ = [
    "FixAcceptor",
    "FixConverter",
    "FixFrame",
    "FixFrameReader",
    "FixMessage",
    "FixReplay",
    "FixSession",
    "FixSessionConfig",
    "FixSessionState",
    "FixSessionStatistics",
    "FixSessionStore",
    "MarketDataEntry",
    "MarketDataRequest",
    "MessageHandler",
    "fix_id",
    "format_decimal",
    "format_utc_timestamp",
    "market_data_request",
    "market_data_request_reject",
    "market_data_snapshot",
    "new_message",
    "parse_market_data_request",
    "parse_utc_timestamp",
    "read_frames",
    "replay_file",
]
