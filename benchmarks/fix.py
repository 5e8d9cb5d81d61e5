"""FIX replay throughput: the recorded JSE index feed parsed, validated and converted.

Topology:
  fix_replay   the real JSE feed (``/work/shared/data/fix``, 13,888 messages: 11,365 35=X
               and 2,523 heartbeats) read ``size`` messages' worth (the file repeated):
               - market-intel ``replay_file``: simplefix parsing, BodyLength and CheckSum
                 checks, conversion of every MDEntry to a ``CoreMessage`` (exact decimals);
               - market-intel ``read_frames``: parsing and validation only;
               - baseline: a plain simplefix loop (``FixParser.get_message`` on 256-byte
                 chunks), no validation, no conversion.
               Messages/s; each run checks the message and entry counts.

    python -c "from benchmarks.fix import benches; b = benches()[0]; print(b.fn(b.quick))"
"""

from __future__ import annotations

from functools import cache

from benchmarks.harness import SHARED_DATA, Bench

__all__ = ["benches"]

JSE = SHARED_DATA / "fix" / "jse_indices_fixt11_recv_20111124.fix"
FRAMES = 13_888
ENTRIES = 14_375


class BenchFailure(RuntimeError):
    """A benchmark read the wrong number of messages."""


@cache
def _data() -> bytes:
    return JSE.read_bytes()


def _copies(size: int) -> int:
    return max(1, -(-size // FRAMES))


def replay(size: int) -> float:
    """Messages/s of ``replay_file`` (parse, validate, convert) over the JSE feed."""
    import time

    from market_intel.adapters.fix.replay import replay_file

    copies, data = _copies(size), _data()
    start = time.perf_counter()
    results = [replay_file(data, venue="jse") for _ in range(copies)]
    elapsed = time.perf_counter() - start
    for result in results:
        if result.frames != FRAMES or len(result.messages) != ENTRIES or result.malformed:
            raise BenchFailure(f"replay: {result.frames} frames, {len(result.messages)} messages")
    return copies * FRAMES / elapsed


def frames_only(size: int) -> float:
    """Messages/s of ``read_frames`` (parse and validate) over the JSE feed."""
    import time

    from market_intel.adapters.fix.replay import FixFrame, read_frames

    copies, data = _copies(size), _data()
    start = time.perf_counter()
    good = sum(isinstance(item, FixFrame) for _ in range(copies) for item in read_frames(data))
    elapsed = time.perf_counter() - start
    if good != copies * FRAMES:
        raise BenchFailure(f"read_frames: {good} frames; expected {copies * FRAMES}")
    return copies * FRAMES / elapsed


def simplefix_loop(size: int) -> float:
    """Messages/s of a bare simplefix parse loop: the baseline."""
    import time

    import simplefix

    copies, data = _copies(size), _data()
    start = time.perf_counter()
    count = 0
    for _ in range(copies):
        parser = simplefix.FixParser()
        for at in range(0, len(data), 256):
            parser.append_buffer(data[at : at + 256])
            while parser.get_message() is not None:
                count += 1
    elapsed = time.perf_counter() - start
    if count != copies * FRAMES:
        raise BenchFailure(f"simplefix: {count} messages; expected {copies * FRAMES}")
    return copies * FRAMES / elapsed


def benches() -> list[Bench]:
    """The FIX rows for benchmarks.run (topology ``fix_replay``)."""
    return [
        Bench(
            "fix_replay", "market-intel FIX replay_file", "throughput", replay, FRAMES,
            5 * FRAMES, "JSE 35=X feed: parse + BodyLength/CheckSum + convert every MDEntry",
        ),
        Bench(
            "fix_replay", "market-intel FIX read_frames", "throughput", frames_only, FRAMES,
            5 * FRAMES, "parse + BodyLength/CheckSum checks, no conversion",
        ),
        Bench(
            "fix_replay", "simplefix FixParser loop", "throughput", simplefix_loop, FRAMES,
            5 * FRAMES, "baseline: get_message on 256-byte chunks, no checks",
        ),
    ]  # fmt: skip
