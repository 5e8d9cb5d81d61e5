"""The event journal and the StorageAgent: exact round trips, segments, sequences across
reopening, fsync policies, torn tails cut at every byte, corruption refused (or repaired),
one writer per directory, and the agent journaling (and replaying) a real engine's stream."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import zlib
from pathlib import Path

import market_intel as mi
import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from market_intel.agents import MarketDataCounterAgent
from market_intel.agents.storage import (
    StorageAgent,
    StorageAgentConfig,
    StorageStatistics,
    replay_into,
)
from market_intel.codec import from_records, to_records
from market_intel.errors import (
    ConfigError,
    DtypeMismatchError,
    EngineError,
    InvalidArgumentError,
    JournalCorruptionError,
    JournalError,
)
from market_intel.storage.journal import (
    FRAME_HEADER_SIZE,
    HEADER_SIZE,
    FsyncPolicy,
    Journal,
    JournalBatch,
)
from mi_engine import (
    BatchRecorder,
    GatedRecorder,
    Recorder,
    one_of_each_type,
    order,
    quote,
    quote_records,
    running,
    trade,
    wait_for,
)
from mi_engine import engine as make_engine
from test_messages import all_messages

NEVER = FsyncPolicy.never()


def messages(n: int, start: int = 0) -> list[mi.CoreMessage]:
    """Quotes ``start .. start + n - 1`` with every header field set, metadata included;
    message ``i`` is equal in every call."""
    out = []
    for i in range(start, start + n):
        q = quote(i=i)
        out.append(
            mi.CoreMessage(
                q.type,
                q.payload,
                priority=mi.Priority.NORMAL,
                source="journal",
                id=1000 + i,
                created_ns=1_700_000_000_000_000_000 + i,
                published_ns=1_700_000_000_000_000_500 + i,
                correlation_id=i + 7,
                causation_id=i + 8,
                metadata={"i": i, "tag": "x" * (i % 5), "ok": True, "f": 0.5},
            )
        )
    return out


def unpublished(message: mi.CoreMessage) -> mi.CoreMessage:
    """The message as it was before an engine stamped its ``published_ns``."""
    return msgspec.structs.replace(message, published_ns=0)


def raw(arrays: list[np.ndarray]) -> bytes:
    """The bytes of record arrays, one after another (np.concatenate would repack them)."""
    return b"".join(a.tobytes() for a in arrays)


def joined(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(sum(len(a) for a in arrays), mi.MESSAGE_DTYPE)
    i = 0
    for a in arrays:
        out[i : i + len(a)] = a
        i += len(a)
    return out


def same_fields(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal in every field (padding bytes between fields are not compared)."""
    names = a.dtype.names or ()
    return len(a) == len(b) and all(
        np.array_equal(a[n], b[n], equal_nan=a[n].dtype.kind == "f") for n in names
    )


def replayed(journal: Journal, from_sequence: int = 1) -> list[tuple[int, mi.CoreMessage]]:
    return list(journal.replay(from_sequence))


def frame_offsets(path: Path) -> list[int]:
    """Where each record frame of a segment starts (read back through the header lengths)."""
    data = path.read_bytes()
    offsets, at = [], HEADER_SIZE
    while at < len(data):
        offsets.append(at)
        at += FRAME_HEADER_SIZE + int.from_bytes(data[at + 8 : at + 12], "little")
    return offsets


# -- round trips -------------------------------------------------------------------------------


@given(st.lists(all_messages, min_size=1, max_size=12))
def test_every_payload_type_round_trips_exactly(batch: list[mi.CoreMessage]) -> None:
    with tempfile.TemporaryDirectory() as d, Journal.open(d, fsync=NEVER) as journal:
        assert journal.append(batch) == len(batch)
        got = replayed(journal)
        assert [s for s, _ in got] == list(range(1, len(batch) + 1))
        assert [m for _, m in got] == batch
        for (_, m), original in zip(got, batch, strict=True):
            assert m.to_msgpack() == original.to_msgpack()  # every field, metadata included


