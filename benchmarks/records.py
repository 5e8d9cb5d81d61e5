"""Payloads shared by all benchmarks, and the checks that make lost data fail loudly.

record = (seq, timestamp_ns, price, qty): a Python tuple of 4 numbers where the channel takes
         objects (queues pickle it), or the same fields packed with struct '<qqdd' (32 bytes)
         where the channel carries bytes;
batch  = numpy array of up to `BATCH` records of `REC_DTYPE` (8 x 8-byte fields = 64 bytes).

Checksum: every benchmark sums the `seq` of what it received; for records 0..n-1 that must be
n*(n-1)/2, and the count must be n.
"""

from __future__ import annotations

import struct

import numpy as np

RECORD = struct.Struct("<qqdd")  # seq, timestamp_ns, price, qty -> 32 bytes
REC_DTYPE = np.dtype(
    [
        ("seq", "<i8"),
        ("ts_ns", "<i8"),
        ("price", "<f8"),
        ("qty", "<f8"),
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("venue", "<i8"),
        ("flags", "<i8"),
    ]
)
assert REC_DTYPE.itemsize == 64
BATCH = 1024


class BenchFailure(RuntimeError):
    """A benchmark moved the wrong data, crashed or stalled."""


def make_record(i: int, base_ns: int) -> tuple[int, int, float, float]:
    """Record number `i` as a tuple (seq, timestamp_ns, price, qty)."""
    return (i, base_ns + i, 100.0 + (i & 255) * 0.01, float((i & 7) + 1))


def expected_checksum(n: int) -> int:
    """Sum of seq over records 0..n-1."""
    return n * (n - 1) // 2


def check(what: str, n: int, count: int, checksum: int) -> None:
    """Raise `BenchFailure` unless exactly records 0..n-1 arrived (by count and seq sum)."""
    if count != n or checksum != expected_checksum(n):
        raise BenchFailure(
            f"{what}: received {count} of {n} records, "
            f"seq checksum {checksum} != {expected_checksum(n)}"
        )


def batch_template() -> tuple[np.ndarray, np.ndarray]:
    """A batch of records with fixed payload fields, plus 0..BATCH-1 for stamping seq."""
    src = np.zeros(BATCH, dtype=REC_DTYPE)
    idx = np.arange(BATCH, dtype=np.int64)
    src["price"] = 100.0 + (idx & 255) * 0.01
    src["qty"] = (idx & 7) + 1.0
    src["bid"] = src["price"] - 0.01
    src["ask"] = src["price"] + 0.01
    return src, idx


def batch_starts(n: int) -> range:
    """First seq of each batch for n records; the last batch may be shorter than BATCH."""
    return range(0, n, BATCH)


def raw(a: np.ndarray) -> np.ndarray:
    """(records, 64) uint8 view of a contiguous record array.

    numpy 2.x copies structured arrays field by field (~50 us per 1024 records on the dev
    machine); copying the same bytes through a plain uint8 view is a memcpy (~3.5 us). Rings and
    batches are therefore copied through this view.
    """
    return a.view(np.uint8).reshape(len(a), REC_DTYPE.itemsize)


def copy_records(src: np.ndarray) -> np.ndarray:
    """A fresh copy of a contiguous record array, copied as raw bytes (see `raw`)."""
    return src.view(np.uint8).copy().view(REC_DTYPE)
