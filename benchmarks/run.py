"""Benchmark runner: LMAX anchor + Python peers + market-intel's own paths, one table per topology.

    python -m benchmarks.run [--quick] [--json PATH] [--only TOPOLOGY ...] [--impl TEXT ...]
                             [--no-lmax] [--reps N] [--quiet-wait S] [--list]

Topologies (LMAX names, plus two for cross-process Python):
  one_to_one              1 producer -> 1 consumer in one process (LMAX spsc, ArrayBlockingQueue,
                          Python threads with queue.SimpleQueue / queue.Queue)
  one_to_three_multicast  1 producer -> 3 consumers, each sees every event (LMAX mcast3)
  one_to_three_pipeline   1 producer -> stage 1 -> stage 2 -> stage 3 (no anchor rows yet)
  diamond                 1 producer -> 2 parallel consumers -> 1 joining consumer (no anchor rows)
  three_to_one            3 producers -> 1 consumer (LMAX mpsc3)
  ping_pong_latency       one-way latency = round trip / 2, ns (LMAX pingpong, Python threads and
                          processes)
  python_process_records  producer process -> consumer process, one record per message
  python_process_batches  producer process -> consumer process, numpy batches of 1024 x 64 B;
                          events = records; includes the unsynchronized shared-memory ceiling
  publish_message         one Python thread publishes pre-built messages, one call each, to one
                          Python handler (NautilusTrader MessageBus; market-intel CoreEngine)
  publish_batch           market data records in numpy batches to one vectorized agent, beside
                          the same messages published one by one
  replay                  the main job: decoded Binance frames through an engine with three
                          agents, frames/s
  kill_switch_latency     a CONTROL message published during a market data flood: publish ->
                          handler, ns, CRITICAL (priority lane) beside NORMAL (behind the flood)
  parse_<venue>           recorded frames of binance, coinbase, kraken parsed into exact Decimal
                          updates, beside a json.loads loop over the same frames
  journal_append          CoreMessages (and raw records) appended to the journal per fsync policy,
                          beside file.write of the same msgpack bytes
  journal_recovery        a journal of recorded market data reopened and replayed, beside decoding
                          the same msgpack from a plain file
  archive_write           recorded Binance records to the partitioned zstd Parquet archive, beside
                          one pyarrow write_table and raw numpy tofile
  query_day               trades and 1-minute bars of one symbol over a day of data (the recording
                          tiled over 24 h), pruned, beside the same query with pushdown off
  fix_replay              the recorded JSE 35=X feed parsed, checked and converted, beside a plain
                          simplefix parser loop
New implementations are registered in benchmarks/ours.py (see its docstring).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from benchmarks import (
    engine,
    fix,
    lmax,
    native,
    nautilus,
    ours,
    parsers,
    peers,
    storage_archive,
    storage_journal,
)
from benchmarks.harness import (
    DEFAULT_JSON,
    Bench,
    Result,
    failed,
    measure,
    print_tables,
    wait_quiet,
    write_json,
)

TOPOLOGIES: tuple[str, ...] = (
    "one_to_one",
    "one_to_three_multicast",
    "one_to_three_pipeline",
    "diamond",
    "three_to_one",
    "ping_pong_latency",
    "python_process_records",
    "python_process_batches",
    # Appended after the LMAX topologies (native_topologies below takes the first six).
    "publish_message",
    "publish_batch",
    "replay",
    "kill_switch_latency",
    "parse_binance",
    "parse_coinbase",
    "parse_kraken",
    "journal_append",
    "journal_recovery",
    "archive_write",
    "query_day",
    "fix_replay",
)

# Ratio columns per topology: each row's median / the median of these rows (when present).
REFERENCES: dict[str, tuple[str, ...]] = {
    "one_to_one": ("LMAX yielding", "queue.SimpleQueue"),
    "one_to_three_multicast": ("LMAX yielding",),
    "one_to_three_pipeline": ("market-intel native yielding",),
    "diamond": ("market-intel native yielding",),
    "three_to_one": ("LMAX yielding",),
    "ping_pong_latency": ("LMAX busyspin", "mp.Pipe"),
    "python_process_records": ("pyzmq PUSH/PULL",),
    "python_process_batches": ("shm numpy ring (ceiling)", "pyzmq PUSH/PULL"),
    "publish_message": ("NautilusTrader MessageBus",),
    "publish_batch": ("market-intel publish_message (per message)",),
    "replay": ("market-intel replay (3 agents)",),
    "kill_switch_latency": ("market-intel NORMAL (behind the flood)",),
    "parse_binance": ("json.loads binance (baseline)",),
    "parse_coinbase": ("json.loads coinbase (baseline)",),
    "parse_kraken": ("json.loads kraken (baseline)",),
    "journal_append": ("file.write of the msgpack bytes (baseline)",),
    "journal_recovery": ("msgspec decode of a plain file (baseline)",),
    "archive_write": ("pyarrow write_table (one file)",),
    "query_day": ("MarketStore, filter pushdown off",),
    "fix_replay": ("simplefix FixParser loop",),
}

DEFAULT_REPS = {"quick": 3, "full": 5}
DEFAULT_QUIET_WAIT_S = {"quick": 0.0, "full": 2.0}


def registry() -> list[Bench]:
    """Every runnable benchmark: the Python peers, then market-intel's own (benchmarks/ours.py)."""
    return (
        peers.benches()
        + list(ours.BENCHES)
        + nautilus.benches()
        + engine.benches()
        + parsers.benches()
        + storage_journal.benches()
        + storage_archive.benches()
        + fix.benches()
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, 3 reps (about a minute)")
    ap.add_argument("--json", default=str(DEFAULT_JSON), help="output file (default: %(default)s)")
    ap.add_argument("--only", nargs="+", metavar="TOPOLOGY", help="run only these topologies")
    ap.add_argument(
        "--impl",
        nargs="+",
        metavar="TEXT",
        help="run only implementations whose name contains one of these (case-insens.)",
    )
    ap.add_argument("--no-lmax", action="store_true", help="skip the LMAX Java anchor")
    ap.add_argument("--no-native", action="store_true", help="skip the native Rust topologies")
    ap.add_argument("--reps", type=int, help="measured repetitions per benchmark")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        help="wait up to S seconds for an idle machine before each benchmark",
    )
    ap.add_argument("--list", action="store_true", help="list the registry and exit")
    return ap.parse_args(argv)