def test_payloads_are_the_messages_own_msgpack_bytes(tmp_path: Path) -> None:
    batch = one_of_each_type()
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(batch)
        segment = journal.segment_paths()[0]
    data = segment.read_bytes()
    for at, m in zip(frame_offsets(segment), batch, strict=True):
        n = int.from_bytes(data[at + 8 : at + 12], "little")
        assert data[at + FRAME_HEADER_SIZE : at + FRAME_HEADER_SIZE + n] == m.to_msgpack()


def test_records_round_trip_as_records_and_as_the_messages_agents_see(tmp_path: Path) -> None:
    records = quote_records(["BTCUSDT", "ETHUSDT"], 50)
    records["id"] = np.arange(1, 51, dtype=np.uint64)
    records["created_ns"] = np.arange(100, 150)
    records["published_ns"] = np.arange(200, 250)
    hot = to_records([order(i=3), trade(i=4)])
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        assert journal.append_records(records) == 50
        assert journal.append(messages(3)) == 53
        assert journal.append_records(hot) == 55
        batches = list(journal.replay_batches(max_batch=20))
        assert [(b.first_sequence, len(b)) for b in batches] == [
            (1, 20), (21, 20), (41, 10), (51, 3), (54, 2),
        ]  # fmt: skip
        parts = [b.records for b in batches if b.records is not None]
        assert all(p.dtype == mi.MESSAGE_DTYPE and p.flags.writeable for p in parts)
        assert raw(parts) == raw([records, hot])
        assert batches[3].messages == messages(3)
        got = [m for _, m in journal.replay()]
        assert got == from_records(records) + messages(3) + from_records(hot)


def test_replay_starts_anywhere(tmp_path: Path) -> None:
    batch = messages(30)
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=2048) as journal:
        for lo in range(0, 30, 4):
            journal.append(batch[lo : lo + 4])
        assert len(journal.segment_paths()) > 3
        for start in (1, 2, 9, 17, 30):
            assert replayed(journal, start) == list(enumerate(batch[start - 1 :], start))
        assert replayed(journal, 31) == []


def test_bad_input_is_refused_and_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        with pytest.raises(InvalidArgumentError, match=r"messages\[1\]: .* not a CoreMessage"):
            journal.append([quote(), {"type": 1}])  # type: ignore[list-item]
        with pytest.raises(DtypeMismatchError, match="expected an array of MESSAGE_DTYPE"):
            journal.append_records(np.zeros(3, np.uint8))
        events = to_records([mi.CoreMessage(mi.MessageType.EVENT, mi.Event(code="x"))])
        with pytest.raises(InvalidArgumentError, match=r"records\[0\].type: 4; expected"):
            journal.append_records(events)
        with pytest.raises(InvalidArgumentError, match="max_batch: 0; expected an integer"):
            journal.replay_batches(max_batch=0)
        assert journal.last_sequence == 0 and replayed(journal) == []
        assert journal.append([]) == 0
        assert journal.append(messages(1)) == 1
    with pytest.raises(JournalError, match="closed; expected an open journal"):
        journal.append(messages(1))
    with pytest.raises(InvalidArgumentError, match="segment_bytes: 100; expected an integer"):
        Journal.open(tmp_path, segment_bytes=100)
    with pytest.raises(InvalidArgumentError, match="interval_ms: 0; expected a finite number"):
        FsyncPolicy.every(0)
    with pytest.raises(InvalidArgumentError, match="fsync: 'batch'; expected an FsyncPolicy"):
        Journal.open(tmp_path, fsync="batch")  # type: ignore[arg-type]


# -- segments and sequences --------------------------------------------------------------------


