"""Analyses beside the accuracy table, each a list of plain records on the Leaderboard:
what a row cost, how much its ranking depends on the history, and who gets recommended.

    row_cost      mean fit and evaluation time, samples/s, GPU-hours, peak memory, parameters
    history_rows  the metric with the history removed, shuffled or cut (bench.history), its drop
                  with a corrected paired test and a bootstrap interval, the share of moved ranks
    beyond_rows   coverage, popularity, long tail, novelty and exposure Gini of the top-K lists
                  (bench.beyond), from the stored lists and the training split, no rerun
"""

from __future__ import annotations

import warnings

import numpy as np

from bench import beyond, stats
from bench.evaluate import per_sample_metrics
from bench.history import CONDITIONS
from bench.leaderboard.align import align
from bench.leaderboard.model import CI_CONFIDENCE, Row
from bench.record import RunRecord


def row_cost(records: list[RunRecord]) -> dict:
    """Mean times over the row's seeds, summed GPU-hours, the largest peak memory, parameters."""

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    info = records[0].info
    rates = [r.n_test / r.timing.recommend_s for r in records if r.timing.recommend_s]
    peaks = [r.resources.peak_gpu_mb if r.resources.peak_gpu_mb is not None else r.resources.peak_rss_mb for r in records]
    hours = [r.resources.gpu_hours for r in records]
    return {
        "fit_s": mean([r.timing.fit_s for r in records]),
        "recommend_s": mean([r.timing.recommend_s for r in records]),
        "total_s": mean([r.timing.total_s for r in records]),
        "samples_per_s": mean(rates),
        "gpu_hours": sum(h for h in hours if h is not None) if any(h is not None for h in hours) else None,
        "peak_mb": max((p for p in peaks if p is not None), default=None),
        "parameters": info.get("trainable_parameters", info.get("parameters")),
        "device": records[0].provenance.device,
    }


def _condition(d, metric: str, part: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(metric under the condition, with the full history: both per sample averaged over seeds,
    on the row's samples; share of samples whose target rank moved, averaged over seeds)."""
    full, under, changed = [], [], []
    for run in d.runs:
        base, other = run.arrays(), run.arrays(part)
        index, other_index = np.asarray(base["sample_index"]), np.asarray(other["sample_index"])
        full.append(align(index, per_sample_metrics(base["rank"])[metric], d.sample_index))
        under.append(align(other_index, per_sample_metrics(other["rank"])[metric], d.sample_index))
        moved = align(other_index, other["rank"], d.sample_index) != align(index, base["rank"], d.sample_index)
        changed.append(float(moved.mean()))
    return np.mean(under, axis=0), np.mean(full, axis=0), float(np.mean(changed))


def history_rows(data: list, rows: list[Row], metric: str, o) -> list[dict]:
    """Per row and history condition stored for every seed of the row: the metric, its difference
    from the full history (paired test, corrected over the table's row-condition pairs, and a
    bootstrap interval) and the share of samples whose target rank changed."""
    found = []
    for d, row in zip(data, rows):
        for condition in CONDITIONS:
            part = f"history_{condition}"
            if not all(run.has_part(part) for run in d.runs):
                continue
            a, b, changed = _condition(d, metric, part)
            diff, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=o.n_resamples, confidence=CI_CONFIDENCE, seed=o.seed)
            p = stats.paired_pvalue(a, b, o.test, seed=o.seed, n_resamples=o.n_resamples)
            found.append(dict(letter=row.letter, label=row.label, condition=condition, full=float(b.mean()), mean=float(a.mean()),
                              diff=float(diff), low=float(low), high=float(high), p=float(p), changed=changed))  # fmt: skip
    adjusted = stats.adjust([e["p"] for e in found], o.correction) if found else []
    for entry, p_adj in zip(found, adjusted):
        entry.update(p_adjusted=float(p_adj), significant=bool(p_adj < o.alpha))
    return found


def beyond_rows(data, rows: list[Row], split, o) -> list[dict]:
    """Per row: the beyond-accuracy metrics at K = o.beyond of its seeds' stored lists."""
    popularity = beyond.item_popularity(split.train.targets, len(split.items))
    tail = beyond.long_tail_mask(popularity)
    found = []
    for d, row in zip(data, rows):
        values, intervals = row_metrics([run.arrays() for run in d.runs], popularity, tail, len(split.items), len(split.train),
                                        split.test.targets, o.beyond, o.beyond_resamples, o.seed)  # fmt: skip
        found.append(dict(letter=row.letter, label=row.label, k=o.beyond, values=values,
                          intervals={n: [float(x) for x in iv] for n, iv in intervals.items()}))  # fmt: skip
    return found


def row_metrics(arrays: list[dict], popularity, tail_mask, n_items: int, n_train: int, test_targets, k: int,
                n_resamples: int = 1000, seed: int = 0) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:  # fmt: skip
    """One table row's metrics from the arrays of its seeds: each metric averaged over samples (per
    sample ones), then over seeds; gini and pop_ratio with a bias-corrected bootstrap interval that
    draws the same test samples for every seed (samples all seeds scored), left out when the
    resamples give none (bench.beyond.bootstrap_interval)."""
    targets = np.asarray(test_targets, dtype=np.int64)
    found = [beyond.beyond_metrics(a, popularity, tail_mask, n_items, n_train, targets, k) for a in arrays]
    values = {name: beyond.nanmean(np.asarray([m.summary()[name] for m in found])) for name in beyond.metric_names(k)}
    common = np.asarray(arrays[0]["sample_index"])
    for a in arrays[1:]:
        common = np.intersect1d(common, a["sample_index"])
    common = np.unique(common)
    tops = [align(np.asarray(a["sample_index"]), np.asarray(a["topk"]), common) for a in arrays]
    pops = [align(np.asarray(a["sample_index"]), m.per_sample[f"avg_pop@{k}"], common) for a, m in zip(arrays, found)]
    target_pop = np.asarray(popularity, dtype=np.float64)[targets[common]]
    metrics = {
        f"gini@{k}": (lambda *t: np.mean([beyond.gini_exposure(x, n_items, k) for x in t]), tops),
        f"pop_ratio@{k}": (
            lambda tp, *ps: np.mean([beyond.popularity_ratio(beyond.nanmean(p), beyond.nanmean(tp)) for p in ps]),
            [target_pop, *pops],
        ),
    }
    intervals = {}
    if len(common):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-padding resample has no mean
            for name, (fn, parts) in metrics.items():
                interval = beyond.bootstrap_interval(fn, *parts, n_resamples=n_resamples, seed=seed)
                if interval is not None:
                    intervals[name] = interval
    return values, intervals
