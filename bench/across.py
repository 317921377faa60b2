"""Methods compared across datasets: mean ranks, the Friedman test, pairwise tests and the groups
a critical-difference diagram joins (Demšar 2006, JMLR 7; Benavoli, Corani & Mangili 2016, JMLR 17).

Input: one value per (method, dataset), e.g. each row's mean NDCG@10 on each dataset's test split.

    ranks        within each dataset, rank 1 = best; tied values share the mean of their ranks
    mean ranks   R_j = the average of method j's ranks over the N datasets
    Friedman     chi2_F = 12 N / (k (k + 1)) [sum_j R_j^2 - k (k + 1)^2 / 4], k - 1 degrees of
                 freedom, divided by the tie correction 1 - sum (t^3 - t) / (N k (k^2 - 1)) (t: the
                 sizes of the groups of tied values within a dataset; 1 without ties); and Iman and
                 Davenport's F_F = (N - 1) chi2_F / (N (k - 1) - chi2_F) with (k - 1, (k - 1)(N - 1))
                 degrees of freedom, which Demšar recommends as less conservative.

Pairwise tests. Following Benavoli et al. 2016 ("Should we really use post-hoc tests based on
mean-ranks?"), the pairs are NOT compared by their mean ranks (the Nemenyi test): whether A and B
differ would then depend on which other methods are in the table. Each pair is compared on its own
per-dataset values, by the Wilcoxon signed-rank test (bench.stats.paired_pvalue), or by the sign
test with few datasets, and the k (k - 1) / 2 p-values are Holm-corrected together. With
test="auto" the Wilcoxon test is used from 6 datasets and the sign test below: with N datasets
neither two-sided test can give a p-value under 2 / 2^N, so below 6 datasets (2/32 = 0.0625) no pair
can reach 0.05 with either, and the sign test, which uses only the direction of each difference
(sizes of differences on datasets of different scales are hard to compare), is the honest choice;
the summary then says that no pair can be significant.

Groups for the critical-difference diagram: the methods in order of mean rank, and each maximal run
of consecutive methods in which no pair differs significantly (Holm-adjusted p >= alpha). A run of
one method is not a group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from bench import stats

PAIR_TESTS = ("auto", "wilcoxon", "sign")
WILCOXON_FROM = 6  # datasets; below, test="auto" uses the sign test


@dataclass(frozen=True)
class PairComparison:
    better: str  # the method with the lower mean rank
    worse: str
    wins: int  # datasets where `better` has the better value
    losses: int
    ties: int
    pvalue: float
    adjusted: float  # Holm
    significant: bool


@dataclass(frozen=True)
class AcrossDatasets:
    methods: tuple[str, ...] = ()  # in order of mean rank, best first
    datasets: tuple[str, ...] = ()
    ranks: dict[str, dict[str, float]] = field(default_factory=dict)  # dataset -> method -> rank
    mean_ranks: dict[str, float] = field(default_factory=dict)
    friedman_chi2: float = float("nan")
    friedman_pvalue: float = float("nan")
    iman_davenport_f: float = float("nan")
    iman_davenport_pvalue: float = float("nan")
    test: str = ""  # "wilcoxon" or "sign"
    alpha: float = 0.05
    pairs: tuple[PairComparison, ...] = ()
    cliques: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = ()
    reason: str | None = None  # why there is no summary; None when there is one

    @property
    def available(self) -> bool:
        return self.reason is None


def rank_rows(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Ranks within each row (dataset) of an (N, k) array: 1 = best, ties averaged."""
    values = np.asarray(values, dtype=np.float64)
    return scipy_stats.rankdata(-values if higher_is_better else values, axis=1)


def friedman(ranks: np.ndarray) -> tuple[float, float, float, float]:
    """(chi2_F, its p-value, Iman-Davenport F_F, its p-value) from an (N, k) array of ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    n, k = ranks.shape
    mean = ranks.mean(axis=0)
    chi2 = 12.0 * n / (k * (k + 1)) * (np.sum(mean**2) - k * (k + 1) ** 2 / 4.0)
    tied = sum(float(np.sum(c**3 - c)) for c in (np.unique(row, return_counts=True)[1] for row in ranks))
    correction = 1.0 - tied / (n * k * (k * k - 1))
    if correction <= 0.0:  # every dataset ties every method: no evidence of any difference
        return 0.0, 1.0, 0.0, 1.0
    chi2 = max(0.0, chi2 / correction)
    p = float(scipy_stats.chi2.sf(chi2, k - 1))
    denominator = n * (k - 1) - chi2
    if denominator <= 0.0:
        return float(chi2), p, float("inf"), 0.0
    f = (n - 1) * chi2 / denominator
    return float(chi2), p, float(f), float(scipy_stats.f.sf(f, k - 1, (k - 1) * (n - 1)))


def sign_test(a, b) -> float:
    """Two-sided exact sign test of paired values; ties are left out."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
    if wins + losses == 0:
        return 1.0
    return float(scipy_stats.binomtest(wins, wins + losses, 0.5).pvalue)


def cliques(order: list[str], different: set[frozenset]) -> tuple[tuple[str, ...], ...]:
    """Maximal runs of consecutive methods of `order` with no pair in `different`; runs of two or more."""
    runs = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and all(frozenset((order[i], order[end + 1])) not in different for i in range(start, end + 1)):
            end += 1
        if end > start and not any(s <= start and end <= e for s, e in runs):
            runs.append((start, end))
    return tuple(tuple(order[start : end + 1]) for start, end in runs)