def test_segments_roll_at_their_size_and_are_named_by_first_sequence(tmp_path: Path) -> None:
    batch = messages(60)
    big = mi.CoreMessage(mi.MessageType.EVENT, mi.Event(code="big", text="x" * 3000))
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
        for lo in range(0, 60, 7):
            journal.append(batch[lo : lo + 7])
        journal.append([big])
        journal.append(batch[:2])
        paths = journal.segment_paths()
    expected_next = 1
    for path in paths:
        first = int(path.stem)
        assert path.name == f"{first:020d}.journal" and first == expected_next
        offsets = frame_offsets(path)
        assert path.stat().st_size <= 1024 or len(offsets) == 1  # the big one, alone
        expected_next = first + len(offsets)
    assert expected_next == 64
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
        assert journal.recovery.clean and journal.recovery.segments == len(paths)
        assert [m for _, m in replayed(journal)] == [*batch, big, *batch[:2]]
        assert journal.verify() == 63


def test_sequences_continue_across_reopening(tmp_path: Path) -> None:
    for run in range(4):
        with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
            assert journal.last_sequence == run * 5
            assert journal.durable_sequence == run * 5  # recovery syncs what it found
            assert journal.append(messages(5, run * 5)) == run * 5 + 5
    with Journal.open(tmp_path) as journal:
        assert replayed(journal) == list(enumerate(messages(20), 1))


def test_a_records_batch_splits_across_segments(tmp_path: Path) -> None:
    records = quote_records(["BTCUSDT"], 100)
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=4096) as journal:
        journal.append_records(records)
        assert len(journal.segment_paths()) == 100 // ((4096 - HEADER_SIZE) // 216) + 1
        back = [b.records for b in journal.replay_batches() if b.records is not None]
    assert raw(back) == records.tobytes()


# -- fsync policies ---------------------------------------------------------------------------


def test_every_batch_is_durable_when_append_returns(tmp_path: Path) -> None:
    acks: list[int] = []
    with Journal.open(tmp_path, fsync=FsyncPolicy.every_batch(), segment_bytes=1024) as journal:
        journal.on_durable(acks.append)
        before = journal.statistics().fsyncs
        for i in range(3):
            last = journal.append(messages(4, 4 * i))
            assert journal.durable_sequence == last == 4 * i + 4
        last = journal.append_records(quote_records(["X"], 5))
        assert journal.durable_sequence == last == 17
        assert journal.statistics().fsyncs == before + 4
        assert len(journal.segment_paths()) > 4  # rolled: each segment synced before the next
    assert acks == [4, 8, 12, 17]


def test_never_is_durable_only_after_sync_or_close(tmp_path: Path) -> None:
    acks: list[int] = []
    journal = Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024)
    journal.on_durable(acks.append)
    journal.append(messages(10))
    assert journal.last_sequence == 10 and journal.durable_sequence == 0 and acks == []
    assert journal.sync() == 10 and journal.durable_sequence == 10
    journal.append(messages(3, 10))
    assert journal.durable_sequence == 10
    journal.close()
    assert journal.durable_sequence == 13 and acks == [10, 13]
    journal.close()  # idempotent


def test_an_interval_sync_catches_up_in_the_background(tmp_path: Path) -> None:
    acks: list[int] = []
    with Journal.open(tmp_path, fsync=FsyncPolicy.every(5)) as journal:
        assert str(journal.fsync) == "every 5 ms"
        journal.on_durable(acks.append)
        journal.append(messages(10))
        wait_for(lambda: journal.durable_sequence == 10, "the background sync")
        journal.append(messages(5, 10))
        wait_for(lambda: journal.durable_sequence == 15, "the second background sync")
    assert acks[-1] == 15 and acks == sorted(acks)


# -- torn tails and corruption ----------------------------------------------------------------


def _three_records(directory: Path, last: str) -> tuple[Path, int]:
    """A one-segment journal of three records; the last a message or a record. Returns the
    segment and the offset where its last record starts."""
    with Journal.open(directory, fsync=NEVER) as journal:
        journal.append(messages(2))
        if last == "message":
            journal.append(messages(1, 2))
        else:
            journal.append_records(quote_records(["BTCUSDT"], 1, start=2))
        segment = journal.segment_paths()[0]
    return segment, frame_offsets(segment)[-1]


