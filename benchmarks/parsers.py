"""Venue frame parsing, measured beside a plain ``json.loads`` loop over the same frames.

Topologies (one per venue format, so each has its own baseline):
  parse_binance, parse_coinbase, parse_kraken
                  recorded frames held in memory as ``str``, one ``parser.parse(frame,
                  receive_ns)`` call each, giving exact ``Decimal`` updates (frames/s); the
                  baseline row of each venue is ``json.loads`` over the same frames, which
                  only builds dicts and lists of strings. Frames: binance, the packaged
                  sample's stream frames (bookTicker, trade, depth diffs of spot, USD-M and
                  COIN-M); coinbase and kraken, the ``recv`` frames of
                  ../shared/data/exchanges/<VENUE>.jsonl.zst. A run of n frames cycles over
                  the set and checks the number of updates (or objects) it made.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from functools import cache

from benchmarks.harness import SHARED_DATA, Bench

__all__ = ["benches"]

EXCHANGES = SHARED_DATA / "exchanges"


class BenchFailure(RuntimeError):
    """A benchmark parsed the wrong number of updates."""


@cache
def frames(venue: str) -> tuple[str, ...]:
    """Return the frames of a venue format, as ``str``."""
    if venue == "binance":
        from market_intel.adapters import binance

        out = []
        for path in binance.sample_paths():
            with gzip.open(path, "rt") as handle:
                out += [line.split(" ", 1)[1].rstrip("\n") for line in handle if '"stream"' in line]
        return tuple(out)
    from market_intel.adapters.recording import recorded_frames

    path = EXCHANGES / f"{venue.upper()}.jsonl.zst"
    return tuple(
        str(frame.data) for frame in recorded_frames(path, order="file") if frame.kind == "recv"
    )


@cache
def updates_per_frame(venue: str) -> tuple[int, ...]:
    from market_intel.adapters.venues import parser_for

    parser = parser_for(venue)
    return tuple(len(parser.parse(frame, 0).updates) for frame in frames(venue))


@cache
def sizes_per_frame(venue: str) -> tuple[int, ...]:
    return tuple(len(json.loads(frame)) for frame in frames(venue))


def _expected_sizes(venue: str, n: int) -> int:
    counts = sizes_per_frame(venue)
    whole, rest = divmod(n, len(counts))
    return sum(counts) * whole + sum(counts[:rest])


def _cycle(venue: str, n: int) -> list[str]:
    data = frames(venue)
    whole, rest = divmod(n, len(data))
    return [*data * whole, *data[:rest]]


def _expected(venue: str, n: int) -> int:
    counts = updates_per_frame(venue)
    whole, rest = divmod(n, len(counts))
    return sum(counts) * whole + sum(counts[:rest])


def _parse(venue: str) -> Callable[[int], float]:
    def run(n: int) -> float:
        from market_intel.adapters.venues import parser_for

        work = _cycle(venue, n)
        expected = _expected(venue, n)
        parse = parser_for(venue).parse
        made = 0
        t0 = time.perf_counter_ns()
        for receive_ns, frame in enumerate(work):
            made += len(parse(frame, receive_ns).updates)
        elapsed = time.perf_counter_ns() - t0
        if made != expected:
            raise BenchFailure(f"{venue}: {made} updates from {n} frames; expected {expected}")
        return n * 1e9 / elapsed

    return run


def _json_loads(venue: str) -> Callable[[int], float]:
    def run(n: int) -> float:
        work = _cycle(venue, n)
        expected = _expected_sizes(venue, n)
        loads = json.loads
        made = 0
        t0 = time.perf_counter_ns()
        for frame in work:
            made += len(loads(frame))
        elapsed = time.perf_counter_ns() - t0
        if made != expected:
            raise BenchFailure(f"{venue}: json.loads made {made} top-level items; {expected=}")
        return n * 1e9 / elapsed

    return run


_SIZES = {"binance": (60_000, 300_000), "coinbase": (2_000, 10_000), "kraken": (20_000, 100_000)}
_NOTES = {
    "binance": "packaged sample: 58,102 stream frames, spot + USD-M + COIN-M",
    "coinbase": "COINBASE.jsonl.zst: 1,030 advanced-trade frames (2 L2 snapshots: 46k, 23k levels)",
    "kraken": "KRAKEN.jsonl.zst: 4,430 v1 frames, mostly 1-level book updates",
}


def benches() -> list[Bench]:
    """Return the parse_<venue> rows: each venue's parser and its ``json.loads`` baseline."""
    rows = []
    for venue, (quick, full) in _SIZES.items():
        rows.append(
            Bench(
                f"parse_{venue}",
                f"market-intel {venue} parser",
                "throughput",
                _parse(venue),
                quick,
                full,
                _NOTES[venue] + "; exact Decimal updates",
            )
        )
        rows.append(
            Bench(
                f"parse_{venue}",
                f"json.loads {venue} (baseline)",
                "throughput",
                _json_loads(venue),
                quick,
                full,
                _NOTES[venue] + "; dicts of strings only",
            )
        )
    return rows
