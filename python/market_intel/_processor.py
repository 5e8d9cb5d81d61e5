"""A processor: one thread that takes both lanes and hands each batch to its agents.

Order of work: everything in the priority lane first, then at most ``max_batch`` messages of
the normal lane, then the priority lane again. So a CRITICAL or HIGH message waits for at most
one chunk of the normal lane, however long the normal lane's backlog is. When both lanes are
empty the thread sleeps in the normal lane's wait strategy (GIL released); a publish to the
priority lane alerts it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from market_intel import _core
from market_intel.errors import AlertedError
from market_intel.records import FLAG_OBJECT
from market_intel.routing import MessageBatch

if TYPE_CHECKING:
    from market_intel.agent import _AgentRuntime
    from market_intel.ring import RingBuffer

log = logging.getLogger("market_intel.processor")

Lane = Literal["priority", "normal"]


def _object_rows(records: np.ndarray) -> npt.NDArray[np.bool_]:
    """Rows whose message travels as an object (their record holds only the header)."""
    return np.asarray((records["flags"] & FLAG_OBJECT) != 0, dtype=np.bool_)


class LaneSet:
    """The two lanes of an engine: rings, object columns and the native publisher."""

    def __init__(self, priority: RingBuffer, normal: RingBuffer, message_class: type) -> None:
        self.priority = priority
        self.normal = normal
        self.priority_objects: list[Any] = [None] * priority.capacity
        self.normal_objects: list[Any] = [None] * normal.capacity
        self.native = _core._MessageLanes(
            priority, normal, self.priority_objects, self.normal_objects, message_class
        )


class Processor:
    """One processor thread and the agents assigned to it."""

    def __init__(
        self,
        index: int,
        lanes: LaneSet,
        *,
        wait: Any,
        max_batch: int,
        heartbeat_s: float,
        core: int | None,
        decode: Callable[[np.ndarray, list[Any] | None], list[Any]],
        encode: Callable[[list[Any]], np.ndarray],
        latency: _core._LatencyRecorder | None,
    ) -> None:
        self.index = index
        self.lanes = lanes
        self.agents: tuple[_AgentRuntime, ...] = ()
        self.core = core
        self._wait = wait
        self._max_batch = max_batch
        self._heartbeat_s = heartbeat_s
        self._decode = decode
        self._encode = encode
        self._latency = latency
        self._stopping = False
        self._retiring = False
        self._thread: threading.Thread | None = None
        self._pollers: tuple[_core.EventPoller, _core.EventPoller] | None = None
        self.messages = 0
        self.undecodable = 0
        """Records object agents could not be handed: they do not decode to a message."""
        self.current: _AgentRuntime | None = None
        """The agent the thread is inside now (None between agents)."""
        self.last_beat_ns = 0
        self.error: BaseException | None = None
        self.affinity_warning: str | None = None

    # -- control (any thread) ------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def lag(self) -> int:
        """Messages of both lanes published and not yet taken by this processor."""
        pollers = self._pollers  # read once: the thread clears it when it ends
        if pollers is None:
            return 0
        prio, normal = pollers
        return max(self.lanes.priority.cursor - prio.sequence, 0) + max(
            self.lanes.normal.cursor - normal.sequence, 0
        )

    def start(self) -> None:
        """Register as a consumer of both lanes (from the current cursors) and start."""
        if self.running:
            return
        name = f"processor-{self.index}"
        prio = _core.EventPoller(self.lanes.priority, f"{name}-priority", wait="busy_spin")
        normal = _core.EventPoller(
            self.lanes.normal, name, wait=self._wait, max_batch=self._max_batch
        )
        self._pollers = (prio, normal)
        self.lanes.native.add_waiter(normal)
        self._stopping = False
        self._retiring = False
        self.error = None
        self._thread = threading.Thread(target=self._run, name=f"mi-{name}", daemon=True)
        self._thread.start()

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> None:
        """Handle everything published so far (``drain``), then end the thread."""
        self.request_stop(drain=drain)
        self.join(timeout)

    def request_stop(self, *, drain: bool = True) -> None:
        """Ask the thread to end, after handling everything published so far (``drain``)."""
        self._stopping = drain
        self._retiring = not drain
        pollers = self._pollers
        if pollers is not None:
            pollers[1].alert()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end (at most ``timeout`` seconds)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_not_in(self, agent: _AgentRuntime, timeout: float) -> bool:
        """Wait until the thread is not inside ``agent``; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.current is agent and self.running:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    def retire(self) -> None:
        """End the thread without draining (its last agent left) and stop gating the lanes."""
        self.stop(drain=False)

    # -- the loop (processor thread) -----------------------------------------------------

    def _pin(self) -> None:
        if self.core is None:
            return
        try:
            os.sched_setaffinity(0, {self.core})
        except OSError as e:
            self.affinity_warning = f"processor {self.index}: core {self.core} refused ({e})"
            log.warning(self.affinity_warning)

    def _run(self) -> None:
        assert self._pollers is not None
        prio, normal = self._pollers
        self._pin()
        lanes = self.lanes
        try:
            while True:
                self.last_beat_ns = time.time_ns()
                if self._retiring:
                    break
                batch = prio.next_batch(0)
                if batch is not None:
                    self._dispatch(batch, prio.sequence + 1, lanes.priority_objects, "priority")
                    prio.commit()
                    continue
                batch = normal.next_batch(0)
                if batch is not None:
                    self._dispatch(batch, normal.sequence + 1, lanes.normal_objects, "normal")
                    normal.commit()
                    continue
                if self._stopping:
                    if (
                        prio.sequence >= lanes.priority.cursor
                        and normal.sequence >= lanes.normal.cursor
                    ):
                        break
                    time.sleep(0)
                    continue
                try:
                    normal.wait(self._heartbeat_s)
                except AlertedError:
                    normal.clear_alert()
        except BaseException as e:  # a bug in the engine itself: keep it visible
            self.error = e
            log.exception("processor %d stopped on an engine error", self.index)
        finally:
            lanes.native.remove_waiter(normal)
            prio.close()
            normal.close()
            self._pollers = None

    def _dispatch(self, view: np.ndarray, lo: int, objects: list[Any], lane: Lane) -> None:
        n = len(view)
        start = lo & (len(objects) - 1)
        flags = view["flags"]
        all_objects = bool((flags & FLAG_OBJECT).all())
        slice_ = objects[start : start + n]
        decoded: list[Any] | None = slice_ if all_objects else None
        skipped: list[int] = []
        columns: np.ndarray | None = None
        beat = time.time_ns()
        lane_index = 0 if lane == "priority" else 1
        for agent in self.agents:
            agent.last_heartbeat_ns = beat
            self.current = agent  # before the status check: unregister_agent relies on it
            if not agent.active:
                agent.dropped += self._count_routed(agent, view)
                continue
            if agent.joined is not None and agent.joined[lane_index] >= lo:
                self._deliver_since(agent, view, slice_, lo, lane, agent.joined[lane_index])
                continue
            if agent.vectorized:
                if columns is None:
                    columns = self._columns(view, slice_)
                batch = self._batch_for(agent, columns, slice_, lo, lane)
                if batch is not None and len(batch):
                    agent.deliver_batch(batch)
            else:
                if decoded is None:
                    decoded, skipped = self._decode_rows(view, slice_)
                if skipped:
                    agent.dropped += sum(1 for t in skipped if agent.route.accepts_type(t))
                agent.deliver_objects(decoded)
        self.current = None
        self.messages += n
        if self._latency is not None:
            self._latency.record_since(view["published_ns"], time.time_ns())

    def _deliver_since(
        self,
        agent: _AgentRuntime,
        view: np.ndarray,
        objects: list[Any],
        lo: int,
        lane: Lane,
        joined: int,
    ) -> None:
        """Deliver only the rows after sequence ``joined`` (published after the agent was
        registered to a running engine)."""
        first = joined + 1 - lo
        if first >= len(view):
            return
        view, objects = view[first:], objects[first:]
        if agent.vectorized:
            batch = self._batch_for(agent, self._columns(view, objects), objects, lo + first, lane)
            if batch is not None and len(batch):
                agent.deliver_batch(batch)
        else:
            messages, skipped = self._decode_rows(view, objects)
            agent.dropped += sum(1 for t in skipped if agent.route.accepts_type(t))
            agent.deliver_objects(messages)

    def _decode_rows(self, view: np.ndarray, objects: list[Any]) -> tuple[list[Any], list[int]]:
        """The batch as messages, and the types of rows left out: records published with
        invalid fields do not decode; they are counted and logged, and never stop the
        processor (object agents count them as ``dropped``)."""
        try:
            return self._decode(view, objects), []
        except Exception:
            pass
        out = []
        skipped = []
        for i in range(len(view)):
            try:
                out.extend(self._decode(view[i : i + 1], objects[i : i + 1]))
            except Exception as e:
                skipped.append(int(view["type"][i]))
                log.warning("processor %d: record %d of a batch skipped: %s", self.index, i, e)
        self.undecodable += len(skipped)
        return out, skipped

    @staticmethod
    def _count_routed(agent: _AgentRuntime, view: np.ndarray) -> int:
        if not agent.route.types:
            return len(view)
        return int(np.isin(view["type"], agent.route.codes).sum())

    def _columns(self, view: np.ndarray, objects: list[Any]) -> np.ndarray:
        """The batch's records with every column of the messages published as objects filled
        in: the ring holds only part of their header. Such rows keep ``FLAG_OBJECT``, so
        ``MessageBatch.messages()`` hands back the published objects themselves."""
        rows = np.flatnonzero(_object_rows(view))
        if len(rows) == 0:
            return view
        records = view.copy()
        records[rows] = self._encode([objects[i] for i in rows.tolist()])
        flags = records["flags"]
        flags[rows] |= np.uint8(FLAG_OBJECT)
        return records

    def _batch_for(
        self,
        agent: _AgentRuntime,
        view: np.ndarray,
        objects: list[Any],
        lo: int,
        lane: Lane,
    ) -> MessageBatch | None:
        """The agent's part of the batch (None if its filter raised: an agent error)."""
        records = view
        objs: list[Any] | None = objects
        try:
            mask = agent.route.record_mask(records)
        except Exception as e:  # the agent's filter failed: its error, not the processor's
            agent._failed(e, f"filter({len(records)} records from sequence {lo})")
            return None
        if mask is not None and not mask.all():
            records = records[mask]
            objs = [objects[i] for i in np.flatnonzero(mask).tolist()]
        return MessageBatch(records, objs, lo, lane, self._decode)

    def set_agents(self, agents: tuple[_AgentRuntime, ...]) -> None:
        """Replace the agent set (copy-on-write: the loop reads one tuple per batch)."""
        self.agents = agents
        for a in agents:
            a.core = self.core