@pytest.mark.parametrize("last", ["message", "record"])
def test_a_torn_tail_is_cut_at_every_byte_of_the_last_record(tmp_path: Path, last: str) -> None:
    segment, start = _three_records(tmp_path / "source", last)
    whole = segment.read_bytes()
    directory = tmp_path / "torn"
    directory.mkdir()
    target = directory / segment.name
    first_two = messages(2)
    for cut in range(start, len(whole)):
        target.write_bytes(whole[:cut])
        with Journal.open(directory, fsync=NEVER) as journal:
            assert journal.recovery.truncated_bytes == cut - start, cut
            assert journal.recovery.torn_segment == (target if cut > start else None)
            assert journal.last_sequence == 2
            assert [m for _, m in replayed(journal)] == first_two
            assert journal.append(messages(1, 9)) == 3  # appendable, contiguous
            assert [m for _, m in replayed(journal)] == [*first_two, *messages(1, 9)]
    with Journal.open(directory, fsync=NEVER) as journal:  # the last round, reopened
        assert journal.recovery.clean and journal.verify() == 3


def test_a_damaged_last_record_is_a_torn_tail_whatever_byte_is_hit(tmp_path: Path) -> None:
    segment, start = _three_records(tmp_path / "source", "message")
    whole = segment.read_bytes()
    directory = tmp_path / "flipped"
    directory.mkdir()
    target = directory / segment.name
    for at in range(start, len(whole), 7):
        data = bytearray(whole)
        data[at] ^= 0x5A
        target.write_bytes(bytes(data))
        with Journal.open(directory, fsync=NEVER) as journal:
            assert journal.recovery.truncated_bytes == len(whole) - start, at
            assert journal.last_sequence == 2


def test_garbage_after_the_last_record_is_cut(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(4))
        segment = journal.segment_paths()[0]
    size = segment.stat().st_size
    garbage = bytes(range(256)) * 3 + b"\x00" * 512 + b"\xc1JRN" + b"\xff" * 40
    with segment.open("ab") as f:
        f.write(garbage)
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        assert journal.recovery.truncated_bytes == len(garbage)
        assert segment.stat().st_size == size
        assert [m for _, m in replayed(journal)] == messages(4)
        assert journal.append(messages(1, 4)) == 5


def test_a_last_segment_with_a_torn_header_is_removed(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(3))
    torn = tmp_path / f"{4:020d}.journal"
    torn.write_bytes(b"MIJOURNL\x01")  # a crash while a new segment was being started
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
        assert journal.recovery.removed_segments == (torn,)
        assert journal.recovery.truncated_bytes == 9 and not torn.exists()
        assert journal.last_sequence == 3
        journal.append(messages(5, 3))  # rolls into a fresh segment 4 .. (then more)
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        assert [m for _, m in replayed(journal)] == messages(8)


def test_a_segment_of_another_format_version_is_refused_not_removed(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(2))
        segment = journal.segment_paths()[0]
    data = bytearray(segment.read_bytes())
    data[8] = 2  # format version 2, header checksum made to match
    data[24:28] = zlib.crc32(bytes(data[:24])).to_bytes(4, "little")
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="format version 2; expected 1"):
        Journal.open(tmp_path)
    assert segment.read_bytes() == bytes(data)


