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

Files::

    <directory>/
    ├── journal.lock                    flock()ed by the one writer; holds its pid
    ├── 00000000000000000001.journal    a segment: records 1 .. 40_960
    ├── 00000000000000040961.journal    the last segment, appended to
    └── quarantine-<utc>-<pid>/         only after open(repair=True) cut a corrupt journal

A segment is named by its first sequence and starts with a 32-byte header; a new segment is
started before a batch's record would take the current one past ``segment_bytes`` (a record
larger than that goes alone into a segment of its own)::

    segment header (little-endian)       record frame (little-endian)
    0   8  magic b"MIJOURNL"             0   4  marker b"\\xc1JRN"
    8   2  format version (1)            4   4  CRC-32 of bytes 8 .. 24 + length
    10  2  header size (32)              8   4  length of the payload
    12  4  reserved (0)                  12  1  kind: 0 msgpack, 1 record
    16  8  first sequence                13  3  reserved (0)
    24  4  CRC-32 of bytes 0 .. 24       16  8  sequence
    28  4  reserved (0)                  24  .. payload

_Payloads come in two kinds. ``append(messages)`` writes each ``CoreMessage`` as MessagePack,
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

Recovery. ``open`` lists the segments by name and scans the last one, its header and then
record by record (earlier segments are checked as ``replay`` and ``verify`` read them). At the first
frame that fails (header or payload cut short, no marker, checksum mismatch) it looks for any
valid frame further on. If there is none, the failed frame is a torn tail: the segment is
truncated to the last good record, ``recovery.truncated_bytes`` says how much was cut, and a
warning is logged. A last segment whose own header is torn is removed the same way. If a
valid frame follows, or a checksummed frame has the wrong sequence, records were lost in the
middle: ``JournalCorruptionError`` names the segment, the offset and the sequence. With
``repair=True``, ``open`` instead checks every segment and cuts the journal at the first bad
record: the bytes from there on and every later segment are moved to a ``quarantine-*``
directory, never deleted (after a power loss under ``never()``, a segment before the last can
be cut short too: ``replay`` reports it, ``repair=True`` cuts it). After recovery the last
segment is synced, so everything in the journal is durable.

One writer per directory: ``open`` takes an exclusive ``flock`` on ``journal.lock`` and
raises ``JournalError`` naming the directory if another journal holds it. One thread appends
at a time (appends are serialized); ``replay`` may run in any thread and reads up to the last
record appended when it was called.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import itertools
import logging
import math
import os
import shutil
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Literal, Self

import msgspec
import numpy as np
import numpy.typing as npt

from market_intel.codec import from_records
from market_intel.enums import MessageType
from market_intel.errors import (
    DtypeMismatchError,
    InvalidArgumentError,
    JournalCorruptionError,
    JournalError,
)
from market_intel.messages import CoreMessage
from market_intel.records import MESSAGE_DTYPE, RECORD_SIZE

__all__ = [
    "FsyncPolicy",
    "Journal",
    "JournalBatch",
    "JournalRecovery",
    "JournalStatistics",
]

log = logging.getLogger("market_intel.storage.journal")

SEGMENT_SUFFIX: Final = ".journal"
LOCK_NAME: Final = "journal.lock"
DEFAULT_SEGMENT_BYTES: Final = 64 * 1024 * 1024
MIN_SEGMENT_BYTES: Final = 1024
FORMAT_VERSION: Final = 1
KIND_MSGPACK: Final = 0
KIND_RECORD: Final = 1

