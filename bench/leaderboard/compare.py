"""Building the tables: per-sample metrics of each row (averaged over its seeds), every pair of
rows tested on the samples they share, p-values of a metric corrected together, and paired
bootstrap intervals against a baseline row.

    store ── Source.scan (once) ── choose (selection, split) ── per experiment and evaluation set:
        configurations (or the validation-best one per method) ── rows ── analyses ── tests ── intervals

A cell carries the letters of the rows it beats; the best mean of a column is marked.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import labels, stats
from bench.errors import BenchError
from bench.labels import run_label
from bench.leaderboard import select
from bench.leaderboard.analyses import beyond_rows, history_rows
from bench.leaderboard.model import CI_CONFIDENCE, Comparison, Interval, Leaderboard, Row
from bench.leaderboard.options import LeaderboardOptions
from bench.leaderboard.paper import power_rows, published_rows
from bench.leaderboard.rows import RowData, family_pairs, load_row, make_rows, paired
from bench.leaderboard.source import Chosen, Source, choose
from bench.record import RunRecord
from bench.store import RunStore

__all__ = ["build_leaderboards", "build_tables", "leaderboards_of"]


def compare(data, rows, metric, o: LeaderboardOptions, base: int | None = None) -> list[Comparison]:
    """Every pair of rows on one metric (or, with `base`, each row against that row), corrected
    together; the winner has the higher mean."""
    pairs = family_pairs(len(rows), base)
    found = []
    for i, j in pairs:
        a, b = paired(data[i], data[j], metric)
        found.append((a.mean() - b.mean(), stats.paired_pvalue(a, b, o.test, seed=o.seed, n_resamples=o.n_resamples)))
    adjusted = stats.adjust([p for _, p in found], o.correction)
    comparisons = []
    for (i, j), (diff, p), p_adj in zip(pairs, found, adjusted):
        winner = None
        if p_adj < o.alpha and diff != 0:
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


def add_intervals(data, rows, base_key: str, o: LeaderboardOptions) -> None:
    base = next((k for k, r in enumerate(rows) if r.config_key == base_key), None)
    if base is None:
        return
    for k, row in enumerate(rows):
        if k == base:
            continue
        for m in o.metrics:
            a, b = paired(data[k], data[base], m)
            diff, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=o.n_resamples, confidence=CI_CONFIDENCE, seed=o.seed)
            row.cells[m].vs_baseline = Interval(diff, low, high)


def _naming(record: RunRecord, chosen: dict) -> RunRecord:
    """The record with the chosen values among its overrides, so its label names them."""
    overrides = record.overrides | chosen
    return dataclasses.replace(record, overrides=overrides, label=run_label(record.method, overrides))


def _labelled_rows(configs, metrics: list[str], varied: dict | None) -> tuple[list[RowData], dict]:
    """Each configuration's row, labelled without the settings every row shares, in label order."""
    data = [load_row(g, metrics) for g in configs]
    records = [d.record for d in data]
    if varied:  # a chosen configuration's label names the values chosen, defaults included
        records = [_naming(r, varied.get(r.config_key or r.key, {})) for r in records]
    shared = labels.shared_overrides(records)
    for d, record, label in zip(data, records, labels.table_labels(records, shared)):
        d.label = label
        d.runs = [type(d.runs[0])(d.runs[0].folder, record)] + d.runs[1:]
    data.sort(key=lambda d: (d.label, d.record.config_key or ""))
    return data, shared