def _complete(values: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[str], list[str]]:
    """Methods, the datasets every method has a finite value on, and notes on those left out."""
    methods = list(values)
    datasets = list(dict.fromkeys(d for per in values.values() for d in per))
    kept, notes = [], []
    for dataset in datasets:
        missing = [m for m in methods if not np.isfinite(values[m].get(dataset, np.nan))]
        if missing:
            notes.append(f"{dataset} is left out: {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no value there.")
        else:
            kept.append(dataset)
    return methods, kept, notes


def _absent(reason: str, notes: list[str]) -> AcrossDatasets:
    return AcrossDatasets(reason=reason, notes=tuple(notes))


def _pairwise(order, matrix, methods, test, alpha, higher_is_better) -> tuple[PairComparison, ...]:
    column = {m: i for i, m in enumerate(methods)}
    pairs = [(a, b) for i, a in enumerate(order) for b in order[i + 1 :]]
    found = []
    for a, b in pairs:
        x, y = matrix[:, column[a]], matrix[:, column[b]]
        d = (x - y) if higher_is_better else (y - x)
        p = stats.paired_pvalue(x, y, "wilcoxon") if test == "wilcoxon" else sign_test(x, y)
        found.append((a, b, int(np.sum(d > 0)), int(np.sum(d < 0)), int(np.sum(d == 0)), p))
    adjusted = stats.holm([f[-1] for f in found])
    return tuple(
        PairComparison(a, b, wins, losses, ties, float(p), float(q), bool(q < alpha))
        for (a, b, wins, losses, ties, p), q in zip(found, adjusted)
    )  # fmt: skip


def summarize_across(values: Mapping[str, Mapping[str, float]], higher_is_better: bool = True, alpha: float = 0.05,
                     test: str = "auto") -> AcrossDatasets:  # fmt: skip
    """The summary across datasets of {method: {dataset: value}}; with fewer than two datasets (or
    methods) holding a value for every method, an AcrossDatasets whose `reason` says why not."""
    if test not in PAIR_TESTS:
        raise ValueError(f"unknown pairwise test {test!r}; choose one of {', '.join(PAIR_TESTS)}")
    methods, datasets, notes = _complete(values)
    if len(methods) < 2:
        return _absent(f"The summary across datasets compares methods, and this table has {len(methods)}; it needs at least two.", notes)  # fmt: skip
    if len(datasets) < 2:
        which = f"only {len(datasets)} ({datasets[0]})" if datasets else "none"
        return _absent(
            f"The summary across datasets needs at least two datasets with a value for every method, and this experiment has "
            f"{which}, so mean ranks, the Friedman test and the critical-difference diagram are left out.",
            notes,
        )
    matrix = np.array([[values[m][d] for m in methods] for d in datasets], dtype=np.float64)
    ranks = rank_rows(matrix, higher_is_better)
    mean = dict(zip(methods, ranks.mean(axis=0).tolist()))
    order = sorted(methods, key=lambda m: (mean[m], methods.index(m)))
    chosen = test if test != "auto" else ("wilcoxon" if len(datasets) >= WILCOXON_FROM else "sign")
    pairs = _pairwise(order, matrix, methods, chosen, alpha, higher_is_better)
    floor = 2.0 / 2 ** len(datasets)
    if floor >= alpha:
        notes.append(
            f"With {len(datasets)} datasets no two-sided pairwise test can give a p-value below {floor:.4g}, which is not "
            f"below alpha {alpha:g}: no pair can differ significantly; add datasets."
        )
    chi2, p, f, pf = friedman(ranks)
    return AcrossDatasets(
        methods=tuple(order),
        datasets=tuple(datasets),
        ranks={d: dict(zip(methods, row.tolist())) for d, row in zip(datasets, ranks)},
        mean_ranks={m: mean[m] for m in order},
        friedman_chi2=chi2,
        friedman_pvalue=p,
        iman_davenport_f=f,
        iman_davenport_pvalue=pf,
        test=chosen,
        alpha=alpha,
        pairs=pairs,
        cliques=cliques(order, {frozenset((c.better, c.worse)) for c in pairs if c.significant}),
        notes=tuple(notes),
    )


def caption(summary: AcrossDatasets) -> str:
    """The sentence printed under the summary (or the reason it is absent)."""
    if not summary.available:
        return summary.reason or ""
    test = "Wilcoxon signed-rank tests" if summary.test == "wilcoxon" else "sign tests"
    return (
        f"Mean rank over {len(summary.datasets)} datasets (1 = best, ties averaged); Friedman chi2 = {summary.friedman_chi2:.3f} "
        f"(p = {summary.friedman_pvalue:.3g}), Iman-Davenport F = {summary.iman_davenport_f:.3f} (p = {summary.iman_davenport_pvalue:.3g}). "
        f"Pairs: {test} on the per-dataset values, Holm-corrected over {len(summary.pairs)} pairs at alpha {summary.alpha:g} "
        "(not the Nemenyi test on mean ranks, following Benavoli et al. 2016); joined methods do not differ significantly."
    )
