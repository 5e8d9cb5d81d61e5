"""The main job (`market-intel run`): every number in its report is computed from the replayed
recordings, and an independent reading of the same files with the standard library agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from market_intel.config import EngineConfig, example_config_path, load_config
from market_intel.job import default_config, run_job
from test_binance_sample import PACKAGED, read_reference

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "market_intel", "run", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def reference() -> dict[tuple[str, str], Any]:
    return dict(read_reference(p) for p in sorted(PACKAGED.glob("*.gz")))


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("job") / "report.json"
    done = run_cli("--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "sequence check ok" in done.stdout
    assert "BTC-USD-PERP" in done.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_the_report_equals_an_independent_reading_of_the_recordings(
    cli_report: dict[str, Any], reference: dict[tuple[str, str], Any]
) -> None:
    frames = sum(sum(r.frames.values()) for r in reference.values())
    assert cli_report["frames"] == frames == 58_108
    symbols = {(s["venue"], s["symbol"]): s for s in cli_report["symbols"]}
    assert set(symbols) == set(reference)
    for key, ref in reference.items():
        got = symbols[key]
        assert got["frames"] == sum(ref.frames.values()), key
        assert got["trades"] == ref.trades, key
        assert got["quotes"] == ref.frames.get("bookTicker", 0), key
        assert Decimal(got["volume"]) == ref.volume, key
        assert Decimal(repr(got["last_price"])) == Decimal(ref.last_price), key
        assert Decimal(repr(got["bid"])) == Decimal(ref.bid), key
        assert Decimal(repr(got["ask"])) == Decimal(ref.ask), key
        vwap = ref.notional / ref.volume
        assert got["vwap"] == pytest.approx(float(vwap), rel=1e-12), key


def test_the_engine_and_agent_figures_add_up(
    cli_report: dict[str, Any], reference: dict[tuple[str, str], Any]
) -> None:
    n = cli_report["frames"]
    engine = cli_report["engine"]
    assert engine["messages_published"] == n
    assert engine["errors"] == engine["dropped"] == 0
    agents = {a["name"]: a for a in engine["agents"]}
    assert set(agents) == {"summary", "sequence_check", "counter"}
    for a in agents.values():
        assert a["messages"] == n and a["errors"] == 0 and a["status"] == "STOPPED"
    assert engine["messages_delivered"] == 3 * n
    assert engine["latency_ns"]["count"] >= n
    counter = cli_report["counter"]
    kinds = {"bookTicker": "QUOTE", "trade": "TRADE", "snapshot": "SNAPSHOT"}
    expected = {"QUOTE": 0, "TRADE": 0, "DEPTH": 0, "SNAPSHOT": 0}
    for ref in reference.values():
        for kind, count in ref.frames.items():
            expected[kinds.get(kind, "DEPTH")] += count
    assert counter["by_kind"] == expected
    assert counter["market_data"] == n
    assert cli_report["sequence"] == {
        "ok": True,
        "rows": n,
        "receive_regressions": 0,
        "trade_gaps": 0,
    }


def test_symbols_chosen_by_an_environment_override(tmp_path: Path) -> None:
    """The records carry canonical symbols; the venue's spelling chooses the same one."""
    out = tmp_path / "r.json"
    symbols = '["BTC-USDT", "btcusdt"]'
    done = run_cli("--json", str(out), env={"MARKET_INTEL__REPLAY__SYMBOLS": symbols})
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert {s["symbol"] for s in report["symbols"]} == {"BTC-USDT"}
    assert report["frames"] == sum(s["frames"] for s in report["symbols"]) == 7_341 + 15_558


def test_a_bad_config_is_reported_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[core]\nbuffer_size = 1000\n[replay]\nspeed = -1\n")
    done = run_cli("--config", str(bad))
    assert done.returncode == 1
    assert "core.buffer_size: 1000 is not a power of two" in done.stderr
    assert "replay.speed" in done.stderr


def test_a_missing_recording_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli("--file", str(tmp_path / "nope.gz"))
    assert done.returncode == 2
    assert "nope.gz: no such recording" in done.stderr


def test_recorded_speed_paces_the_replay() -> None:
    """At 400x the 60 s sample takes at least 60/400 s (pacing sleeps; it never runs ahead)."""
    seen: list[tuple[int, int]] = []
    report = run_job(default_config(), speed=400.0, progress=lambda d, t: seen.append((d, t)))
    assert report.speed == 400.0
    assert report.replay_s >= 60 / 400 * 0.9
    assert seen[-1] == (report.frames, report.frames)
    assert len(seen) > 10  # paced batches are cut at time gaps, so there are many


def test_the_default_is_the_packaged_example_config() -> None:
    assert default_config() == load_config(example_config_path())
    assert isinstance(default_config(), EngineConfig)
    assert [a.name for a in default_config().agents] == ["summary", "sequence_check", "counter"]


def test_values_the_engine_does_not_use_are_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[core.network]\nmetrics_port = 9100\n[core.performance]\nbusy_spin_cores = [1]\n"
        "[agents.counter]\ntype = 'market_data'\n"
    )
    done = run_cli("--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert "core.network.metrics_port = 9100: not used" in done.stdout
    assert "core.performance.busy_spin_cores = [1]: not used" in done.stdout


def test_the_job_journals_and_archives_every_frame_with_store(
    tmp_path: Path, reference: dict[tuple[str, str], Any]
) -> None:
    out = tmp_path / "report.json"
    done = run_cli("--store", str(tmp_path / "kept"), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "Archive (DuckDB)" in done.stdout
    report = json.loads(out.read_text())
    store = report["store"]
    assert store["journaled"] == store["archived"] == report["frames"] == 58_108
    assert store["compression_ratio"] > 1
    # DuckDB's count of trades in the archive is the stdlib reading of the recordings.
    trades = {(t["venue"], t["symbol"]): t["n"] for t in store["trades"]}
    assert trades == {key: stats.trades for key, stats in reference.items()}
    assert all(b["n"] >= 1 for b in store["bars_1m"])
    again = run_cli("--store", str(tmp_path / "kept"))
    assert again.returncode == 2
    assert "is not empty; expected a new or empty directory" in again.stderr
