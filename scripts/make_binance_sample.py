"""Cut the packaged Binance sample from the full recording.

Every file of the recording (``../shared/data/binance``) is cut to the same receive-time
window: from the earliest receive time of any file to ``--seconds`` later. Each file's REST
depth snapshot line falls in that window and is kept (the script fails if one does not).
Lines are copied byte for byte; the output is gzip written with no name and mtime 0, so the
same input and window always give the same bytes.

Run from the repository root::

    .venv/bin/python scripts/make_binance_sample.py
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "data" / "binance"
DEST = ROOT / "python" / "market_intel" / "data" / "binance"
SECONDS = 60


def receive_ns(line: bytes) -> int:
    """Return the local receive time that starts a recorded line."""
    return int(line.split(b" ", 1)[0])


def cut(source: Path, dest: Path, seconds: float) -> list[tuple[str, int, int]]:
    """Cut every ``*.gz`` file of ``source`` into ``dest``; return (name, frames, bytes) rows."""
    files = sorted(source.glob("*.gz"))
    if not files:
        raise SystemExit(f"no *.gz files in {source}")
    lines = {path.name: gzip.decompress(path.read_bytes()).splitlines() for path in files}
    start = min(receive_ns(body[0]) for body in lines.values())
    end = start + int(seconds * 1e9)
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, body in lines.items():
        kept = [line for line in body if start <= receive_ns(line) < end]
        if not any(b'"lastUpdateId"' in line and b'"stream"' not in line for line in kept):
            raise SystemExit(f"{name}: the REST snapshot line is outside the window")
        with (
            open(dest / name, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out,
        ):
            out.write(b"".join(line + b"\n" for line in kept))
        rows.append((name, len(kept), (dest / name).stat().st_size))
    shutil.copyfile(source / "LICENSE", dest / "LICENSE")
    print(f"window: receive_ns [{start}, {end}) ({seconds:g} s)")
    return rows


def main() -> None:
    """Parse the command line, cut the sample and print its frame counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--dest", type=Path, default=DEST)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    args = parser.parse_args()
    rows = cut(args.source, args.dest, args.seconds)
    print("| file | frames | bytes |\n|---|---|---|")
    for name, frames, size in rows:
        print(f"| {name} | {frames:,} | {size:,} |")
    print(f"| total | {sum(r[1] for r in rows):,} | {sum(r[2] for r in rows):,} |")


if __name__ == "__main__":
    main()
