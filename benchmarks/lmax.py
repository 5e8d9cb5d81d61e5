"""Run the real LMAX Disruptor (Java) anchor and turn its raw output into `Result` rows.

The anchor lives outside this repository (`../shared/anchors/lmax-java/run.sh` relative to the
repo root). It compiles a small Java harness against the Debian `libdisruptor-java` jar, runs each
scenario in a fresh JVM and writes one machine-readable line per scenario to
`$ANCHOR_OUT/out/raw.txt`:

    THR|scenario|wait|batch|N|median_ops_per_s|run1,run2,...|flag|max_foreign%|max_steal%
    LAT|scenario|wait|N|p50|p90|p99|p99.9|max|rtt_per_s|flag|max_foreign%|max_steal%   (ns)

Latency rows only carry medians over runs, so their `values` list holds that single p50.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.harness import LATENCY, THROUGHPUT, Result

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_SH = (REPO_ROOT / ".." / "shared" / "anchors" / "lmax-java" / "run.sh").resolve()
JARS = (Path("/usr/share/java/disruptor.jar"), Path("/usr/share/java/hdrhistogram.jar"))
INSTALL_HINT = "apt-get install -y libdisruptor-java libhdrhistogram-java"

# Anchor scenario -> our topology name.
TOPOLOGY = {
    "spsc": "one_to_one",
    "abq": "one_to_one",
    "mcast3": "one_to_three_multicast",
    "mpsc3": "three_to_one",
    "pingpong": "ping_pong_latency",
}

# Env knobs per mode. QUIET_WAIT / MAX_EXTRA bound the anchor's own noise control so a busy
# machine cannot stretch the run much beyond ~40 s (quick) or ~3 min (full; ~70 s when quiet).
MODES: dict[str, dict[str, str]] = {
    "quick": {
        "N": "2000000",
        "PP_N": "100000",
        "REPS": "1",
        "CAP": "10",
        "MAX_EXTRA": "0",
        "QUIET_WAIT": "1",
    },
    "full": {
        "N": "20000000",
        "PP_N": "500000",
        "REPS": "3",
        "CAP": "10",
        "MAX_EXTRA": "1",
        "QUIET_WAIT": "2",
    },
}
TIMEOUT_S = {"quick": 240.0, "full": 900.0}


@dataclass
class AnchorRun:
    """Outcome of one anchor run: parsed rows, a human-readable note and the raw text."""

    results: list[Result] = field(default_factory=list)
    note: str = ""
    raw: str = ""
    table: str = ""
    wall_s: float = 0.0


def implementation_name(scenario: str, wait: str, batch: int) -> str:
    """Row label, e.g. 'LMAX yielding', 'LMAX busyspin batch=10', 'ArrayBlockingQueue'."""
    if scenario == "abq":
        return "ArrayBlockingQueue"
    return f"LMAX {wait}" + (f" batch={batch}" if batch > 1 else "")


def _noise(flag: str, foreign: str, steal: str) -> dict[str, object]:
    return {"flag": flag, "foreign_cpu_pct": [float(foreign)], "steal_pct": [float(steal)]}


def parse_raw(text: str, reps: int | None = None) -> list[Result]:
    """Parse THR|... and LAT|... lines (other lines are ignored).

    `reps` (the REPS knob) is recorded for LAT rows, whose line carries only medians.
    """
    out: list[Result] = []
    for line in text.splitlines():
        f = line.strip().split("|")
        if f[0] == "THR" and len(f) >= 10:
            scenario, wait, batch, n = f[1], f[2], int(f[3]), int(f[4])
            runs = [float(x) for x in f[6].split(",") if x]
            note = "Java, 1 thread per consumer; event = long holder"
            if scenario == "abq":
                note = "Java ArrayBlockingQueue<Long>, cap 65536, put/take"
            elif scenario == "mcast3":
                note = "events published/s; each seen by all 3 consumers"
            elif scenario == "mpsc3":
                note = "ProducerType.MULTI, total over 3 producers"
            out.append(
                Result(
                    topology=TOPOLOGY.get(scenario, scenario),
                    implementation=implementation_name(scenario, wait, batch),
                    metric=THROUGHPUT,
                    values=runs,
                    median=float(f[5]),
                    notes=note,
                    params={
                        "source": "lmax-java anchor",
                        "scenario": scenario,
                        "wait": wait,
                        "batch": batch,
                        "size": n,
                        "reps": len(runs),
                        **_noise(f[7], f[8], f[9]),
                    },
                )
            )
        elif f[0] == "LAT" and len(f) >= 13:
            scenario, wait, n = f[1], f[2], int(f[3])
            pct = dict(zip(("p50", "p90", "p99", "p99.9", "max"), map(float, f[4:9]), strict=True))
            out.append(
                Result(
                    topology=TOPOLOGY.get(scenario, scenario),
                    implementation=implementation_name(scenario, wait, 1),
                    metric=LATENCY,
                    values=[pct["p50"]],
                    median=pct["p50"],
                    percentiles=pct,
                    notes="Java threads, two rings, RTT/2 (HdrHistogram)",
                    params={
                        "source": "lmax-java anchor",
                        "scenario": scenario,
                        "wait": wait,
                        "size": n,
                        "reps": reps,
                        "rtt_per_s": float(f[9]),
                        **_noise(f[10], f[11], f[12]),
                    },
                )
            )
    return out


def _missing_prereqs(run_sh: Path) -> str | None:
    if not run_sh.is_file():
        return f"LMAX anchor not found at {run_sh}"
    missing = [str(j) for j in JARS if not j.is_file()]
    if missing:
        return f"LMAX anchor skipped: missing jars {missing}; run: {INSTALL_HINT}"
    if shutil.which("java") is None or shutil.which("javac") is None:
        return "LMAX anchor skipped: java/javac not on PATH (install a JDK)"
    return None


def run_lmax(
    mode: str = "quick",
    run_sh: Path = RUN_SH,
    keep_dir: Path | None = None,
    overrides: dict[str, str] | None = None,
    echo: bool = False,
) -> AnchorRun:
    """Run the anchor in `mode` ('quick' or 'full'); never raises for a missing setup.

    `keep_dir`: use this as ANCHOR_OUT and keep it (default: a temp dir that is removed).
    `overrides`: extra env knobs (N, PP_N, REPS, CAP, MAX_EXTRA, QUIET_PCT, QUIET_WAIT).
    `echo`: stream the anchor's progress (stderr) to our stderr.
    """
    problem = _missing_prereqs(run_sh)
    if problem:
        return AnchorRun(note=problem)
    env = {**os.environ, **MODES[mode], **(overrides or {})}
    tmp = None if keep_dir else tempfile.mkdtemp(prefix="lmax-anchor-")
    out_dir = Path(keep_dir) if keep_dir else Path(str(tmp))
    env["ANCHOR_OUT"] = str(out_dir)
    t0 = time.perf_counter()
    knobs = " ".join(f"{k}={env[k]}" for k in MODES[mode])
    stdout, stderr, status = "", "", ""
    try:
        # Own session so that a timeout can stop bash *and* the JVMs it started (by group id).
        proc = subprocess.Popen(
            ["bash", str(run_sh)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=None if echo else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S[mode])
            status = f"exit={proc.returncode}"
        except subprocess.TimeoutExpired:
            status = f"TIMED OUT after {TIMEOUT_S[mode]:.0f} s (partial results)"
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        raw_path = out_dir / "out" / "raw.txt"
        raw = raw_path.read_text(encoding="utf-8") if raw_path.is_file() else ""
        results = parse_raw(raw, int(env["REPS"]))
        note = f"LMAX anchor ({mode}: {knobs}) {status}, {len(results)} rows"
        if proc.returncode != 0 and stderr:
            note += "; stderr tail: " + " / ".join(stderr.strip().splitlines()[-3:])
        return AnchorRun(results, note, raw, stdout or "", time.perf_counter() - t0)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    import sys

    run = run_lmax(sys.argv[1] if len(sys.argv) > 1 else "quick", echo=True)
    print(run.table)
    print(run.note, f"({run.wall_s:.0f} s)")
    for r in run.results:
        print(r.topology, r.implementation, r.median, r.percentiles or "", r.params["flag"])