def test_a_failed_write_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    """A real write failure: the file size limit (RLIMIT_FSIZE) stops a batch half way."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path[:0] = {[str(Path(__file__).parent), str(Path(__file__).parents[1])]!r}
        from test_journal import messages
        from market_intel.errors import JournalError
        from market_intel.storage.journal import FsyncPolicy, Journal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        with Journal.open({str(tmp_path)!r}, fsync=FsyncPolicy.never()) as journal:
            journal.append(messages(2))
            size = journal.segment_paths()[0].stat().st_size
            resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1000, size + 1000))
            try:
                journal.append(messages(10, 2))
            except JournalError as e:
                print("refused:", e)
            assert journal.segment_paths()[0].stat().st_size == size
            assert journal.append(messages(1, 2)) == 3
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "refused: journal segment" in run.stdout and "File too large" in run.stdout
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        assert journal.recovery.clean
        assert [m for _, m in replayed(journal)] == messages(3)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_corruption_before_the_tail_of_the_last_segment_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(5))
        segment = journal.segment_paths()[0]
    second = frame_offsets(segment)[1]
    _flip(segment, second + FRAME_HEADER_SIZE + 10)
    where = f"segment {segment}: offset {second} (sequence 2): a checksum mismatch; a valid"
    pattern = re.escape(where)
    with pytest.raises(JournalCorruptionError, match=pattern) as raised:
        Journal.open(tmp_path, fsync=NEVER)
    assert "repair=True" in str(raised.value)
    with Journal.open(tmp_path, fsync=NEVER, repair=True) as journal:
        quarantine = journal.recovery.quarantine
        assert quarantine is not None and journal.last_sequence == 1
        assert [p.name for p in quarantine.iterdir()] == [f"{segment.name}.from-{second}"]
        assert journal.append(messages(1, 5)) == 2
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        assert [m for _, m in replayed(journal)] == [*messages(1), *messages(1, 5)]


def test_a_flipped_byte_in_a_middle_segment_is_reported_by_replay_and_verify(
    tmp_path: Path,
) -> None:
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
        for lo in range(0, 12, 3):
            journal.append(messages(3, lo))
        paths = journal.segment_paths()
    assert len(paths) >= 3
    middle = paths[1]
    offsets = frame_offsets(middle)
    bad = int(middle.stem) + 1  # the segment's second record
    _flip(middle, offsets[1] + FRAME_HEADER_SIZE + 3)
    pattern = re.escape(f"segment {middle}: offset {offsets[1]} (sequence {bad}): a checksum")
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:  # opens: tail is ok
        with pytest.raises(JournalCorruptionError, match=pattern):
            replayed(journal)
        assert replayed(journal, int(paths[2].stem))  # later segments still read
        with pytest.raises(JournalCorruptionError, match=pattern):
            journal.verify()
    with Journal.open(tmp_path, fsync=NEVER, repair=True) as journal:
        assert journal.last_sequence == bad - 1
        quarantine = journal.recovery.quarantine
        assert quarantine is not None
        moved = sorted(p.name for p in quarantine.iterdir())
        assert moved == sorted([f"{middle.name}.from-{offsets[1]}"] + [p.name for p in paths[2:]])
        assert [m for _, m in replayed(journal)] == messages(bad - 1)
        assert journal.verify() == bad - 1


def test_a_missing_segment_is_reported(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER, segment_bytes=1024) as journal:
        journal.append(messages(12))
        paths = journal.segment_paths()
    paths[1].unlink()
    missing = r"starts at sequence \d+; expected"
    with (
        Journal.open(tmp_path, fsync=NEVER) as journal,
        pytest.raises(JournalCorruptionError, match=missing),
    ):
        replayed(journal)


# -- one writer --------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_directory(tmp_path: Path) -> None:
    locked = re.escape(f"journal {tmp_path}: locked by another writer (process {os.getpid()})")
    with Journal.open(tmp_path, fsync=NEVER), pytest.raises(JournalError, match=locked):
        Journal.open(tmp_path, fsync=NEVER)
    Journal.open(tmp_path, fsync=NEVER).close()  # released on close


def test_a_writer_in_another_process_holds_the_directory(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from market_intel.storage.journal import Journal
        with Journal.open({str(tmp_path)!r}):
            print("open", flush=True)
            sys.stdin.read()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline() == "open\n"
            with pytest.raises(JournalError, match=rf"another writer \(process {child.pid}\)"):
                Journal.open(tmp_path)
        finally:
            child.stdin.close()
            assert child.wait(timeout=60) == 0
    Journal.open(tmp_path).close()


# -- the storage agent -------------------------------------------------------------------------


class ListArchive:
    """An archive that keeps what it is given."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.closed = False

    def write(self, records: np.ndarray) -> int:
        self.batches.append(records)
        return len(records)

    def close(self) -> None:
        self.closed = True


