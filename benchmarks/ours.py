"""market-intel's own paths: the registry the benchmark runner adds to the peers.

>>> REGISTER MARKET-INTEL IMPLEMENTATIONS HERE <<<

Append one `Bench` per path to `BENCHES`:

    Bench(topology, implementation, kind, fn, quick, full, notes)

  topology        one of benchmarks.run.TOPOLOGIES, so the row lands in the table next to the
                  LMAX anchor / Python peers it should be compared with, e.g.
                  "one_to_one", "one_to_three_multicast", "one_to_three_pipeline", "diamond",
                  "three_to_one", "ping_pong_latency", "python_process_records",
                  "python_process_batches";
  implementation  row label, e.g. "market-intel busyspin";
  kind            "throughput": fn(size) -> events/s (float)
                  "latency":    fn(size) -> {"p50","p90","p99","p99.9","max"} one-way ns
                                (benchmarks.harness.percentiles_ns(samples) builds it);
  fn              must verify what it moved (benchmarks.records.check(what, n, count,
                  checksum)) and raise on mismatch; import market_intel *inside* fn so a
                  missing build turns into a FAILED row instead of breaking the peers;
  quick, full     sizes (events, records or round trips) for --quick and full runs.

Cross-process paths can reuse benchmarks.procs.run_pair / run_processes (fork, barrier,
deadline, always-joined children) and benchmarks.records (REC_DTYPE, batch_template, raw),
exactly like the peers in benchmarks/peers.py and benchmarks/shm_ring.py.
"""

from __future__ import annotations

from benchmarks.harness import Bench
from benchmarks.mi_paths import benches as _python_paths

BENCHES: list[Bench] = [*_python_paths()]
