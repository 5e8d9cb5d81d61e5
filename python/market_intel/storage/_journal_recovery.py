"""Recovering a journal directory as ``Journal.open`` opens it: torn writes cut off,
corruption refused or, with ``repair=True``, cut off and quarantined.

``recover`` lists the segments by name and scans the last one, its header and then record by
record (earlier segments are checked as ``replay`` and ``verify`` read them). At the first
frame that fails (header or payload cut short, no marker, checksum mismatch) it looks for any
valid frame further on. If there is none, the failed frame is a torn tail: the segment is
truncated to the last good record, ``truncated_bytes`` says how much was cut, and a warning
is logged. A last segment whose own header is torn is removed the same way. If a valid frame
follows, or a checksummed frame has the wrong sequence, records were lost in the middle:
``JournalCorruptionError`` names the segment, the offset and the sequence.

With ``repair=True`` every segment is checked first and the journal is cut at the first bad
record: the bytes from there on and every later segment are moved to a ``quarantine-*``
directory, never deleted (after a power loss under ``FsyncPolicy.never()``, a segment before
the last can be cut short too: ``replay`` reports it, ``repair=True`` cuts it).

A journal with no segments left gets an empty first segment. Nothing here syncs: the journal
syncs the last segment and the directory once ``recover`` returns.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from market_intel.errors import JournalCorruptionError, JournalError
from market_intel.storage._journal_format import (
    HEADER_SIZE,
    Scan,
    check_segment,
    create_segment,
    header_problem,
    list_segments,
    read_file,
    segment_path,
    valid_frame_after,
)
from market_intel.storage._journal_types import JournalRecovery

log = logging.getLogger("market_intel.storage.journal")


def recover(directory: Path, repair: bool) -> tuple[list[tuple[int, Path]], int, JournalRecovery]:
    """Make the journal in ``directory`` ready to append to, cutting off torn writes.

    Returns:
        The ``(first sequence, path)`` of every segment, oldest first; the size of the last
        segment, which ends in its last good record; and what was found and cut.

    Raises:
        JournalError: A segment of another format version, or whose header names another
            first sequence.
        JournalCorruptionError: A record failed before the torn tail (without ``repair``).
    """
    segments = list_segments(directory)
    truncated, torn, removed, quarantine = 0, None, [], None
    if repair and segments:
        quarantine, truncated = _repair(directory, segments)
        segments = list_segments(directory)
    while segments:  # a last segment with a torn header is a torn roll: remove it
        first, path = segments[-1]
        data = read_file(path)
        problem, damaged = header_problem(data[:HEADER_SIZE], first)
        if problem is None:
            break
        if not damaged:
            raise JournalError(
                f"journal segment {path}: {problem}; expected a segment of this journal "
                "written by this version of market-intel"
            )
        later = valid_frame_after(data, 0, len(data), first)
        if later >= 0 or (len(segments) == 1 and first != 1):
            raise JournalCorruptionError(
                f"journal segment {path}: offset 0 (sequence {first}): {problem}; "
                "expected a segment header (open with repair=True to cut the journal here)"
            )
        log.warning("journal %s: removed torn segment %s (%s)", directory, path.name, problem)
        path.unlink()
        removed.append(path)
        truncated += len(data)
        segments.pop()
    if not segments:
        segments = [(1, segment_path(directory, 1))]
        os.close(create_segment(segments[0][1], 1))
    first, path = segments[-1]
    size, last, cut = _scan_last(directory, path, first)
    if cut:
        truncated += cut
        torn = path
    return (
        segments,
        size,
        JournalRecovery(
            segments=len(segments),
            last_sequence=last,
            truncated_bytes=truncated,
            torn_segment=torn,
            removed_segments=tuple(removed),
            quarantine=quarantine,
        ),
    )


def _scan_last(directory: Path, path: Path, first: int) -> tuple[int, int, int]:
    """Scan the last segment; cut a torn tail. Returns its good size, the sequence of its
    last record, and the bytes cut."""
    data = read_file(path)
    size = len(data)
    scan = Scan(data, HEADER_SIZE, size, first)
    for _ in scan.runs(1 << 16):
        pass
    if scan.problem is not None:
        later = -1
        if scan.torn:
            later = valid_frame_after(data, scan.offset + 1, size, scan.sequence)
        if not scan.torn or later >= 0:
            after = f"; a valid record follows at offset {later}" if later >= 0 else ""
            raise JournalCorruptionError(
                f"journal segment {path}: offset {scan.offset} (sequence "
                f"{scan.sequence}): {scan.problem}{after}; expected a valid record "
                "(open with repair=True to cut the journal here)"
            )
    del data
    last = scan.sequence - 1
    cut = size - scan.offset
    if cut:
        with open(path, "r+b") as f:
            f.truncate(scan.offset)
        log.warning(
            "journal %s: cut a torn tail of %d bytes from %s at offset %d (%s after "
            "sequence %d)",
            directory, cut, path.name, scan.offset, scan.problem, last,
        )  # fmt: skip
    return scan.offset, last, cut


def _repair(directory: Path, segments: list[tuple[int, Path]]) -> tuple[Path | None, int]:
    """Cut the journal at its first bad record; move what follows into quarantine.
    Returns the quarantine directory (None if nothing was cut) and the bytes moved."""
    sequence = segments[0][0]
    for index, (first, path) in enumerate(segments):
        if index and first != sequence:
            cut_at, why = 0, f"starts at sequence {first}; expected {sequence}"
        else:
            cut_at, why, sequence, corrupt = check_segment(path, first)
            if cut_at < 0 or (index == len(segments) - 1 and not corrupt):
                continue  # a clean segment, or a torn tail that recovery cuts
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        quarantine = directory / f"quarantine-{stamp}-{os.getpid()}"
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
            directory, path.name, cut_at, sequence, why, moved, quarantine,
        )  # fmt: skip
        return quarantine, moved
    return None, 0
