"""Where the shared market data lives (it is not part of the repository).

In order: the ``MARKET_INTEL_SHARED_DATA`` environment variable; a ``shared/data`` directory
beside the checkout or above it (``/work/main`` finds ``/work/shared/data``); the machine's
``/work/shared/data``. Tests that need a file that is not there skip, saying which.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """Return the shared data directory (which may not exist)."""
    configured = os.environ.get("MARKET_INTEL_SHARED_DATA")
    if configured:
        return Path(configured)
    for parent in ROOT.parents:
        candidate = parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/data")


SHARED_DATA = shared_data()
