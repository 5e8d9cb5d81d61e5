"""Storage: the engine's durable memory and its columnar archive.

- ``journal``: an append-only, checksummed, segmented event journal with an fsync policy,
  recovered after a crash with its torn tail truncated.
- ``archive``: market data, orders and trades written to Parquet (zstd), partitioned by
  date, venue and symbol.
- ``query``: DuckDB over the archive.
"""

from __future__ import annotations
