"""The engine configuration: defaults, every violation with its exact message, all of them at
once, environment overrides, notes about this machine, frozen objects and the example file."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from market_intel import _config_notes
from market_intel.config import (
    AgentConfig,
    ConfigNote,
    CoreConfig,
    EngineConfig,
    HealthConfig,
    MemoryConfig,
    NetworkConfig,
    PerformanceConfig,
    ReplayConfig,
    SecurityConfig,
    ThreadAffinityConfig,
    example_config_path,
    load_config,
)
from market_intel.enums import AgentType, MessageType
from market_intel.errors import ConfigError, InvalidArgumentError

CORE_KEYS = (
    "buffer_size, health, max_batch, memory, network, performance, priority_buffer_size, "
    "processors, profiling, thread_affinity, wait_strategy"
)
AGENT_TYPES = "'market_data', 'trading', 'risk', 'analytics', 'storage', 'monitoring', 'custom'"
MESSAGE_TYPES = "'market_data', 'order', 'trade', 'event', 'control', 'health', 'analytics'"


def violations(text: str, **kwargs: Any) -> list[tuple[str, str]]:
    """The violations loading ``text`` raises (it must raise)."""
    with pytest.raises(ConfigError) as e:
        EngineConfig.from_toml(text, **kwargs)
    return e.value.violations


def notes_of(config: EngineConfig) -> dict[str, ConfigNote]:
    return {n.path: n for n in config.notes}


# --------------------------------------------------------------------------------------------
# Defaults


def test_an_empty_file_gives_the_defaults() -> None:
    config = EngineConfig.from_toml("")
    assert config == EngineConfig.default() == EngineConfig()
    core = config.core
    assert (core.processors, core.buffer_size, core.priority_buffer_size) == (2, 65536, 4096)
    assert (core.wait_strategy, core.profiling, core.max_batch) == ("blocking", False, 4096)
    assert core.thread_affinity == ThreadAffinityConfig(
        enabled=False, processor_cores=(), producer_core=None
    )
    assert core.memory == MemoryConfig(prefault=False, lock=False, huge_pages="off")
    assert core.network.bind_address == "127.0.0.1" and core.network.metrics_port == 0
    assert core.network.tcp_nodelay and core.network.socket_buffer_bytes == 0
    assert core.performance.switch_interval_us == 0 and core.performance.cpu_governor is None
    assert core.health == HealthConfig(
        heartbeat_interval_ms=100,
        heartbeat_timeout_ms=1000,
        failure_timeout_ms=5000,
        max_consecutive_errors=10,
        restart=True,
        restart_backoff_ms=100,
        restart_backoff_max_ms=5000,
        max_restarts=5,
    )
    assert config.replay == ReplayConfig(
        files=(), speed=0.0, batch_size=4096, symbols=(), progress=True
    )
    assert config.security.allowed_hosts == ("127.0.0.1", "localhost")
    assert config.security.tls is False and config.security.api_key_env is None
    assert config.agents == () and config.notes == ()


def test_config_error_is_an_invalid_argument_and_a_value_error() -> None:
    assert issubclass(ConfigError, InvalidArgumentError)
    assert issubclass(ConfigError, ValueError)


def test_an_agent_table() -> None:
    config = EngineConfig.from_toml(
        """
        [core]
        processors = 4
        [agents.summary]
        type = "Analytics"
        message_types = ["MARKET_DATA", "control"]
        symbols = ["BTCUSDT"]
        instances = 2
        partition_key = "source"
        affinity = 3
        factory = "my_pkg.agents:make_summary"
        [agents.summary.options]
        interval_s = 5
        nested = {anything = [1, "two"]}
        [agents.risk-1]
        type = "risk"
        enabled = false
        """
    )
    summary, risk = config.agents
    assert summary == config.agent("summary")
    assert summary.name == "summary" and summary.type is AgentType.ANALYTICS
    assert summary.message_types == (MessageType.MARKET_DATA, MessageType.CONTROL)
    assert summary.symbols == ("BTCUSDT",) and summary.instances == 2
    assert summary.partition_key == "source" and summary.affinity == 3
    assert summary.factory == "my_pkg.agents:make_summary"
    assert summary.options == {"interval_s": 5, "nested": {"anything": (1, "two")}}
    assert risk.name == "risk-1" and not risk.enabled and risk.factory is None
    assert risk.message_types == () and risk.instances == 1 and risk.partition_key == "symbol"
    with pytest.raises(KeyError, match="no agent is called 'nope'"):
        config.agent("nope")


# --------------------------------------------------------------------------------------------
# Every violation, with its exact message


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        # unknown keys, with the closest known one
        (
            "[core]\nbufer_size = 1024",
            "core.bufer_size",
            f"unknown key; expected one of {CORE_KEYS} (did you mean 'buffer_size'?)",
        ),
        (
            "[engine]\nx = 1",
            "engine",
            "unknown key; expected one of agents, core, replay, security",
        ),
        (
            "[core.memory]\nhugepages = 'off'",
            "core.memory.hugepages",
            "unknown key; expected one of huge_pages, lock, numa_node, prefault "
            "(did you mean 'huge_pages'?)",
        ),
        (
            "[agents.a]\ntype = 'risk'\ninstance = 2",
            "agents.a.instance",
            "unknown key; expected one of affinity, enabled, factory, instances, message_types, "
            "options, partition_key, symbols, type (did you mean 'instances'?)",
        ),
        (
            "notes = []",
            "notes",
            "unknown key; expected one of agents, core, replay, security",
        ),
        # wrong types name the expected type; a bool is not an integer
        (
            "[core]\nprocessors = 'four'",
            "core.processors",
            "'four' is a str; expected an integer 1..64",
        ),
        (
            "[core]\nprocessors = true",
            "core.processors",
            "true is a bool; expected an integer 1..64",
        ),
        (
            "[core]\nprocessors = 4.0",
            "core.processors",
            "4.0 is a float; expected an integer 1..64",
        ),
        ("core = 5", "core", "5 is an int; expected a table"),
        ("[core]\nmemory = [1]", "core.memory", "[1] is a list; expected a table"),
        ("[core]\nprofiling = 'yes'", "core.profiling", "'yes' is a str; expected true or false"),
        ("[replay]\nspeed = true", "replay.speed", "true is a bool; expected a number >= 0"),
        (
            "[replay]\nsymbols = 'BTCUSDT'",
            "replay.symbols",
            "'BTCUSDT' is a str; expected a list of non-empty strings",
        ),
        (
            "[replay]\nsymbols = ['']",
            "replay.symbols[0]",
            "'' is empty; expected a non-empty string",
        ),
        (
            "[core.thread_affinity]\nproducer_core = {a = 1}",
            "core.thread_affinity.producer_core",
            "{...} is a table; expected an integer >= 0",
        ),
        # ranges
        (
            "[core]\nprocessors = 65",
            "core.processors",
            "65 is out of range; expected an integer 1..64",
        ),
        (
            "[core]\nprocessors = 0",
            "core.processors",
            "0 is out of range; expected an integer 1..64",
        ),
        ("[core]\nmax_batch = 0", "core.max_batch", "0 is out of range; expected an integer >= 1"),
        ("[core]\nbuffer_size = 1000", "core.buffer_size", "1000 is not a power of two"),
        ("[core]\nbuffer_size = 0", "core.buffer_size", "0 is not a power of two"),
        (
            "[core]\nbuffer_size = 4",
            "core.buffer_size",
            "4 is out of range; expected a power of two 8..16777216",
        ),
        (
            "[core]\npriority_buffer_size = 33554432",
            "core.priority_buffer_size",
            "33554432 is out of range; expected a power of two 8..16777216",
        ),
        (
            "[core.network]\nmetrics_port = 70000",
            "core.network.metrics_port",
            "70000 is out of range; expected an integer 0..65535",
        ),
        (
            "[core.network]\nsocket_buffer_bytes = 100",
            "core.network.socket_buffer_bytes",
            "100 is out of range; expected an integer >= 4096 or 0 (the system default)",
        ),
        (
            "[core.performance]\nswitch_interval_us = 2000000",
            "core.performance.switch_interval_us",
            "2000000 is out of range; expected an integer 1..1000000 or 0 (Python's default)",
        ),
        ("[replay]\nspeed = -1", "replay.speed", "-1 is out of range; expected a number >= 0"),
        ("[replay]\nspeed = inf", "replay.speed", "inf is out of range; expected a number >= 0"),
        (
            "[replay]\nbatch_size = 0",
            "replay.batch_size",
            "0 is out of range; expected an integer 1..65536",
        ),
        (
            "[core.health]\nmax_restarts = -1",
            "core.health.max_restarts",
            "-1 is out of range; expected an integer >= 0",
        ),
        (
            "[core.thread_affinity]\nprocessor_cores = [0, -1]",
            "core.thread_affinity.processor_cores[1]",
            "-1 is out of range; expected an integer >= 0",
        ),
        # choices and shapes
        (
            "[core]\nwait_strategy = 'busy-spin'",
            "core.wait_strategy",
            "'busy-spin' is not one of 'blocking', 'sleeping', 'yielding', 'busy_spin' "
            "(did you mean 'busy_spin'?)",
        ),
        (
            "[core.memory]\nhuge_pages = true",
            "core.memory.huge_pages",
            "true is a bool; expected one of 'off', 'transparent', 'explicit'",
        ),
        (
            "[core.network]\nbind_address = 'localhost'",
            "core.network.bind_address",
            "'localhost' is not an IP address",
        ),
        (
            "[security]\napi_key_env = 'MY-KEY'",
            "security.api_key_env",
            "'MY-KEY' is not an environment variable name",
        ),
        # settings that contradict each other
        (
            "[core.health]\nheartbeat_timeout_ms = 100",
            "core.health.heartbeat_timeout_ms",
            "100 must be greater than heartbeat_interval_ms (100)",
        ),
        (
            "[core.health]\nfailure_timeout_ms = 900",
            "core.health.failure_timeout_ms",
            "900 must be greater than heartbeat_timeout_ms (1000)",
        ),
        (
            "[core.health]\nrestart_backoff_max_ms = 50",
            "core.health.restart_backoff_max_ms",
            "50 must be at least restart_backoff_ms (100)",
        ),
        (
            "[core]\nbuffer_size = 1024\n[replay]\nbatch_size = 2048",
            "replay.batch_size",
            "2048 is larger than core.buffer_size (1024); a batch must fit in the ring",
        ),
        (
            "[security]\ntls = true\ntls_key_file = '/etc/hostname'",
            "security.tls_cert_file",
            "missing; required when security.tls is true",
        ),
        (
            "[security]\ntls = true\ntls_cert_file = '/etc/hostname'\n"
            "tls_key_file = '/nonexistent/key.pem'",
            "security.tls_key_file",
            "'/nonexistent/key.pem' does not exist",
        ),
        (
            "[replay]\nfiles = ['/nonexistent/ticks.jsonl']",
            "replay.files[0]",
            "'/nonexistent/ticks.jsonl' does not exist",
        ),
        ("[replay]\nfiles = ['/']", "replay.files[0]", "'/' is not a file"),
        # agents
        (
            "[agents.'bad name']\ntype = 'risk'",
            'agents."bad name"',
            "'bad name' is not a valid name; expected a non-empty name of letters, digits, _ or -",
        ),
        (
            "[agents.'']\ntype = 'risk'",
            'agents.""',
            "'' is not a valid name; expected a non-empty name of letters, digits, _ or -",
        ),
        (
            "[agents.Risk]\ntype = 'risk'\n[agents.risk]\ntype = 'risk'",
            "agents.risk",
            "the name differs from 'Risk' only in case",
        ),
        ("[agents.a]\nenabled = true", "agents.a.type", f"missing; expected one of {AGENT_TYPES}"),
        (
            "[agents.a]\ntype = 'riks'",
            "agents.a.type",
            f"'riks' is not one of {AGENT_TYPES} (did you mean 'risk'?)",
        ),
        (
            "[agents.a]\ntype = 'custom'",
            "agents.a.factory",
            "missing; a custom agent needs 'package.module:Callable'",
        ),
        (
            "[agents.a]\ntype = 'custom'\nfactory = 'my_pkg.agents.Summary'",
            "agents.a.factory",
            "'my_pkg.agents.Summary' is not of the form 'package.module:Callable'",
        ),
        (
            "[agents.a]\ntype = 'risk'\nmessage_types = ['market_data', 'quotes']",
            "agents.a.message_types[1]",
            f"'quotes' is not one of {MESSAGE_TYPES}",
        ),
        (
            "[agents.a]\ntype = 'risk'\ninstances = 65",
            "agents.a.instances",
            "65 is out of range; expected an integer 1..64",
        ),
        (
            "[agents.a]\ntype = 'risk'\npartition_key = 'venue'",
            "agents.a.partition_key",
            "'venue' is not one of 'symbol', 'source'",
        ),
        (
            "[agents.a]\ntype = 'risk'\naffinity = 2",
            "agents.a.affinity",
            "2 is out of range; expected a processor index 0..1 (core.processors is 2)",
        ),
        (
            "[agents.a]\ntype = 'risk'\noptions = 3",
            "agents.a.options",
            "3 is an int; expected a table",
        ),
        ("[agents]\na = 1", "agents.a", "1 is an int; expected a table"),
        ("agents = 1", "agents", "1 is an int; expected a table of tables"),
    ],
)
def test_each_violation_has_its_exact_message(text: str, path: str, message: str) -> None:
    assert violations(text) == [(path, message)]


def test_the_error_text_shows_the_source_and_every_violation() -> None:
    with pytest.raises(ConfigError) as e:
        EngineConfig.from_toml("[core]\nbuffer_size = 1000", source="engine.toml")
    assert e.value.source == "engine.toml"
    assert str(e.value) == (
        "engine.toml: 1 configuration error\n  core.buffer_size: 1000 is not a power of two"
    )


def test_options_take_any_keys() -> None:
    config = EngineConfig.from_toml(
        "[agents.a]\ntype = 'risk'\n[agents.a.options]\nwhatever = 1\nbufer_size = 'x'"
    )
    assert config.agents[0].options == {"whatever": 1, "bufer_size": "x"}


def test_every_violation_in_the_file_is_reported_at_once_ordered_by_path() -> None:
    text = """
    [security]
    allowed_hosts = "localhost"

    [core]
    processors = "four"
    bufer_size = 1024

    [core.thread_affinity]
    processor_cores = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, "x"]

    [agents.summary]
    type = "analytics"
    instances = 0
    """
    found = violations(text)
    assert [path for path, _ in found] == [
        "agents.summary.instances",
        "core.bufer_size",
        "core.processors",
        "core.thread_affinity.processor_cores[11]",
        "security.allowed_hosts",
    ]
    with pytest.raises(ConfigError) as e:
        EngineConfig.from_toml(text)
    assert str(e.value).splitlines()[0] == "5 configuration errors"
    assert len(str(e.value).splitlines()) == 6


def test_a_relation_is_still_checked_when_other_settings_of_its_tables_are_wrong() -> None:
    found = violations(
        """
        [core]
        buffer_size = 16
        max_batch = 0
        [replay]
        batch_size = 32
        progress = "yes"
        [agents.a]
        type = "custom"
        affinity = 7
        """
    )
    assert [path for path, _ in found] == [
        "agents.a.affinity",
        "agents.a.factory",
        "core.max_batch",
        "replay.batch_size",
        "replay.progress",
    ]


def test_a_relation_is_not_checked_against_an_invalid_value() -> None:
    # An invalid interval is reported once; the timeout is not compared with it.
    assert violations("[core.health]\nheartbeat_interval_ms = 0\nheartbeat_timeout_ms = 1") == [
        ("core.health.heartbeat_interval_ms", "0 is out of range; expected an integer >= 1")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[core]\nprocessors = = 2", "invalid TOML at line 2, column 14: Invalid value"),
        ("[core]\n[core]", "invalid TOML at line 2, column 6: Cannot declare ('core',) twice"),
        (
            "[core\nprocessors = 2",
            "invalid TOML at line 1, column 6: Expected ']' at the end of a table declaration",
        ),
        ("a = 1\na = 2\n", "invalid TOML at line 2, column 6: Cannot overwrite a value"),
        ('x = "open', "invalid TOML: Unterminated string (at end of document)"),
    ],
)
def test_a_syntax_error_gives_its_line_and_column(text: str, message: str) -> None:
    assert violations(text, source="bad.toml") == [("", message)]


# --------------------------------------------------------------------------------------------
# Environment overrides


def test_environment_variables_override_the_file() -> None:
    env = {
        "MARKET_INTEL__CORE__BUFFER_SIZE": "4096",
        "market_intel__core__wait_strategy": "busy_spin",  # names are case-insensitive
        "MARKET_INTEL__CORE__THREAD_AFFINITY__PROCESSOR_CORES": "[0, 1]",
        "MARKET_INTEL__CORE__MEMORY__PREFAULT": "true",
        "MARKET_INTEL__AGENTS__SUMMARY__INSTANCES": "2",
        "MARKET_INTEL__AGENTS__SUMMARY__OPTIONS__LABEL": "'quoted text'",
        "MARKET_INTEL__REPLAY__SPEED": "2.5",
        "MARKET_INTEL__SECURITY__ALLOWED_HOSTS": '["10.0.0.1"]',
        "OTHER": "ignored",
        "MARKET_INTEL_CONFIG": "ignored too (one underscore)",
    }
    text = "[core]\nbuffer_size = 8192\n[agents.Summary]\ntype = 'analytics'"
    config = EngineConfig.from_toml(text, env=env)
    assert config.core.buffer_size == 4096
    assert config.core.wait_strategy == "busy_spin"
    assert config.core.thread_affinity.processor_cores == (0, 1)
    assert config.core.memory.prefault is True
    (agent,) = config.agents
    assert agent.name == "Summary" and agent.instances == 2
    assert agent.options == {"label": "quoted text"}
    assert config.replay.speed == 2.5
    assert config.security.allowed_hosts == ("10.0.0.1",)
    # without env, the file alone
    assert EngineConfig.from_toml(text).core.buffer_size == 8192


def test_an_environment_value_that_is_not_toml_is_a_plain_string() -> None:
    env = {
        "MARKET_INTEL__CORE__NETWORK__BIND_ADDRESS": "::1",
        "MARKET_INTEL__CORE__PERFORMANCE__CPU_GOVERNOR": "performance",
    }
    config = EngineConfig.from_dict({}, env=env)
    assert config.core.network.bind_address == "::1"
    assert config.core.performance.cpu_governor == "performance"


def test_environment_overrides_apply_to_the_defaults_without_a_file() -> None:
    config = load_config(env={"MARKET_INTEL__CORE__PROCESSORS": "3"})
    assert config.core.processors == 3
    assert load_config(env=None) == EngineConfig.default()


def test_a_bad_environment_override_is_a_violation_naming_the_variable() -> None:
    env = {
        "MARKET_INTEL__CORE__BUFER_SIZE": "1024",
        "MARKET_INTEL__CORE__PROCESSORS": "many",
        "MARKET_INTEL__CORE__MAX_BATCH__X": "1",
        "MARKET_INTEL__CORE__PROFILING__X": "1",
        "MARKET_INTEL__CORE____X": "1",
        "MARKET_INTEL__AGENTS__A__INSTANCES": "0",
    }
    text = "[core]\nmax_batch = 8\n[agents.a]\ntype = 'risk'"
    found = violations(text, env=env, source="engine.toml")
    assert found == [
        ("", "MARKET_INTEL__CORE____X: a name part between '__' separators is empty"),
        (
            "agents.a.instances",
            "0 is out of range; expected an integer 1..64 "
            "(set by MARKET_INTEL__AGENTS__A__INSTANCES)",
        ),
        (
            "core.bufer_size",
            f"unknown key; expected one of {CORE_KEYS} (did you mean 'buffer_size'?) "
            "(set by MARKET_INTEL__CORE__BUFER_SIZE)",
        ),
        (
            "core.max_batch",
            "is an int, not a table; MARKET_INTEL__CORE__MAX_BATCH__X sets a key in it",
        ),
        (
            "core.processors",
            "'many' is a str; expected an integer 1..64 (set by MARKET_INTEL__CORE__PROCESSORS)",
        ),
        (
            "core.profiling",
            "{...} is a table; expected true or false (set by MARKET_INTEL__CORE__PROFILING__X)",
        ),
    ]


def test_a_violation_names_the_variable_that_set_it_when_several_set_its_table() -> None:
    env = {
        "MARKET_INTEL__CORE__PROCESSORS": "2",  # creates the core table
        "MARKET_INTEL__CORE__WAIT_STRATEGY": "fast",
        "MARKET_INTEL__AGENTS__NEW__INSTANCES": "2",  # creates agents.new, which has no type
    }
    assert violations("", env=env) == [
        (
            "agents.new.type",
            f"missing; expected one of {AGENT_TYPES} (set by MARKET_INTEL__AGENTS__NEW__INSTANCES)",
        ),
        (
            "core.wait_strategy",
            "'fast' is not one of 'blocking', 'sleeping', 'yielding', 'busy_spin' "
            "(set by MARKET_INTEL__CORE__WAIT_STRATEGY)",
        ),
    ]


def test_load_config_reads_the_process_environment_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "engine.toml"
    file.write_text("[core]\nprocessors = 2\n")
    monkeypatch.setenv("MARKET_INTEL__CORE__PROCESSORS", "5")
    assert load_config(file).core.processors == 5
    assert load_config(file, env=None).core.processors == 2
    assert load_config(file, env={}).core.processors == 2


# --------------------------------------------------------------------------------------------
# Notes: valid values that do not apply on this machine, checked with the same probes


def test_the_machine_probe_reports_the_facts_of_this_machine() -> None:
    m = _config_notes.probe_machine()
    assert m.cpu_count == os.cpu_count()
    node_dir = Path("/sys/devices/system/node")
    if node_dir.is_dir():
        nodes = [p for p in node_dir.iterdir() if re.fullmatch(r"node\d+", p.name)]
        assert m.numa_nodes == len(nodes)
    hugepages = Path("/proc/sys/vm/nr_hugepages")
    if hugepages.exists():
        assert m.hugepages_reserved == int(hugepages.read_text())
    assert m.cpufreq == Path("/sys/devices/system/cpu/cpu0/cpufreq").is_dir()


def test_cores_this_machine_does_not_have_are_kept_and_noted() -> None:
    n = _config_notes.probe_machine().cpu_count
    config = EngineConfig.from_toml(
        f"""
        [core]
        processors = 2
        [core.thread_affinity]
        enabled = true
        processor_cores = [0, {n}, 1]
        producer_core = {n + 1}
        """
    )
    assert config.core.thread_affinity.processor_cores == (0, n, 1)  # kept
    notes = notes_of(config)
    cpus = f"this machine has {n} CPUs (0..{n - 1})"
    key = "core.thread_affinity"
    assert notes[f"{key}.processor_cores[1]"].value == n
    assert notes[f"{key}.processor_cores[1]"].reason == f"{cpus}; processor 1 is not pinned"
    assert notes[f"{key}.processor_cores[2]"].reason == (
        "not used: there are 2 processors (core.processors)"
    )
    assert notes[f"{key}.producer_core"].reason == f"{cpus}; it is not pinned"
    assert f"{key}.processor_cores[0]" not in notes
    assert (
        str(notes[f"{key}.producer_core"])
        == f"{key}.producer_core = {n + 1}: {cpus}; it is not pinned"
    )


def test_affinity_values_are_noted_when_affinity_is_disabled() -> None:
    config = EngineConfig.from_toml("[core.thread_affinity]\nprocessor_cores = [0]")
    note = notes_of(config)["core.thread_affinity.processor_cores"]
    assert note.value == (0,)
    assert note.reason == "not applied: core.thread_affinity.enabled is false"
    enabled = EngineConfig.from_toml("[core.thread_affinity]\nenabled = true")
    assert notes_of(enabled)["core.thread_affinity.enabled"].reason == (
        "no cores are listed, so no thread is pinned"
    )


def test_memory_options_are_noted_as_this_machine_requires() -> None:
    m = _config_notes.probe_machine()
    config = EngineConfig.from_toml(
        "[core.memory]\nhuge_pages = 'explicit'\nnuma_node = 0\nlock = true\nprefault = true"
    )
    notes = notes_of(config)
    if m.hugepages_reserved == 0:
        assert notes["core.memory.huge_pages"].reason == (
            "no huge pages are reserved (/proc/sys/vm/nr_hugepages is 0); "
            "the rings use normal pages"
        )
    elif m.hugepages_reserved:
        assert "core.memory.huge_pages" not in notes
    if m.numa_nodes == 1:
        assert notes["core.memory.numa_node"].reason == (
            "this machine has one NUMA node, so placing the rings on a node changes nothing; "
            "not applied"
        )
    need = (65536 + 4096) * 192
    limited = m.memlock_limit is not None and m.memlock_limit < need
    assert ("core.memory.lock" in notes) == (limited and not m.can_lock_memory)
    assert "core.memory.prefault" not in notes


def test_memory_notes_on_other_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _config_notes.probe_machine()
    other = dataclasses.replace(
        real,
        numa_nodes=2,
        hugepages_reserved=None,
        transparent_hugepages="never",
        memlock_limit=8 * 2**20,
        can_lock_memory=False,
    )
    monkeypatch.setattr(_config_notes, "probe_machine", lambda: other)
    notes = notes_of(
        EngineConfig.from_toml("[core.memory]\nhuge_pages = 'explicit'\nnuma_node = 2\nlock = true")
    )
    assert notes["core.memory.numa_node"].reason == (
        "this machine has 2 NUMA nodes (0..1); not applied"
    )
    assert notes["core.memory.huge_pages"].reason == (
        "explicit huge pages are not available here; the rings use normal pages"
    )
    assert notes["core.memory.lock"].reason == (
        "RLIMIT_MEMLOCK is 8 MiB but the rings take about 13 MiB; locking fails and the memory "
        "stays pageable (raise ulimit -l or grant CAP_IPC_LOCK)"
    )
    thp = notes_of(EngineConfig.from_toml("[core.memory]\nhuge_pages = 'transparent'"))
    assert "disabled" in thp["core.memory.huge_pages"].reason
    fits = EngineConfig.from_toml("[core]\nbuffer_size = 8192\n[core.memory]\nlock = true")
    assert "core.memory.lock" not in notes_of(fits)


def test_network_and_performance_values_that_do_not_apply_are_noted() -> None:
    m = _config_notes.probe_machine()
    config = EngineConfig.from_toml(
        """
        [core.network]
        kernel_bypass = true
        socket_buffer_bytes = 1073741824
        [core.performance]
        cpu_governor = "performance"
        busy_spin_cores = [0]
        switch_interval_us = 100
        gc_freeze = true
        """
    )
    notes = notes_of(config)
    assert notes["core.network.kernel_bypass"].reason == (
        "no kernel-bypass NIC or driver (DPDK, Onload, AF_XDP) is available here; "
        "the normal socket stack is used"
    )
    if m.socket_buffer_max is not None and m.socket_buffer_max < 2**30:
        assert notes["core.network.socket_buffer_bytes"].reason.startswith(
            f"the kernel caps socket buffers at {m.socket_buffer_max} bytes"
        )
    if not m.cpufreq:
        assert notes["core.performance.cpu_governor"].reason == (
            "CPU frequency scaling is not exposed here (no /sys/devices/system/cpu/cpu0/cpufreq); "
            "the governor is not changed"
        )
    assert notes["core.performance.busy_spin_cores"].reason == (
        "used only when core.wait_strategy is 'busy_spin'"
    )
    assert "core.performance.switch_interval_us" not in notes
    spinning = EngineConfig.from_toml(
        "[core]\nwait_strategy = 'busy_spin'\n"
        f"[core.performance]\nbusy_spin_cores = [0, {m.cpu_count}]"
    )
    assert list(notes_of(spinning)) == ["core.performance.busy_spin_cores[1]"]


def test_security_values_that_do_not_apply_are_noted(tmp_path: Path) -> None:
    text = f"[security]\napi_key_env = 'MI_TEST_KEY'\ntls_cert_file = '{tmp_path}/c.pem'"
    config = EngineConfig.from_toml(text, env={})
    notes = notes_of(config)
    assert notes["security.api_key_env"].reason == (
        "the environment variable MI_TEST_KEY is not set, so there is no API key"
    )
    assert notes["security.tls_cert_file"].reason == "not used: security.tls is false"
    with_key = EngineConfig.from_toml(text, env={"MI_TEST_KEY": "secret"})
    assert "security.api_key_env" not in notes_of(with_key)


def test_tls_with_existing_files(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    file = tmp_path / "engine.toml"
    file.write_text("[security]\ntls = true\ntls_cert_file = 'c.pem'\ntls_key_file = 'k.pem'\n")
    security = load_config(file, env={}).security
    assert security.tls_cert_file == tmp_path / "c.pem"  # relative to the config file
    assert security.tls_key_file == tmp_path / "k.pem"


def test_replay_files_are_taken_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ticks.jsonl").write_text("{}\n")
    file = tmp_path / "engine.toml"
    file.write_text("[replay]\nfiles = ['data/ticks.jsonl']\n")
    assert load_config(file, env={}).replay.files == (tmp_path / "data" / "ticks.jsonl",)


# --------------------------------------------------------------------------------------------
# Frozen, keyword-only objects


def test_config_objects_are_frozen() -> None:
    config = EngineConfig.from_toml("[agents.a]\ntype = 'risk'\noptions = {k = [1]}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.core = CoreConfig()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.core.processors = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.core.health.restart = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.agents[0].instances = 2  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):  # TypeError: slots + frozen on 3.11
        config.core.extra = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        config.agents[0].options["k"] = 2  # type: ignore[index]
    assert config.agents[0].options["k"] == (1,)
    assert isinstance(config.security.allowed_hosts, tuple)
    assert hash(config) == hash(EngineConfig.from_dict(config.to_dict()))


def test_config_objects_are_keyword_only_and_reject_unknown_fields() -> None:
    with pytest.raises(TypeError):
        CoreConfig(4)  # type: ignore[misc]
    with pytest.raises(TypeError):
        CoreConfig(bufer_size=1024)  # type: ignore[call-arg]


def test_direct_construction_is_validated_and_frozen() -> None:
    with pytest.raises(ConfigError) as e:
        CoreConfig(processors=0, buffer_size=1000)
    assert e.value.violations == [
        ("core.buffer_size", "1000 is not a power of two"),
        ("core.processors", "0 is out of range; expected an integer 1..64"),
    ]
    with pytest.raises(ConfigError, match=r"agents.a.type: 'nope' is not one of"):
        AgentConfig(name="a", type="nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"core.health.heartbeat_timeout_ms: 10 must be"):
        HealthConfig(heartbeat_timeout_ms=10)
    with pytest.raises(ConfigError, match=r"core: \{\.\.\.\} is a table; expected a CoreConfig"):
        EngineConfig(core={"processors": 4})  # type: ignore[arg-type]
    agent = AgentConfig(
        name="a",
        type="risk",  # type: ignore[arg-type]
        message_types=["trade"],  # type: ignore[arg-type]
        options={"k": [1]},
    )
    assert agent.type is AgentType.RISK and agent.message_types == (MessageType.TRADE,)
    assert agent.options == {"k": (1,)}
    affinity = ThreadAffinityConfig(processor_cores=[1, 0])  # type: ignore[arg-type]
    assert affinity.processor_cores == (1, 0)
    config = EngineConfig(
        core=CoreConfig(processors=4, performance=PerformanceConfig(gc_freeze=True)),
        security=SecurityConfig(allowed_hosts=("h",)),
        agents=(agent,),
    )
    assert config.core.performance.gc_freeze and config.agent("a") is agent
    with pytest.raises(ConfigError, match="differs from 'a' only in case"):
        EngineConfig(agents=(agent, AgentConfig(name="A", type=AgentType.RISK)))
    with pytest.raises(ConfigError, match=r"agents.a.affinity: 4 is out of range"):
        EngineConfig(agents=(AgentConfig(name="a", type=AgentType.RISK, affinity=4),))
    replaced = dataclasses.replace(config.core, processors=8)
    assert replaced.processors == 8
    with pytest.raises(ConfigError):
        dataclasses.replace(config.core, processors=100)
    assert NetworkConfig(bind_address="0:0::1").bind_address == "::1"


# --------------------------------------------------------------------------------------------
# Plain forms


def full_config(tmp_path: Path) -> EngineConfig:
    ticks = tmp_path / "ticks.jsonl"
    ticks.write_text("{}\n")
    return EngineConfig.from_toml(
        f"""
        [core]
        processors = 4
        wait_strategy = "yielding"
        [core.thread_affinity]
        enabled = true
        processor_cores = [0, 1]
        producer_core = 1
        [core.memory]
        numa_node = 0
        [core.performance]
        cpu_governor = "performance"
        [replay]
        files = ["{ticks}"]
        speed = 2
        [security]
        api_key_env = "KEY"
        [agents.a]
        type = "custom"
        factory = "pkg.mod:make"
        message_types = ["order", "trade"]
        affinity = 3
        [agents.a.options]
        when = 2024-01-02T03:04:05Z
        table = {{x = [1.5, "two", {{y = true}}]}}
        [agents."b c-d"]
        type = "storage"
        """.replace('"b c-d"', "b_c-d")
    )


def test_to_dict_round_trips_through_from_dict(tmp_path: Path) -> None:
    for config in (EngineConfig.default(), full_config(tmp_path)):
        data = config.to_dict()
        assert EngineConfig.from_dict(data) == config
        assert json.loads(json.dumps(data, default=str))["core"]["processors"] > 0
    data = full_config(tmp_path).to_dict()
    assert data["agents"]["a"]["type"] == "custom"
    assert data["agents"]["a"]["message_types"] == ["order", "trade"]
    assert data["core"]["thread_affinity"]["processor_cores"] == [0, 1]
    assert data["security"]["tls_cert_file"] is None
    assert isinstance(data["replay"]["files"][0], str)


def test_to_toml_round_trips_through_from_toml(tmp_path: Path) -> None:
    for config in (EngineConfig.default(), full_config(tmp_path)):
        text = config.to_toml()
        tomllib.loads(text)
        assert EngineConfig.from_toml(text) == config


def test_configs_pickle(tmp_path: Path) -> None:
    config = full_config(tmp_path)
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config and copy.notes == config.notes


def test_load_config_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[core]")
    with pytest.raises(ConfigError) as e:
        load_config(binary)
    assert e.value.source == str(binary)
    assert e.value.violations[0][1].startswith("not UTF-8 text")


# --------------------------------------------------------------------------------------------
# The packaged example


def schema_paths(cls: type[Any], prefix: str) -> list[str]:
    """Every setting's dotted path under ``prefix``, nested sections included."""
    paths = []
    for f in dataclasses.fields(cls):
        if f.name in ("notes", "name", "agents"):
            continue
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(
            f.default_factory
        ):
            paths.append(f"{prefix}{f.name}")
            paths += schema_paths(f.default_factory, f"{prefix}{f.name}.")
        else:
            paths.append(f"{prefix}{f.name}")
    return paths


