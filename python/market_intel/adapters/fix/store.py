"""The persisted state of a FIX session: its sequence numbers and the messages it sent.

Three files per session in one directory, named by the session id
(``FIX.4.4-CLIENT-EXEC``)::

    <id>.seqnums    fixed-width records "<next sender seq> <next target seq>\\n", appended;
                    the last complete record wins; compacted by atomic replace on open
    <id>.messages   every message sent: "<seq> <length>\\n<raw bytes>\\n", appended
    <id>.lock       held (flock) while a store is open, so two sessions never share one

Appends are followed by ``fsync`` when ``durable`` (the default), so a session killed at
any point restarts with the numbers it last used; a record torn by a crash is dropped when
the store is opened. Resets (``reset``) replace both files atomically: write a temporary
file, fsync it, rename it over the old one, fsync the directory.
"""

from __future__ import annotations

import fcntl
import io
import os
import re
from pathlib import Path
from typing import Final

from market_intel.errors import FixSessionError, InvalidArgumentError

__all__ = ["FixSessionStore"]

_SEQ_RECORD: Final = 42  # two 20-digit numbers, a space and a newline
_COMPACT_AFTER: Final = 4096
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _seq_record(sender: int, target: int) -> bytes:
    return b"%020d %020d\n" % (sender, target)


class FixSessionStore:
    """Sequence numbers and sent messages of one FIX session, kept on disk.

    Args:
        directory: Where the files live; created if missing.
        session_id: The session's id; characters other than letters, digits, ``.``, ``_``
            and ``-`` become ``_`` in the file names.
        durable: ``fsync`` after every append (turn off only for throwaway sessions).

    Raises:
        FixSessionError: Another open store holds this session's files.
    """

    def __init__(self, directory: str | os.PathLike[str], session_id: str, *, durable: bool = True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.session_id = session_id
        self.durable = durable
        stem = _UNSAFE.sub("_", session_id)
        self._seq_path = self.directory / f"{stem}.seqnums"
        self._body_path = self.directory / f"{stem}.messages"
        self._lock = open(self.directory / f"{stem}.lock", "ab")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise FixSessionError(
                f"store: {session_id!r} in {str(self.directory)!r} is open in another session; "
                "expected one session per store"
            ) from None
        self._sender, self._target = self._load_seqnums()
        self._index: dict[int, tuple[int, int]] = {}
        self._load_messages()
        self._seq_file = open(self._seq_path, "ab")  # noqa: SIM115 - held open
        self._body_file = open(self._body_path, "ab")  # noqa: SIM115 - held open
        self._appended = 0
        self.closed = False

    def _load_seqnums(self) -> tuple[int, int]:
        try:
            data = self._seq_path.read_bytes()
        except FileNotFoundError:
            data = b""
        sender = target = 1
        usable = len(data) - len(data) % _SEQ_RECORD
        for at in range(usable - _SEQ_RECORD, -1, -_SEQ_RECORD):
            fields = data[at : at + _SEQ_RECORD].split()
            if len(fields) == 2 and all(f.isdigit() for f in fields):
                sender, target = int(fields[0]), int(fields[1])
                break
        _write_atomically(self._seq_path, _seq_record(sender, target))
        return sender, target

    def _load_messages(self) -> None:
        try:
            data = self._body_path.read_bytes()
        except FileNotFoundError:
            data = b""
        at = 0
        while at < len(data):
            end = data.find(b"\n", at)
            fields = data[at:end].split() if end >= 0 else []
            if len(fields) != 2 or not all(f.isdigit() for f in fields):
                break
            seq, length = int(fields[0]), int(fields[1])
            start = end + 1
            if start + length + 1 > len(data) or data[start + length : start + length + 1] != b"\n":
                break
            self._index[seq] = (start, length)
            at = start + length + 1
        if at < len(data):  # a record torn by a crash: keep what came before it
            _write_atomically(self._body_path, data[:at])

    def _append(self, f: io.BufferedWriter, data: bytes) -> None:
        f.write(data)
        f.flush()
        if self.durable:
            os.fsync(f.fileno())

    def _save_seqnums(self) -> None:
        self._append(self._seq_file, _seq_record(self._sender, self._target))
        self._appended += 1
        if self._appended >= _COMPACT_AFTER:
            self._seq_file.close()
            _write_atomically(self._seq_path, _seq_record(self._sender, self._target))
            self._seq_file = open(self._seq_path, "ab")  # noqa: SIM115 - held open
            self._appended = 0

    @property
    def next_sender_seq(self) -> int:
        """The MsgSeqNum (34) of the next message sent."""
        return self._sender

    @property
    def next_target_seq(self) -> int:
        """The MsgSeqNum expected of the next message received."""
        return self._target

    @staticmethod
    def _check(name: str, value: int) -> None:
        if type(value) is not int or value < 1:
            raise InvalidArgumentError(f"{name}: {value!r}; expected an int >= 1")

    def set_next_sender_seq(self, value: int) -> None:
        """Set and persist the next outgoing MsgSeqNum."""
        self._check("next_sender_seq", value)
        self._sender = value
        self._save_seqnums()

    def set_next_target_seq(self, value: int) -> None:
        """Set and persist the next expected incoming MsgSeqNum."""
        self._check("next_target_seq", value)
        self._target = value
        self._save_seqnums()

    def record_sent(self, seq: int, raw: bytes) -> None:
        """Persist a message about to be sent as ``seq``, then the next sender seq ``seq + 1``."""
        self._check("seq", seq)
        start = self._body_file.tell() + len(b"%d %d\n" % (seq, len(raw)))
        self._append(self._body_file, b"%d %d\n%s\n" % (seq, len(raw), raw))
        self._index[seq] = (start, len(raw))
        self._sender = seq + 1
        self._save_seqnums()

    def sent(self, begin: int, end: int) -> list[tuple[int, bytes]]:
        """Return the stored messages with ``begin <= seq <= end``, in seq order."""
        wanted = sorted(seq for seq in self._index if begin <= seq <= end)
        if not wanted:
            return []
        out = []
        with open(self._body_path, "rb") as f:
            for seq in wanted:
                start, length = self._index[seq]
                f.seek(start)
                out.append((seq, f.read(length)))
        return out

    def reset(self) -> None:
        """Start over: both sequence numbers 1, no stored messages."""
        self._seq_file.close()
        self._body_file.close()
        self._sender = self._target = 1
        self._index.clear()
        _write_atomically(self._body_path, b"")
        _write_atomically(self._seq_path, _seq_record(1, 1))
        self._seq_file = open(self._seq_path, "ab")  # noqa: SIM115 - held open
        self._body_file = open(self._body_path, "ab")  # noqa: SIM115 - held open
        self._appended = 0

    def close(self) -> None:
        """Close the files and release the store; closing twice does nothing."""
        if self.closed:
            return
        self.closed = True
        self._seq_file.close()
        self._body_file.close()
        self._lock.close()

    def __repr__(self) -> str:
        return (
            f"FixSessionStore({self.session_id!r}, next_sender_seq={self._sender}, "
            f"next_target_seq={self._target})"
        )