def _selected(b: Bench | Result, only: set[str] | None, impl: list[str] | None) -> bool:
    name = b.implementation.lower()
    return (only is None or b.topology in only) and (
        impl is None or any(s.lower() in name for s in impl)
    )


def _summary(r: Result) -> str:
    if r.median != r.median:
        return r.notes
    if r.metric == "ns":
        return f"p50 {r.median:,.0f} ns"
    return f"{r.median / 1e6:,.3f} M/s"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    mode = "quick" if args.quick else "full"
    benches = registry()
    if args.list:
        for b in benches:
            print(
                f"{b.topology:24s} {b.implementation:28s} {b.kind:10s} "
                f"quick={b.quick:>11,} full={b.full:>11,}  {b.notes}"
            )
        return 0
    known = set(TOPOLOGIES) | {b.topology for b in benches}
    only = set(args.only) if args.only else None
    if only and not only <= known:
        print(f"unknown topology {sorted(only - known)}; known: {sorted(known)}", file=sys.stderr)
        return 2
    reps = args.reps or DEFAULT_REPS[mode]
    quiet = DEFAULT_QUIET_WAIT_S[mode] if args.quiet_wait is None else args.quiet_wait
    t_all = time.perf_counter()
    results: list[Result] = []
    notes: list[str] = []

    if not args.no_lmax and (only is None or only & set(lmax.TOPOLOGY.values())):
        print(f"[lmax] running the Java anchor ({mode}) ...", file=sys.stderr, flush=True)
        anchor = lmax.run_lmax(mode)
        results += [r for r in anchor.results if _selected(r, only, args.impl)]
        notes.append(anchor.note + f" ({anchor.wall_s:.0f} s)")
        print(f"[lmax] {notes[-1]}", file=sys.stderr, flush=True)

    native_topologies = set(TOPOLOGIES[:6])  # the LMAX topologies
    if not args.no_native and (only is None or only & native_topologies):
        print(f"[native] running the Rust topologies ({mode}) ...", file=sys.stderr, flush=True)
        nat = native.run_native(mode, sorted(only & native_topologies) if only else None)
        results += [r for r in nat.results if _selected(r, only, args.impl)]
        notes.append(nat.note + f" ({nat.wall_s:.0f} s)")
        print(f"[native] {notes[-1]}", file=sys.stderr, flush=True)

    todo = [b for b in benches if _selected(b, only, args.impl)]
    for i, b in enumerate(todo, 1):
        size = b.quick if args.quick else b.full
        if quiet > 0:
            wait_quiet(quiet)
        t0 = time.perf_counter()
        try:
            r = measure(b, size, reps)
        except Exception as e:  # one broken benchmark must not hide the others
            r = failed(b, e)
        results.append(r)
        print(
            f"[{i}/{len(todo)}] {b.topology} / {b.implementation}: {_summary(r)} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    print()
    print_tables(results, TOPOLOGIES, REFERENCES)
    for n in notes:
        print(n)
    meta = {
        "mode": mode,
        "reps": reps,
        "argv": list(sys.argv[1:] if argv is None else argv),
        "notes": notes,
        "wall_s": round(time.perf_counter() - t_all, 1),
        "start_method": "fork",
        "references": REFERENCES,
    }
    path = write_json(results, args.json, meta)
    print(f"results: {path}  (total {time.perf_counter() - t_all:.0f} s)")
    return 1 if any(r.params.get("flag") == "FAILED" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
