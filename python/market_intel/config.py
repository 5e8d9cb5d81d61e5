"""The engine's configuration: frozen, keyword-only objects loaded from TOML.

A file has the sections ``[core]`` (with ``thread_affinity``, ``memory``, ``network``,
``performance`` and ``health`` under it), ``[replay]``, ``[security]`` and any number of
``[agents.<name>]`` tables; every key has a default, so an empty file is valid. The packaged
``example_config_path()`` documents every key.

Loading checks the whole file and raises one ``ConfigError`` that lists every violation
(unknown keys with the closest known one, values of the wrong type or out of range, settings
that contradict each other). Values that are valid but do not apply on this machine (a core it
does not have, huge pages it has not reserved) are kept and reported as ``notes``, never
silently dropped.

Environment variables override file values before validation: ``MARKET_INTEL__CORE__
BUFFER_SIZE=4096`` sets ``core.buffer_size``; ``__`` separates the parts of the path, names are
case-insensitive, and the value is read as a TOML value (``true``, ``4096``, ``[0, 1]``) or
else as a plain string.

Example::

    config = load_config("market-intel.toml")
    config.core.buffer_size          # 65536
    for note in config.notes:
        print(note)                  # core.memory.huge_pages = "explicit": no huge pages ...
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Self, get_args

from market_intel import _config_notes
from market_intel import _config_schema as schema
from market_intel._config_schema import (
    Boolean,
    Choice,
    EnumName,
    FilePath,
    FreeTable,
    Integer,
    IPAddress,
    ListOf,
    NamedTables,
    Number,
    Optional,
    PowerOfTwo,
    Section,
    Text,
    kind,
)
from market_intel.enums import AgentType, MessageType
from market_intel.errors import ConfigError
from market_intel.wait import WaitKind

__all__ = [
    "AgentConfig",
    "ConfigNote",
    "CoreConfig",
    "EngineConfig",
    "HealthConfig",
    "MemoryConfig",
    "NetworkConfig",
    "PerformanceConfig",
    "ReplayConfig",
    "SecurityConfig",
    "ThreadAffinityConfig",
    "example_config_path",
    "load_config",
]

HugePages = Literal["off", "transparent", "explicit"]
PartitionKey = Literal["symbol", "source"]
_Sink = Callable[[str, str], None]

_CORES = ListOf(Integer(0), "integers >= 0")
_STRINGS = ListOf(Text(), "non-empty strings")
_MAX_RING = 2**24


@dataclass(frozen=True, kw_only=True, slots=True)
class ConfigNote:
    """A valid config value that does not apply on this machine, and why.

    Attributes:
        path: The dotted path of the value (``core.memory.huge_pages``).
        value: The value as configured.
        reason: Why it does not apply here and what happens instead.
    """

    path: str
    value: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.path} = {schema.toml_value(self.value)}: {self.reason}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadAffinityConfig:
    """``[core.thread_affinity]``: pinning threads to CPU cores.

    Attributes:
        enabled: Pin the threads at all.
        processor_cores: The core of each processor thread, by processor index; processors
            beyond the list are not pinned. Empty means none is.
        producer_core: The core of the producer (replay) thread; ``None`` leaves it unpinned.
    """

    enabled: bool = field(default=False, metadata=kind(Boolean()))
    processor_cores: tuple[int, ...] = field(default=(), metadata=kind(_CORES))
    producer_core: int | None = field(default=None, metadata=kind(Optional(Integer(0))))

    def __post_init__(self) -> None:
        schema.validate(self, "core.thread_affinity")


@dataclass(frozen=True, kw_only=True, slots=True)
class MemoryConfig:
    """``[core.memory]``: how the rings' memory is mapped.

    Attributes:
        prefault: Touch every page of the rings at start so no page fault hits the hot path.
        lock: Lock the rings in RAM (``mlock``) so they are never swapped out.
        huge_pages: ``"off"``, ``"transparent"`` (ask for transparent huge pages) or
            ``"explicit"`` (reserved huge pages, falling back to normal pages).
        numa_node: The NUMA node to place the rings on; ``None`` lets the kernel choose.
    """

    prefault: bool = field(default=False, metadata=kind(Boolean()))
    lock: bool = field(default=False, metadata=kind(Boolean()))
    huge_pages: HugePages = field(default="off", metadata=kind(Choice(get_args(HugePages))))
    numa_node: int | None = field(default=None, metadata=kind(Optional(Integer(0))))

    def __post_init__(self) -> None:
        schema.validate(self, "core.memory")


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkConfig:
    """``[core.network]``: the engine's sockets (metrics endpoint, feeds).

    Attributes:
        bind_address: The IP address to listen on.
        metrics_port: The port of the metrics endpoint; 0 turns it off.
        tcp_nodelay: Disable Nagle's algorithm on TCP sockets.
        socket_buffer_bytes: Send and receive buffer size; 0 keeps the system default.
        kernel_bypass: Ask for a kernel-bypass network stack (not available; noted).
    """

    bind_address: str = field(default="127.0.0.1", metadata=kind(IPAddress()))
    metrics_port: int = field(default=0, metadata=kind(Integer(0, 65535)))
    tcp_nodelay: bool = field(default=True, metadata=kind(Boolean()))
    socket_buffer_bytes: int = field(
        default=0, metadata=kind(Integer(4096, zero="the system default"))
    )
    kernel_bypass: bool = field(default=False, metadata=kind(Boolean()))

    def __post_init__(self) -> None:
        schema.validate(self, "core.network")


@dataclass(frozen=True, kw_only=True, slots=True)
class PerformanceConfig:
    """``[core.performance]``: interpreter and CPU tuning.

    Attributes:
        switch_interval_us: The interpreter's thread switch interval in microseconds
            (``sys.setswitchinterval``); 0 leaves Python's default.
        gc_freeze: Freeze the garbage collector's generations after start (``gc.freeze``).
        cpu_governor: The cpufreq governor to ask for (``performance``); ``None`` leaves it.
        busy_spin_cores: Cores set aside for busy-spinning processors (with the
            ``busy_spin`` wait strategy).
    """

    switch_interval_us: int = field(
        default=0, metadata=kind(Integer(1, 1_000_000, zero="Python's default"))
    )
    gc_freeze: bool = field(default=False, metadata=kind(Boolean()))
    cpu_governor: str | None = field(default=None, metadata=kind(Optional(Text())))
    busy_spin_cores: tuple[int, ...] = field(default=(), metadata=kind(_CORES))

    def __post_init__(self) -> None:
        schema.validate(self, "core.performance")


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthConfig:
    """``[core.health]``: heartbeats, failure detection and restarts of agents.

    Attributes:
        heartbeat_interval_ms: How often an agent reports it is alive.
        heartbeat_timeout_ms: Silence after which an agent is degraded (> the interval).
        failure_timeout_ms: Silence after which an agent has failed (> the timeout).
        max_consecutive_errors: Handler errors in a row after which an agent has failed.
        restart: Restart a failed agent.
        restart_backoff_ms: The first delay before a restart; it doubles on each restart.
        restart_backoff_max_ms: The longest delay before a restart (>= the first).
        max_restarts: Restarts before an agent stays failed; 0 never restarts.
    """

    heartbeat_interval_ms: int = field(default=100, metadata=kind(Integer(1)))
    heartbeat_timeout_ms: int = field(default=1000, metadata=kind(Integer(1)))
    failure_timeout_ms: int = field(default=5000, metadata=kind(Integer(1)))
    max_consecutive_errors: int = field(default=10, metadata=kind(Integer(1)))
    restart: bool = field(default=True, metadata=kind(Boolean()))
    restart_backoff_ms: int = field(default=100, metadata=kind(Integer(1)))
    restart_backoff_max_ms: int = field(default=5000, metadata=kind(Integer(1)))
    max_restarts: int = field(default=5, metadata=kind(Integer(0)))

    def __post_init__(self) -> None:
        schema.validate(self, "core.health")

    @staticmethod
    def _cross_check(v: Mapping[str, Any], report: _Sink) -> None:
        for low, high, relation in (
            ("heartbeat_interval_ms", "heartbeat_timeout_ms", "greater than"),
            ("heartbeat_timeout_ms", "failure_timeout_ms", "greater than"),
            ("restart_backoff_ms", "restart_backoff_max_ms", "at least"),
        ):
            if low in v and high in v:
                bad = v[high] <= v[low] if relation == "greater than" else v[high] < v[low]
                if bad:
                    report(high, f"{v[high]} must be {relation} {low} ({v[low]})")


@dataclass(frozen=True, kw_only=True, slots=True)
class CoreConfig:
    """``[core]``: the rings and the processors that drain them.

    Attributes:
        processors: Processor threads; each drains the rings for its agents.
        buffer_size: Slots of the main ring (a power of two, 8..2**24).
        priority_buffer_size: Slots of the priority lane for CRITICAL and HIGH messages.
        wait_strategy: How an idle processor waits: ``"blocking"``, ``"sleeping"``,
            ``"yielding"`` or ``"busy_spin"``.
        profiling: Record every message's publish-to-processed latency.
        max_batch: Messages a processor hands its agents before it looks at the priority
            lane again.
        thread_affinity: ``[core.thread_affinity]``.
        memory: ``[core.memory]``.
        network: ``[core.network]``.
        performance: ``[core.performance]``.
        health: ``[core.health]``.
    """

    processors: int = field(default=2, metadata=kind(Integer(1, 64)))
    buffer_size: int = field(default=65536, metadata=kind(PowerOfTwo(8, _MAX_RING)))
    priority_buffer_size: int = field(default=4096, metadata=kind(PowerOfTwo(8, _MAX_RING)))
    wait_strategy: WaitKind = field(default="blocking", metadata=kind(Choice(get_args(WaitKind))))
    profiling: bool = field(default=False, metadata=kind(Boolean()))
    max_batch: int = field(default=4096, metadata=kind(Integer(1)))
    thread_affinity: ThreadAffinityConfig = field(
        default_factory=ThreadAffinityConfig, metadata=kind(Section(ThreadAffinityConfig))
    )
    memory: MemoryConfig = field(default_factory=MemoryConfig, metadata=kind(Section(MemoryConfig)))
    network: NetworkConfig = field(
        default_factory=NetworkConfig, metadata=kind(Section(NetworkConfig))
    )
    performance: PerformanceConfig = field(
        default_factory=PerformanceConfig, metadata=kind(Section(PerformanceConfig))
    )
    health: HealthConfig = field(default_factory=HealthConfig, metadata=kind(Section(HealthConfig)))

    def __post_init__(self) -> None:
        schema.validate(self, "core")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayConfig:
    """``[replay]``: replaying recorded market data into the engine.

    Attributes:
        files: Recordings to replay, in order (a relative path is taken relative to the
            config file); empty replays the packaged Binance sample.
        speed: 0 replays as fast as possible; N > 0 replays at N times the recorded speed.
        batch_size: Messages published per batch (at most ``core.buffer_size``).
        symbols: Symbols to replay, canonical (``BTC-USDT``) or as the venue spells them
            (``BTCUSDT``); empty replays all.
        progress: Show a progress bar.
    """

    files: tuple[Path, ...] = field(
        default=(), metadata=kind(ListOf(FilePath(must_exist=True), "file paths"))
    )
    speed: float = field(default=0.0, metadata=kind(Number(0)))
    batch_size: int = field(default=4096, metadata=kind(Integer(1, 65536)))
    symbols: tuple[str, ...] = field(default=(), metadata=kind(_STRINGS))
    progress: bool = field(default=True, metadata=kind(Boolean()))

    def __post_init__(self) -> None:
        schema.validate(self, "replay")


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityConfig:
    """``[security]``: TLS and access to the engine's endpoints.

    Attributes:
        tls: Serve endpoints over TLS.
        tls_cert_file: The certificate (PEM); required and must exist when ``tls`` is true.
        tls_key_file: The private key (PEM); required and must exist when ``tls`` is true.
        api_key_env: The name of the environment variable that holds the API key.
        allowed_hosts: Hosts allowed to connect.
    """

    tls: bool = field(default=False, metadata=kind(Boolean()))
    tls_cert_file: Path | None = field(default=None, metadata=kind(Optional(FilePath())))
    tls_key_file: Path | None = field(default=None, metadata=kind(Optional(FilePath())))
    api_key_env: str | None = field(
        default=None,
        metadata=kind(Optional(Text(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name"))),
    )
    allowed_hosts: tuple[str, ...] = field(
        default=("127.0.0.1", "localhost"), metadata=kind(_STRINGS)
    )

    def __post_init__(self) -> None:
        schema.validate(self, "security")

    @staticmethod
    def _cross_check(v: Mapping[str, Any], report: _Sink) -> None:
        if not v.get("tls"):
            return
        for key in ("tls_cert_file", "tls_key_file"):
            if key not in v:
                continue  # invalid, already reported
            path = v[key]
            if path is None:
                report(key, "missing; required when security.tls is true")
            elif not path.is_file():
                report(key, f"'{path}' {'is not a file' if path.exists() else 'does not exist'}")


_FACTORY = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*"


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentConfig:
    """``[agents.<name>]``: one agent.

    Attributes:
        name: The agent's name (the table's key): letters, digits, ``_`` and ``-``.
        type: Its role, an ``AgentType``.
        factory: ``"package.module:Callable"`` that makes the agent (checked by shape, not
            imported); ``None`` for a built-in one. Required for a ``custom`` agent.
        enabled: Start the agent.
        message_types: The message types it is routed; empty means all.
        symbols: The symbols it is routed; empty means all.
        instances: Copies of the agent; messages are split between them by ``partition_key``.
        partition_key: ``"symbol"`` or ``"source"``.
        affinity: The index of the processor that runs it (< ``core.processors``); ``None``
            lets the engine choose.
        options: A free table passed to the agent.
    """

    name: str
    type: AgentType = field(metadata=kind(EnumName(AgentType)))
    factory: str | None = field(
        default=None,
        metadata=kind(Optional(Text(_FACTORY, "of the form 'package.module:Callable'"))),
    )
    enabled: bool = field(default=True, metadata=kind(Boolean()))
    message_types: tuple[MessageType, ...] = field(
        default=(), metadata=kind(ListOf(EnumName(MessageType), "message type names"))
    )
    symbols: tuple[str, ...] = field(default=(), metadata=kind(_STRINGS))
    instances: int = field(default=1, metadata=kind(Integer(1, 64)))
    partition_key: PartitionKey = field(
        default="symbol", metadata=kind(Choice(get_args(PartitionKey)))
    )
    affinity: int | None = field(default=None, metadata=kind(Optional(Integer(0))))
    options: Mapping[str, Any] = field(
        default_factory=schema.FrozenTable, metadata=kind(FreeTable()), hash=False
    )

    def __post_init__(self) -> None:
        schema.validate(self, schema.join("agents", self.name))

    @staticmethod
    def _cross_check(v: Mapping[str, Any], report: _Sink) -> None:
        if v.get("type") is AgentType.CUSTOM and "factory" in v and v["factory"] is None:
            report("factory", "missing; a custom agent needs 'package.module:Callable'")


_AGENT_NAME = r"[A-Za-z0-9_-]+"


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineConfig:
    """The whole configuration.

    Build one with ``load_config(path)``, ``EngineConfig.from_toml(text)``,
    ``EngineConfig.from_dict(data)`` or ``EngineConfig.default()``; ``to_dict()`` gives the
    plain form back.

    Attributes:
        core: ``[core]``.
        replay: ``[replay]``.
        security: ``[security]``.
        agents: The ``[agents.<name>]`` tables, in file order.
        notes: The values that do not apply on this machine, and why (not compared).
    """

    core: CoreConfig = field(default_factory=CoreConfig, metadata=kind(Section(CoreConfig)))
    replay: ReplayConfig = field(default_factory=ReplayConfig, metadata=kind(Section(ReplayConfig)))
    security: SecurityConfig = field(
        default_factory=SecurityConfig, metadata=kind(Section(SecurityConfig))
    )
    agents: tuple[AgentConfig, ...] = field(
        default=(),
        metadata=kind(
            NamedTables(AgentConfig, _AGENT_NAME, "a non-empty name of letters, digits, _ or -")
        ),
    )
    notes: tuple[ConfigNote, ...] = field(default=(), init=False, compare=False)

    def __post_init__(self) -> None:
        schema.validate(self, "")
        _set_notes(self, os.environ)

    @staticmethod
    def _cross_check(v: Mapping[str, Any], report: _Sink) -> None:
        # A section or agent with violations of its own is a Partial that lacks the invalid
        # settings, hence getattr.
        processors = getattr(v.get("core"), "processors", None)
        buffer_size = getattr(v.get("core"), "buffer_size", None)
        batch_size = getattr(v.get("replay"), "batch_size", None)
        if buffer_size is not None and batch_size is not None and batch_size > buffer_size:
            report(
                "replay.batch_size",
                f"{batch_size} is larger than core.buffer_size ({buffer_size}); "
                "a batch must fit in the ring",
            )
        for agent in v.get("agents", ()):
            affinity = getattr(agent, "affinity", None)
            if processors is not None and affinity is not None and affinity >= processors:
                report(
                    f"agents.{schema.quote_key(agent.name)}.affinity",
                    f"{affinity} is out of range; expected a processor index "
                    f"0..{processors - 1} (core.processors is {processors})",
                )

    @classmethod
    def default(cls) -> Self:
        """Return the configuration of an empty file."""
        return cls()

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: str | None = None,
        env: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
    ) -> Self:
        """Build a configuration from plain tables (the form ``tomllib`` and ``to_dict`` give).

        Args:
            data: The top-level table.
            source: Where ``data`` came from, for the error message.
            env: Environment variables to take ``MARKET_INTEL__...`` overrides from (and to
                look for ``security.api_key_env`` in); ``None`` applies no overrides.
            base_dir: The directory relative file paths are taken relative to.

        Raises:
            ConfigError: listing every violation, ordered by path.
        """
        report = schema.Report()
        raw = schema.thaw(data)
        if env is not None and isinstance(raw, dict):
            schema.apply_env(raw, env, report)
        ctx = schema.Context(Path(base_dir) if base_dir is not None else None)
        config = schema.build(cls, raw, "", ctx, report)
        if report:
            raise report.error(source)
        if env is not None and env is not os.environ:
            _set_notes(config, env)
        result: Self = config
        return result

    @classmethod
    def from_toml(
        cls,
        text: str,
        *,
        source: str | None = None,
        env: Mapping[str, str] | None = None,
        base_dir: str | Path | None = None,
    ) -> Self:
        """Build a configuration from TOML text; see ``from_dict`` for the arguments.

        Raises:
            ConfigError: for a TOML syntax error (with its line and column) or listing every
                violation.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([("", _syntax_error(exc))], source) from None
        return cls.from_dict(data, source=source, env=env, base_dir=base_dir)

    def to_dict(self) -> dict[str, Any]:
        """Return the plain form (tables, lists, strings, numbers; ``None`` where unset)."""
        return schema.to_dict(self)

    def to_toml(self) -> str:
        """Return the configuration as TOML text (unset values are left out)."""
        return "\n".join(schema.to_toml(self.to_dict())) + "\n"

    def agent(self, name: str) -> AgentConfig:
        """Return the agent called ``name``.

        Raises:
            KeyError: if there is none.
        """
        for agent in self.agents:
            if agent.name == name:
                return agent
        raise KeyError(f"no agent is called {name!r}")


