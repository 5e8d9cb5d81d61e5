"""Wait strategies: how a consumer waits for the next event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["WaitStrategy", "WaitStrategyLike"]

WaitKind = Literal["blocking", "sleeping", "yielding", "busy_spin"]


@dataclass(frozen=True, slots=True)
class WaitStrategy:
    """A wait strategy, chosen per consumer.

    ``blocking`` (the default) spins briefly, then sleeps on a futex in the ring until a
    producer wakes it: an idle consumer costs no CPU, also across processes. ``sleeping``
    spins, yields, then sleeps with exponential backoff up to ``max_sleep_ns``. ``yielding``
    spins then yields the core. ``busy_spin`` never gives the core up (lowest latency; use
    only with a core to spare per consumer). Every blocking wait releases the GIL.
    """

    kind: WaitKind = "blocking"
    spin: int | None = None
    yields: int | None = None
    max_sleep_ns: int | None = None

    @classmethod
    def blocking(cls, *, spin: int = 200) -> WaitStrategy:
        """Spin ``spin`` times, then sleep until woken."""
        return cls("blocking", spin=spin)

    @classmethod
    def sleeping(
        cls, *, spin: int = 100, yields: int = 100, max_sleep_ns: int = 1_000_000
    ) -> WaitStrategy:
        """Spin, yield, then sleep with backoff."""
        return cls("sleeping", spin=spin, yields=yields, max_sleep_ns=max_sleep_ns)

    @classmethod
    def yielding(cls, *, spin: int = 100) -> WaitStrategy:
        """Spin, then yield between checks."""
        return cls("yielding", spin=spin)

    @classmethod
    def busy_spin(cls) -> WaitStrategy:
        """Spin without ever giving the core up."""
        return cls("busy_spin")


WaitStrategyLike = WaitStrategy | WaitKind