def test_the_agent_journals_exactly_what_the_engine_delivered(tmp_path: Path) -> None:
    archive = ListArchive()
    config = StorageAgentConfig(directory=tmp_path / "j", segment_bytes=4096)
    agent = StorageAgent(config, archive=archive)
    seen = BatchRecorder(objects=True)
    engine = make_engine(processors=2)
    engine.register_agent(agent)
    engine.register_agent(seen)
    objects = [*one_of_each_type(), *messages(20)]
    extra = messages(3, 100)
    records = quote_records(["BTCUSDT", "ETHUSDT"], 300)
    with running(engine):
        engine.publish_batch(records[:100])
        for m in objects:
            engine.publish_message(m)
        engine.publish_batch(records[100:])
        engine.publish_batch(extra)
        engine.flush()
        stats = agent.statistics()
        assert stats.messages == 300 + len(objects) + 3 == stats.last_sequence
        assert stats.durable_sequence == stats.last_sequence  # fsync="batch"
    assert agent.statistics().segments > 1
    with Journal.open(tmp_path / "j") as journal:  # on_stop released the directory
        got = [m for _, m in journal.replay()]
    assert got == seen.objects
    assert [m.id for m in got if m.metadata] == [m.id for m in [*objects[7:], *extra]]
    # The archive gets the ring's headers, with the payload columns of object-published
    # messages encoded from the objects (their ring records carry only the header).
    expected = mi.to_records(seen.objects)
    for name in ("id", "created_ns", "published_ns", "priority"):
        expected[name] = seen.records[name]
    assert same_fields(joined(archive.batches), expected)
    agent.close()
    assert archive.closed
    with pytest.raises(JournalError, match="closed; expected an agent not yet closed"):
        _ = agent.journal


def test_a_batch_of_records_and_objects_together_is_journaled_in_order(tmp_path: Path) -> None:
    agent = StorageAgent(StorageAgentConfig(directory=tmp_path))
    gated, seen = GatedRecorder(), BatchRecorder(objects=True)
    engine = make_engine(processors=1)
    for a in (gated, agent, seen):
        engine.register_agent(a)
    with running(engine):
        engine.publish_message(quote(i=99))
        gated.gate.wait_entered()  # the processor is held: what follows makes one batch
        engine.publish_batch(quote_records(["BTCUSDT"], 5))
        engine.publish_batch(messages(3))
        engine.publish_batch(quote_records(["ETHUSDT"], 5, start=5))
        gated.gate.release()
        engine.flush()
    agent.close()
    assert len(seen.batches) == 2 and len(seen.batches[1]) == 13  # one mixed batch
    with Journal.open(tmp_path) as journal:
        assert [m for _, m in journal.replay()] == seen.objects


def test_recover_replays_into_the_engine_once_and_then_journals_new_messages(
    tmp_path: Path,
) -> None:
    config = StorageAgentConfig(directory=tmp_path, fsync="never")
    records = quote_records(["BTCUSDT", "ETHUSDT", "SOLUSDT"], 500)
    urgent = mi.CoreMessage(
        mi.MessageType.CONTROL, mi.Control(command="halt"), priority=mi.Priority.CRITICAL
    )
    first = StorageAgent(config)
    engine = make_engine(processors=1)
    engine.register_agent(first)
    with running(engine):
        engine.publish_batch(records[:200])
        engine.flush()
        engine.publish_message(urgent)
        engine.flush()
        engine.publish_batch(records[200:])
    first.close()
    assert first.statistics().durable_sequence == 501  # synced on stop

    again = StorageAgent(config)
    assert again.last_sequence == 501 and again.recovery.clean
    counter, recorder = MarketDataCounterAgent(), Recorder()
    engine = make_engine(processors=2)
    engine.register_agent(counter, message_types=["market_data"])
    engine.register_agent(recorder)
    with running(engine):
        assert again.recover(engine) == 501
        assert engine.get_agent(again.name).agent_type == mi.AgentType.STORAGE
        with pytest.raises(EngineError, match="already registered"):
            again.recover(engine)
        engine.publish_batch(records[:10])
        engine.flush()
    with again:
        journal = again.journal
        assert journal.last_sequence == 511
        got = [m for _, m in journal.replay()]
    # Replayed messages are published again, so only their published_ns differs.
    assert [unpublished(m) for m in recorder.messages[:501]] == [unpublished(m) for m in got[:501]]
    assert got[200] == urgent and recorder.messages[501:] == got[501:]
    ids = [getattr(m.payload, "update_id", None) for m in got]
    assert ids == [*range(200), None, *range(200, 500), *range(10)]
    assert counter.report().market_data == 510


