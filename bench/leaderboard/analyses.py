"""Analyses beside the accuracy table, each a list of plain records on the Leaderboard:
what a row cost, how much its ranking depends on the history, and who gets recommended.

    row_cost      mean fit and evaluation time, samples/s, GPU-hours, peak memory, parameters
    history_rows  the metric with the history removed, shuffled or cut (bench.history), its drop
                  with a corrected paired test and a bootstrap interval, the share of moved ranks
    beyond_rows   coverage, popularity, long tail, novelty and exposure Gini of the top-K lists
                  (bench.beyond), from the stored lists and the training split, no rerun
"""

from __future__ import annotations

import numpy as np

from bench import beyond, stats
from bench.evaluate import per_sample_metrics
from bench.history import CONDITIONS as HISTORY_CONDITIONS
from bench.leaderboard.align import align
from bench.leaderboard.model import CI_CONFIDENCE, Row
from bench.record import RunRecord

BEYOND_RESAMPLES = 1000  # list-level metrics are recomputed per resample: 1,000 keeps a table fast


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


def history_rows(data: list, rows: list[Row], metric: str, o) -> list[dict]:
    """Per row and history condition stored for every seed of the row: the metric, its difference
    from the full history (paired test, corrected over the table's row-condition pairs, and a
    bootstrap interval) and the share of samples whose target rank changed."""
    found = []
    for d, row in zip(data, rows):
        for condition in HISTORY_CONDITIONS:
            part = f"history_{condition}"
            if not all(run.has_part(part) for run in d.runs):
                continue
            full, under, changed = [], [], []
            for run in d.runs:
                base, other = run.arrays(), run.arrays(part)
                index, other_index = np.asarray(base["sample_index"]), np.asarray(other["sample_index"])
                full.append(align(index, per_sample_metrics(base["rank"])[metric], d.sample_index))
                under.append(align(other_index, per_sample_metrics(other["rank"])[metric], d.sample_index))
                moved = align(other_index, other["rank"], d.sample_index) != align(index, base["rank"], d.sample_index)
                changed.append(float(moved.mean()))
            a, b = np.mean(under, axis=0), np.mean(full, axis=0)
            diff, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=o.n_resamples, confidence=CI_CONFIDENCE, seed=o.seed)
            p = stats.paired_pvalue(a, b, o.test, seed=o.seed, n_resamples=o.n_resamples)
            found.append(dict(letter=row.letter, label=row.label, condition=condition, full=float(b.mean()), mean=float(a.mean()),
                              diff=float(diff), low=float(low), high=float(high), p=float(p), changed=float(np.mean(changed))))  # fmt: skip
    adjusted = stats.adjust([e["p"] for e in found], o.correction) if found else []
    for entry, p_adj in zip(found, adjusted):
        entry.update(p_adjusted=float(p_adj), significant=bool(p_adj < o.alpha))
    return found


def beyond_rows(data, rows: list[Row], split, k: int, o) -> list[dict]:
    """Per row: bench.beyond.row_metrics of its seeds' stored lists."""
    popularity = beyond.item_popularity(split.train.targets, len(split.items))
    tail = beyond.long_tail_mask(popularity)
    found = []
    for d, row in zip(data, rows):
        values, intervals = beyond.row_metrics([run.arrays() for run in d.runs], popularity, tail, len(split.items),
                                               len(split.train), split.test.targets, k, BEYOND_RESAMPLES, o.seed)  # fmt: skip
        found.append(dict(letter=row.letter, label=row.label, k=k, values=values,
                          intervals={n: [float(x) for x in iv] for n, iv in intervals.items()}))  # fmt: skip
    return found
