"""The `bench` command line: the app, its shared console and error handling. Each command lives in
a module of this package (run, board, inventory, data); heavy libraries are imported inside the
commands that need them, so `bench --help`, `bench methods`, `bench runs` and `bench jobs` start
instantly."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from bench.errors import BenchError, is_storage_error, storage_sentence

app = typer.Typer(
    help="Benchmark sequential recommenders, classic and LLM-based, on identical splits.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


def friendly(fn):
    """Turn a BenchError, or a folder the file system refuses to write, into one red sentence
    and exit code 2, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            console.print(f"[red bold]error:[/] {escape(str(exc))}", soft_wrap=True)  # a path is never folded
            raise typer.Exit(2)
        except OSError as exc:  # a read-only or full results, data or cache folder
            if not is_storage_error(exc):
                raise
            console.print(f"[red bold]error:[/] {escape(storage_sentence(exc))}", soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: finished runs are stored; run the same command again to resume.[/]")
            raise typer.Exit(130)

    return wrapper


@app.callback()
def locations(
    data_dir: Optional[Path] = typer.Option(None, envvar="BENCH_DATA_DIR", help="Where prepared splits are written."),
    results_dir: Optional[Path] = typer.Option(None, envvar="BENCH_RESULTS_DIR", help="Where runs and leaderboards are written."),
    cache_dir: Optional[Path] = typer.Option(
        None, envvar="BENCH_CACHE_DIR", help="Where built tokenizers and models are cached."
    ),
):
    for var, value in (("BENCH_DATA_DIR", data_dir), ("BENCH_RESULTS_DIR", results_dir), ("BENCH_CACHE_DIR", cache_dir)):
        if value is not None:
            os.environ[var] = str(value)


def csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main() -> None:
    from bench import distributed

    try:
        app()
    finally:  # a launched job's processes leave their group before exit, on success and on failure
        distributed.destroy_group()


from bench.cli import run, inventory, board, data  # noqa: E402,F401,I001  (registers the commands in this order)
