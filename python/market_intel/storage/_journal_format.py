"""The event journal's on-disk format: segment files of checksummed record frames, written
and read.

Files::

    <directory>/
    ├── journal.lock                    flock()ed by the one writer; holds its pid
    ├── 00000000000000000001.journal    a segment: records 1 .. 40_960
    ├── 00000000000000040961.journal    the last segment, appended to
    └── quarantine-<utc>-<pid>/         only after open(repair=True) cut a corrupt journal

A segment is named by its first sequence (20 digits) and starts with a 32-byte header,
followed by record frames whose sequences run on from it with no gap; the first sequence of a
segment is the sequence after the last record of the one before::

    segment header (little-endian)       record frame (little-endian)
    0   8  magic b"MIJOURNL"             0   4  marker b"\\xc1JRN"
    8   2  format version (1)            4   4  CRC-32 of bytes 8 .. 24 + length
    10  2  header size (32)              8   4  length of the payload
    12  4  reserved (0)                  12  1  kind: 0 msgpack, 1 record
    16  8  first sequence                13  3  reserved (0)
    24  4  CRC-32 of bytes 0 .. 24       16  8  sequence
    28  4  reserved (0)                  24  .. payload

Payloads come in two kinds: ``KIND_MSGPACK``, the MessagePack of one ``CoreMessage``
(``CoreMessage.to_msgpack()``; at most 2**32 - 1 bytes), and ``KIND_RECORD``, one market data,
order or trade record of ``MESSAGE_DTYPE`` as its 192 raw bytes (``RECORD_FRAME`` lays out a
whole frame of this kind, so a run of them is read and written as one numpy array).

Writing. ``message_frames`` frames messages, ``record_frames`` and ``seal_record_frames``
frame records; a segment file is made with its header by ``create_segment``, and the writer
holds the directory with ``lock_directory``.

Reading. ``Scan`` walks a segment's frames and yields runs of consecutive frames of one kind.
It stops at the first frame that fails: a frame header or payload cut short, no marker, a
checksum mismatch (all of which a torn write can leave), or a checksummed frame of the wrong
sequence or kind (which no torn write can). ``valid_frame_after`` tells the two cases a torn
write can leave apart: a failed frame with no valid frame after it is a torn tail, one with a
valid frame after it means records were lost in the middle. ``runs`` reads the records of a
list of segments, checking every header, checksum and sequence, and raises
``JournalCorruptionError`` at the first problem; ``decode_messages`` decodes a run of
MessagePack payloads.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from market_intel.enums import MessageType
from market_intel.errors import (
    DtypeMismatchError,
    InvalidArgumentError,
    JournalCorruptionError,
    JournalError,
)
from market_intel.messages import CoreMessage
from market_intel.records import MESSAGE_DTYPE, RECORD_SIZE

SEGMENT_SUFFIX: Final = ".journal"
LOCK_NAME: Final = "journal.lock"
FORMAT_VERSION: Final = 1
KIND_MSGPACK: Final = 0
KIND_RECORD: Final = 1

SEGMENT_MAGIC: Final = b"MIJOURNL"
SEGMENT_HEADER: Final = struct.Struct("<8sHHIQI4x")
HEADER_SIZE: Final = SEGMENT_HEADER.size  # 32
FRAME_MARKER: Final = b"\xc1JRN"
MARKER: Final = int.from_bytes(FRAME_MARKER, "little")
FRAME: Final = struct.Struct("<IIIB3xQ")  # marker, crc, length, kind, sequence
FRAME_TAIL: Final = struct.Struct("<IB3xQ")  # length, kind, sequence: the checksummed part
FRAME_HEADER_SIZE: Final = FRAME.size  # 24
RECORD_FRAME_SIZE: Final = FRAME_HEADER_SIZE + RECORD_SIZE
RECORD_FRAME: Final = np.dtype(
    {
        "names": ["marker", "crc", "length", "kind", "sequence", "payload"],
        "formats": ["<u4", "<u4", "<u4", "u1", "<u8", f"V{RECORD_SIZE}"],
        "offsets": [0, 4, 8, 12, 16, 24],
        "itemsize": RECORD_FRAME_SIZE,
    }
)
RAW_RECORD: Final = np.dtype((np.void, RECORD_SIZE))
_HOT_CODES: Final = np.array(
    [MessageType.MARKET_DATA, MessageType.ORDER, MessageType.TRADE], dtype=np.uint8
)
MAX_PAYLOAD: Final = 2**32 - 1
_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(CoreMessage)
_LIST_DECODER: Final = msgspec.msgpack.Decoder(list[CoreMessage])

Payloads = list[bytes] | npt.NDArray[np.void]
"""A run's payloads: MessagePack payloads, or records of ``MESSAGE_DTYPE``."""


# -- writing frames ---------------------------------------------------------------------------


