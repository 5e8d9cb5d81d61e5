"""The event journal: an append-only, checksummed, segmented log of engine messages.

Every record gets a journal sequence number, contiguous from 1. A writer appends batches
(one ``write`` per batch, more only where a batch crosses into a new segment) and reads
``durable_sequence``, the highest sequence known to be on disk, or registers ``on_durable``
callbacks. After a crash (``kill -9``, power loss) ``Journal.open`` recovers: a torn last
record is cut off, never replayed, and appending resumes at the next sequence. ::

    with Journal.open("data/journal", fsync=FsyncPolicy.every_batch()) as journal:
        last = journal.append(messages)              # durable when it returns
        for sequence, message in journal.replay():   # everything, in order
            ...

A journal is a directory of segment files, each named by its first sequence; a new segment is
started before a batch's record would take the current one past ``segment_bytes`` (a record
larger than that goes alone into a segment of its own).

Records come in two kinds. ``append(messages)`` writes each ``CoreMessage`` as MessagePack,
the bytes of ``CoreMessage.to_msgpack()``: every field round-trips exactly (id, timestamps,
correlation and causation ids, metadata). ``append_records(records)`` writes market data,
order and trade records of ``MESSAGE_DTYPE`` as their 192 raw bytes, with no Python object
built; they replay as the same records, or as ``from_records`` rebuilds them, the messages an
agent is handed for them (records carry no metadata).

Fsync policies (``FsyncPolicy``): ``every_batch()`` syncs before ``append`` returns, so
``durable_sequence == last_sequence`` after each append; ``every(ms)`` lets a background
thread sync at most every ``ms`` milliseconds while records wait; ``never()`` syncs only on
``sync()`` and ``close()``. A sync covers the current segment, the segments rolled since the
last sync, and the directory entries of new segments. Except with ``never()``, a segment is
synced before the next one is created, so even after a power loss only the last segment can
end in a torn record. An fsync that fails fails the journal: later appends raise
``JournalError`` (the kernel may have dropped the unsynced pages).

Recovery. ``open`` scans the last segment; earlier segments are
checked as ``replay`` and ``verify`` read them. A torn tail (a failed record with no valid
record after it) is truncated, ``recovery.truncated_bytes`` says how much was cut, and a
warning is logged; a last segment whose own header is torn is removed the same way. Records
lost in the middle raise ``JournalCorruptionError`` naming the segment, the offset and the
sequence; with ``repair=True``, ``open`` instead cuts the journal at the first bad record and
moves what follows to a ``quarantine-*`` directory, never deleting it. After recovery the last
segment is synced, so everything in the journal is durable.

One writer per directory: ``open`` takes an exclusive ``flock`` on ``journal.lock`` and
raises ``JournalError`` naming the directory if another journal holds it. One thread appends
at a time (appends are serialized); ``replay`` may run in any thread and reads up to the last
record appended when it was called.

The implementation, in private modules whose public names this module exports::

    journal.py              Journal: open, append, sync, replay, around one lock
    _journal_types.py       FsyncPolicy, JournalRecovery, JournalStatistics, JournalBatch
    _journal_format.py      the files: segment header and record frames, written and read
    _journal_recovery.py    what open does to a journal a crash left behind
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import numpy as np
import numpy.typing as npt

from market_intel.errors import InvalidArgumentError, JournalError
from market_intel.messages import CoreMessage
from market_intel.storage._journal_format import FORMAT_VERSION as FORMAT_VERSION
from market_intel.storage._journal_format import FRAME_HEADER_SIZE as FRAME_HEADER_SIZE
from market_intel.storage._journal_format import HEADER_SIZE as HEADER_SIZE
from market_intel.storage._journal_format import KIND_MSGPACK as KIND_MSGPACK
from market_intel.storage._journal_format import KIND_RECORD as KIND_RECORD
from market_intel.storage._journal_format import LOCK_NAME as LOCK_NAME
from market_intel.storage._journal_format import (
    RECORD_FRAME_SIZE,
    create_segment,
    decode_messages,
    fsync_path,
    lock_directory,
    message_frames,
    record_frames,
    runs,
    seal_record_frames,
    segment_path,
)
from market_intel.storage._journal_format import SEGMENT_SUFFIX as SEGMENT_SUFFIX
from market_intel.storage._journal_recovery import recover
from market_intel.storage._journal_types import (
    FsyncPolicy,
    JournalBatch,
    JournalRecovery,
    JournalStatistics,
)

__all__ = [
    "FsyncPolicy",
    "Journal",
    "JournalBatch",
    "JournalRecovery",
    "JournalStatistics",
]

log = logging.getLogger("market_intel.storage.journal")

DEFAULT_SEGMENT_BYTES: Final = 64 * 1024 * 1024
MIN_SEGMENT_BYTES: Final = 1024


def _release(fds: list[int]) -> None:
    """Close a journal's descriptors (at close, or when a forgotten journal is collected)."""
    for i, fd in enumerate(fds):
        if fd >= 0:
            fds[i] = -1
            with contextlib.suppress(OSError):
                os.close(fd)


