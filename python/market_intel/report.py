"""Rich output of the main job: a live progress bar and the final summary tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from market_intel.job import JobReport

__all__ = ["live_progress", "print_report"]


@contextmanager
def live_progress(console: Console, *, enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress callback for ``run_job`` that draws a live bar (or does nothing)."""
    if not enabled:
        yield lambda done, total: None
        return
    columns = (
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("frames"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replay", total=None, rate="")

        def update(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed / 1e6:.2f} M frames/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        yield update


def _ns(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} ms"
    if value >= 1e3:
        return f"{value / 1e3:.1f} µs"
    return f"{value:.0f} ns"


def _price(value: float) -> str:
    return "" if value != value else repr(value)  # NaN: none seen; repr: every digit


def print_report(console: Console, report: JobReport) -> None:
    """Print the summary of a replay."""
    e = report.engine
    for note in report.notes:
        console.print(f"note: {note}", markup=False, style="yellow")
    console.print()
    console.print(
        f"[bold]{report.frames:,}[/] frames from {len(report.files)} recording(s): "
        f"decoded at {report.decode_frames_per_second / 1e6:.2f} M frames/s, replayed through "
        f"the engine at [bold]{report.frames_per_second / 1e6:.2f} M frames/s[/]"
        + (f" ({report.speed:g}x recorded speed)" if report.speed else " (full speed)")
    )
    line = (
        f"messages published {e.messages_published:,}, delivered to agents "
        f"{e.messages_delivered:,}, errors {e.errors}, dropped {e.dropped}"
    )
    console.print(line, markup=False)
    if e.latency is not None and e.latency.count:
        lat = e.latency
        console.print(
            f"publish-to-processed latency: p50 {_ns(lat.p50)}, p90 {_ns(lat.p90)}, "
            f"p99 {_ns(lat.p99)}, p99.9 {_ns(lat.p999)}, max {_ns(lat.max)}",
            markup=False,
        )

    agents = Table(title="Agents", title_justify="left")
    for col in ("agent", "status", "messages", "batches", "errors", "dropped", "per message"):
        agents.add_column(col, justify="left" if col in ("agent", "status") else "right")
    for a in e.agents:
        st = a.stats
        agents.add_row(
            a.name,
            a.status.name,
            f"{st.messages:,}",
            f"{st.batches:,}",
            str(st.errors),
            str(st.dropped),
            _ns(st.mean_processing_ns),
        )
    console.print(agents)

    if report.summary:
        symbols = Table(title="Symbols", title_justify="left")
        for col in ("venue", "symbol", "frames", "quotes", "trades", "depth", "last price"):
            symbols.add_column(col, justify="left" if col in ("venue", "symbol") else "right")
        for col in ("bid", "ask", "volume", "VWAP"):
            symbols.add_column(col, justify="right")
        for s in sorted(report.summary.values(), key=lambda s: (s.venue, s.symbol)):
            symbols.add_row(
                s.venue,
                s.symbol,
                f"{s.frames:,}",
                f"{s.quotes:,}",
                f"{s.trades:,}",
                f"{s.depth_updates:,}",
                _price(s.last_price),
                _price(s.bid),
                _price(s.ask),
                str(s.volume.normalize()),
                f"{s.vwap:.4f}",
            )
        console.print(symbols)
    if report.sequence is not None:
        seq = report.sequence
        gaps = sum(s.gaps for s in seq.streams.values())
        verdict = "[green]ok[/]" if seq.ok else "[red]FAILED[/]"
        console.print(
            f"sequence check {verdict}: {seq.rows:,} rows, {len(seq.streams)} streams, "
            f"{seq.receive_regressions} receive-time regressions, {gaps} trade-id gaps"
        )
    if report.store is not None:
        kept = report.store
        console.print(
            f"stored in {kept.directory}: {kept.journaled:,} journal records; "
            f"{kept.archived:,} rows in {kept.files} Parquet files, {kept.parquet_bytes:,} bytes "
            f"({kept.compression_ratio:.1f}x smaller than the records)",
            markup=False,
        )
        archive = Table(title="Archive (DuckDB)", title_justify="left")
        for col in ("venue", "symbol", "trades", "1m bars"):
            archive.add_column(col, justify="left" if col in ("venue", "symbol") else "right")
        for (venue, symbol), n in kept.trades.items():
            archive.add_row(venue, symbol, f"{n:,}", f"{kept.bars.get((venue, symbol), 0):,}")
        console.print(archive)
    if report.counter is not None:
        c = report.counter
        kinds = ", ".join(f"{k.name.lower()} {v:,}" for k, v in c.by_kind.items())
        venues = ", ".join(f"{k} {v:,}" for k, v in c.by_venue.items())
        console.print(f"counter: {kinds}; {venues}; crossed quotes {c.crossed_quotes}")
