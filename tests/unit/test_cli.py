"""The command line: ``market-intel config check`` and ``config show``, their output and exit
codes, through ``python -m market_intel`` and typer's test runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from market_intel import _config_notes, cli
from market_intel.config import EngineConfig, example_config_path, load_config
from typer.testing import CliRunner

FIVE_ERRORS = """
[core]
processors = "four"
bufer_size = 1024
buffer_size = 1000

[replay]
speed = -1

[agents.a]
type = "custom"
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without MARKET_INTEL__ overrides, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MARKET_INTEL__")}
    env.update(extra)
    return env


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "market_intel", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
    )


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={k: None for k in os.environ if k.upper().startswith("MARKET_INTEL__")})


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(FIVE_ERRORS)
    return path


# --------------------------------------------------------------------------------------------
# python -m market_intel


def test_check_of_the_example_prints_ok_and_exits_0() -> None:
    path = example_config_path()
    done = run("config", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{path}: OK"]
    assert done.stderr == ""


def test_check_prints_every_violation_to_stderr_and_exits_1(bad_file: Path) -> None:
    done = run("config", "check", str(bad_file))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"{bad_file}: agents.a.factory: missing; a custom agent needs 'package.module:Callable'",
        f"{bad_file}: core.bufer_size: unknown key; expected one of buffer_size, health, "
        "max_batch, memory, network, performance, priority_buffer_size, processors, profiling, "
        "thread_affinity, wait_strategy (did you mean 'buffer_size'?)",
        f"{bad_file}: core.buffer_size: 1000 is not a power of two",
        f"{bad_file}: core.processors: 'four' is a str; expected an integer 1..64",
        f"{bad_file}: replay.speed: -1 is out of range; expected a number >= 0",
    ]


def test_check_of_a_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    done = run("config", "check", str(missing))
    assert done.returncode == 2
    assert done.stderr.strip() == f"market-intel: {missing}: no such file"
    assert done.stdout == ""


def test_check_of_a_directory_exits_2(tmp_path: Path) -> None:
    done = run("config", "check", str(tmp_path))
    assert done.returncode == 2
    assert "is a directory" in done.stderr


def test_check_prints_the_notes(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text("[core.network]\nkernel_bypass = true\n")
    done = run("config", "check", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path}: OK",
        "note: core.network.kernel_bypass = true: no kernel-bypass NIC or driver (DPDK, Onload, "
        "AF_XDP) is available here; the normal socket stack is used",
    ]


def test_check_applies_environment_overrides_unless_told_not_to(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text("")
    done = run("config", "check", str(path), MARKET_INTEL__CORE__BUFFER_SIZE="1000")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"{path}: core.buffer_size: 1000 is not a power of two "
        "(set by MARKET_INTEL__CORE__BUFFER_SIZE)"
    )
    quiet = run("config", "check", "--no-env", str(path), MARKET_INTEL__CORE__BUFFER_SIZE="1000")
    assert quiet.returncode == 0, quiet.stderr


def test_check_show_prints_the_effective_values() -> None:
    path = example_config_path()
    done = run("config", "check", "--show", str(path), MARKET_INTEL__CORE__PROCESSORS="3")
    assert done.returncode == 0, done.stderr
    head, _, toml = done.stdout.partition("\n\n")
    assert head == f"{path}: OK"
    shown = EngineConfig.from_toml(toml)
    assert shown.core.processors == 3
    assert shown == load_config(path, env={"MARKET_INTEL__CORE__PROCESSORS": "3"})


def test_show_prints_toml_and_json() -> None:
    path = example_config_path()
    toml = run("config", "show", str(path))
    assert toml.returncode == 0, toml.stderr
    assert EngineConfig.from_toml(toml.stdout) == load_config(path, env={})
    as_json = run("config", "show", "--format", "json", str(path))
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert EngineConfig.from_dict(data) == load_config(path, env={})
    assert data["agents"]["summary"]["message_types"] == ["market_data"]


def test_show_without_a_file_prints_the_defaults_with_overrides() -> None:
    done = run("config", "show", MARKET_INTEL__REPLAY__SPEED="4")
    assert done.returncode == 0, done.stderr
    data = tomllib.loads(done.stdout)
    assert data["replay"]["speed"] == 4.0
    assert data["core"]["buffer_size"] == 65536


def test_show_writes_the_notes_as_toml_comments_or_to_stderr(tmp_path: Path) -> None:
    path = tmp_path / "engine.toml"
    path.write_text("[security]\napi_key_env = 'MI_TEST_ABSENT_KEY'\n")
    toml = run("config", "show", str(path))
    assert toml.stdout.splitlines()[0] == (
        '# note: security.api_key_env = "MI_TEST_ABSENT_KEY": the environment variable '
        "MI_TEST_ABSENT_KEY is not set, so there is no API key"
    )
    tomllib.loads(toml.stdout)
    as_json = run("config", "show", "-f", "json", str(path))
    json.loads(as_json.stdout)
    assert "MI_TEST_ABSENT_KEY is not set" in as_json.stderr
    present = run("config", "show", str(path), MI_TEST_ABSENT_KEY="k")
    assert "# note" not in present.stdout


def test_the_command_line_names_itself_market_intel() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "market-intel" in done.stdout and "config" in done.stdout
    assert run().returncode in (0, 2)  # no command: the help


def test_importing_market_intel_does_not_import_the_command_line() -> None:
    code = (
        "import sys, market_intel; "
        "bad = [m for m in ('typer', 'click', 'market_intel.cli') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------------------------------------
# typer's runner


def test_runner_check(runner: CliRunner, bad_file: Path) -> None:
    ok = runner.invoke(cli.app, ["config", "check", str(example_config_path())])
    assert ok.exit_code == 0 and ok.stdout.endswith(": OK\n")
    bad = runner.invoke(cli.app, ["config", "check", str(bad_file)])
    assert bad.exit_code == 1
    assert len(bad.stderr.splitlines()) == 5
    missing = runner.invoke(cli.app, ["config", "check", str(bad_file.with_name("none.toml"))])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_runner_check_with_notes_for_this_machine(runner: CliRunner, tmp_path: Path) -> None:
    machine = _config_notes.probe_machine()
    path = tmp_path / "engine.toml"
    path.write_text(
        f"[core.thread_affinity]\nenabled = true\nprocessor_cores = [{machine.cpu_count}]\n"
    )
    done = runner.invoke(cli.app, ["config", "check", str(path)])
    assert done.exit_code == 0
    assert done.stdout.splitlines()[1] == (
        f"note: core.thread_affinity.processor_cores[0] = {machine.cpu_count}: this machine has "
        f"{machine.cpu_count} CPUs (0..{machine.cpu_count - 1}); processor 0 is not pinned"
    )


def test_runner_show_invalid_exits_1(runner: CliRunner, bad_file: Path) -> None:
    done = runner.invoke(cli.app, ["config", "show", str(bad_file)])
    assert done.exit_code == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 5


def test_runner_environment(runner: CliRunner) -> None:
    done = runner.invoke(
        cli.app, ["config", "show", "-f", "json"], env={"MARKET_INTEL__CORE__PROCESSORS": "7"}
    )
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["core"]["processors"] == 7


def test_the_config_group_takes_more_commands() -> None:
    names = {c.name for c in cli.config_app.registered_commands}
    assert names == {"check", "show"}
    assert callable(cli.main)
