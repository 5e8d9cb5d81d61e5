"""Random consumer graphs for the property tests: how to draw them, build them on a ring (raw
consumers or the Disruptor DSL), drive them, and check what each consumer saw."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import market_intel as mi
import numpy as np
from hypothesis import strategies as st
from mi_testlib import checksum, produce, verify

CAPACITIES = st.sampled_from([2**k for k in range(1, 11)])
WAIT_CHOICES: list[Any] = [
    "blocking",
    "blocking",
    "sleeping",
    "yielding",
    "busy_spin",
    mi.WaitStrategy.blocking(spin=1),
    mi.WaitStrategy.sleeping(spin=1, yields=1, max_sleep_ns=50_000),
    mi.WaitStrategy.yielding(spin=1),
]


@dataclass
class ConsumerSpec:
    name: str
    kind: str  # 'processor' or 'poller'
    deps: list[int]
    wait: Any
    max_batch: int | None
    style: str  # how it is wired: 'names', 'objects', 'then', 'after', 'and'
    use_poll: bool


@dataclass
class Record:
    """What one consumer saw, checked as it arrives."""

    name: str
    upstream: list[tuple[Any, Record]] = field(default_factory=list)
    chunks: list[np.ndarray] = field(default_factory=list)
    max_seen: int = -1
    problems: list[str] = field(default_factory=list)

    def handle(self, batch: np.ndarray, sequence: int) -> None:
        hi = sequence + len(batch) - 1
        if len(batch) == 0:
            self.problems.append(f"empty batch at {sequence}")
        if sequence != self.max_seen + 1:
            self.problems.append(f"batch starts at {sequence}, expected {self.max_seen + 1}")
        bad = batch["chk"] != checksum(batch["producer"], batch["seq"])
        if bad.any():
            self.problems.append(f"overwritten or torn record in {sequence}..{hi}")
        for obj, rec in self.upstream:
            if obj.sequence < hi:
                self.problems.append(f"saw {hi} before {rec.name} released it ({obj.sequence})")
            if rec.max_seen < hi:
                self.problems.append(f"saw {hi} before {rec.name} handled it ({rec.max_seen})")
        self.chunks.append(batch.copy())
        self.max_seen = hi


@st.composite
def consumer_graphs(draw: st.DrawFn, max_consumers: int = 5) -> list[ConsumerSpec]:
    n = draw(st.integers(1, max_consumers))
    specs: list[ConsumerSpec] = []
    busy = False
    for i in range(n):
        deps = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        wait = draw(st.sampled_from(WAIT_CHOICES))
        is_busy = wait == "busy_spin" or (
            isinstance(wait, mi.WaitStrategy) and wait.kind == "busy_spin"
        )
        if is_busy and busy:
            wait = "yielding"  # at most one spinning consumer on a small machine
        busy = busy or is_busy
        specs.append(
            ConsumerSpec(
                name=f"c{i}",
                kind=draw(st.sampled_from(["processor", "processor", "poller"])),
                deps=deps,
                wait=wait,
                max_batch=draw(st.one_of(st.none(), st.integers(1, 64))),
                style=draw(st.sampled_from(["names", "objects", "then", "after", "and"])),
                use_poll=draw(st.booleans()),
            )
        )
    return specs


def drive_poller(poller: mi.EventPoller, rec: Record, total: int, use_poll: bool) -> None:
    deadline = time.monotonic() + 60
    while rec.max_seen < total - 1 and time.monotonic() < deadline:
        if use_poll:
            if poller.poll(lambda b, s, _e: rec.handle(b, s)) != "processing":
                poller.wait(timeout=0.02)
        else:
            batch = poller.next_batch(timeout=0.02)
            if batch is not None:
                rec.handle(batch, poller.sequence + 1)
    poller.commit()


def build(
    ring: mi.RingBuffer, specs: list[ConsumerSpec], disruptor: mi.Disruptor | None
) -> tuple[list[Any], list[Record]]:
    """Register every consumer; processors through the Disruptor DSL when one is given."""
    objs: list[Any] = []
    recs: list[Record] = []
    groups: dict[int, mi.EventHandlerGroup] = {}
    for i, spec in enumerate(specs):
        rec = Record(spec.name)
        deps = spec.deps
        if disruptor is not None and spec.kind == "processor":
            # The DSL only knows the Disruptor's own processors.
            deps = [d for d in deps if specs[d].kind == "processor"]
        rec.upstream = [(objs[d], recs[d]) for d in deps]

        def handler(batch: np.ndarray, sequence: int, _end: bool, rec: Record = rec) -> None:
            rec.handle(batch, sequence)

        opts: dict[str, Any] = {"wait": spec.wait, "max_batch": spec.max_batch}
        if spec.kind == "poller":
            after = [objs[d] if spec.style == "objects" else specs[d].name for d in deps]
            obj: Any = mi.EventPoller(ring, spec.name, after=after, **opts)
        elif disruptor is None:
            after = [objs[d] if spec.style == "objects" else specs[d].name for d in deps]
            obj = mi.BatchEventProcessor(ring, handler, name=spec.name, after=after, **opts)
        else:
            if not deps:
                group = disruptor.handle_events_with(handler, names=[spec.name], **opts)
            elif len(deps) == 1 and spec.style == "then":
                group = groups[deps[0]].then(handler, names=[spec.name], **opts)
            elif spec.style == "and":
                upstream = groups[deps[0]]
                for d in deps[1:]:
                    upstream = upstream.and_(groups[d])
                group = upstream.then(handler, names=[spec.name], **opts)
            else:
                chosen = [objs[d] if spec.style == "objects" else specs[d].name for d in deps]
                group = disruptor.after(*chosen).then(handler, names=[spec.name], **opts)
            (obj,) = group.processors
            groups[i] = group
        objs.append(obj)
        recs.append(rec)
    # The ring records the graph as built.
    ids = {spec.name: o.consumer_id for spec, o in zip(specs, objs, strict=True)}
    deps_by_name = {c.name: set(c.depends_on) for c in ring.consumer_statistics()}
    for spec, rec in zip(specs, recs, strict=True):
        assert deps_by_name[spec.name] == {ids[r.name] for _, r in rec.upstream}
    return objs, recs


def publish_from_threads(ring: mi.RingBuffer, plan: list[tuple[int, int, str, int]]) -> None:
    """Publish ``plan`` (producer, count, method, batch) from one thread per producer."""
    errors: list[BaseException] = []

    def producer(pid: int, n: int, method: str, batch: int) -> None:
        try:
            produce(ring, pid, n, method, batch)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=producer, args=args, daemon=True) for args in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


def run_graph(
    ring: mi.RingBuffer,
    specs: list[ConsumerSpec],
    disruptor: mi.Disruptor | None,
    plan: list[tuple[int, int, str, int]],
    publish: Callable[[mi.RingBuffer, list[tuple[int, int, str, int]]], None] = (
        publish_from_threads
    ),
) -> None:
    """Publish ``plan`` (producer, count, method, batch) with ``publish`` while the consumers of
    ``specs`` run, then check what every consumer saw."""
    objs, recs = build(ring, specs, disruptor)
    total = sum(n for _, n, _, _ in plan)
    processors = [o for o in objs if isinstance(o, mi.BatchEventProcessor)]
    drivers = [
        threading.Thread(target=drive_poller, args=(o, rec, total, spec.use_poll), daemon=True)
        for o, rec, spec in zip(objs, recs, specs, strict=True)
        if isinstance(o, mi.EventPoller)
    ]
    if disruptor is not None:
        disruptor.start()
        for p in processors:
            if p not in disruptor.processors:
                p.start()
    else:
        for p in processors:
            p.start()
    for t in drivers:
        t.start()
    publish(ring, plan)
    assert ring.cursor == total - 1
    if disruptor is not None:
        disruptor.stop(timeout=60)
    else:
        for p in processors:
            p.stop(timeout=60)
    for t in drivers:
        t.join(timeout=60)
        assert not t.is_alive()
    for p in processors:
        assert p.exit == "drained"
        p.close()
    for o in objs:
        if isinstance(o, mi.EventPoller):
            o.close()
    expected = {pid: n for pid, n, _, _ in plan}
    for spec, rec in zip(specs, recs, strict=True):
        assert rec.problems == [], (spec, rec.problems[:5])
        assert verify(rec.chunks, expected) == [], spec
        assert rec.max_seen == total - 1
    ring.close()