def test_replay_into_a_callable_and_refusals(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(5))
    batches: list[JournalBatch] = []
    assert replay_into(batches.append, tmp_path, max_batch=2) == 5
    assert [len(b) for b in batches] == [2, 2, 1]
    with pytest.raises(EngineError, match="not running"):
        replay_into(make_engine(processors=1), tmp_path)
    with pytest.raises(InvalidArgumentError, match="not a CoreEngine or a callable"):
        replay_into(42, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"archive: .* lacks write"):
        StorageAgent(StorageAgentConfig(directory=tmp_path), archive=object())  # type: ignore[arg-type]


def test_the_agent_reopens_its_journal_for_another_run(tmp_path: Path) -> None:
    acks: list[int] = []
    agent = StorageAgent(StorageAgentConfig(directory=tmp_path), on_durable=acks.append)
    engine = make_engine(processors=1)
    engine.register_agent(agent)
    for run in range(2):
        with running(engine):
            engine.publish_batch(messages(5, 5 * run))
    stats = agent.statistics()
    assert isinstance(stats, StorageStatistics)
    assert (stats.messages, stats.last_sequence, stats.durable_sequence) == (10, 10, 10)
    assert stats.bytes > 10 * FRAME_HEADER_SIZE and stats.fsyncs >= 2 and acks[-1] == 10
    agent.close()


def test_the_config_reports_every_violation_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        StorageAgentConfig(
            directory="",  # type: ignore[arg-type]
            fsync="sometimes",  # type: ignore[arg-type]
            segment_bytes=10,
            fsync_interval_ms=-1,
        )
    paths = [path for path, _ in raised.value.violations]
    assert paths == [
        "storage.directory", "storage.fsync", "storage.fsync_interval_ms",
        "storage.segment_bytes",
    ]  # fmt: skip
    assert "'sometimes' is not one of 'batch', 'interval', 'never'" in str(raised.value)
    with pytest.raises(ConfigError, match=r"storage.fsynk: unknown key.*fsync"):
        StorageAgentConfig.from_dict({"directory": "x", "fsynk": "never"})
    config = StorageAgentConfig.from_dict({"directory": "x", "fsync": "interval"})
    assert config.directory == Path("x") and config.fsync_policy == FsyncPolicy.every(10.0)


def test_a_corrupt_journal_stops_the_agent_at_construction(tmp_path: Path) -> None:
    with Journal.open(tmp_path, fsync=NEVER) as journal:
        journal.append(messages(3))
        segment = journal.segment_paths()[0]
    _flip(segment, frame_offsets(segment)[0] + FRAME_HEADER_SIZE + 1)
    with pytest.raises(JournalCorruptionError, match="sequence 1"):
        StorageAgent(StorageAgentConfig(directory=tmp_path))
    with StorageAgent(StorageAgentConfig(directory=tmp_path, repair=True)) as agent:
        assert agent.last_sequence == 0 and agent.recovery.quarantine is not None
    assert os.listdir(tmp_path)  # nothing deleted: the cut bytes are in quarantine
