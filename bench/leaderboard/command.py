"""`bench leaderboard`: build the tables from the store, print them, write them as files."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from bench import paths
from bench.atomic import write_text
from bench.errors import BenchError
from bench.leaderboard.compare import build_leaderboards
from bench.leaderboard.export import to_csv, to_json
from bench.leaderboard.latex import to_latex
from bench.leaderboard.markdown import to_markdown
from bench.leaderboard.select import Selection
from bench.leaderboard.terminal import print_leaderboard
from bench.store import RunStore

FORMATS = ("md", "tex", "csv", "json")
RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv, "json": to_json}


def output_stem(dataset: str, selection: Selection | None) -> str:
    """<dataset>, or <dataset>-<experiment> for one experiment's tables."""
    return f"{dataset}-{selection.name}" if selection is not None and selection.name else dataset


def leaderboard_command(
    dataset: str,
    out_dir: Path | None = None,
    formats: tuple[str, ...] = FORMATS,
    store: RunStore | None = None,
    console=None,
    selection: Selection | None = None,
    **options,
) -> list[Path]:
    """Print the dataset's leaderboard tables and write them as <out_dir>/<stem>.<format>;
    `options` are build_leaderboards' (metrics, test, correction, baseline, select_on, ...)."""
    unknown = [f for f in formats if f not in RENDERERS]
    if unknown:
        raise BenchError(f"Unknown output format '{unknown[0]}'; choose from {', '.join(FORMATS)}.")
    store = store if store is not None else RunStore()
    if console is None:
        from rich.console import Console

        console = Console()
    for damaged in store.scan(dataset)[1]:  # never left out silently
        console.print(Text(f"warning: left out of the tables: {damaged.sentence()}", style="yellow"), soft_wrap=True)
    boards = build_leaderboards(dataset, store=store, selection=selection, **options)
    for board in boards:
        print_leaderboard(console, board)
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir() / "leaderboard"
    stem = output_stem(dataset, selection)
    return [write_text(out_dir / f"{stem}.{fmt}", RENDERERS[fmt](boards)) for fmt in dict.fromkeys(formats)]
