"""``CoreEngineBuilder`` and the ``EngineSettings`` it fills in.

::

    engine = (
        CoreEngineBuilder()
        .with_processors(2)
        .with_buffer_size(65536)
        .with_wait_strategy("blocking")
        .with_profiling(True)
        .with_config("market-intel.toml")   # or an EngineConfig: settings and agents
        .build()
    )
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Self, get_args

from market_intel.errors import InvalidArgumentError
from market_intel.wait import WaitKind, WaitStrategy, WaitStrategyLike

if TYPE_CHECKING:
    from market_intel.config import EngineConfig
    from market_intel.engine import CoreEngine

__all__ = ["CoreEngineBuilder", "EngineSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """Everything a ``CoreEngine`` is built with (``CoreEngineBuilder`` fills it in)."""

    processors: int = 2
    buffer_size: int = 65536
    priority_buffer_size: int = 4096
    wait_strategy: WaitStrategyLike = "blocking"
    profiling: bool = False
    max_batch: int = 4096
    heartbeat_interval_ms: int = 100
    heartbeat_timeout_ms: int = 1000
    failure_timeout_ms: int = 5000
    max_consecutive_errors: int = 10
    restart: bool = True
    restart_backoff_ms: int = 100
    restart_backoff_max_ms: int = 5000
    max_restarts: int = 5
    processor_cores: tuple[int, ...] = ()
    prefault: bool = False
    lock: bool = False
    huge_pages: str = "off"
    switch_interval_us: int = 0
    gc_freeze: bool = False
    notes: tuple[str, ...] = field(default=())

    def check(self) -> None:
        """Raise ``InvalidArgumentError`` naming every bad value."""
        errors = []
        minimum = {
            "processors": 1,
            "buffer_size": 8,
            "priority_buffer_size": 8,
            "max_batch": 1,
            "heartbeat_interval_ms": 1,
            "heartbeat_timeout_ms": 1,
            "failure_timeout_ms": 1,
            "max_consecutive_errors": 1,
            "restart_backoff_ms": 1,
            "restart_backoff_max_ms": 1,
            "max_restarts": 0,
            "switch_interval_us": 0,
        }
        ints = {}
        for name, low in minimum.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                errors.append(f"{name}: {v!r} is not an int; expected an int >= {low}")
            elif name == "processors" and not 1 <= v <= 64:
                errors.append(f"processors: {v} is out of range; expected 1..64")
            elif name.endswith("buffer_size") and (v < 8 or v & (v - 1)):
                errors.append(f"{name}: {v} is not a power of two >= 8")
            elif name == "switch_interval_us" and not 0 <= v <= 1_000_000:
                errors.append(f"switch_interval_us: {v} is out of range; expected 0..1000000")
            elif v < low:
                errors.append(f"{name}: {v} is below {low}; expected >= {low}")
            else:
                ints[name] = v
        for lower, upper, relation in (
            ("heartbeat_interval_ms", "heartbeat_timeout_ms", ">"),
            ("heartbeat_timeout_ms", "failure_timeout_ms", ">"),
            ("restart_backoff_ms", "restart_backoff_max_ms", ">="),
        ):
            if lower in ints and upper in ints:
                a, b = ints[upper], ints[lower]
                if not (a > b if relation == ">" else a >= b):
                    errors.append(f"{upper}: {a} with {lower} {b}; expected {relation} {lower}")
        for name in ("restart", "profiling"):
            v = getattr(self, name)
            if not isinstance(v, bool):
                errors.append(f"{name}: {v!r} is not a bool; expected True or False")
        wait = self.wait_strategy
        kinds = get_args(WaitKind)
        if not (isinstance(wait, WaitStrategy) or (isinstance(wait, str) and wait in kinds)):
            errors.append(
                f"wait_strategy: {wait!r} is not a wait strategy; expected "
                + ", ".join(repr(k) for k in kinds)
                + " or a WaitStrategy"
            )
        if errors:
            raise InvalidArgumentError("; ".join(errors))


def _unused_settings(config: EngineConfig) -> tuple[str, ...]:
    """Notes for configured values this version of the engine does not act on (nothing
    configured is ignored silently): every value that differs from its default in the tables
    for network endpoints and security, which no engine component serves yet, and settings
    only other components use."""
    from market_intel.config import NetworkConfig, SecurityConfig

    notes = []
    sections = (
        ("core.network", config.core.network, NetworkConfig()),
        ("security", config.security, SecurityConfig()),
    )
    for path, value, default in sections:
        for name in value.__dataclass_fields__:
            if getattr(value, name) != getattr(default, name):
                notes.append(
                    f"{path}.{name} = {getattr(value, name)!r}: not used: the engine serves no "
                    "network endpoint yet"
                )
    performance = config.core.performance
    if performance.busy_spin_cores:
        notes.append(
            f"core.performance.busy_spin_cores = {list(performance.busy_spin_cores)!r}: not used: "
            "processors wait with core.wait_strategy and are pinned by core.thread_affinity"
        )
    return tuple(notes)


class CoreEngineBuilder:
    """Build a ``CoreEngine`` step by step; every ``with_*`` returns the builder."""

    def __init__(self) -> None:
        self._settings = EngineSettings()
        self._config: EngineConfig | None = None

    def _set(self, **changes: Any) -> Self:
        self._settings = replace(self._settings, **changes)
        return self

    def with_processors(self, processors: int) -> Self:
        """Processor threads (agents are spread over them)."""
        return self._set(processors=processors)

    def with_buffer_size(self, buffer_size: int) -> Self:
        """Slots of the normal lane (a power of two)."""
        return self._set(buffer_size=buffer_size)

    def with_priority_buffer_size(self, buffer_size: int) -> Self:
        """Slots of the priority lane (a power of two)."""
        return self._set(priority_buffer_size=buffer_size)

    def with_wait_strategy(self, wait: WaitStrategyLike) -> Self:
        """How idle processors wait: 'blocking' (default), 'sleeping', 'yielding', 'busy_spin'."""
        return self._set(wait_strategy=wait)

    def with_profiling(self, enabled: bool = True) -> Self:
        """Record publish-to-processed latency of every message (an HdrHistogram): one sample
        per message per processor that takes it (each processor with agents takes all)."""
        return self._set(profiling=enabled)

    def with_max_batch(self, max_batch: int) -> Self:
        """Normal-lane messages a processor handles before it looks at the priority lane."""
        return self._set(max_batch=max_batch)

    def with_switch_interval(self, microseconds: int) -> Self:
        """Python's thread switch interval while the engine runs (0 leaves it alone)."""
        return self._set(switch_interval_us=microseconds)

    def with_health(self, **options: int | bool) -> Self:
        """Health settings: heartbeat_interval_ms, heartbeat_timeout_ms, failure_timeout_ms,
        max_consecutive_errors, restart, restart_backoff_ms, restart_backoff_max_ms,
        max_restarts."""
        allowed = {
            "heartbeat_interval_ms",
            "heartbeat_timeout_ms",
            "failure_timeout_ms",
            "max_consecutive_errors",
            "restart",
            "restart_backoff_ms",
            "restart_backoff_max_ms",
            "max_restarts",
        }
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InvalidArgumentError(
                f"with_health: unknown option(s) {', '.join(unknown)}; expected {sorted(allowed)}"
            )
        return self._set(**options)

    def with_config(self, config: EngineConfig | str | Any) -> Self:
        """Take every engine setting from a configuration (an ``EngineConfig`` or a TOML path).

        Agents declared in the configuration are registered by ``build()``.
        """
        from market_intel.config import EngineConfig, load_config

        cfg = config if isinstance(config, EngineConfig) else load_config(config)
        self._config = cfg
        core = cfg.core
        health = core.health
        return self._set(
            processors=core.processors,
            buffer_size=core.buffer_size,
            priority_buffer_size=core.priority_buffer_size,
            wait_strategy=core.wait_strategy,
            profiling=core.profiling,
            max_batch=core.max_batch,
            heartbeat_interval_ms=health.heartbeat_interval_ms,
            heartbeat_timeout_ms=health.heartbeat_timeout_ms,
            failure_timeout_ms=health.failure_timeout_ms,
            max_consecutive_errors=health.max_consecutive_errors,
            restart=health.restart,
            restart_backoff_ms=health.restart_backoff_ms,
            restart_backoff_max_ms=health.restart_backoff_max_ms,
            max_restarts=health.max_restarts,
            processor_cores=tuple(core.thread_affinity.processor_cores)
            if core.thread_affinity.enabled
            else (),
            prefault=core.memory.prefault,
            lock=core.memory.lock,
            huge_pages=core.memory.huge_pages,
            switch_interval_us=core.performance.switch_interval_us,
            gc_freeze=core.performance.gc_freeze,
            notes=tuple(f"{n.path}: {n.reason}" for n in cfg.notes) + _unused_settings(cfg),
        )

    @property
    def settings(self) -> EngineSettings:
        """The settings so far."""
        return self._settings

    def build(self) -> CoreEngine:
        """The engine (not started)."""
        self._settings.check()
        from market_intel.engine import CoreEngine

        engine = CoreEngine(self._settings)
        if self._config is not None:
            from market_intel.agents.factory import register_configured_agents

            register_configured_agents(engine, self._config)
        return engine
