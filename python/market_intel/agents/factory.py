"""Agents declared in a configuration's ``[agents.NAME]`` tables, registered on an engine.

An agent table names its maker with ``factory = "package.module:Callable"``; without one the
table's name picks a built-in agent (``BUILT_IN``). The maker is called with the table's
``options`` as keyword arguments plus ``name``, and ``engine`` (the engine it is registered
on) when its signature takes an ``engine`` parameter: agents that publish need it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from market_intel.agents.market_data import (
    MarketDataCounterAgent,
    SequenceCheckAgent,
    SymbolSummaryAgent,
)
from market_intel.errors import ConfigError

if TYPE_CHECKING:
    from market_intel.agent import CoreAgent
    from market_intel.config import AgentConfig, EngineConfig
    from market_intel.engine import CoreEngine

__all__ = ["BUILT_IN", "agent_maker", "register_configured_agents"]

BUILT_IN: dict[str, Callable[..., Any]] = {
    "counter": MarketDataCounterAgent,
    "sequence_check": SequenceCheckAgent,
    "summary": SymbolSummaryAgent,
}


def agent_maker(config: AgentConfig, engine: CoreEngine | None = None) -> Callable[[], Any]:
    """A zero-argument callable that builds the agent ``config`` describes."""
    path = f"agents.{config.name}"
    if config.factory is None:
        try:
            target = BUILT_IN[config.name]
        except KeyError:
            raise ConfigError(
                [
                    (
                        f"{path}.factory",
                        f"missing, and {config.name!r} is not a built-in agent; expected "
                        f"'package.module:Callable' or one of {', '.join(sorted(BUILT_IN))}",
                    )
                ]
            ) from None
    else:
        module_name, _, attribute = config.factory.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as e:
            raise ConfigError(
                [(f"{path}.factory", f"{config.factory!r} cannot be imported ({e})")]
            ) from e
        if not callable(target):
            raise ConfigError([(f"{path}.factory", f"{config.factory!r} is not callable")])
    options = dict(config.options)
    if engine is not None and _takes_engine(target):
        options["engine"] = engine

    def make() -> Any:
        try:
            return target(name=config.name, **options)
        except TypeError as e:
            raise ConfigError(
                [(f"{path}.options", f"{sorted(options)} not accepted by the agent ({e})")]
            ) from e

    return make


def _takes_engine(target: Callable[..., Any]) -> bool:
    try:
        return "engine" in inspect.signature(target).parameters
    except (TypeError, ValueError):  # a builtin without a signature
        return False


def register_configured_agents(engine: CoreEngine, config: EngineConfig) -> list[CoreAgent]:
    """Register every enabled agent of ``config``; returns their records."""
    out: list[CoreAgent] = []
    for agent in config.agents:
        if not agent.enabled:
            continue
        make = agent_maker(agent, engine)
        common: dict[str, Any] = {
            "agent_type": agent.type,
            "message_types": agent.message_types or None,
            "symbols": agent.symbols or None,
        }
        if agent.instances > 1:
            out.extend(
                engine.register_partitioned(
                    make, agent.instances, key=agent.partition_key, name=agent.name, **common
                )
            )
        else:
            out.append(
                engine.register_agent(
                    make(), name=agent.name, affinity=agent.affinity, factory=make, **common
                )
            )
    return out