def message_frames(messages: Iterable[CoreMessage], first: int) -> list[bytes]:
    """Frame ``messages`` as the records ``first``, ``first + 1`` ...: for each, its frame
    header and then its MessagePack payload (frame ``i`` ends with part ``2 i + 1``).

    Raises:
        InvalidArgumentError: An item is not a ``CoreMessage``, or its payload is too long.
    """
    encode, head, tail, crc32 = _ENCODER.encode, FRAME.pack, FRAME_TAIL.pack, zlib.crc32
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
        if n > MAX_PAYLOAD:
            raise InvalidArgumentError(
                f"messages[{sequence - first}]: {n} bytes of MessagePack; expected at "
                f"most {MAX_PAYLOAD}"
            )
        crc = crc32(payload, crc32(tail(n, KIND_MSGPACK, sequence)))
        add(head(MARKER, crc, n, KIND_MSGPACK, sequence))
        add(payload)
    return parts


def record_frames(records: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Frame market data, order and trade records of ``MESSAGE_DTYPE``, all but their
    sequences and checksums (which ``seal_record_frames`` fills in).

    Raises:
        DtypeMismatchError: ``records`` is not an array of ``MESSAGE_DTYPE``.
        InvalidArgumentError: Not one-dimensional, or a row of another type.
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
    bad = np.flatnonzero(~np.isin(records["type"], _HOT_CODES))
    if len(bad):
        i = int(bad[0])
        raise InvalidArgumentError(
            f"records[{i}].type: {int(records['type'][i])}; expected MARKET_DATA, ORDER or "
            "TRADE (append other messages with append())"
        )
    frames = np.zeros(len(records), RECORD_FRAME)
    frames["marker"] = MARKER
    frames["length"] = RECORD_SIZE
    frames["kind"] = KIND_RECORD
    frames["payload"] = np.ascontiguousarray(records).view(RAW_RECORD)
    return frames


def seal_record_frames(frames: npt.NDArray[np.void], first: int) -> bytes:
    """Number ``record_frames`` from ``first`` on, checksum them, and return their bytes."""
    n, size = len(frames), RECORD_FRAME_SIZE
    frames["sequence"] = np.arange(first, first + n, dtype=np.uint64)
    with frames.view(np.uint8).data as view:
        crc32 = zlib.crc32
        frames["crc"] = [crc32(view[i + 8 : i + size]) for i in range(0, n * size, size)]
    return frames.tobytes()


# -- reading frames ---------------------------------------------------------------------------


class Scan:
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

    def runs(self, limit: int) -> Iterator[tuple[int, Payloads]]:
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
        marker, crc, length, kind, seq = FRAME.unpack_from(self.data, offset)
        stop = offset + FRAME_HEADER_SIZE + length
        if marker != MARKER:
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

    def _messages(self, limit: int) -> list[bytes]:
        """Take a run of MessagePack frames. Each payload is copied out as ``bytes``, which
        the garbage collector does not track (a ``memoryview`` it would, and a run of them
        makes the decoding that follows trigger more collections)."""
        data, view, end = self.data, self.view, self.end
        unpack, crc32 = FRAME.unpack_from, zlib.crc32
        offset, sequence = self.offset, self.sequence
        out: list[bytes] = []
        add = out.append
        for _ in range(limit):  # the common case inline; _check explains any other
            if end - offset < FRAME_HEADER_SIZE:
                break
            marker, crc, length, kind, seq = unpack(data, offset)
            stop = offset + FRAME_HEADER_SIZE + length
            if not (
                marker == MARKER and kind == KIND_MSGPACK and seq == sequence and stop <= end
                and crc32(view[offset + 8 : stop]) == crc
            ):  # fmt: skip
                break
            add(data[offset + FRAME_HEADER_SIZE : stop])
            offset = stop
            sequence += 1
        self.offset, self.sequence = offset, sequence
        if offset < end and len(out) < limit:
            self._check(offset)  # a problem, or a record frame that starts the next run
        return out

    def _records(self, limit: int) -> npt.NDArray[np.void]:
        """Take a run of record frames at once: fields checked as columns, then checksums."""
        offset, size = self.offset, RECORD_FRAME_SIZE
        count = min((self.end - offset) // size, limit)
        block = np.frombuffer(self.data, RECORD_FRAME, count, offset)
        sequences = np.arange(self.sequence, self.sequence + count, dtype=np.uint64)
        ok = (block["marker"] == MARKER) & (block["kind"] == KIND_RECORD)
        ok &= (block["length"] == RECORD_SIZE) & (block["sequence"] == sequences)
        good = count if ok.all() else int(np.argmin(ok))
        view, crc32 = self.view, zlib.crc32
        crcs = [crc32(view[o + 8 : o + size]) for o in range(offset, offset + good * size, size)]
        bad = np.flatnonzero(np.array(crcs, dtype=np.uint32) != block["crc"][:good])
        if len(bad):
            good = int(bad[0])
        records = np.empty(good, MESSAGE_DTYPE)
        records.view(RAW_RECORD)[:] = block["payload"][:good]
        self.offset += good * size
        self.sequence += good
        if good < count or count == 0:
            self._check(self.offset)  # the frame that ended the run: a problem, or another kind
        return records


def valid_frame_after(data: bytes, start: int, end: int, sequence: int) -> int:
    """The offset of the first checksummed frame of sequence >= ``sequence`` in
    ``data[start:end]``, or -1."""
    crc32 = zlib.crc32
    while (at := data.find(FRAME_MARKER, start, end)) >= 0:
        if end - at >= FRAME_HEADER_SIZE:
            _, crc, length, _, seq = FRAME.unpack_from(data, at)
            stop = at + FRAME_HEADER_SIZE + length
            if stop <= end and seq >= sequence and crc32(data[at + 8 : stop]) == crc:
                return at
        start = at + 1
    return -1


def check_segment(path: Path, first: int) -> tuple[int, str, int, bool]:
    """Check one whole segment. Returns the offset of its first problem (-1 if none), the
    problem, the sequence after its last good record, and whether the problem is corruption
    (a valid record follows it) rather than a torn tail."""
    data = read_file(path)
    problem, damaged = header_problem(data[:HEADER_SIZE], first)
    if problem is not None:
        later = valid_frame_after(data, 0, len(data), first) >= 0
        return 0, problem, first, later or not damaged
    scan = Scan(data, HEADER_SIZE, len(data), first)
    for _ in scan.runs(1 << 16):
        pass
    if scan.problem is None:
        return -1, "", scan.sequence, False
    corrupt = not scan.torn
    if not corrupt:
        corrupt = valid_frame_after(data, scan.offset + 1, len(data), scan.sequence) >= 0
    return scan.offset, scan.problem, scan.sequence, corrupt


def runs(
    segments: list[tuple[int, Path]], from_sequence: int, last: int, limit: int
) -> Iterator[tuple[Path, int, Payloads]]:
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
        data = read_file(path)
        problem, _ = header_problem(data[:HEADER_SIZE], first)
        if problem is not None:
            raise JournalCorruptionError(
                f"journal segment {path}: offset 0 (sequence {first}): {problem}; expected a "
                "segment header"
            )
        scan = Scan(data, HEADER_SIZE, len(data), first)
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


def decode_messages(path: Path, first: int, payloads: list[bytes]) -> list[CoreMessage]:
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


# -- segments ---------------------------------------------------------------------------------


def segment_header(first_sequence: int) -> bytes:
    """The header of the segment whose first record is ``first_sequence``."""
    head = SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, HEADER_SIZE, 0, first_sequence, 0)
    crc = zlib.crc32(head[:24])
    return SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, HEADER_SIZE, 0, first_sequence, crc)


