"""Building the tables: per-sample metrics of each row (averaged over its seeds), every pair of
rows tested on the samples they share, p-values of a metric corrected together, and paired
bootstrap intervals against a baseline row.

    a cell carries the letters of the rows it beats; the best mean of a column is marked
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import stats
from bench.errors import BenchError
from bench.evaluate import metric_names, per_sample_metrics
from bench.leaderboard import labels, select
from bench.leaderboard.model import CI_CONFIDENCE, Cell, Comparison, Interval, Leaderboard, Row
from bench.store import RunStore, StoredRun

DEFAULT_METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")


@dataclass
class RowData:
    label: str
    runs: list[StoredRun]
    sample_index: np.ndarray  # sorted, common to all seeds of the row
    per_seed: dict[str, list[float]]  # metric -> mean of each seed over its own samples
    values: dict[str, np.ndarray]  # metric -> per-sample value averaged over seeds

    @property
    def record(self) -> dict:
        return self.runs[0].record


def check_options(metrics, test: str, correction: str, alpha: float) -> list[str]:
    valid = metric_names()
    chosen = []
    for name in metrics or DEFAULT_METRICS:
        canonical = name.upper()
        if canonical not in valid:
            raise BenchError(f"Unknown metric '{name}'; choose from {', '.join(valid)}.")
        if canonical not in chosen:
            chosen.append(canonical)
    if test not in stats.TESTS:
        raise BenchError(f"Unknown test '{test}'; choose one of {', '.join(stats.TESTS)}.")
    if correction not in stats.CORRECTIONS:
        raise BenchError(f"Unknown correction '{correction}'; choose one of {', '.join(stats.CORRECTIONS)}.")
    if not 0.0 < alpha < 1.0:
        raise BenchError(f"The p threshold alpha must lie strictly between 0 and 1, not {alpha}.")
    return chosen


def _read_arrays(run: StoredRun) -> dict[str, np.ndarray]:
    try:
        return run.arrays()
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"Stored run {run.folder} cannot be read ({exc}); delete that folder and run it again.") from exc


def align(sample_index: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values (ordered like sample_index) at the sorted indices `wanted`, all present."""
    order = np.argsort(sample_index, kind="stable")
    return values[order[np.searchsorted(sample_index[order], wanted)]]


def load_row(runs: list[StoredRun], metrics: list[str]) -> RowData:
    loaded = []
    for run in runs:
        arrays = _read_arrays(run)
        loaded.append((np.asarray(arrays["sample_index"]), per_sample_metrics(arrays["rank"])))
    common = loaded[0][0]
    for index, _ in loaded[1:]:
        common = np.intersect1d(common, index)
    common = np.unique(common)
    per_seed = {m: [float(v[m].mean()) for _, v in loaded] for m in metrics}
    values = {m: np.mean([align(i, v[m], common) for i, v in loaded], axis=0) for m in metrics}
    label = runs[0].record.get("label") or runs[0].record["method"]
    return RowData(label, runs, common, per_seed, values)


def paired(a: RowData, b: RowData, metric: str) -> tuple[np.ndarray, np.ndarray]:
    common = np.intersect1d(a.sample_index, b.sample_index)
    return align(a.sample_index, a.values[metric], common), align(b.sample_index, b.values[metric], common)


def make_rows(data: list[RowData], metrics: list[str]) -> list[Row]:
    rows = []
    for letter, d in zip(labels.letters(len(data)), data):
        cells = {}
        for m in metrics:
            seeds = np.asarray(d.per_seed[m])
            std = float(seeds.std(ddof=1)) if len(seeds) > 1 else None
            cells[m] = Cell(mean=float(seeds.mean()), std=std)
        rows.append(
            Row(
                letter=letter,
                label=d.label,
                method=d.record["method"],
                config_key=d.record.get("config_key") or d.runs[0].key,
                overrides=dict(d.record.get("overrides") or {}),
                seeds=[int(r.record["seed"]) for r in d.runs],
                run_keys=[r.key for r in d.runs],
                cells=cells,
            )
        )
    return rows