def _sync_loop(ref: weakref.ref[Journal], stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        journal = ref()
        if journal is None:
            return
        try:
            if journal._last > journal._durable:
                journal.sync()
        except JournalError:
            log.exception("journal %s: background sync failed", journal.directory)
            return
        del journal


# -- the journal ------------------------------------------------------------------------------


class Journal:
    """An open journal directory; make one with ``Journal.open``."""

    def __init__(
        self,
        directory: Path,
        fsync: FsyncPolicy,
        segment_bytes: int,
        lock_fd: int,
    ) -> None:
        """Hold the state of a journal whose directory lock is ``lock_fd`` (use ``open``)."""
        self.directory = directory
        self.fsync = fsync
        self.segment_bytes = segment_bytes
        self._fds = [-1, lock_fd]  # current segment, lock file
        self._finalizer = weakref.finalize(self, _release, self._fds)
        self._lock = threading.Lock()  # appends, rolls, and the state they change
        self._sync_lock = threading.Lock()  # one sync at a time, in sequence order
        self._segments: list[tuple[int, Path]] = []
        self._size = 0  # bytes in the current segment
        self._last = 0
        self._durable = 0
        self._unsynced: list[Path] = []  # rolled segments not yet synced
        self._dir_dirty = False
        self._listeners: list[Callable[[int], None]] = []
        self._failed: BaseException | None = None
        self._closed = False
        self._appended = 0
        self._appended_bytes = 0
        self._fsyncs = 0
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self.recovery = JournalRecovery(segments=0, last_sequence=0)

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy | None = None,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        repair: bool = False,
    ) -> Journal:
        """Open (or create) the journal in ``directory`` for appending, recovering it first.

        Args:
            directory: The journal's directory; created if missing.
            fsync: When to sync; default ``FsyncPolicy.every_batch()``.
            segment_bytes: The size at which a new segment is started (>= 1024).
            repair: Check every segment and cut the journal at the first bad record
                (quarantining the rest) instead of raising ``JournalCorruptionError``.

        Returns:
            The open journal; ``recovery`` reports what was found and cut.

        Raises:
            InvalidArgumentError: A bad ``fsync`` or ``segment_bytes``.
            JournalError: The directory cannot be used, or another journal holds it.
            JournalCorruptionError: A record failed before the torn tail (without ``repair``).
        """
        policy = FsyncPolicy.every_batch() if fsync is None else fsync
        if not isinstance(policy, FsyncPolicy):
            raise InvalidArgumentError(
                f"fsync: {fsync!r}; expected an FsyncPolicy (FsyncPolicy.every_batch(), "
                "FsyncPolicy.every(ms) or FsyncPolicy.never())"
            )
        if (
            not isinstance(segment_bytes, int)
            or isinstance(segment_bytes, bool)
            or segment_bytes < MIN_SEGMENT_BYTES
        ):
            raise InvalidArgumentError(
                f"segment_bytes: {segment_bytes!r}; expected an integer >= {MIN_SEGMENT_BYTES}"
            )
        path = Path(directory)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise JournalError(
                f"journal {path}: cannot create the directory ({e}); expected a writable directory"
            ) from e
        journal = cls(path, policy, segment_bytes, lock_directory(path))
        try:
            journal._recover(repair)
        except BaseException:
            journal._finalizer()
            raise
        if policy.mode == "interval":
            journal._syncer = threading.Thread(
                target=_sync_loop,
                args=(weakref.ref(journal), journal._stop, policy.interval_ms / 1000),
                name=f"mi-journal-sync-{path.name}",
                daemon=True,
            )
            journal._syncer.start()
        return journal

    def _recover(self, repair: bool) -> None:
        segments, size, recovery = recover(self.directory, repair)
        self._segments = segments
        self._last = recovery.last_sequence
        self._fds[0] = os.open(segments[-1][1], os.O_WRONLY | os.O_APPEND)
        self._size = size
        self._dir_dirty = True  # the entries of segments a crash may have left unsynced
        self._sync_now()
        self.recovery = recovery

    # -- appending -------------------------------------------------------------------------

    def append(self, messages: Sequence[CoreMessage]) -> int:
        """Append messages as MessagePack records, in order.

        Args:
            messages: The messages; each must be a ``CoreMessage``.

        Returns:
            The sequence of the last record (``last_sequence`` if ``messages`` is empty).

        Raises:
            InvalidArgumentError: An item is not a ``CoreMessage``.
            JournalError: The journal is closed or failed, or the write failed (the journal
                is then as it was before the call).
        """
        with self._lock:
            self._check_writable()
            first = self._last + 1
            parts = message_frames(messages, first)
            if not parts:
                return self._last
            blob = b"".join(parts)
            ends: Sequence[int] = ()
            if self._size + len(blob) > self.segment_bytes:
                ends = list(itertools.accumulate(map(len, parts)))[1::2]
            self._write_frames(blob, ends, first, len(parts) // 2)
            last = self._last
        if self.fsync.mode == "batch":
            self.sync()
        return last

    def append_records(self, records: npt.NDArray[np.void]) -> int:
        """Append market data, order and trade records as raw 192-byte records, in order.

        Args:
            records: A one-dimensional array of ``MESSAGE_DTYPE`` whose rows are of type
                MARKET_DATA, ORDER or TRADE.

        Returns:
            The sequence of the last record (``last_sequence`` if ``records`` is empty).

        Raises:
            DtypeMismatchError: ``records`` is not an array of ``MESSAGE_DTYPE``.
            InvalidArgumentError: Not one-dimensional, or a row of another type.
            JournalError: The journal is closed or failed, or the write failed.
        """
        frames = record_frames(records)
        n = len(frames)
        with self._lock:
            self._check_writable()
            first = self._last + 1
            if n == 0:
                return self._last
            blob = seal_record_frames(frames, first)
            size = RECORD_FRAME_SIZE
            self._write_frames(blob, range(size, (n + 1) * size, size), first, n)
            last = self._last
        if self.fsync.mode == "batch":
            self.sync()
        return last

    def _check_writable(self) -> None:
        if self._closed:
            raise JournalError(f"journal {self.directory}: closed; expected an open journal")
        if self._failed is not None:
            raise JournalError(
                f"journal {self.directory}: failed earlier ({self._failed}); expected a "
                "healthy journal (close it and open it again to recover)"
            )

    def _write_frames(self, blob: bytes, ends: Sequence[int], first: int, count: int) -> None:
        """Write ``count`` frames (``ends``: their end offsets in ``blob``, needed only if
        they do not all fit in the current segment), rolling segments as needed."""
        if self._size + len(blob) <= self.segment_bytes:
            self._write(blob, count)
            return
        view = memoryview(blob)
        start, i, sequence = 0, 0, first
        while i < count:
            room = self.segment_bytes - self._size
            j = bisect.bisect_right(ends, start + room, lo=i)
            if j == i:
                if self._size > HEADER_SIZE:
                    self._roll(sequence)
                    continue
                j = i + 1  # a record larger than a segment goes alone into a fresh one
            stop = ends[j - 1]
            self._write(view[start:stop], j - i)
            sequence += j - i
            start, i = stop, j

    def _write(self, data: bytes | memoryview, count: int) -> None:
        fd, size, done = self._fds[0], self._size, 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as e:
            try:
                os.ftruncate(fd, size)
            except OSError as again:
                self._failed = again
            raise JournalError(
                f"journal segment {self._segments[-1][1]}: writing {len(data)} bytes at offset "
                f"{size} failed ({e}); expected room on a healthy disk"
            ) from e
        self._size += len(data)
        self._last += count
        self._appended += count
        self._appended_bytes += len(data)

    def _roll(self, first_sequence: int) -> None:
        """Close the current segment and start a new one at ``first_sequence``. Unless the
        policy is ``never``, the current one is synced first: a segment is whole on disk
        before its successor exists, so only the last segment can have a torn tail."""
        if self.fsync.mode == "never":
            self._unsynced.append(self._segments[-1][1])
        else:
            try:
                os.fdatasync(self._fds[0])
            except OSError as e:
                self._failed = e
                raise JournalError(
                    f"journal segment {self._segments[-1][1]}: fsync failed ({e}); expected a "
                    "healthy disk"
                ) from e
        path = segment_path(self.directory, first_sequence)
        fd = create_segment(path, first_sequence)
        self._dir_dirty = True
        old, self._fds[0] = self._fds[0], fd
        os.close(old)
        self._segments.append((first_sequence, path))
        self._size = HEADER_SIZE

    # -- durability ------------------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record appended (0 for an empty journal)."""
        return self._last

    @property
    def durable_sequence(self) -> int:
        """The highest sequence known to be on disk: every record up to it survives a crash."""
        return self._durable

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def on_durable(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(durable_sequence)`` each time it advances.

        It runs in the thread that completed the sync (the appending thread with
        ``every_batch()``, the journal's sync thread with ``every(ms)``), in sequence order;
        an exception it raises is logged, not propagated.
        """
        if not callable(callback):
            raise InvalidArgumentError(
                f"callback: {callback!r} is not callable; expected a callable"
            )
        self._listeners.append(callback)

    def sync(self) -> int:
        """Sync everything appended so far to disk.

        Returns:
            The new ``durable_sequence``.

        Raises:
            JournalError: The journal is closed, or the sync failed (which fails the journal).
        """
        return self._sync_now(only_if_needed=True)

    def _sync_now(self, *, only_if_needed: bool = False) -> int:
        with self._sync_lock:
            with self._lock:
                self._check_writable()
                target = self._last
                idle = target == self._durable and not self._unsynced and not self._dir_dirty
                if idle and only_if_needed:
                    return target
                paths, self._unsynced = self._unsynced, []
                directory, self._dir_dirty = self._dir_dirty, False
                fd = os.dup(self._fds[0])
            try:
                for path in paths:
                    fsync_path(path)
                os.fdatasync(fd)
                if directory:
                    fsync_path(self.directory)
            except OSError as e:
                self._failed = e
                raise JournalError(
                    f"journal {self.directory}: fsync failed ({e}); records after sequence "
                    f"{self._durable} may be lost (expected a healthy disk)"
                ) from e
            finally:
                os.close(fd)
            self._fsyncs += 1
            advanced = target > self._durable
            self._durable = max(self._durable, target)
            if advanced:
                for callback in self._listeners:
                    try:
                        callback(target)
                    except Exception:
                        log.exception("journal %s: on_durable callback raised", self.directory)
            return self._durable

    def close(self) -> None:
        """Sync, stop the sync thread and release the directory. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._syncer is not None and self._syncer is not threading.current_thread():
            self._syncer.join()
        try:
            if self._failed is None and self._fds[0] >= 0:
                self.sync()
        finally:
            with self._lock:
                self._closed = True
            self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def statistics(self) -> JournalStatistics:
        """Return the journal's counters now."""
        return JournalStatistics(
            last_sequence=self._last,
            durable_sequence=self._durable,
            appended=self._appended,
            appended_bytes=self._appended_bytes,
            fsyncs=self._fsyncs,
            segments=len(self._segments),
            truncated_bytes=self.recovery.truncated_bytes,
        )

    def segment_paths(self) -> list[Path]:
        """Return the segment files, oldest first."""
        with self._lock:
            return [path for _, path in self._segments]

    # -- reading ---------------------------------------------------------------------------

    def replay(self, from_sequence: int = 1) -> Iterator[tuple[int, CoreMessage]]:
        """Iterate ``(sequence, message)`` over the records from ``from_sequence`` on, in order.

        Records appended with ``append_records`` come back as ``from_records`` rebuilds them.
        The iteration ends at the last record appended when ``replay`` was called.

        Raises:
            InvalidArgumentError: A bad ``from_sequence``.
            JournalCorruptionError: While iterating: a record failed its checksum, or records
                are missing.
            JournalError: While iterating: a checksummed record does not decode.
        """
        batches = self.replay_batches(from_sequence)
        return (pair for b in batches for pair in enumerate(b.to_messages(), b.first_sequence))

    def replay_batches(
        self, from_sequence: int = 1, *, max_batch: int = 4096
    ) -> Iterator[JournalBatch]:
        """Iterate over the records from ``from_sequence`` on as batches of one kind each.

        The iteration ends at the last record appended when ``replay_batches`` was called.

        Args:
            from_sequence: The first sequence wanted (>= 1).
            max_batch: The most records in one batch.

        Raises:
            InvalidArgumentError: A bad ``from_sequence`` or ``max_batch``.
            JournalError: The journal is closed; while iterating: a checksummed record does
                not decode.
            JournalCorruptionError: While iterating: a record failed its checksum, or records
                are missing.
        """
        for name, value in (("from_sequence", from_sequence), ("max_batch", max_batch)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgumentError(f"{name}: {value!r}; expected an integer >= 1")
        with self._lock:
            if self._closed:
                raise JournalError(f"journal {self.directory}: closed; expected an open one")
            last = self._last
            segments = list(self._segments)
        return _batches(segments, from_sequence, last, max_batch)

    def verify(self) -> int:
        """Check every record's checksum and sequence in every segment (nothing is decoded).

        Returns:
            The number of records checked.

        Raises:
            JournalCorruptionError: Naming the first bad segment, offset and sequence.
        """
        with self._lock:
            if self._closed:
                raise JournalError(f"journal {self.directory}: closed; expected an open one")
            last = self._last
            segments = list(self._segments)
        return sum(len(run[2]) for run in runs(segments, 1, last, 1 << 16))


def _batches(
    segments: list[tuple[int, Path]], from_sequence: int, last: int, max_batch: int
) -> Iterator[JournalBatch]:
    """The records ``from_sequence .. last`` as batches of one kind (at most ``max_batch``)."""
    for path, first, payloads in runs(segments, from_sequence, last, max_batch):
        if isinstance(payloads, np.ndarray):
            yield JournalBatch(first, records=payloads)
        else:
            yield JournalBatch(first, messages=decode_messages(path, first, payloads))
