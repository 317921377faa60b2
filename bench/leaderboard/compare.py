"""Building the tables: per-sample metrics of each row (averaged over its seeds), every pair of
rows tested on the samples they share, p-values of a metric corrected together, and paired
bootstrap intervals against a baseline row.

    a cell carries the letters of the rows it beats; the best mean of a column is marked
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bench import labels, stats
from bench.errors import BenchError
from bench.evaluate import metric_names, per_sample_metrics
from bench.labels import run_label
from bench.leaderboard import select
from bench.leaderboard.align import align
from bench.leaderboard.analyses import beyond_rows, history_rows, row_cost
from bench.leaderboard.model import CI_CONFIDENCE, Cell, Comparison, Interval, Leaderboard, Row
from bench.record import RunRecord
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
    def record(self) -> RunRecord:
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
    label = runs[0].record.label
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
                method=d.record.method,
                config_key=d.record.config_key or d.runs[0].key,
                overrides=dict(d.record.overrides),
                seeds=[r.record.seed for r in d.runs],
                run_keys=[r.key for r in d.runs],
                cells=cells,
                cost=row_cost([r.record for r in d.runs]),
            )
        )
    return rows


def compare(data, rows, metric, test, correction, alpha, seed, n_resamples, base: int | None = None) -> list[Comparison]:
    """Every pair of rows on one metric (or, with `base`, each row against that row), corrected
    together; the winner has the higher mean."""
    if base is None:
        pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    else:
        pairs = [(min(i, base), max(i, base)) for i in range(len(rows)) if i != base]
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


PAIRS = ("all", "baseline")
SELECT_ON = ("valid",)


@dataclass
class Options:
    """How tables are built, beside which runs they show."""

    metrics: list[str]
    test: str = "t"
    correction: str = "holm"
    alpha: float = 0.05
    baseline: str | None = None
    seed: int = 0
    n_resamples: int = 10_000
    pairs: str = "all"
    select_on: str | None = None
    select_metric: str = "NDCG@10"
    all_configs: bool = False
    cost: bool = False
    history: bool = False
    beyond: int | None = None  # K of the beyond-accuracy metrics; None: not shown
    split: object = None  # the prepared split, loaded once when an analysis needs it


def _check_choices(o: Options) -> None:
    if o.pairs not in PAIRS:
        raise BenchError(
            f"Unknown family of tests '{o.pairs}'; choose all (every pair) or baseline (each row against --baseline)."
        )
    if o.pairs == "baseline" and o.baseline is None:
        raise BenchError("--pairs baseline compares each row with the baseline; name it with --baseline.")
    if o.select_on is not None and o.select_on not in SELECT_ON:
        raise BenchError(f"Configurations can be chosen on valid only, not '{o.select_on}' (never on test).")
    if o.select_metric.upper() not in metric_names():
        raise BenchError(f"Unknown metric '{o.select_metric}' to choose on; choose from {', '.join(metric_names())}.")
    o.select_metric = o.select_metric.upper()


def _split_for(board: Leaderboard):
    """The prepared split the board's runs were made on (popularity comes from its training part)."""
    from bench.data.prepare import is_prepared, load_split

    if not is_prepared(board.dataset):
        raise BenchError(f"Beyond-accuracy metrics need the prepared split; run `bench data prepare {board.dataset}` first.")
    split = load_split(board.dataset)
    if split.hash != board.split_hash:
        raise BenchError(
            f"The prepared '{board.dataset}' split ({split.hash}) is not the one these runs used ({board.split_hash}); "
            "prepare that split again, or show the runs of the current split."
        )
    return split


def _naming(record: RunRecord, chosen: dict) -> RunRecord:
    """The record with the chosen values among its overrides, so its label names them."""
    overrides = record.overrides | chosen
    return dataclasses.replace(record, overrides=overrides, label=run_label(record.method, overrides))


def _table(configs, metrics, o: Options, head: dict, varied: dict | None = None, **fields) -> tuple[Leaderboard, list[RowData]]:
    """One table from its rows' runs (one list of seeds per configuration)."""
    data = [load_row(g, metrics) for g in configs]
    records = [d.record for d in data]
    if varied:  # a chosen configuration's label names the values chosen, defaults included
        records = [_naming(r, varied.get(r.config_key or r.key, {})) for r in records]
    shared = labels.shared_overrides(records)
    for d, record, label in zip(data, records, labels.table_labels(records, shared)):
        d.label = label
        d.runs = [type(d.runs[0])(d.runs[0].folder, record)] + d.runs[1:]
    data.sort(key=lambda d: (d.label, d.record.config_key or ""))
    rows = make_rows(data, metrics)
    board = Leaderboard(**head, metrics=metrics, test=o.test, correction=o.correction, alpha=o.alpha, seed=o.seed,
                        n_resamples=o.n_resamples, baseline=o.baseline, rows=rows, comparisons=[], shared=shared,
                        pairs=o.pairs, show_cost=o.cost, **fields)  # fmt: skip
    if o.history:
        board.history_metric = metrics[0]
        board.history = history_rows(data, rows, metrics[0], o)
    if o.beyond is not None:
        o.split = o.split or _split_for(board)
        board.beyond = beyond_rows(data, rows, o.split, o.beyond, o)
    base = None
    if o.pairs == "baseline":
        named = labels.baseline_row(board, o.baseline)
        if named is None:
            board.notes.append(f"No row is {o.baseline}: no tests in this table.")
            return board, data
        base = rows.index(named)
    board.comparisons = [
        c for m in metrics for c in compare(data, rows, m, o.test, o.correction, o.alpha, o.seed, o.n_resamples, base)
    ]
    mark(rows, board.comparisons, metrics)
    return board, data


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
    pairs: str = "all",
    select_on: str | None = None,
    select_metric: str = "NDCG@10",
    all_configs: bool = False,
    cost: bool = False,
    history: bool = False,
    beyond: int | None = None,
) -> list[Leaderboard]:
    """One Leaderboard per (experiment, evaluation set) of the selected runs on the current split.
    With `select_on="valid"` each method is one row, its configuration chosen on the validation
    split (tests on test only); `all_configs` adds the table of every configuration after it."""
    metrics = check_options(metrics, test, correction, alpha)
    o = Options(
        metrics,
        test,
        correction,
        alpha,
        baseline,
        seed,
        n_resamples,
        pairs,
        select_on,
        select_metric,
        all_configs,
        cost,
        history,
        beyond,
    )
    _check_choices(o)
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
        for (choice, n_test), group in select.evaluation_sets(in_experiment):
            head = dict(dataset=dataset, split_hash=split_hash, limit_test=choice.limit, n_samples=n_test)
            fields = dict(experiment=experiment, test_subset=choice.as_record())
            configs = select.config_groups(group)
            views = []
            if o.select_on == "valid":
                chosen, varied, notes = select.choose_on_valid(configs, o.select_metric)
                views.append((chosen, varied, f"configurations chosen on validation {o.select_metric}", notes))
            if o.select_on is None or o.all_configs:
                views.append((configs, None, "every configuration" if o.select_on else "", []))
            for chosen, varied, view, notes in views:
                board, data = _table(chosen, metrics, o, head, varied, view=view, notes=list(notes), **fields)
                boards.append(board)
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
