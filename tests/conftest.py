"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings
from mi_testlib import SHM, unique_name

settings.register_profile(
    "market-intel",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("market-intel")


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A segment name no other test uses; whatever is left under it is removed afterwards."""
    name = unique_name()
    yield name
    (SHM / name).unlink(missing_ok=True)


@pytest.fixture
def shm_names() -> Iterator[Callable[[], str]]:
    """A factory of unique segment names, all removed afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(unique_name())
        return made[-1]

    yield make
    for name in made:
        (SHM / name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def spawn() -> multiprocessing.context.SpawnContext:
    """Child processes are spawned: forking a process that runs native threads is unsafe."""
    return multiprocessing.get_context("spawn")


@pytest.fixture
def children(
    spawn: multiprocessing.context.SpawnContext,
) -> Iterator[list[multiprocessing.process.BaseProcess]]:
    """Processes a test starts; any still alive at the end are killed and reaped."""
    procs: list[multiprocessing.process.BaseProcess] = []
    yield procs
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=10)