_SEGMENT_MAGIC: Final = b"MIJOURNL"
_SEGMENT_HEADER: Final = struct.Struct("<8sHHIQI4x")
HEADER_SIZE: Final = _SEGMENT_HEADER.size  # 32
_FRAME_MARKER: Final = b"\xc1JRN"
_MARKER: Final = int.from_bytes(_FRAME_MARKER, "little")
_FRAME: Final = struct.Struct("<IIIB3xQ")  # marker, crc, length, kind, sequence
_FRAME_TAIL: Final = struct.Struct("<IB3xQ")  # length, kind, sequence: the checksummed part
FRAME_HEADER_SIZE: Final = _FRAME.size  # 24
_RECORD_FRAME_SIZE: Final = FRAME_HEADER_SIZE + RECORD_SIZE
_RECORD_FRAME: Final = np.dtype(
    {
        "names": ["marker", "crc", "length", "kind", "sequence", "payload"],
        "formats": ["<u4", "<u4", "<u4", "u1", "<u8", f"V{RECORD_SIZE}"],
        "offsets": [0, 4, 8, 12, 16, 24],
        "itemsize": _RECORD_FRAME_SIZE,
    }
)
_RAW_RECORD: Final = np.dtype((np.void, RECORD_SIZE))
_HOT_CODES: Final = np.array(
    [MessageType.MARKET_DATA, MessageType.ORDER, MessageType.TRADE], dtype=np.uint8
)
_MAX_PAYLOAD: Final = 2**32 - 1
_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(CoreMessage)
_LIST_DECODER: Final = msgspec.msgpack.Decoder(list[CoreMessage])


# -- public value types ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    """When the journal calls ``fdatasync``: make one with ``every_batch()``, ``every(ms)`` or
    ``never()``.

    Attributes:
        mode: ``"batch"``, ``"interval"`` or ``"never"``.
        interval_ms: The longest a record waits for its sync in ``"interval"`` mode.
    """

    mode: Literal["batch", "interval", "never"]
    interval_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("batch", "interval", "never"):
            raise InvalidArgumentError(
                f"FsyncPolicy.mode: {self.mode!r}; expected 'batch', 'interval' or 'never'"
            )
        ms = self.interval_ms
        if self.mode == "interval":
            if not isinstance(ms, int | float) or isinstance(ms, bool) or not 0 < ms < math.inf:
                raise InvalidArgumentError(
                    f"FsyncPolicy.interval_ms: {ms!r}; expected a finite number of ms > 0"
                )
        elif ms != 0:
            raise InvalidArgumentError(
                f"FsyncPolicy.interval_ms: {ms!r} with mode {self.mode!r}; expected 0 "
                "(only the 'interval' mode has an interval)"
            )

    @classmethod
    def every_batch(cls) -> FsyncPolicy:
        """Sync before each append returns."""
        return cls("batch")

    @classmethod
    def every(cls, interval_ms: float) -> FsyncPolicy:
        """Sync from a background thread at most every ``interval_ms`` while records wait."""
        return cls("interval", interval_ms)

    @classmethod
    def never(cls) -> FsyncPolicy:
        """Sync only on ``sync()`` and ``close()``."""
        return cls("never")

    def __str__(self) -> str:
        if self.mode == "interval":
            return f"every {self.interval_ms:g} ms"
        return "every batch" if self.mode == "batch" else "never"


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalRecovery:
    """What ``Journal.open`` found and mended.

    Attributes:
        segments: Segment files after recovery.
        last_sequence: The last record's sequence (0 for an empty journal).
        truncated_bytes: Bytes cut off: a torn tail, last segments with a torn header, and
            (with ``repair=True``) what was moved to quarantine.
        torn_segment: The segment whose torn tail was cut, if any.
        removed_segments: Last segments removed because their own header was torn.
        quarantine: With ``repair=True``: the directory that received what was cut.
    """

    segments: int
    last_sequence: int
    truncated_bytes: int = 0
    torn_segment: Path | None = None
    removed_segments: tuple[Path, ...] = ()
    quarantine: Path | None = None

    @property
    def clean(self) -> bool:
        """Return True if nothing had to be cut."""
        return not self.truncated_bytes and not self.removed_segments and self.quarantine is None


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalStatistics:
    """A journal's counters at one moment (appends and syncs count since ``open``).

    Attributes:
        last_sequence: The last record appended.
        durable_sequence: The last record known to be on disk.
        appended: Records appended since open.
        appended_bytes: Bytes of frames appended since open.
        fsyncs: Syncs completed since open.
        segments: Segment files.
        truncated_bytes: Bytes cut off by recovery at open.
    """

    last_sequence: int
    durable_sequence: int
    appended: int
    appended_bytes: int
    fsyncs: int
    segments: int
    truncated_bytes: int


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """Consecutive records of one kind, as ``replay_batches`` yields them.

    Exactly one of ``messages`` (records appended with ``append``) and ``records`` (appended
    with ``append_records``; a writable array of ``MESSAGE_DTYPE``) is set.
    """

    first_sequence: int
    messages: list[CoreMessage] | None = None
    records: npt.NDArray[np.void] | None = None

    def __len__(self) -> int:
        items = self.messages if self.messages is not None else self.records
        return 0 if items is None else len(items)

    @property
    def last_sequence(self) -> int:
        """Return the sequence of the batch's last record."""
        return self.first_sequence + len(self) - 1

    def to_messages(self) -> list[CoreMessage]:
        """Return the batch as messages (records rebuilt with ``from_records``)."""
        if self.messages is not None:
            return self.messages
        assert self.records is not None
        return from_records(self.records)


