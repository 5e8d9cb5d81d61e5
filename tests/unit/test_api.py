"""The public API: what the package exports, the exception tree, and the typed stubs."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import market_intel as mi
import pytest
from market_intel import _core

ROOT = Path(__file__).resolve().parents[2]
SUBMODULES = [
    "adapters.backpressure",
    "adapters.book",
    "adapters.normalize",
    "adapters.recording",
    "adapters.snapshots",
    "adapters.tickfile",
    "adapters.validation",
    "adapters.websocket",
    "adapters.wsreplay",
    "agent",
    "agents.ingestion",
    "agents.storage",
    "builder",
    "codec",
    "config",
    "disruptor",
    "engine",
    "enums",
    "errors",
    "messages",
    "records",
    "ring",
    "routing",
    "statistics",
    "storage.archive",
    "storage.journal",
    "storage.query",
    "wait",
]


def test_every_name_in_all_exists_and_is_unique() -> None:
    assert len(set(mi.__all__)) == len(mi.__all__)
    for name in mi.__all__:
        assert hasattr(mi, name), name


def test_public_classes_and_functions_of_the_package_are_exported() -> None:
    """Every public class or function a user needs, wherever it is defined, is importable from
    ``market_intel`` (and is the same object)."""
    missing = []
    for mod_name in SUBMODULES:
        mod = importlib.import_module(f"market_intel.{mod_name}")
        for name, obj in vars(mod).items():
            if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue  # imported from elsewhere
            if name not in mi.__all__ or getattr(mi, name) is not obj:
                missing.append(f"{mod_name}.{name}")
    for name in _core.__all__ if hasattr(_core, "__all__") else dir(_core):
        if not name.startswith("_") and name not in mi.__all__:
            missing.append(f"_core.{name}")
    assert missing == []


def test_the_exported_ring_and_handlers_are_the_python_subclasses() -> None:
    from market_intel import ring

    assert mi.RingBuffer is ring.RingBuffer
    assert issubclass(mi.RingBuffer, _core.RingBuffer)
    assert issubclass(mi.ChecksumHandler, _core.ChecksumHandler)
    assert issubclass(mi.LatencyHandler, _core.LatencyHandler)
    assert mi.EventPoller is _core.EventPoller
    assert mi.BatchEventProcessor is _core.BatchEventProcessor
    assert mi.Claim is _core.Claim
    assert isinstance(mi.MAX_CONSUMERS, int) and mi.MAX_CONSUMERS >= 2
    assert isinstance(mi.__version__, str)


def test_every_submodule_all_is_exported() -> None:
    missing = [
        f"{m}.{name}"
        for m in SUBMODULES
        for name in importlib.import_module(f"market_intel.{m}").__all__
        if name not in mi.__all__
    ]
    assert missing == []


def test_monotonic_ns_is_the_clock_of_time_monotonic_ns() -> None:
    import time

    a = time.monotonic_ns()
    b = mi.monotonic_ns()
    c = time.monotonic_ns()
    assert a <= b <= c


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (mi.InvalidArgumentError, (mi.MarketIntelError, ValueError)),
        (mi.DtypeMismatchError, (mi.InvalidArgumentError,)),
        (mi.RecordError, (mi.InvalidArgumentError,)),
        (mi.BatchTooLargeError, (mi.InvalidArgumentError,)),
        (mi.LayoutMismatchError, (mi.InvalidArgumentError,)),
        (mi.InsufficientCapacity, (mi.MarketIntelError,)),
        (mi.RingClosedError, (mi.MarketIntelError, RuntimeError)),
        (mi.WaitTimeoutError, (mi.MarketIntelError, TimeoutError)),
        (mi.AlertedError, (mi.MarketIntelError,)),
        (mi.SharedMemoryError, (mi.MarketIntelError, OSError)),
        (mi.SegmentNotFoundError, (mi.SharedMemoryError, FileNotFoundError)),
        (mi.SegmentExistsError, (mi.SharedMemoryError, FileExistsError)),
        (mi.StaleSegmentError, (mi.SegmentExistsError,)),
        (mi.ConsumerDiedError, (mi.MarketIntelError,)),
        (mi.ProducerConflictError, (mi.MarketIntelError, RuntimeError)),
        (mi.TooManyConsumersError, (mi.MarketIntelError,)),
        (mi.HandlerError, (mi.MarketIntelError,)),
        (mi.MemoryOptionWarning, (UserWarning,)),
    ],
)
def test_exception_tree(cls: type, bases: tuple[type, ...]) -> None:
    for base in bases:
        assert issubclass(cls, base), (cls, base)


@pytest.mark.slow
def test_stubtest_passes() -> None:
    """The stubs in _core.pyi match the compiled module."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "market_intel._core",
            "--allowlist",
            "stubtest-allowlist.txt",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_importing_the_package_leaves_the_heavy_dependencies_unloaded() -> None:
    code = (
        "import sys, market_intel; "
        "print(sorted(m for m in ('pyarrow', 'duckdb', 'websockets', 'simplefix', 'zstandard') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_the_fix_and_venue_packages_offer_their_main_names_at_the_top() -> None:
    from market_intel.adapters import fix, venues

    for name in ("FixAcceptor", "FixConverter", "FixSession", "FixSessionConfig", "replay_file"):
        assert getattr(mi, name) is getattr(fix, name)
    assert mi.parser_for is venues.parser_for
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        _ = mi.NoSuchName  # type: ignore[attr-defined]
