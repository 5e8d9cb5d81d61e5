"""``StorageAgent``: the engine's memory. It journals every message it is handed, and rebuilds
state after a restart by replaying the journal into a running engine.

::

    agent = StorageAgent(StorageAgentConfig(directory="data/journal", fsync="batch"))
    engine.register_agent(MarketDataCounterAgent())
    with engine:
        agent.recover(engine)          # replay the journal into the engine, then register
        engine.publish_batch(records)  # journaled, then archived (if an archive is given)
    agent.close()

Per batch: rows published as numpy records (market data, orders, trades) are journaled as
raw records, with no message object built; a batch holding published message objects is
journaled as MessagePack messages (``batch.messages()``), metadata included. With an
``archive`` the agent then hands it the batch as records: a copy of the ring's records, or
records encoded from the message objects when the batch holds any.

The journal is open from construction until the engine stops the agent (``on_stop`` syncs
and closes it, releasing the directory); ``on_start`` opens it again for the next run.
``close()`` closes the journal and the archive for good.

Recovery order matters: replayed messages must reach the other agents but not the journal
again. ``recover(engine)`` (and ``replay_into`` followed by ``register_agent``) replays into
the running engine first and registers the storage agent afterwards, so it receives only
what is published from then on. Replay keeps the journal's order: where records switch
between the priority lane (CRITICAL and HIGH) and the normal lane, it waits for the engine
to handle what it published before switching.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, get_args

import numpy as np
import numpy.typing as npt

from market_intel import _config_schema as schema
from market_intel._config_schema import Boolean, Choice, FilePath, Integer, Number, Text, kind
from market_intel.codec import to_records
from market_intel.engine import CoreEngine
from market_intel.enums import AgentType, Priority
from market_intel.errors import EngineError, InvalidArgumentError, JournalError
from market_intel.messages import CoreMessage
from market_intel.records import FLAG_OBJECT
from market_intel.routing import MessageBatch
from market_intel.storage.journal import (
    DEFAULT_SEGMENT_BYTES,
    MIN_SEGMENT_BYTES,
    FsyncPolicy,
    Journal,
    JournalBatch,
    JournalRecovery,
)

__all__ = [
    "RecordArchive",
    "StorageAgent",
    "StorageAgentConfig",
    "StorageStatistics",
    "replay_into",
]

FsyncMode = Literal["batch", "interval", "never"]


class RecordArchive(Protocol):
    """Where the agent also writes each batch's records (for example a Parquet archive)."""

    def write(self, records: npt.NDArray[np.void]) -> int:
        """Store records of ``MESSAGE_DTYPE``; return how many were stored."""
        ...

    def close(self) -> None:
        """Finish writing."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class StorageAgentConfig:
    """A ``StorageAgent``'s settings.

    Attributes:
        directory: The journal's directory (created if missing).
        name: The agent's name in the engine.
        fsync: ``"batch"`` (sync before each batch is acknowledged), ``"interval"`` (sync at
            most every ``fsync_interval_ms`` while records wait) or ``"never"`` (sync on
            engine stop and ``close()`` only).
        fsync_interval_ms: The interval of the ``"interval"`` mode.
        segment_bytes: The size at which the journal starts a new segment file.
        repair: Cut a journal corrupt in the middle at its first bad record (quarantining
            the rest) instead of refusing to open it.
    """

    directory: Path = field(metadata=kind(FilePath()))
    name: str = field(default="storage", metadata=kind(Text()))
    fsync: FsyncMode = field(default="batch", metadata=kind(Choice(get_args(FsyncMode))))
    fsync_interval_ms: float = field(default=10.0, metadata=kind(Number(0.01)))
    segment_bytes: int = field(
        default=DEFAULT_SEGMENT_BYTES, metadata=kind(Integer(MIN_SEGMENT_BYTES))
    )
    repair: bool = field(default=False, metadata=kind(Boolean()))

    def __post_init__(self) -> None:
        schema.validate(self, "storage")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        """Build a config from a table (e.g. TOML), rejecting unknown keys.

        Raises:
            ConfigError: Listing every violation at once.
        """
        report = schema.Report()
        built = schema.build(cls, raw, "storage", schema.Context(), report)
        if report:
            raise report.error(None)
        if not isinstance(built, cls):  # pragma: no cover - the report holds the reason
            raise InvalidArgumentError(f"storage: {raw!r}; expected a table of settings")
        return built

    @property
    def fsync_policy(self) -> FsyncPolicy:
        """Return the journal's ``FsyncPolicy`` for these settings."""
        if self.fsync == "interval":
            return FsyncPolicy.every(self.fsync_interval_ms)
        return FsyncPolicy.every_batch() if self.fsync == "batch" else FsyncPolicy.never()


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageStatistics:
    """A ``StorageAgent``'s counters at one moment (over all its runs).

    Attributes:
        messages: Messages journaled.
        batches: Batches journaled.
        bytes: Bytes appended to the journal.
        last_sequence: The journal's last sequence.
        durable_sequence: The highest sequence known to be on disk (acknowledged).
        fsyncs: Syncs completed.
        truncated_bytes: Bytes cut off as torn tails when the journal was opened.
        archived_records: Records the archive reported written.
        segments: The journal's segment files.
    """

    messages: int
    batches: int
    bytes: int
    last_sequence: int
    durable_sequence: int
    fsyncs: int
    truncated_bytes: int
    archived_records: int
    segments: int


