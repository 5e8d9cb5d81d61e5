"""Shared benchmark helpers: result records, repetition runner, tables and JSON output.

A benchmark is a callable taking one size argument (events or round trips) and returning either
a throughput figure (events/s, a float) or a latency summary (percentiles in ns, a dict with the
keys of `PERCENTILE_KEYS`). The callable is responsible for verifying the data it moved (count
and checksum) and must raise on any mismatch.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

THROUGHPUT = "events/s"
LATENCY = "ns"
PERCENTILE_KEYS: tuple[str, ...] = ("p50", "p90", "p99", "p99.9", "max")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"


def _shared_data() -> Path:
    """The shared market data: ``MARKET_INTEL_SHARED_DATA``, else a ``shared/data`` beside or
    above the checkout, else the machine's ``/work/shared/data``."""
    configured = os.environ.get("MARKET_INTEL_SHARED_DATA")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents[1].parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return Path("/work/shared/data")


SHARED_DATA = _shared_data()
SCHEMA = "market-intel-bench/1"
NOISY_PCT = 5.0  # a repetition is "noisy" if other processes used >= this % of all cores

Kind = Literal["throughput", "latency"]
ThroughputFn = Callable[[int], float]
LatencyFn = Callable[[int], dict[str, float]]


@dataclass
class Result:
    """One row of a table: an implementation measured in one topology."""

    topology: str
    implementation: str
    metric: str  # THROUGHPUT ("events/s") or LATENCY ("ns", the p50 for latency rows)
    values: list[float]  # one figure per measured repetition
    median: float
    percentiles: dict[str, float] | None = None  # latency rows: median over reps per percentile
    notes: str = ""
    params: dict[str, Any] = field(default_factory=dict)  # size, reps, noise figures, flags ...

    @property
    def higher_is_better(self) -> bool:
        return self.metric != LATENCY


@dataclass
class Bench:
    """A registry entry: how to run one implementation in one topology.

    `fn(size)` returns events/s (kind "throughput") or a percentile dict (kind "latency").
    `quick` and `full` are the sizes used by the two modes (events, records or round trips).
    """

    topology: str
    implementation: str
    kind: Kind
    fn: Callable[[int], Any]
    quick: int
    full: int
    notes: str = ""


