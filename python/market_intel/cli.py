"""The ``market-intel`` command line.

``market-intel config check FILE`` checks a configuration file: it prints ``FILE: OK`` and the
notes (values that do not apply on this machine) and exits 0, or prints every violation to
stderr, one a line, and exits 1; a file that cannot be read exits 2. ``market-intel config
show [FILE]`` prints the effective configuration (file, defaults and ``MARKET_INTEL__...``
environment overrides) as TOML or JSON.

``import market_intel`` never imports this module (nor typer).
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from market_intel.config import EngineConfig, load_config
from market_intel.errors import ConfigError, InvalidArgumentError

__all__ = ["app", "config_app", "main"]

app = typer.Typer(
    name="market-intel",
    help="An LMAX-Disruptor engine for market data.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check and show the engine's configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

NoEnv = Annotated[
    bool, typer.Option("--no-env", help="Ignore MARKET_INTEL__... environment overrides.")
]


class OutputFormat(StrEnum):
    """How ``config show`` writes the configuration."""

    TOML = "toml"
    JSON = "json"


def _out() -> Console:
    return Console(soft_wrap=True, highlight=False)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int) -> NoReturn:
    _err().print(f"market-intel: {message}", markup=False, style="red")
    raise typer.Exit(code)


def _terminal() -> bool:
    return sys.stdout.isatty()


def _load(file: Path | None, no_env: bool) -> EngineConfig:
    """Load ``file``; print what is wrong and exit 1 (invalid) or 2 (unreadable) if it fails."""
    try:
        return load_config(file, env=None if no_env else os.environ)
    except FileNotFoundError:
        _fail(f"{file}: no such file", 2)
    except IsADirectoryError:
        _fail(f"{file}: is a directory, not a configuration file", 2)
    except OSError as exc:
        _fail(f"{file}: cannot be read ({exc.strerror or exc})", 2)
    except ConfigError as exc:
        err = _err()
        head = f"{exc.source}: " if exc.source else ""
        for path, message in exc.violations:
            line = f"{head}{path}: {message}" if path else f"{head}{message}"
            err.print(line, markup=False, style="red")
        raise typer.Exit(1) from None


@app.callback()
def _root() -> None:
    """An LMAX-Disruptor engine for market data."""


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The TOML configuration file.")],
    show: Annotated[
        bool, typer.Option("--show", help="Also print the effective configuration.")
    ] = False,
    no_env: NoEnv = False,
) -> None:
    """Check FILE: print OK and the notes, or every violation (exit 1)."""
    config = _load(file, no_env)
    out = _out()
    out.print(f"{file}: OK", markup=False, style="green")
    for note in config.notes:
        out.print(f"note: {note}", markup=False, style="yellow")
    if show:
        out.print()
        out.print(config.to_toml(), markup=False, end="")


@config_app.command("show")
def show(
    file: Annotated[
        Path | None, typer.Argument(help="The TOML configuration file (default: none).")
    ] = None,
    output_format: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="The output format.")
    ] = OutputFormat.TOML,
    no_env: NoEnv = False,
) -> None:
    """Print the effective configuration: FILE (or the defaults) with environment overrides."""
    config = _load(file, no_env)
    out = _out()
    if output_format is OutputFormat.JSON:
        out.print(json.dumps(config.to_dict(), indent=2, default=str), markup=False)
        for note in config.notes:
            _err().print(f"note: {note}", markup=False, style="yellow")
        return
    for note in config.notes:
        out.print(f"# note: {note}", markup=False)
    out.print(config.to_toml(), markup=False, end="")


def main() -> None:
    """Run the command line (the ``market-intel`` script)."""
    app(prog_name="market-intel")


@app.command("run")
def run(
    config_file: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="A TOML configuration (default: the embedded one)."),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="0 = full speed, N = N times the recorded speed (default: config)."),
    ] = None,
    files: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="A recording to replay instead (repeatable)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show live progress.")
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            "--store", help="Journal and archive every frame in this new or empty directory."
        ),
    ] = None,
    no_env: NoEnv = False,
) -> None:
    """Replay recorded market data through the engine and print what the agents found."""
    from market_intel.config import example_config_path
    from market_intel.job import run_job
    from market_intel.report import live_progress, print_report

    config = _load(config_file or example_config_path(), no_env)
    for path in files or ():
        if not path.is_file():
            _fail(f"{path}: no such recording", 2)
    out = Console(soft_wrap=True, highlight=False, width=None if _terminal() else 132)
    show = config.replay.progress if progress is None else progress
    with live_progress(out, enabled=show) as update:
        try:
            report = run_job(
                config,
                files=list(files) if files else None,
                speed=speed,
                progress=update,
                store=store,
            )
        except InvalidArgumentError as e:
            _fail(str(e), 2)
    print_report(out, report)
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2))
        out.print(f"report written to {json_out}", markup=False)