# -- reading frames ---------------------------------------------------------------------------


_Payloads = list[memoryview] | npt.NDArray[np.void]
"""A run's payloads: MessagePack payloads, or records of ``MESSAGE_DTYPE``."""


class _Scan:
    """Read one segment's frames from ``offset`` as runs of consecutive frames of one kind.
    Afterwards ``offset`` and ``sequence`` point past the last good frame and ``problem``
    says why the scan stopped short of ``end`` (None if it did not). ``torn`` is False for a
    problem no torn write can cause (a checksummed frame of the wrong sequence or kind)."""

    def __init__(self, data: bytes, offset: int, end: int, sequence: int) -> None:
        self.data = data
        self.view = memoryview(data)
        self.offset = offset
        self.end = end
        self.sequence = sequence
        self.problem: str | None = None
        self.torn = True

    def runs(self, limit: int) -> Iterator[tuple[int, _Payloads]]:
        """Yield ``(first sequence, payloads)`` runs of at most ``limit`` frames."""
        while self.offset < self.end and self.problem is None:
            first = self.sequence
            if (
                self.end - self.offset >= FRAME_HEADER_SIZE
                and self.data[self.offset + 12] == KIND_RECORD
            ):
                records = self._records(limit)
                if len(records):
                    yield first, records
            else:
                payloads = self._messages(limit)
                if payloads:
                    yield first, payloads

    def _check(self, offset: int) -> tuple[int, int]:
        """Check the frame at ``offset``: its (kind, end), or (-1, 0) with ``problem`` set."""
        end = self.end
        if end - offset < FRAME_HEADER_SIZE:
            self.problem = f"a frame header cut short ({end - offset} of 24 bytes)"
            return -1, 0
        marker, crc, length, kind, seq = _FRAME.unpack_from(self.data, offset)
        stop = offset + FRAME_HEADER_SIZE + length
        if marker != _MARKER:
            self.problem = "no frame marker"
        elif stop > end:
            have = end - offset - FRAME_HEADER_SIZE
            self.problem = f"a payload cut short ({have} of {length} bytes)"
        elif zlib.crc32(self.view[offset + 8 : stop]) != crc:
            self.problem = "a checksum mismatch"
        elif seq != self.sequence:
            self.torn = False
            self.problem = f"a checksummed frame of sequence {seq}; expected {self.sequence}"
        elif kind > KIND_RECORD or (kind == KIND_RECORD and length != RECORD_SIZE):
            self.torn = False
            self.problem = (
                f"a checksummed frame of kind {kind} and length {length}; expected kind 0, "
                f"or kind 1 of length {RECORD_SIZE}"
            )
        else:
            return kind, stop
        return -1, 0

    def _messages(self, limit: int) -> list[memoryview]:
        data, view, end = self.data, self.view, self.end
        unpack, crc32 = _FRAME.unpack_from, zlib.crc32
        offset, sequence = self.offset, self.sequence
        out: list[memoryview] = []
        add = out.append
        for _ in range(limit):  # the common case inline; _check explains any other
            if end - offset < FRAME_HEADER_SIZE:
                break
            marker, crc, length, kind, seq = unpack(data, offset)
            stop = offset + FRAME_HEADER_SIZE + length
            if not (
                marker == _MARKER and kind == KIND_MSGPACK and seq == sequence and stop <= end
                and crc32(view[offset + 8 : stop]) == crc
            ):  # fmt: skip
                break
            add(view[offset + FRAME_HEADER_SIZE : stop])
            offset = stop
            sequence += 1
        self.offset, self.sequence = offset, sequence
        if offset < end and len(out) < limit:
            self._check(offset)  # a problem, or a record frame that starts the next run
        return out

    def _records(self, limit: int) -> npt.NDArray[np.void]:
        """Take a run of record frames at once: fields checked as columns, then checksums."""
        offset, size = self.offset, _RECORD_FRAME_SIZE
        count = min((self.end - offset) // size, limit)
        block = np.frombuffer(self.data, _RECORD_FRAME, count, offset)
        sequences = np.arange(self.sequence, self.sequence + count, dtype=np.uint64)
        ok = (block["marker"] == _MARKER) & (block["kind"] == KIND_RECORD)
        ok &= (block["length"] == RECORD_SIZE) & (block["sequence"] == sequences)
        good = count if ok.all() else int(np.argmin(ok))
        view, crc32 = self.view, zlib.crc32
        crcs = [crc32(view[o + 8 : o + size]) for o in range(offset, offset + good * size, size)]
        bad = np.flatnonzero(np.array(crcs, dtype=np.uint32) != block["crc"][:good])
        if len(bad):
            good = int(bad[0])
        records = np.empty(good, MESSAGE_DTYPE)
        records.view(_RAW_RECORD)[:] = block["payload"][:good]
        self.offset += good * size
        self.sequence += good
        if good < count or count == 0:
            self._check(self.offset)  # the frame that ended the run: a problem, or another kind
        return records


def _valid_frame_after(data: bytes, start: int, end: int, sequence: int) -> int:
    """The offset of the first checksummed frame of sequence >= ``sequence`` in
    ``data[start:end]``, or -1."""
    crc32 = zlib.crc32
    while (at := data.find(_FRAME_MARKER, start, end)) >= 0:
        if end - at >= FRAME_HEADER_SIZE:
            _, crc, length, _, seq = _FRAME.unpack_from(data, at)
            stop = at + FRAME_HEADER_SIZE + length
            if stop <= end and seq >= sequence and crc32(data[at + 8 : stop]) == crc:
                return at
        start = at + 1
    return -1


def _segment_header(first_sequence: int) -> bytes:
    head = _SEGMENT_HEADER.pack(_SEGMENT_MAGIC, FORMAT_VERSION, HEADER_SIZE, 0, first_sequence, 0)
    crc = zlib.crc32(head[:24])
    return _SEGMENT_HEADER.pack(_SEGMENT_MAGIC, FORMAT_VERSION, HEADER_SIZE, 0, first_sequence, crc)


def _header_problem(head: bytes, first_sequence: int) -> tuple[str | None, bool]:
    """Why a segment's first bytes are not the header its name says (None if they are), and
    whether the header is damaged (cut short, or failing its checksum) rather than intact but
    different (another format version, another first sequence)."""
    if len(head) < HEADER_SIZE:
        return f"a header cut short ({len(head)} of {HEADER_SIZE} bytes)", True
    magic, version, size, _, first, crc = _SEGMENT_HEADER.unpack_from(head)
    if magic != _SEGMENT_MAGIC or zlib.crc32(head[:24]) != crc or size != HEADER_SIZE:
        return "a damaged header (magic, size or checksum)", True
    if version != FORMAT_VERSION:
        return f"format version {version}; expected {FORMAT_VERSION}", False
    if first != first_sequence:
        return f"a header of first sequence {first}; expected {first_sequence} (its name)", False
    return None, False


def _segment_path(directory: Path, first_sequence: int) -> Path:
    return directory / f"{first_sequence:020d}{SEGMENT_SUFFIX}"


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.iterdir():
        stem = path.name.removesuffix(SEGMENT_SUFFIX)
        if path.name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def _read_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        journal = cls(path, policy, segment_bytes, _lock(path))
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
        directory = self.directory
        segments = _list_segments(directory)
        truncated, torn, removed, quarantine = 0, None, [], None
        if repair and segments:
            quarantine, truncated = self._repair(segments)
            segments = _list_segments(directory)
        while segments:  # a last segment with a torn header is a torn roll: remove it
            first, path = segments[-1]
            data = _read_file(path)
            problem, damaged = _header_problem(data[:HEADER_SIZE], first)
            if problem is None:
                break
            if not damaged:
                raise JournalError(
                    f"journal segment {path}: {problem}; expected a segment of this journal "
                    "written by this version of market-intel"
                )
            later = _valid_frame_after(data, 0, len(data), first)
            if later >= 0 or (len(segments) == 1 and first != 1):
                raise JournalCorruptionError(
                    f"journal segment {path}: offset 0 (sequence {first}): {problem}; "
                    "expected a segment header (open with repair=True to cut the journal here)"
                )
            log.warning("journal %s: removed torn segment %s (%s)", directory, path.name, problem)
            path.unlink()
            removed.append(path)
            truncated += len(data)
            self._dir_dirty = True
            segments.pop()
        if not segments:
            segments = [(1, _segment_path(directory, 1))]
            os.close(self._create_segment(segments[0][1], 1))
        self._segments = segments
        first, path = segments[-1]
        end, cut = self._scan_last(path, first)
        if cut:
            truncated += cut
            torn = path
        self._fds[0] = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = end
        self._dir_dirty = True  # the entries of segments a crash may have left unsynced
        self._sync_now()
        self.recovery = JournalRecovery(
            segments=len(segments),
            last_sequence=self._last,
            truncated_bytes=truncated,
            torn_segment=torn,
            removed_segments=tuple(removed),
            quarantine=quarantine,
        )

    def _scan_last(self, path: Path, first: int) -> tuple[int, int]:
        """Scan the last segment; cut a torn tail. Returns (its good size, bytes cut)."""
        data = _read_file(path)
        size = len(data)
        scan = _Scan(data, HEADER_SIZE, size, first)
        for _ in scan.runs(1 << 16):
            pass
        if scan.problem is not None:
            later = -1
            if scan.torn:
                later = _valid_frame_after(data, scan.offset + 1, size, scan.sequence)
            if not scan.torn or later >= 0:
                after = f"; a valid record follows at offset {later}" if later >= 0 else ""
                raise JournalCorruptionError(
                    f"journal segment {path}: offset {scan.offset} (sequence "
                    f"{scan.sequence}): {scan.problem}{after}; expected a valid record "
                    "(open with repair=True to cut the journal here)"
                )
        del data
        self._last = scan.sequence - 1
        cut = size - scan.offset
        if cut:
            with open(path, "r+b") as f:
                f.truncate(scan.offset)
            log.warning(
                "journal %s: cut a torn tail of %d bytes from %s at offset %d (%s after "
                "sequence %d)",
                self.directory, cut, path.name, scan.offset, scan.problem, self._last,
            )  # fmt: skip
        return scan.offset, cut

    def _repair(self, segments: list[tuple[int, Path]]) -> tuple[Path | None, int]:
        """Cut the journal at its first bad record; move what follows into quarantine.
        Returns the quarantine directory (None if nothing was cut) and the bytes moved."""
        sequence = segments[0][0]
        for index, (first, path) in enumerate(segments):
            if index and first != sequence:
                cut_at, why = 0, f"starts at sequence {first}; expected {sequence}"
            else:
                cut_at, why, sequence, corrupt = _check_segment(path, first)
                if cut_at < 0 or (index == len(segments) - 1 and not corrupt):
                    continue  # a clean segment, or a torn tail that recovery cuts
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            quarantine = self.directory / f"quarantine-{stamp}-{os.getpid()}"
            quarantine.mkdir(exist_ok=True)
            moved = 0
            rest = segments[index:]
            if cut_at >= HEADER_SIZE:
                with open(path, "r+b") as f:
                    f.seek(cut_at)
                    tail = f.read()
                    (quarantine / f"{path.name}.from-{cut_at}").write_bytes(tail)
                    f.truncate(cut_at)
                moved += len(tail)
                rest = segments[index + 1 :]
            for _, p in rest:
                moved += p.stat().st_size
                shutil.move(p, quarantine / p.name)
            log.warning(
                "journal %s: repaired: cut at %s offset %d (sequence %d: %s); %d bytes moved "
                "to %s",
                self.directory, path.name, cut_at, sequence, why, moved, quarantine,
            )  # fmt: skip
            self._dir_dirty = True
            return quarantine, moved
        return None, 0

    def _create_segment(self, path: Path, first_sequence: int) -> int:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except OSError as e:
            raise JournalError(
                f"journal segment {path}: cannot be created ({e}); expected a new file"
            ) from e
        try:
            os.write(fd, _segment_header(first_sequence))
        except OSError as e:
            os.close(fd)
            raise JournalError(f"journal segment {path}: header not written ({e})") from e
        self._dir_dirty = True
        return fd

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
        encode, head, tail, crc32 = _ENCODER.encode, _FRAME.pack, _FRAME_TAIL.pack, zlib.crc32
        with self._lock:
            self._check_writable()
            first = self._last + 1
            parts: list[bytes] = []
            add = parts.append
            for sequence, message in enumerate(messages, first):
                if message.__class__ is not CoreMessage:
                    raise InvalidArgumentError(
                        f"messages[{sequence - first}]: {message!r:.80} is not a CoreMessage; "
                        "expected CoreMessage"
                    )
                payload = encode(message)
                n = len(payload)
                if n > _MAX_PAYLOAD:
                    raise InvalidArgumentError(
                        f"messages[{sequence - first}]: {n} bytes of MessagePack; expected at "
                        f"most {_MAX_PAYLOAD}"
                    )
                crc = crc32(payload, crc32(tail(n, KIND_MSGPACK, sequence)))
                add(head(_MARKER, crc, n, KIND_MSGPACK, sequence))
                add(payload)
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
        if not isinstance(records, np.ndarray) or records.dtype != MESSAGE_DTYPE:
            raise DtypeMismatchError(
                f"records: {type(records).__name__} of dtype {getattr(records, 'dtype', None)}; "
                "expected an array of MESSAGE_DTYPE"
            )
        if records.ndim != 1:
            raise InvalidArgumentError(
                f"records: an array of shape {records.shape}; expected a one-dimensional array"
            )
        n = len(records)
        bad = np.flatnonzero(~np.isin(records["type"], _HOT_CODES))
        if len(bad):
            i = int(bad[0])
            raise InvalidArgumentError(
                f"records[{i}].type: {int(records['type'][i])}; expected MARKET_DATA, ORDER or "
                "TRADE (append other messages with append())"
            )
        frames = np.zeros(n, _RECORD_FRAME)
        frames["marker"] = _MARKER
        frames["length"] = RECORD_SIZE
        frames["kind"] = KIND_RECORD
        frames["payload"] = np.ascontiguousarray(records).view(_RAW_RECORD)
        size = _RECORD_FRAME_SIZE
        with self._lock:
            self._check_writable()
            first = self._last + 1
            if n == 0:
                return self._last
            frames["sequence"] = np.arange(first, first + n, dtype=np.uint64)
            with frames.view(np.uint8).data as view:
                crc32 = zlib.crc32
                frames["crc"] = [crc32(view[i + 8 : i + size]) for i in range(0, n * size, size)]
            blob = frames.tobytes()
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
        path = _segment_path(self.directory, first_sequence)
        fd = self._create_segment(path, first_sequence)
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
                    _fsync_path(path)
                os.fdatasync(fd)
                if directory:
                    _fsync_path(self.directory)
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
        return sum(len(run[2]) for run in _runs(segments, 1, last, 1 << 16))


def _check_segment(path: Path, first: int) -> tuple[int, str, int, bool]:
    """Check one whole segment. Returns the offset of its first problem (-1 if none), the
    problem, the sequence after its last good record, and whether the problem is corruption
    (a valid record follows it) rather than a torn tail."""
    data = _read_file(path)
    problem, damaged = _header_problem(data[:HEADER_SIZE], first)
    if problem is not None:
        later = _valid_frame_after(data, 0, len(data), first) >= 0
        return 0, problem, first, later or not damaged
    scan = _Scan(data, HEADER_SIZE, len(data), first)
    for _ in scan.runs(1 << 16):
        pass
    if scan.problem is None:
        return -1, "", scan.sequence, False
    corrupt = not scan.torn
    if not corrupt:
        corrupt = _valid_frame_after(data, scan.offset + 1, len(data), scan.sequence) >= 0
    return scan.offset, scan.problem, scan.sequence, corrupt


def _runs(
    segments: list[tuple[int, Path]], from_sequence: int, last: int, limit: int
) -> Iterator[tuple[Path, int, _Payloads]]:
    """Yield ``(segment, first sequence, payloads)`` runs of the records
    ``from_sequence .. last``, checking every checksum, every header and that sequences run
    on across segments."""
    expected = segments[0][0] if segments else 1
    for index, (first, path) in enumerate(segments):
        if first > last:
            return
        following = segments[index + 1][0] if index + 1 < len(segments) else None
        if following is not None and following <= from_sequence:
            expected = following
            continue
        if first != expected:
            raise JournalCorruptionError(
                f"journal segment {path}: starts at sequence {first}; expected {expected} "
                "(records are missing between segments)"
            )
        data = _read_file(path)
        problem, _ = _header_problem(data[:HEADER_SIZE], first)
        if problem is not None:
            raise JournalCorruptionError(
                f"journal segment {path}: offset 0 (sequence {first}): {problem}; expected a "
                "segment header"
            )
        scan = _Scan(data, HEADER_SIZE, len(data), first)
        for start, payloads in scan.runs(limit):
            stop = start + len(payloads)  # one past the run's last sequence
            if stop <= from_sequence:
                continue
            lo, hi = max(from_sequence - start, 0), min(last + 1 - start, len(payloads))
            if hi > lo:
                yield path, start + lo, payloads[lo:hi]
            if stop > last:
                return
        if scan.problem is not None and scan.sequence <= last:
            raise JournalCorruptionError(
                f"journal segment {path}: offset {scan.offset} (sequence {scan.sequence}): "
                f"{scan.problem}; expected a valid record"
            )
        expected = scan.sequence


def _decode_messages(path: Path, first: int, payloads: list[memoryview]) -> list[CoreMessage]:
    """Decode MessagePack payloads in one call (as one array), naming a bad one."""
    data = b"\xdd" + len(payloads).to_bytes(4, "big") + b"".join(payloads)
    try:
        return _LIST_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        for i, p in enumerate(payloads):
            try:
                _DECODER.decode(p)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                raise JournalError(
                    f"journal segment {path}: record {first + i} passed its checksum but is "
                    f"not a CoreMessage ({e}); expected MessagePack of a CoreMessage"
                ) from e
        raise


def _batches(
    segments: list[tuple[int, Path]], from_sequence: int, last: int, max_batch: int
) -> Iterator[JournalBatch]:
    """The records ``from_sequence .. last`` as batches of one kind (at most ``max_batch``)."""
    for path, first, payloads in _runs(segments, from_sequence, last, max_batch):
        if isinstance(payloads, np.ndarray):
            yield JournalBatch(first, records=payloads)
        else:
            yield JournalBatch(first, messages=_decode_messages(path, first, payloads))


def _lock(directory: Path) -> int:
    """Take the directory's writer lock; returns the lock file's descriptor."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise JournalError(
            f"journal {directory}: cannot open {LOCK_NAME} ({e}); expected a writable directory"
        ) from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 21, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise JournalError(
                f"journal {directory}: locked by another writer (process {holder}); expected "
                "one writer per journal directory"
            ) from e
        raise JournalError(f"journal {directory}: cannot lock {LOCK_NAME} ({e})") from e
    os.pwrite(fd, f"{os.getpid():<20}\n".encode(), 0)  # fixed width: no truncation needed
    return fd