def _table(configs, o: LeaderboardOptions, head: dict, split, varied: dict | None = None, **fields):
    """One table from its rows' runs (one list of seeds per configuration)."""
    metrics = list(o.metrics)
    published = [r.metric for r in o.references if r.metric not in metrics]  # compared, not shown as columns
    data, shared = _labelled_rows(configs, metrics + list(dict.fromkeys(published)), varied)
    rows = make_rows(data, metrics)
    board = Leaderboard(**head, metrics=metrics, test=o.test, correction=o.correction, alpha=o.alpha, seed=o.seed,
                        n_resamples=o.n_resamples, baseline=o.baseline, rows=rows, comparisons=[], shared=shared,
                        pairs=o.pairs, show_cost=o.cost, target_effect=o.target_effect, **fields)  # fmt: skip
    if o.references:
        board.published, board.published_notes = published_rows(data, rows, o.references)
    if o.history:
        board.history_metric = metrics[0]
        board.history = history_rows(data, rows, metrics[0], o)
    if o.beyond is not None and split is not None:
        board.beyond = beyond_rows(data, rows, split, o)
    base = None
    if o.pairs == "baseline":
        named = labels.baseline_row(board, o.baseline)
        if named is None:
            board.notes.append(f"No row is {o.baseline}: no tests in this table.")
            board.power_note = "No row is the baseline, so no pair is tested and there are no minimum detectable effects." if o.power else ""  # fmt: skip
            return board, data
        base = rows.index(named)
    board.comparisons = [c for m in metrics for c in compare(data, rows, m, o, base)]
    if o.power:
        board.power, board.power_note = power_rows(data, rows, metrics, o, base)
    mark(rows, board.comparisons, metrics)
    return board, data


def _views(configs, o: LeaderboardOptions) -> list[tuple]:
    """(configurations, chosen settings, view, notes) of the tables of one evaluation set: every
    configuration, or the validation-best one per method, or both."""
    views = []
    if o.select_on == "valid":
        chosen, varied, notes = select.choose_on_valid(configs, o.select_metric)
        views.append((chosen, varied, f"configurations chosen on validation {o.select_metric}", notes))
    if o.select_on is None or o.all_configs:
        views.append((configs, None, "every configuration" if o.select_on else "", []))
    return views


def build_tables(chosen: Chosen, options: LeaderboardOptions, split=None) -> list[Leaderboard]:
    """One Leaderboard per (experiment, evaluation set, view) of the chosen runs; beyond-accuracy
    metrics when options.beyond is set and the split is given."""
    boards, tables = [], []
    for experiment, in_experiment in select.experiment_groups(chosen.runs, options.selection.name):
        for (choice, n_test), group in select.evaluation_sets(in_experiment):
            head = dict(dataset=chosen.dataset, split_hash=chosen.split_hash, limit_test=choice.limit, n_samples=n_test)
            fields = dict(experiment=experiment, test_subset=choice.as_record())
            for configs, varied, view, notes in _views(select.config_groups(group), options):
                board, data = _table(configs, options, head, split, varied, view=view, notes=list(notes), **fields)
                boards.append(board)
                tables.append(data)
    if options.baseline is not None:
        _baseline_intervals(boards, tables, options, chosen.dataset)
    return boards


def _baseline_intervals(boards, tables, o: LeaderboardOptions, dataset: str) -> None:
    """Each table's rows against its own baseline row; a baseline that is no row of any table is an error."""
    found = False
    for board, data in zip(boards, tables):
        base = labels.baseline_row(board, o.baseline)
        if base is not None:
            add_intervals(data, board.rows, base.config_key, o)
            found = True
    if not found:
        known = ", ".join(sorted({r.label for b in boards for r in b.rows}))
        raise BenchError(f"Baseline '{o.baseline}' is not a row of the '{dataset}' leaderboard; choose one of {known}.")


def leaderboards_of(source: Source, options: LeaderboardOptions) -> list[Leaderboard]:
    """The tables of a scanned store; the prepared split is loaded when beyond-accuracy metrics
    are asked for, and must be the one the runs were scored on."""
    chosen = choose(source, options.selection)
    split = source.split(chosen.split_hash) if options.beyond is not None else None
    return build_tables(chosen, options, split)


def build_leaderboards(
    dataset: str, options: LeaderboardOptions | None = None, store: RunStore | None = None
) -> list[Leaderboard]:
    """One Leaderboard per (experiment, evaluation set) of the selected runs on the current split.
    With `select_on="valid"` each method is one row, its configuration chosen on the validation
    split (tests on test only); `all_configs` adds the table of every configuration after it."""
    return leaderboards_of(Source.scan(dataset, store), options if options is not None else LeaderboardOptions())