def header_problem(head: bytes, first_sequence: int) -> tuple[str | None, bool]:
    """Why a segment's first bytes are not the header its name says (None if they are), and
    whether the header is damaged (cut short, or failing its checksum) rather than intact but
    different (another format version, another first sequence)."""
    if len(head) < HEADER_SIZE:
        return f"a header cut short ({len(head)} of {HEADER_SIZE} bytes)", True
    magic, version, size, _, first, crc = SEGMENT_HEADER.unpack_from(head)
    if magic != SEGMENT_MAGIC or zlib.crc32(head[:24]) != crc or size != HEADER_SIZE:
        return "a damaged header (magic, size or checksum)", True
    if version != FORMAT_VERSION:
        return f"format version {version}; expected {FORMAT_VERSION}", False
    if first != first_sequence:
        return f"a header of first sequence {first}; expected {first_sequence} (its name)", False
    return None, False


def create_segment(path: Path, first_sequence: int) -> int:
    """Create the segment ``path`` with its header; returns its descriptor, open to append."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
    except OSError as e:
        raise JournalError(
            f"journal segment {path}: cannot be created ({e}); expected a new file"
        ) from e
    try:
        os.write(fd, segment_header(first_sequence))
    except OSError as e:
        os.close(fd)
        raise JournalError(f"journal segment {path}: header not written ({e})") from e
    return fd


def segment_path(directory: Path, first_sequence: int) -> Path:
    """The path of the segment whose first record is ``first_sequence``."""
    return directory / f"{first_sequence:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The ``(first sequence, path)`` of every segment in ``directory``, oldest first."""
    found = []
    for path in directory.iterdir():
        stem = path.name.removesuffix(SEGMENT_SUFFIX)
        if path.name.endswith(SEGMENT_SUFFIX) and len(stem) == 20 and stem.isdigit():
            found.append((int(stem), path))
    return sorted(found)


def read_file(path: Path) -> bytes:
    """The whole file."""
    with open(path, "rb") as f:
        return f.read()


def fsync_path(path: Path) -> None:
    """Sync a file or directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(directory: Path) -> int:
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