def load_config(
    path: str | Path | None = None, *, env: Mapping[str, str] | None = os.environ
) -> EngineConfig:
    """Load the configuration from a TOML file, with environment overrides applied.

    Args:
        path: The file; ``None`` gives the defaults (plus overrides).
        env: Where to take ``MARKET_INTEL__...`` overrides from; ``None`` applies none.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: for a syntax error or listing every violation.
    """
    if path is None:
        return EngineConfig.from_dict({}, source="environment", env=env)
    file = Path(path)
    data = file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")], str(file)
        ) from None
    return EngineConfig.from_toml(text, source=str(file), env=env, base_dir=file.absolute().parent)


def example_config_path() -> Path:
    """Return the path of the packaged example ``market-intel.toml`` (every key documented)."""
    return Path(str(resources.files("market_intel").joinpath("data", "market-intel.toml")))


def _syntax_error(exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if where:
        message = message[: where.start()]
        return f"invalid TOML at line {where[1]}, column {where[2]}: {message}"
    return f"invalid TOML: {message}"


def _set_notes(config: EngineConfig, environ: Mapping[str, str]) -> None:
    found = _config_notes.notes(config, _config_notes.probe_machine(), environ)
    notes = tuple(ConfigNote(path=p, value=v, reason=r) for p, v, r in found)
    object.__setattr__(config, "notes", notes)