def example_keys() -> tuple[set[str], set[str], list[str]]:
    """The dotted keys the example sets, the keys it shows commented out, and active key lines
    without a comment right above them."""
    active: set[str] = set()
    commented: set[str] = set()
    undocumented: list[str] = []
    section = ""
    previous = ""
    for line in example_config_path().read_text().splitlines():
        stripped = line.strip()
        if m := re.fullmatch(r"\[([^\]]+)\]", stripped):
            section = m[1]
            active.add(section)
        elif m := re.fullmatch(r"#\s*([a-z_]+) = .*", stripped):
            commented.add(f"{section}.{m[1]}")
        elif section.endswith(".options"):
            pass  # a free table
        elif m := re.fullmatch(r"([a-z_]+) = .*", stripped):
            active.add(f"{section}.{m[1]}")
            if not previous.startswith("#"):
                undocumented.append(stripped)
        previous = stripped
    return active, commented, undocumented


def test_the_example_config_documents_every_setting() -> None:
    active, commented, undocumented = example_keys()
    expected = schema_paths(EngineConfig, "") + schema_paths(AgentConfig, "agents.summary.")
    missing = [p for p in expected if p not in active and p not in commented]
    assert missing == []
    assert undocumented == []
    # and nothing in it that the schema does not have
    others = {
        k
        for k in active | commented
        if k.startswith("agents.") and not k.startswith("agents.summary")
    }
    assert sorted((active | commented) - set(expected) - {"agents.summary"} - others) == []
    assert "agents.summary.options" in active


def test_the_example_config_is_valid_and_shows_the_defaults() -> None:
    path = example_config_path()
    assert path.name == "market-intel.toml" and path.is_file()
    config = load_config(path, env={})
    default = EngineConfig.default()
    assert (config.core, config.replay, config.security) == (
        default.core,
        default.replay,
        default.security,
    )
    assert config.agents[0].name == "summary"
    assert config.notes == ()


def test_importing_the_config_does_not_import_the_command_line() -> None:
    code = (
        "import sys, market_intel, market_intel.config; "
        "bad = [m for m in ('typer', 'click', 'rich', 'market_intel.cli') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
