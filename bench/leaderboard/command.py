"""`bench leaderboard`: build the tables from the store (scanned once), print them, then write
them as files: <out_dir>/<dataset>[-<experiment>].<format>; with an experiment file, every dataset's
tables under the file's description, then the summary across datasets."""

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
from bench.leaderboard.terminal import print_leaderboard, print_section
from bench.store import RunStore

__all__ = ["FORMATS", "experiment_command", "leaderboard_command", "write_leaderboards"]
RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv, "json": to_json}
WITH_HEADING = ("md", "json")  # the formats that carry an experiment's description above its tables


def out_folder(options: LeaderboardOptions) -> Path:
    return options.out_dir if options.out_dir is not None else paths.results_dir() / "leaderboard"


def write_leaderboards(boards: list[Leaderboard], dataset: str, options: LeaderboardOptions, heading: str = "") -> list[Path]:
    """The tables as <out_dir>/<stem>.<format>, one file per format asked for."""
    stem = options.file_stem(dataset)
    written = []
    for fmt in options.formats:
        text = RENDERERS[fmt](boards, heading) if fmt in WITH_HEADING else RENDERERS[fmt](boards)
        written.append(write_text(out_folder(options) / f"{stem}.{fmt}", text))
    return written


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


def experiment_command(exp, options: LeaderboardOptions | None = None, store: RunStore | None = None, console=None) -> list[Path]:
    """An experiment file's tables: its description, each dataset's tables (printed, then written as
    <dataset>-<experiment>.<format>), then the summary across datasets (<experiment>-across.<format>)
    or why it is absent."""
    from bench.leaderboard.experiment import across_sections, across_sentence, build_experiment, experiment_options, write_across

    options = options if options is not None else LeaderboardOptions()
    if console is None:
        from rich.console import Console

        console = Console()
    tables = build_experiment(exp, options, store)
    options = experiment_options(exp, options)
    console.print(Text(tables.heading))
    console.print()
    written = []
    for part in tables.datasets:
        for damaged in part.damaged:
            console.print(Text(f"warning: left out of the tables: {damaged.sentence()}", style="yellow"), soft_wrap=True)
        if part.problem:
            console.print(Text(part.problem, style="yellow"))
            continue
        for board in part.boards:
            print_leaderboard(console, board)
        written += write_leaderboards(part.boards, part.dataset, options, tables.heading)
    for section in across_sections(tables):
        print_section(console, section, {})
    if not tables.across.available:
        console.print(Text(across_sentence(tables), style="dim"))
    return written + write_across(tables, options, out_folder(options))
