"""The journal's values: the fsync policy it is opened with, the reports it gives (what
recovery found, its counters) and the batches it replays.

``market_intel.storage.journal`` exports them; import them from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from market_intel.codec import from_records
from market_intel.errors import InvalidArgumentError
from market_intel.messages import CoreMessage

__all__ = ["FsyncPolicy", "JournalBatch", "JournalRecovery", "JournalStatistics"]


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
