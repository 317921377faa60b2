"""Building a report: the leaderboard's tables (every number, computed once by bench.leaderboard),
with pictures added, rendered in memory. Nothing is written here (see command.write_report).

    store ── Source.scan (once) ── the leaderboard's tables (cells, intervals, history, beyond
        accuracy, cost) and provenance ── per table: curves, forest, grids, cost, history pictures
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from bench.errors import BenchError
from bench.leaderboard.compare import build_tables
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.options import LeaderboardOptions
from bench.leaderboard.provenance import provenance_sections
from bench.leaderboard.sections import board_sections
from bench.leaderboard.source import Source, choose
from bench.report import compute, cost_plot, plots
from bench.report.model import Chapter, Picture, Report
from bench.store import RunStore, StoredRun


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:40]


def _picture(fig, stem: str, kind: str, title: str, caption: str) -> Picture:
    svg, png = plots.render(fig)
    return Picture(kind, title, caption, stem, svg, png)


def _curves(board: Leaderboard, runs: dict[str, StoredRun], stem: str) -> list[Picture]:
    curves = {r.letter: compute.row_curves([runs[k] for k in r.run_keys]) for r in board.rows}
    fig = plots.curves_figure(board, curves)
    if fig is None:
        return []
    return [_picture(fig, f"{stem}-curves", "curves", "NDCG@K and HR@K for K = 1 to 50",
        "Each row's NDCG@K and HR@K over its test samples for every list length K from 1 to 50, averaged over its "
        "seeds; markers at K = 1, 3, 5, 10, 20, 50. The values at the table's K are the table's cells.")]  # fmt: skip


def _forest(board: Leaderboard, metric: str, stem: str) -> list[Picture]:
    fig = plots.forest_figure(board, metric) if board.has_intervals() else None
    if fig is None:
        return []
    return [_picture(fig, f"{stem}-forest", "forest", f"Difference from {board.baseline_label}: forest plot",
        f"Mean of (row - {board.baseline_label}) on {metric} per test sample with its paired bootstrap 95% interval "
        f"({board.n_resamples:,} resamples, seed {board.seed}), as in the table of differences. Green circle: the "
        "interval lies above zero; red square: below zero; hollow grey: it contains zero.")]  # fmt: skip


def _grids(board: Leaderboard, runs: dict[str, StoredRun], metric: str, stem: str) -> list[Picture]:
    return [_picture(plots.grid_figure(grid), f"{stem}-grid-{_slug(grid.method)}", "grid", f"{grid.method}: {grid.x} × {grid.y}",
        f"{grid.metric} of each {grid.method} configuration over {grid.x} and {grid.y}: validation (mean over seeds) on "
        f"the left, test on the right; the letter names the table's row. The boxed cell is the best on validation, "
        f"the one `--select-on valid` would choose.") for grid in compute.find_grids(board, runs, metric)]  # fmt: skip


def _cost(board: Leaderboard, metric: str, stem: str) -> list[Picture]:
    fig, front = cost_plot.cost_figure(board, metric)
    if fig is None:
        return []
    untimed = [r.letter for r in board.rows if compute.row_seconds(r) is None]
    missing = f" Rows {', '.join(untimed)} recorded no timing and are left out." if untimed else ""
    return [_picture(fig, f"{stem}-cost", "cost", f"{metric} against cost",
        f"{metric} (mean over seeds) against the seconds each row's runs spent (fit, evaluation, validation and history; "
        f"mean over seeds), the total of the cost table. Costs more than {cost_plot.GAP:g} times apart are drawn in "
        f"panels of their own, each with its own x axis (a log axis where a panel spans more than a factor of "
        f"{cost_plot.LOG_SPAN:g}); rows that would hide each other are drawn around a dot at their shared point, joined "
        f"to it by a thin line. The Pareto front (no other row is both faster and better) is {', '.join(front)}, "
        f"outlined in black and joined by the dashed line.{missing}")]  # fmt: skip


def _history(board: Leaderboard, stem: str) -> list[Picture]:
    fig = plots.history_figure(board)
    if fig is None:
        return []
    return [_picture(fig, f"{stem}-history", "history", f"{board.history_metric} with the history changed",
        f"{board.history_metric} with the full history and with it removed (none), shuffled or cut to the last item, "
        "by the same fitted model; error bars are the paired bootstrap 95% interval of the change added to the full "
        "value, * a significant change after correction, as in the history table.")]  # fmt: skip


def _chapter(number: int, board: Leaderboard, runs: dict[str, StoredRun], beyond_note: str) -> Chapter:
    metric, stem = board.metrics[0], f"t{number}"
    sections = board_sections(board)
    shown = [s for s in sections if s.kind != "power"]  # the power table goes to "About the numbers"
    power = next((s for s in sections if s.kind == "power"), None)
    chapter = Chapter(number, board, shown, provenance_sections(board, runs), power=power)
    chapter.pictures = (_curves(board, runs, stem) + _forest(board, metric, stem) + _grids(board, runs, metric, stem)
                        + _cost(board, metric, stem) + _history(board, stem))  # fmt: skip
    if board.baseline and not board.has_intervals():
        chapter.notes.append(f"No row of this table is {board.baseline}: no differences from it, no forest plot.")
    if not any(p.kind == "cost" for p in chapter.pictures):
        chapter.notes.append("No row recorded its timing: no quality-against-cost picture.")
    if beyond_note:
        chapter.notes.append(beyond_note)
    return chapter


def dataset_chapters(source: Source, options: LeaderboardOptions, first: int = 1) -> tuple[list[Chapter], str, str]:
    """(the chapters of one dataset's tables, numbered from `first`; the split hash; why beyond-accuracy
    metrics are missing). They need the prepared split the runs were scored on; without it the
    report says why instead of failing."""
    chosen = choose(source, options.selection)
    split, beyond_note = None, ""
    if options.beyond is not None:
        try:
            split = source.split(chosen.split_hash)
        except BenchError as exc:
            said = str(exc)
            beyond_note = f"No beyond-accuracy table: {said[:1].lower()}{said[1:]}"
    boards = build_tables(chosen, options, split)
    runs = source.by_key()
    return [_chapter(number, board, runs, beyond_note) for number, board in enumerate(boards, start=first)], chosen.split_hash, beyond_note  # fmt: skip


def generated_at(now: datetime | None) -> str:
    return (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")


def count_runs(chapters: list[Chapter]) -> int:
    return len({k for c in chapters for r in c.board.rows for k in r.run_keys})


def report_of(source: Source, options: LeaderboardOptions, now: datetime | None = None) -> Report:
    """The report of a scanned store, in memory."""
    chapters, split_hash, beyond_note = dataset_chapters(source, options)
    generated, n_runs = generated_at(now), count_runs(chapters)
    facts = [("Dataset", source.dataset), ("Experiment", options.selection.name or "all"), ("Split hash", split_hash),
             ("Generated", generated.replace("T", " ").replace("+00:00", " UTC")), ("Tables", str(len(chapters))),
             ("Runs", str(n_runs)), *options.describe()]  # fmt: skip
    return Report(source.dataset, options.selection.name, split_hash, generated, chapters, facts, source.damaged,
                  n_runs, beyond_note)  # fmt: skip


def build_report(
    dataset: str, options: LeaderboardOptions | None = None, store: RunStore | None = None, now: datetime | None = None
) -> Report:
    """The report of a dataset's stored runs, in memory (nothing is written)."""
    options = options if options is not None else LeaderboardOptions.for_report()
    return report_of(Source.scan(dataset, store), options, now)