def compare(data, rows, metric, test, correction, alpha, seed, n_resamples) -> list[Comparison]:
    """Every pair of rows on one metric, corrected together; the winner has the higher mean."""
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    found = []
    for i, j in pairs:
        a, b = paired(data[i], data[j], metric)
        found.append((a.mean() - b.mean(), stats.paired_pvalue(a, b, test, seed=seed, n_resamples=n_resamples)))
    adjusted = stats.adjust([p for _, p in found], correction)
    comparisons = []
    for (i, j), (diff, p), p_adj in zip(pairs, found, adjusted):
        winner = None
        if p_adj < alpha and diff != 0:
            winner = rows[i].letter if diff > 0 else rows[j].letter
        comparisons.append(Comparison(metric, rows[i].letter, rows[j].letter, float(p), float(p_adj), winner))
    return comparisons


def mark(rows: list[Row], comparisons: list[Comparison], metrics: list[str]) -> None:
    by_letter = {r.letter: r for r in rows}
    for c in comparisons:
        if c.winner is not None:
            loser = c.b if c.winner == c.a else c.a
            by_letter[c.winner].cells[c.metric].wins.append(loser)
    order = {r.letter: k for k, r in enumerate(rows)}
    for m in metrics:
        top = max(r.cells[m].mean for r in rows)
        for r in rows:
            r.cells[m].wins.sort(key=order.get)
            r.cells[m].best = bool(np.isclose(r.cells[m].mean, top, rtol=0.0, atol=1e-12))


def add_intervals(data, rows, base_key: str, metrics, seed: int, n_resamples: int) -> None:
    base = next((k for k, r in enumerate(rows) if r.config_key == base_key), None)
    if base is None:
        return
    for k, row in enumerate(rows):
        if k == base:
            continue
        for m in metrics:
            a, b = paired(data[k], data[base], m)
            diff, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=n_resamples, confidence=CI_CONFIDENCE, seed=seed)
            row.cells[m].vs_baseline = Interval(diff, low, high)


def build_leaderboards(
    dataset: str,
    metrics: list[str] | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    baseline: str | None = None,
    seed: int = 0,
    split_hash: str | None = None,
    store: RunStore | None = None,
    n_resamples: int = 10_000,
    selection: select.Selection | None = None,
) -> list[Leaderboard]:
    """One Leaderboard per (experiment, evaluation set) of the selected runs on the current split."""
    metrics = check_options(metrics, test, correction, alpha)
    selection = selection or select.Selection()
    store = store if store is not None else RunStore()
    runs = store.runs(dataset)
    if not runs:
        raise BenchError(f"No stored runs for dataset '{dataset}'; run `bench run --dataset {dataset} --methods ...` first.")
    runs = select.select(runs, selection)
    if not runs:
        raise BenchError(
            f"No stored run of dataset '{dataset}' matches {selection.describe()}; "
            f"`bench leaderboard --dataset {dataset}` shows every table with its rows' labels."
        )
    split_hash, runs = select.current_split(runs, dataset, split_hash)
    boards, tables = [], []
    for experiment, in_experiment in select.experiment_groups(runs, selection.name):
        for (limit_test, n_test), group in select.evaluation_sets(in_experiment):
            data = [load_row(g, metrics) for g in select.config_groups(group)]
            records = [d.record for d in data]
            shared = labels.shared_overrides(records)
            for d, label in zip(data, labels.table_labels(records, shared)):
                d.label = label
            data.sort(key=lambda d: (d.label, d.record.get("config_key") or ""))
            rows = make_rows(data, metrics)
            comparisons = [c for m in metrics for c in compare(data, rows, m, test, correction, alpha, seed, n_resamples)]
            mark(rows, comparisons, metrics)
            boards.append(
                Leaderboard(
                    dataset,
                    split_hash,
                    limit_test,
                    n_test,
                    metrics,
                    test,
                    correction,
                    alpha,
                    seed,
                    n_resamples,
                    baseline,
                    rows,
                    comparisons,
                    shared,
                    experiment,
                )  # fmt: skip
            )
            tables.append(data)
    if baseline is not None:
        found = False
        for board, data in zip(boards, tables):
            base = labels.baseline_row(board, baseline)
            if base is not None:
                add_intervals(data, board.rows, base.config_key, metrics, seed, n_resamples)
                found = True
        if not found:
            known = ", ".join(sorted({r.label for b in boards for r in b.rows}))
            raise BenchError(f"Baseline '{baseline}' is not a row of the '{dataset}' leaderboard; choose one of {known}.")
    return boards