class StorageAgent:
    """Journal every message handed to it; optionally archive its records too."""

    def __init__(
        self,
        config: StorageAgentConfig,
        *,
        archive: RecordArchive | None = None,
        on_durable: Callable[[int], None] | None = None,
    ) -> None:
        """Open (and recover) the journal.

        Args:
            config: The agent's settings.
            archive: Also given a copy of every batch's records.
            on_durable: Called with the new durable sequence each time it advances (on the
                thread that synced: the processor's with ``fsync="batch"``).

        Raises:
            JournalError: The journal cannot be opened (for example, another writer holds it).
            JournalCorruptionError: The journal is corrupt before its tail.
        """
        if not isinstance(config, StorageAgentConfig):
            raise InvalidArgumentError(
                f"config: {config!r:.80} is not a StorageAgentConfig; expected one"
            )
        if archive is not None and not all(
            callable(getattr(archive, method, None)) for method in ("write", "close")
        ):
            raise InvalidArgumentError(
                f"archive: {archive!r:.80} lacks write(records) or close(); expected a "
                "RecordArchive"
            )
        self.config = config
        self.name = config.name
        self._archive = archive
        self._on_durable = on_durable
        self._journal: Journal | None = None
        self._closed = False
        self._messages = 0
        self._batches = 0
        self._archived = 0
        self._bytes_before = 0  # of journals closed by earlier runs
        self._fsyncs_before = 0
        self._truncated = 0
        self._last = 0
        self._durable = 0
        self._segments = 0
        self.recovery = JournalRecovery(segments=0, last_sequence=0)
        """What opening the journal found and cut (the latest opening)."""
        self._open()

    # -- the journal ---------------------------------------------------------------------

    def _open(self) -> Journal:
        c = self.config
        journal = Journal.open(
            c.directory, fsync=c.fsync_policy, segment_bytes=c.segment_bytes, repair=c.repair
        )
        journal.on_durable(self._durable_advanced)
        self._journal = journal
        self.recovery = journal.recovery
        self._truncated += journal.recovery.truncated_bytes
        self._last = journal.last_sequence
        self._durable = journal.durable_sequence
        return journal

    def _durable_advanced(self, sequence: int) -> None:
        self._durable = sequence
        if self._on_durable is not None:
            self._on_durable(sequence)

    @property
    def journal(self) -> Journal:
        """The open journal (opened again if the engine stopped the agent)."""
        if self._closed:
            raise JournalError(
                f"storage agent {self.name!r}: closed; expected an agent not yet closed"
            )
        journal = self._journal
        return journal if journal is not None else self._open()

    @property
    def last_sequence(self) -> int:
        """The journal's last sequence."""
        return self._journal.last_sequence if self._journal is not None else self._last

    @property
    def durable_sequence(self) -> int:
        """The highest sequence known to be on disk: acknowledged as durable."""
        return self._durable

    def _shut_journal(self) -> None:
        journal, self._journal = self._journal, None
        if journal is None:
            return
        try:
            journal.close()
        finally:
            stats = journal.statistics()
            self._bytes_before += stats.appended_bytes
            self._fsyncs_before += stats.fsyncs
            self._last = stats.last_sequence
            self._durable = max(self._durable, stats.durable_sequence)
            self._segments = stats.segments

    # -- the engine's calls ----------------------------------------------------------------

    def on_start(self) -> None:
        """Open the journal again if a previous stop closed it."""
        if self._journal is None:
            _ = self.journal  # raises if the agent was closed for good

    def on_stop(self) -> None:
        """Sync and close the journal, releasing its directory."""
        self._shut_journal()

    def process_batch(self, batch: MessageBatch) -> None:
        """Journal one batch, then hand a copy of its records to the archive (if any)."""
        records = batch.records
        if len(records) == 0:
            return
        journal = self.journal
        messages = None
        if not ((records["flags"] & FLAG_OBJECT) != 0).any():
            journal.append_records(records)
        else:
            messages = batch.messages()
            journal.append(messages)
        self._messages += len(records)
        self._batches += 1
        if self._archive is not None:
            # A message published as an object carries its payload in the object, not in its
            # ring record: the archive gets records encoded from the messages themselves.
            rows = records.copy() if messages is None else _with_payloads(records, messages)
            self._archived += int(self._archive.write(rows))

    # -- recovery --------------------------------------------------------------------------

    def recover(self, engine: CoreEngine, *, from_sequence: int = 1, **register: Any) -> int:
        """Replay the journal into a running engine, then register this agent with it.

        Every journaled message from ``from_sequence`` on is published once, in journal
        order, and handled by the engine's agents before this agent is registered (so none
        is journaled twice).

        Args:
            engine: A running engine whose agents rebuild their state from the replay.
            from_sequence: The first journal sequence to replay.
            **register: Options for ``engine.register_agent`` (``affinity``, ...; the
                ``agent_type`` is STORAGE unless given).

        Returns:
            The number of messages replayed.

        Raises:
            EngineError: The engine is not running, or this agent is already registered.
            JournalCorruptionError: A journaled record failed its checksum.
        """
        if any(engine.agent_object(a.id) is self for a in engine.agents()):
            raise EngineError(
                f"recover: storage agent {self.name!r} is already registered; expected it "
                "unregistered (recover() registers it after the replay)"
            )
        count = replay_into(engine, self.journal, from_sequence=from_sequence)
        register.setdefault("agent_type", AgentType.STORAGE)
        engine.register_agent(self, **register)
        return count

    # -- reporting and closing -------------------------------------------------------------

    def statistics(self) -> StorageStatistics:
        """Return the agent's counters now."""
        journal = self._journal
        stats = journal.statistics() if journal is not None else None
        return StorageStatistics(
            messages=self._messages,
            batches=self._batches,
            bytes=self._bytes_before + (stats.appended_bytes if stats else 0),
            last_sequence=stats.last_sequence if stats else self._last,
            durable_sequence=self._durable,
            fsyncs=self._fsyncs_before + (stats.fsyncs if stats else 0),
            truncated_bytes=self._truncated,
            archived_records=self._archived,
            segments=stats.segments if stats else self._segments,
        )

    def close(self) -> None:
        """Close the journal and the archive for good. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._shut_journal()
        finally:
            if self._archive is not None:
                self._archive.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def replay_into(
    target: CoreEngine | Callable[[JournalBatch], object],
    journal: Journal | str | os.PathLike[str],
    *,
    from_sequence: int = 1,
    max_batch: int = 4096,
) -> int:
    """Replay a journal into a running engine (or hand its batches to a callable).

    An engine receives every message once, in journal order: records through
    ``publish_batch`` as numpy arrays, messages as ``CoreMessage`` lists; where the lane
    (priority or normal) changes, it waits for the engine to handle what was published.
    It returns once the engine has handled everything.

    Args:
        target: A running ``CoreEngine``, or a callable taking each ``JournalBatch``.
        journal: An open ``Journal``, or the directory of one (opened, recovered, closed).
        from_sequence: The first journal sequence to replay.
        max_batch: The most records published at once.

    Returns:
        The number of messages replayed.

    Raises:
        EngineError: The engine is not running.
        InvalidArgumentError: ``target`` is neither an engine nor callable.
        JournalCorruptionError: A journaled record failed its checksum.
    """
    if isinstance(target, CoreEngine):
        if not target.running:
            raise EngineError("replay_into: the engine is not running; call start() first")
        deliver: Callable[[JournalBatch], object] = _LanePublisher(target)
    elif callable(target):
        deliver = target
    else:
        raise InvalidArgumentError(
            f"target: {target!r:.80} is not a CoreEngine or a callable; expected one of them"
        )
    opened = not isinstance(journal, Journal)
    source = journal if isinstance(journal, Journal) else Journal.open(journal)
    count = 0
    try:
        for batch in source.replay_batches(from_sequence, max_batch=max_batch):
            deliver(batch)
            count += len(batch)
    finally:
        if opened:
            source.close()
    if isinstance(target, CoreEngine):
        target.flush()
    return count


class _LanePublisher:
    """Publishes journal batches into an engine, keeping their order across its two lanes."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine
        self.urgent: bool | None = None  # the lane of the last publish

    def __call__(self, batch: JournalBatch) -> None:
        if batch.records is not None:
            records = batch.records
            urgent = records["priority"] <= Priority.HIGH
            flags = urgent.astype(np.int8)
            self._runs(flags, lambda lo, hi: records[lo:hi])
        else:
            messages = batch.messages or []
            flags = np.fromiter((m.priority <= Priority.HIGH for m in messages), np.int8)
            self._runs(flags, lambda lo, hi: messages[lo:hi])

    def _runs(self, urgent: npt.NDArray[np.int8], part: Callable[[int, int], Any]) -> None:
        cuts = [0, *(np.flatnonzero(np.diff(urgent)) + 1).tolist(), len(urgent)]
        for lo, hi in itertools.pairwise(cuts):
            lane = bool(urgent[lo])
            if self.urgent is not None and lane != self.urgent:
                self.engine.flush()
            self.urgent = lane
            chunk: list[CoreMessage] | npt.NDArray[np.void] = part(lo, hi)
            self.engine.publish_batch(chunk)


_HEADER = ("id", "created_ns", "published_ns", "correlation_id", "causation_id", "priority")


def _with_payloads(
    records: npt.NDArray[np.void], messages: list[CoreMessage]
) -> npt.NDArray[np.void]:
    """The batch's records with each row's payload columns encoded from its message (the
    ring record of a message published as an object carries only its header). ``flags``
    are the encoded ones: the payload is in the record now."""
    rows = to_records(messages)
    for name in _HEADER:
        rows[name] = records[name]
    return rows
