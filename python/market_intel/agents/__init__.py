"""Agents that ship with market-intel.

Market data: ``MarketDataCounterAgent`` (counts frames by venue, symbol and kind),
``SequenceCheckAgent`` (checks update and trade id sequences and receive-time order) and
``SymbolSummaryAgent`` (per-symbol last prices, quotes, exact volumes and VWAP). All three are
vectorized: they read each batch as numpy columns and never build message objects.
"""

from __future__ import annotations

from market_intel.agents.market_data import (
    MarketDataCounterAgent,
    SequenceCheckAgent,
    SymbolSummaryAgent,
)

__all__ = ["MarketDataCounterAgent", "SequenceCheckAgent", "SymbolSummaryAgent"]
