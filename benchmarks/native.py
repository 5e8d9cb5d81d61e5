"""market-intel's native paths (Rust producers and handlers): crates/core/benches/topologies.rs.

The Rust program runs the LMAX topologies with the same event (one i64 per 8-byte slot), ring
size (65,536) and wait strategies as the Java anchor, verifies every consumer's checksum (a
broken run exits non-zero) and writes JSON rows that become `Result`s here, labelled
``market-intel native <wait>[ batch=N]`` next to ``LMAX <wait>[ batch=N]``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import Result

ROOT = Path(__file__).resolve().parents[1]
ARGS = {
    "quick": ["--events", "5000000", "--pings", "200000", "--reps", "3"],
    "full": ["--events", "50000000", "--pings", "1000000", "--reps", "3"],
}


@dataclass
class NativeRun:
    results: list[Result] = field(default_factory=list)
    note: str = ""
    wall_s: float = 0.0


def implementation_name(wait: str, batch: int) -> str:
    """Row label, e.g. 'market-intel native yielding', '... busyspin batch=10'."""
    return f"market-intel native {wait}" + (f" batch={batch}" if batch > 1 else "")


def parse(rows: list[dict[str, object]]) -> list[Result]:
    """Turn the program's JSON rows into results."""
    out = []
    for row in rows:
        out.append(
            Result(
                topology=str(row["topology"]),
                implementation=implementation_name(str(row["wait"]), int(row["batch"])),  # type: ignore[call-overload]
                metric=str(row["metric"]),
                values=[float(v) for v in row["values"]],  # type: ignore[attr-defined]
                median=float(row["median"]),  # type: ignore[arg-type]
                percentiles=row.get("percentiles"),  # type: ignore[arg-type]
                notes=str(row.get("notes", "")),
                params=dict(row.get("params") or {}),  # type: ignore[call-overload]
            )
        )
    return out


def run_native(mode: str, only: list[str] | None = None) -> NativeRun:
    """Build (release) and run the native topology benchmarks."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "native.json"
        cmd = ["cargo", "bench", "-q", "-p", "market-intel-core", "--bench", "topologies", "--"]
        cmd += [*ARGS[mode], "--json", str(out)]
        if only:
            cmd += ["--only", ",".join(only)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return NativeRun([], f"native benchmarks FAILED (exit {proc.returncode}): {tail}", wall)
        rows = json.loads(out.read_text())
    return NativeRun(parse(rows), f"native: {' '.join(cmd[4:])}", wall)
