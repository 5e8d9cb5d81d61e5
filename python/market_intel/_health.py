"""The health check of one agent: heartbeats, failures and restarts with backoff.

The engine's health monitor thread calls ``assess`` for every agent each heartbeat interval,
with the engine lock held.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from market_intel.enums import AgentStatus

if TYPE_CHECKING:
    from market_intel._processor import Processor
    from market_intel.agent import _AgentRuntime
    from market_intel.builder import EngineSettings

__all__ = ["assess"]

log = logging.getLogger("market_intel.health")


def assess(agent: _AgentRuntime, p: Processor, s: EngineSettings, now_wall: int, now: int) -> None:
    """Update ``agent``'s status from its processor's heartbeat and its errors, and restart it
    if it failed and its backoff has passed.

    ``now_wall`` is ``time.time_ns()`` (the clock of heartbeats), ``now`` is
    ``time.monotonic_ns()`` (the clock of failures and backoff).
    """
    beat = max(p.last_beat_ns, agent.last_heartbeat_ns)
    silent_ms = (now_wall - beat) / 1e6 if beat else 0.0
    if not p.running and p.error is not None and agent.status != AgentStatus.FAILED:
        agent.status = AgentStatus.FAILED
        agent.failed_at_ns = now
        agent.last_error = f"processor {p.index} stopped on {p.error!r}"
    if agent.active and p.running:
        # Only the agent its processor is stuck in has failed; the others on that
        # processor are starved (DEGRADED) and would gain nothing from a restart.
        if silent_ms > s.failure_timeout_ms and p.current is agent:
            agent.status = AgentStatus.FAILED
            agent.failed_at_ns = now
            agent.last_error = f"no heartbeat for {silent_ms:.0f} ms"
        elif silent_ms > s.heartbeat_timeout_ms:
            agent.status = AgentStatus.DEGRADED
        elif agent.status == AgentStatus.DEGRADED and agent.consecutive_errors == 0:
            agent.status = AgentStatus.RUNNING
    if agent.status == AgentStatus.FAILED and s.restart and p.running:
        if agent.restarts >= s.max_restarts:
            return
        backoff = min(s.restart_backoff_ms * (2**agent.restarts), s.restart_backoff_max_ms)
        if silent_ms > s.heartbeat_timeout_ms:
            return  # its processor is stuck inside the agent: nothing to restart
        if (now - agent.failed_at_ns) / 1e6 >= backoff:
            try:
                agent.restart()
                log.info("agent %s restarted (%d)", agent.name, agent.restarts)
            except Exception as e:  # restart() counted it already
                agent._failed(e, "restart")
                agent.status = AgentStatus.FAILED
                agent.failed_at_ns = now
