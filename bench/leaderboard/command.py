"""`bench leaderboard`: build the tables from the store (scanned once), print them, then write
them as files: <out_dir>/<dataset>[-<experiment>].<format>."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from bench import paths
from bench.atomic import write_text
from bench.leaderboard.compare import leaderboards_of
from bench.leaderboard.export import to_csv, to_json
from bench.leaderboard.latex import to_latex
from bench.leaderboard.markdown import to_markdown
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.options import FORMATS, LeaderboardOptions
from bench.leaderboard.source import Source
from bench.leaderboard.terminal import print_leaderboard
from bench.store import RunStore

__all__ = ["FORMATS", "leaderboard_command", "write_leaderboards"]
RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv, "json": to_json}


def write_leaderboards(boards: list[Leaderboard], dataset: str, options: LeaderboardOptions) -> list[Path]:
    """The tables as <out_dir>/<stem>.<format>, one file per format asked for."""
    out_dir = options.out_dir if options.out_dir is not None else paths.results_dir() / "leaderboard"
    stem = options.file_stem(dataset)
    return [write_text(out_dir / f"{stem}.{fmt}", RENDERERS[fmt](boards)) for fmt in options.formats]


def leaderboard_command(
    dataset: str, options: LeaderboardOptions | None = None, store: RunStore | None = None, console=None
) -> list[Path]:
    """Print the dataset's leaderboard tables and write them as files; returns the files' paths."""
    options = options if options is not None else LeaderboardOptions()
    if console is None:
        from rich.console import Console

        console = Console()
    source = Source.scan(dataset, store)
    for damaged in source.damaged:  # never left out silently
        console.print(Text(f"warning: left out of the tables: {damaged.sentence()}", style="yellow"), soft_wrap=True)
    boards = leaderboards_of(source, options)
    for board in boards:
        print_leaderboard(console, board)
    return write_leaderboards(boards, dataset, options)
