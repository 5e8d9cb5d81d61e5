"""Why a config value may not apply on this machine: the probes and the notes.

``probe_machine`` reads the facts (CPUs, NUMA nodes, reserved huge pages, the memlock limit,
cpufreq, socket buffer caps); ``notes`` compares a configuration with them. A value that does
not apply is kept and explained, never silently dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from market_intel.records import RECORD_SIZE

if TYPE_CHECKING:
    from market_intel.config import EngineConfig


@dataclass(frozen=True, slots=True)
class Machine:
    """What this machine offers, as far as the config notes are concerned."""

    cpu_count: int
    numa_nodes: int | None
    hugepages_reserved: int | None
    transparent_hugepages: str | None
    memlock_limit: int | None
    can_lock_memory: bool
    privileged: bool
    cpufreq: bool
    governors: tuple[str, ...]
    socket_buffer_max: int | None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def probe_machine() -> Machine:
    """Return the facts of this machine that decide whether a config value applies here."""
    node_dir = Path("/sys/devices/system/node")
    nodes = (
        sum(1 for p in node_dir.iterdir() if re.fullmatch(r"node\d+", p.name))
        if node_dir.is_dir()
        else None
    )
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled")
    thp_mode = m.group(1) if thp and (m := re.search(r"\[(\w+)\]", thp)) else None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
        memlock = None if soft == resource.RLIM_INFINITY else soft
    except (ImportError, OSError):
        memlock = None
    status = _read("/proc/self/status") or ""
    cap = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.MULTILINE)
    cap_ipc_lock = 14
    cpufreq = "/sys/devices/system/cpu/cpu0/cpufreq"
    buffers = [_read_int(f"/proc/sys/net/core/{n}_max") for n in ("rmem", "wmem")]
    known = [b for b in buffers if b is not None]
    return Machine(
        cpu_count=os.cpu_count() or 1,
        numa_nodes=nodes,
        hugepages_reserved=_read_int("/proc/sys/vm/nr_hugepages"),
        transparent_hugepages=thp_mode,
        memlock_limit=memlock,
        can_lock_memory=bool(cap and int(cap.group(1), 16) >> cap_ipc_lock & 1),
        privileged=hasattr(os, "geteuid") and os.geteuid() == 0,
        cpufreq=Path(cpufreq).is_dir(),
        governors=tuple((_read(f"{cpufreq}/scaling_available_governors") or "").split()),
        socket_buffer_max=min(known) if known else None,
    )


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def notes(
    config: EngineConfig, machine: Machine, environ: Mapping[str, str]
) -> list[tuple[str, Any, str]]:
    """Return ``(path, value, reason)`` for each value of ``config`` that does not apply on
    ``machine`` (or with the environment ``environ``)."""
    found: list[tuple[str, Any, str]] = []

    def note(path: str, value: Any, reason: str) -> None:
        found.append((path, value, reason))

    core, m = config.core, machine
    cpus = f"this machine has {m.cpu_count} CPUs (0..{m.cpu_count - 1})"
    aff, key = core.thread_affinity, "core.thread_affinity"
    if not aff.enabled:
        off = f"not applied: {key}.enabled is false"
        if aff.processor_cores:
            note(f"{key}.processor_cores", aff.processor_cores, off)
        if aff.producer_core is not None:
            note(f"{key}.producer_core", aff.producer_core, off)
    else:
        if not aff.processor_cores and aff.producer_core is None:
            note(f"{key}.enabled", True, "no cores are listed, so no thread is pinned")
        for i, cpu in enumerate(aff.processor_cores):
            if i >= core.processors:
                why = f"not used: there are {core.processors} processors (core.processors)"
                note(f"{key}.processor_cores[{i}]", cpu, why)
            elif cpu >= m.cpu_count:
                note(f"{key}.processor_cores[{i}]", cpu, f"{cpus}; processor {i} is not pinned")
        if aff.producer_core is not None and aff.producer_core >= m.cpu_count:
            note(f"{key}.producer_core", aff.producer_core, f"{cpus}; it is not pinned")

    mem = core.memory
    if mem.huge_pages == "explicit" and not m.hugepages_reserved:
        why = (
            "no huge pages are reserved (/proc/sys/vm/nr_hugepages is 0)"
            if m.hugepages_reserved == 0
            else "explicit huge pages are not available here"
        )
        note("core.memory.huge_pages", mem.huge_pages, f"{why}; the rings use normal pages")
    if mem.huge_pages == "transparent" and m.transparent_hugepages in (None, "never"):
        why = (
            "transparent huge pages are not available here"
            if m.transparent_hugepages is None
            else "transparent huge pages are disabled (.../transparent_hugepage/enabled is never)"
        )
        note("core.memory.huge_pages", mem.huge_pages, f"{why}; the rings use normal pages")
    if mem.numa_node is not None:
        if m.numa_nodes is None:
            why = "the NUMA topology is not exposed here (no /sys/devices/system/node)"
        elif m.numa_nodes == 1:
            why = "this machine has one NUMA node, so placing the rings on a node changes nothing"
        elif mem.numa_node >= m.numa_nodes:
            why = f"this machine has {m.numa_nodes} NUMA nodes (0..{m.numa_nodes - 1})"
        else:
            why = ""
        if why:
            note("core.memory.numa_node", mem.numa_node, f"{why}; not applied")
    need = (core.buffer_size + core.priority_buffer_size) * RECORD_SIZE
    limit = m.memlock_limit
    if mem.lock and not m.can_lock_memory and limit is not None and limit < need:
        why = (
            f"RLIMIT_MEMLOCK is {_mib(limit)} but the rings take about {_mib(need)}; locking "
            "fails and the memory stays pageable (raise ulimit -l or grant CAP_IPC_LOCK)"
        )
        note("core.memory.lock", True, why)

    net = core.network
    if net.kernel_bypass:
        why = (
            "no kernel-bypass NIC or driver (DPDK, Onload, AF_XDP) is available here; "
            "the normal socket stack is used"
        )
        note("core.network.kernel_bypass", True, why)
    cap = m.socket_buffer_max
    if cap is not None and net.socket_buffer_bytes > cap:
        why = f"the kernel caps socket buffers at {cap} bytes (net.core.rmem_max, wmem_max)"
        note("core.network.socket_buffer_bytes", net.socket_buffer_bytes, why)

    perf = core.performance
    if perf.cpu_governor is not None:
        if not m.cpufreq:
            why = (
                "CPU frequency scaling is not exposed here "
                "(no /sys/devices/system/cpu/cpu0/cpufreq); the governor is not changed"
            )
        elif not m.privileged:
            why = "changing the governor needs root and cpufreq; it is not changed"
        elif m.governors and perf.cpu_governor not in m.governors:
            why = f"this machine's governors are {', '.join(m.governors)}; it is not changed"
        else:
            why = ""
        if why:
            note("core.performance.cpu_governor", perf.cpu_governor, why)
    if perf.busy_spin_cores and core.wait_strategy != "busy_spin":
        why = "used only when core.wait_strategy is 'busy_spin'"
        note("core.performance.busy_spin_cores", perf.busy_spin_cores, why)
    elif perf.busy_spin_cores:
        for i, cpu in enumerate(perf.busy_spin_cores):
            if cpu >= m.cpu_count:
                note(f"core.performance.busy_spin_cores[{i}]", cpu, f"{cpus}; not used")

    sec = config.security
    if sec.api_key_env is not None and sec.api_key_env not in environ:
        why = f"the environment variable {sec.api_key_env} is not set, so there is no API key"
        note("security.api_key_env", sec.api_key_env, why)
    if not sec.tls:
        for name in ("tls_cert_file", "tls_key_file"):
            if getattr(sec, name) is not None:
                note(f"security.{name}", getattr(sec, name), "not used: security.tls is false")
    return found
