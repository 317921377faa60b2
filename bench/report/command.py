"""`bench report`: build the leaderboard tables, compute the pictures and beyond-accuracy metrics,
and write one folder:

    <results>/report/<dataset>[-<experiment>]/index.html   self-contained (pictures embedded as SVG)
                                              report.md    the same content, linking the PNG files
                                              t<n>-<kind>.png / .svg   every picture, beside them
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bench import paths
from bench.atomic import write_text
from bench.errors import BenchError
from bench.leaderboard.command import output_stem
from bench.leaderboard.compare import build_leaderboards
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.select import Selection
from bench.report import compute, plots
from bench.store import DamagedRun, RunStore

PICTURE_FILE = re.compile(r"t\d+-[a-z]+(-[A-Za-z0-9._-]+)?\.(png|svg)")
BEYOND_K = 10


@dataclass
class Section:
    """One leaderboard table and everything shown beside it."""

    number: int
    board: Leaderboard
    pictures: list[plots.Picture] = field(default_factory=list)
    beyond: list[compute.BeyondRow] | None = None
    notes: list[str] = field(default_factory=list)  # pictures left out and why
    provenance: dict[str, list[dict]] = field(default_factory=dict)  # row letter -> one dict per run

    @property
    def anchor(self) -> str:
        return f"table-{self.number}"


@dataclass
class Report:
    dataset: str
    experiment: str | None
    split_hash: str
    generated_at: str
    sections: list[Section]
    options: dict
    beyond_k: int
    beyond_note: str  # why beyond-accuracy metrics are missing ("" when shown)
    damaged: list[DamagedRun]
    n_runs: int


def _runs_by_key(store: RunStore, dataset: str) -> dict:
    return {run.key: run for run in store.runs(dataset)}


def _load_split(dataset: str, split_hash: str):
    """(split, "") or (None, why it cannot be used)."""
    from bench.data.prepare import load_split

    try:
        split = load_split(dataset)
    except BenchError as exc:
        return None, f"Beyond-accuracy metrics need the prepared split, which cannot be read: {exc}"
    if split.hash != split_hash:
        return None, (
            f"Beyond-accuracy metrics need the split the runs were scored on ({split_hash}); the prepared '{dataset}' "
            f"is {split.hash}, whose item ids may differ. Prepare that split again to see them."
        )
    return split, ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40]


def build_report(
    dataset: str,
    out_dir: Path,
    store: RunStore,
    metrics: list[str] | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    baseline: str | None = None,
    seed: int = 0,
    selection: Selection | None = None,
    pairs: str = "all",
    select_on: str | None = None,
    select_metric: str = "NDCG@10",
    all_configs: bool = False,
    n_resamples: int = 10_000,
    beyond_k: int = BEYOND_K,
    beyond_resamples: int = 1000,
    now: datetime | None = None,
) -> Report:
    """Compute the report's content and write its pictures into out_dir."""
    boards = build_leaderboards(
        dataset, metrics, test, correction, alpha, baseline, seed, store=store, n_resamples=n_resamples, selection=selection,
        pairs=pairs, select_on=select_on, select_metric=select_metric, all_configs=all_configs, cost=True, history=True,
    )  # fmt: skip
    runs = _runs_by_key(store, dataset)
    split_hash = boards[0].split_hash
    split, beyond_note = _load_split(dataset, split_hash)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():  # pictures of an earlier report here that this one may not draw again
        if old.is_file() and PICTURE_FILE.fullmatch(old.name):
            old.unlink()
    sections = []
    for number, board in enumerate(boards, start=1):
        section = Section(number, board)
        metric = board.metrics[0]
        stem = f"t{number}"
        curves = {r.letter: compute.row_curves([runs[k] for k in r.run_keys]) for r in board.rows}
        fig = plots.curves_figure(board, curves)
        if fig is not None:
            section.pictures.append(plots.save(fig, out_dir, f"{stem}-curves", "curves", "NDCG@K and HR@K for K = 1 to 50",
                "Each row's NDCG@K and HR@K over its test samples for every list length K from 1 to 50, averaged over its "
                "seeds; markers at K = 1, 3, 5, 10, 20, 50. The values at the table's K are the table's cells."))  # fmt: skip
        if board.has_intervals():
            fig = plots.forest_figure(board, metric)
            if fig is not None:
                section.pictures.append(plots.save(fig, out_dir, f"{stem}-forest", "forest", f"Difference from {board.baseline_label}",
                    f"Mean of (row − {board.baseline_label}) on {metric} per test sample with its paired bootstrap 95% interval "
                    f"({board.n_resamples:,} resamples, seed {board.seed}). Green circle: the interval lies above zero; red "
                    "square: below zero; hollow grey: it contains zero."))  # fmt: skip
        elif board.baseline:
            section.notes.append(f"No row of this table is {board.baseline}: no forest plot of differences.")
        for grid in compute.find_grids(board, runs, metric):
            fig = plots.grid_figure(grid)
            section.pictures.append(plots.save(fig, out_dir, f"{stem}-grid-{_slug(grid.method)}", "grid",
                f"{grid.method}: {grid.x} × {grid.y}",
                f"{grid.metric} of each {grid.method} configuration over {grid.x} and {grid.y}: validation (mean over seeds) on "
                f"the left, test on the right; the letter names the table's row. The boxed cell is the best on validation, "
                f"the one `--select-on valid` would choose."))  # fmt: skip
        fig, front = plots.cost_figure(board, metric)
        if fig is not None:
            untimed = [r.letter for r in board.rows if compute.row_seconds(r) is None]
            missing = f" Rows {', '.join(untimed)} recorded no timing and are left out." if untimed else ""
            section.pictures.append(plots.save(fig, out_dir, f"{stem}-cost", "cost", f"{metric} against cost",
                f"{metric} (mean over seeds) against fit + evaluation seconds (mean over seeds, log scale). The Pareto front "
                f"(no other row is both faster and better) is {', '.join(front)}, outlined in black and joined by the dashed line.{missing}"))  # fmt: skip
        else:
            section.notes.append("No row recorded its timing: no quality-against-cost picture.")
        fig = plots.history_figure(board)
        if fig is not None:
            section.pictures.append(plots.save(fig, out_dir, f"{stem}-history", "history", f"{board.history_metric} with the history changed",
                f"{board.history_metric} with the full history and with it removed (none), shuffled or cut to the last item, "
                "by the same fitted model; error bars are the paired bootstrap 95% interval of the change added to the full "
                "value, * a significant change after correction."))  # fmt: skip
        if split is not None:
            section.beyond = compute.beyond_rows(board, runs, split, beyond_k, beyond_resamples, seed)
        section.provenance = {r.letter: [compute.provenance(runs[k]) for k in r.run_keys] for r in board.rows}
        sections.append(section)
    experiment = selection.name if selection is not None else None
    options = dict(test=test, correction=correction, alpha=alpha, baseline=baseline, pairs=pairs, seed=seed,
                   metrics=boards[0].metrics, select_on=select_on, selection=selection.describe() if selection else "")  # fmt: skip
    generated = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    n_runs = len({k for b in boards for r in b.rows for k in r.run_keys})
    return Report(
        dataset, experiment, split_hash, generated, sections, options, beyond_k, beyond_note, store.scan(dataset)[1], n_runs
    )


def report_command(
    dataset: str,
    out_dir: Path | None = None,
    store: RunStore | None = None,
    selection: Selection | None = None,
    **options,
) -> list[Path]:
    """Write index.html, report.md and the pictures; returns the page and the Markdown paths."""
    from bench.report.html import to_html
    from bench.report.markdown import to_markdown

    store = store if store is not None else RunStore()
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir() / "report" / output_stem(dataset, selection)
    report = build_report(dataset, out_dir, store, selection=selection, **options)
    return [write_text(out_dir / "index.html", to_html(report)), write_text(out_dir / "report.md", to_markdown(report))]
