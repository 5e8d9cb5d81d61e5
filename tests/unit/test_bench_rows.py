"""The ingestion and storage benchmark rows run, at tiny sizes, and move the right data.

Smoke tests only: `make bench` must not discover a broken row after an hour of measuring.
No timing is asserted; each row checks its own counts and raises if they are wrong.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level directory, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import fix, parsers, storage_archive, storage_journal  # noqa: E402
from benchmarks.harness import Bench  # noqa: E402

ROWS = {
    b.implementation: b for module in (parsers, storage_journal, fix) for b in module.benches()
} | {b.implementation: b for b in storage_archive.benches() if b.topology == "archive_write"}

SIZES = {"parse_binance": 300, "parse_coinbase": 40, "parse_kraken": 300, "fix_replay": 500}


@pytest.mark.parametrize("name", sorted(ROWS))
def test_each_row_runs_and_reports_a_rate(name: str) -> None:
    bench: Bench = ROWS[name]
    size = SIZES.get(bench.topology, 5_000)
    result = bench.fn(size)
    assert isinstance(result, float)
    assert result > 0 and math.isfinite(result)


def test_every_new_topology_is_in_the_runner() -> None:
    from benchmarks import run

    topologies = {b.topology for b in run.registry()}
    for topology in (
        "parse_binance",
        "parse_coinbase",
        "parse_kraken",
        "journal_append",
        "journal_recovery",
        "archive_write",
        "query_day",
        "fix_replay",
    ):
        assert topology in topologies
        assert topology in run.TOPOLOGIES
        assert run.REFERENCES[topology]