def percentiles_ns(samples: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/p99.9/max of a latency sample (ns)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("empty latency sample")
    p = np.percentile(a, [50.0, 90.0, 99.0, 99.9])
    return {
        "p50": float(p[0]),
        "p90": float(p[1]),
        "p99": float(p[2]),
        "p99.9": float(p[3]),
        "max": float(a.max()),
    }


# ------------------------------------------------------------------------- noise metering


def _system_jiffies() -> tuple[int, int] | None:
    """(busy, steal) jiffies of the whole machine; busy = user+nice+system+irq+softirq."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)), int(fields[8])


@dataclass
class Noise:
    """CPU used by other processes and stolen by the hypervisor, as % of all cores."""

    foreign_pct: float
    steal_pct: float


class CpuMeter:
    """Measures `Noise` over an interval (Linux /proc/stat; None elsewhere).

    Own usage = this process (all threads) + children reaped during the interval, so children
    must be joined before `stop()` (every peer benchmark joins its processes).
    """

    def __init__(self) -> None:
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._ncpu = os.cpu_count() or 1
        self._sys0: tuple[int, int] | None = None
        self._own0 = 0.0
        self._t0 = 0.0

    @staticmethod
    def _own_seconds() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self) -> None:
        self._sys0 = _system_jiffies()
        self._own0 = self._own_seconds()
        self._t0 = time.perf_counter()

    def stop(self) -> Noise | None:
        sys1 = _system_jiffies()
        wall = time.perf_counter() - self._t0
        if self._sys0 is None or sys1 is None or wall <= 0:
            return None
        capacity = wall * self._ncpu / 100.0  # seconds of CPU per percent
        busy = (sys1[0] - self._sys0[0]) / self._hz
        foreign = max(0.0, busy - (self._own_seconds() - self._own0))
        steal = (sys1[1] - self._sys0[1]) / self._hz
        return Noise(foreign / capacity, steal / capacity)


def wait_quiet(max_seconds: float, threshold_pct: float = NOISY_PCT) -> float:
    """Wait (bounded) until two consecutive 0.2 s windows show little foreign CPU."""
    t0 = time.perf_counter()
    quiet = 0
    meter = CpuMeter()
    while quiet < 2 and time.perf_counter() - t0 < max_seconds:
        meter.start()
        time.sleep(0.2)
        noise = meter.stop()
        quiet = quiet + 1 if noise is not None and noise.foreign_pct < threshold_pct else 0
    return time.perf_counter() - t0


# ------------------------------------------------------------------------- running


def run_reps(
    fn: Callable[[int], Any], size: int, reps: int, warmup: int = 1, warmup_size: int | None = None
) -> tuple[list[Any], list[Noise | None]]:
    """Warm up `warmup` times (at `warmup_size`, default size//4), then measure `reps` times.

    Returns the per-repetition outputs and the `Noise` seen during each repetition.
    """
    wsize = warmup_size if warmup_size is not None else max(1, size // 4)
    for _ in range(warmup):
        fn(wsize)
    outs: list[Any] = []
    noise: list[Noise | None] = []
    meter = CpuMeter()
    for _ in range(reps):
        meter.start()
        outs.append(fn(size))
        noise.append(meter.stop())
    return outs, noise


def _noise_params(noise: list[Noise | None]) -> dict[str, Any]:
    worst = max((n.foreign_pct for n in noise if n is not None), default=None)
    return {
        "foreign_cpu_pct": [None if n is None else round(n.foreign_pct, 1) for n in noise],
        "steal_pct": [None if n is None else round(n.steal_pct, 1) for n in noise],
        "flag": "NOISY" if worst is not None and worst >= NOISY_PCT else "ok",
    }


def measure(bench: Bench, size: int, reps: int, warmup: int = 1) -> Result:
    """Run one registry entry and summarise it as a `Result` (medians over repetitions)."""
    outs, noise = run_reps(bench.fn, size, reps, warmup)
    params: dict[str, Any] = {"size": size, "reps": reps, "warmup": warmup, **_noise_params(noise)}
    if bench.kind == "throughput":
        values = [float(v) for v in outs]
        return Result(
            bench.topology,
            bench.implementation,
            THROUGHPUT,
            values,
            statistics.median(values),
            None,
            bench.notes,
            params,
        )
    pct = {k: statistics.median(float(o[k]) for o in outs) for k in PERCENTILE_KEYS}
    values = [float(o["p50"]) for o in outs]
    return Result(
        bench.topology, bench.implementation, LATENCY, values, pct["p50"], pct, bench.notes, params
    )


def failed(bench: Bench, error: BaseException) -> Result:
    """A row recording that a benchmark raised (kept in the JSON, shown in the table)."""
    metric = THROUGHPUT if bench.kind == "throughput" else LATENCY
    return Result(
        bench.topology,
        bench.implementation,
        metric,
        [],
        float("nan"),
        None,
        f"FAILED: {type(error).__name__}: {error}",
        {"flag": "FAILED"},
    )


# ------------------------------------------------------------------------- output


def _fmt_value(v: float, metric: str) -> str:
    if v != v:  # NaN
        return "-"
    if metric == THROUGHPUT:
        m = v / 1e6
        return f"{m:,.{0 if m >= 100 else 1 if m >= 10 else 2 if m >= 1 else 3}f} M/s"
    return f"{v:,.0f}"


def _ref_row(rows: list[Result], ref: str) -> Result | None:
    for r in rows:
        if r.implementation == ref and r.median == r.median:
            return r
    return None


def format_table(topology: str, rows: list[Result], refs: Sequence[str] = ()) -> str:
    """Aligned plain-text table: median per row and the ratio to each reference row present.

    Ratio = row median / reference median, so for events/s >1 is faster and for ns >1 is slower.
    """
    present = [(ref, r) for ref in refs if (r := _ref_row(rows, ref)) is not None]
    lat = any(r.metric == LATENCY for r in rows)
    head = ["implementation", "median" if not lat else "p50 ns"]
    if lat:
        head += [k for k in PERCENTILE_KEYS if k != "p50"]
    head += [f"vs {ref}" for ref, _ in present] + ["reps", "flag", "notes"]
    body: list[list[str]] = []
    for r in rows:
        line = [r.implementation, _fmt_value(r.median, r.metric)]
        if lat:
            pct = r.percentiles or {}
            line += [
                _fmt_value(pct.get(k, float("nan")), LATENCY) for k in PERCENTILE_KEYS if k != "p50"
            ]
        for _, ref_row in present:
            ok = ref_row.median and r.median == r.median
            line.append(f"{r.median / ref_row.median:.3g}x" if ok else "-")
        reps = r.params.get("reps") or len(r.values)
        line += [str(reps), str(r.params.get("flag", "")), r.notes]
        body.append(line)
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head) - 1)]
    unit = "one-way latency, ns (lower is better)" if lat else "events/s (higher is better)"
    out = [f"== {topology}  [{unit}; ratios = row median / reference median]"]
    for row in [head, *body]:
        pairs = enumerate(zip(row[:-1], widths, strict=True))
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        out.append("  ".join(cells) + "  " + row[-1])
    return "\n".join(out)


def print_tables(
    results: list[Result], topologies: Sequence[str], refs: Mapping[str, Sequence[str]]
) -> None:
    """Print one table per topology (in the given order, then any others), skipping empty ones."""
    order = list(topologies) + sorted({r.topology for r in results} - set(topologies))
    for topo in order:
        rows = [r for r in results if r.topology == topo]
        if rows:
            print(format_table(topo, rows, refs.get(topo, ())))
            print()


def machine_info() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "nproc": os.cpu_count(),
        "numpy": np.__version__,
    }


def write_json(
    results: list[Result], path: Path | str | None = None, meta: dict[str, Any] | None = None
) -> Path:
    """Write all results (and run metadata) as JSON; creates the directory. Returns the path."""
    p = Path(path) if path is not None else DEFAULT_JSON
    p.parent.mkdir(parents=True, exist_ok=True)

    def clean(x: float) -> float | None:
        return None if x != x else x  # NaN is not valid JSON

    rows = []
    for r in results:
        d = asdict(r)
        d["median"] = clean(r.median)
        d["higher_is_better"] = r.higher_is_better
        rows.append(d)
    doc = {
        "schema": SCHEMA,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_info(),
        "meta": meta or {},
        "results": rows,
    }
    p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return p


def load_json(path: Path | str) -> list[Result]:
    """Read results back from a file written by `write_json`."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for d in doc["results"]:
        d.pop("higher_is_better", None)
        d["median"] = float("nan") if d["median"] is None else d["median"]
        out.append(Result(**d))
    return out
