"""Paired statistics over per-sample metric values (protocol section 6).

Two methods evaluated on the same test samples give two arrays a, b of equal length; every test
here works on the paired differences d = a - b. All randomness comes from numpy's default_rng(seed),
so a p-value or an interval is the same on every machine for the same seed.

    paired_pvalue(a, b, test)       "t" (paired t-test), "wilcoxon" (signed-rank),
                                    "randomization" (sign-flip permutation of the mean difference)
    adjust(pvalues, method)         "holm" (step-down), "bonferroni", "none"
    paired_bootstrap_ci(a, b)       percentile bootstrap of mean(a - b) over resampled samples
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
from scipy import stats as _scipy_stats

TESTS: dict[str, str] = {
    "t": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "randomization": "paired randomisation test",
}
CORRECTIONS: dict[str, str] = {
    "holm": "Holm correction",
    "bonferroni": "Bonferroni correction",
    "none": "no correction",
}
EXACT_MAX_N = 16  # 2**16 sign patterns: enumerating them is cheaper than resampling
_CHUNK_CELLS = 2_000_000  # resampled values held in memory at once


def _differences(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must be one-dimensional and of equal length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("paired arrays are empty")
    return a - b


def paired_pvalue(a, b, test: str = "t", seed: int = 0, n_resamples: int = 10_000, exact: bool | None = None) -> float:
    """Two-sided p-value that a and b (paired per-sample values) have the same mean.

    Identical arrays give 1.0 under every test. `exact` only concerns the randomisation test:
    None enumerates every sign flip when at most EXACT_MAX_N differences are non-zero, and
    resamples otherwise.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    d = _differences(a, b)
    if not d.any():
        return 1.0
    if test == "t":
        return _ttest_pvalue(a, b, d)
    if test == "wilcoxon":
        return float(_scipy_stats.wilcoxon(a, b).pvalue)
    return randomization_pvalue(d, seed=seed, n_resamples=n_resamples, exact=exact)


def _ttest_pvalue(a, b, d: np.ndarray) -> float:
    if np.all(d == d[0]):
        # the same non-zero difference on every sample: zero variance, an infinite t statistic
        return 0.0
    with warnings.catch_warnings():
        # nearly-constant differences trigger a precision warning; the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        p = _scipy_stats.ttest_rel(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).pvalue
    return 1.0 if np.isnan(p) else float(p)


def randomization_pvalue(d, seed: int = 0, n_resamples: int = 10_000, exact: bool | None = None) -> float:
    """Sign-flip permutation test of mean(d) = 0, two-sided.

    Exact: the share of all 2^m sign patterns (m non-zero differences; zeros do not change under a
    flip) whose |sum| is at least the observed |sum|. Resampled: (hits + 1) / (n_resamples + 1).
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0
    observed = abs(d.sum())
    # sums are compared with a tolerance so that a pattern equal to the observed one always counts
    threshold = observed - 1e-12 * np.abs(d).sum()
    if exact is None:
        exact = len(d) <= EXACT_MAX_N
    if exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) >= threshold))
    rng = np.random.default_rng(seed)
    total = d.sum()
    hits = 0
    for size in _chunks(n_resamples, len(d)):
        flipped = rng.random((size, len(d))) < 0.5
        # flipping the signs of a subset S changes the sum to total - 2 * sum(d[S])
        sums = total - 2.0 * (flipped @ d)
        hits += int(np.count_nonzero(np.abs(sums) >= threshold))
    return (hits + 1) / (n_resamples + 1)


def _chunks(n_resamples: int, n: int):
    """Resample counts per chunk, so that a chunk holds about _CHUNK_CELLS values."""
    per_chunk = max(1, _CHUNK_CELLS // max(n, 1))
    done = 0
    while done < n_resamples:
        size = min(per_chunk, n_resamples - done)
        yield size
        done += size


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Sorted ascending, p_(i) becomes max_{j <= i} min(1, (m - j + 1) p_(j)) (1-based j).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def bonferroni(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    return np.minimum(1.0, p * len(p))


def adjust(pvalues, method: str = "holm") -> np.ndarray:
    """Adjust a family of p-values for multiple comparisons: "holm", "bonferroni" or "none"."""
    if method == "holm":
        return holm(pvalues)
    if method == "bonferroni":
        return bonferroni(pvalues)
    if method == "none":
        return np.asarray(pvalues, dtype=np.float64).copy()
    raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")


def paired_bootstrap_ci(a, b, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a - b), low, high): percentile bootstrap interval over resampled sample indices."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    d = _differences(a, b)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    done = 0
    for size in _chunks(n_resamples, len(d)):
        idx = rng.integers(0, len(d), size=(size, len(d)))
        means[done : done + size] = d[idx].mean(axis=1)
        done += size
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(d.mean()), float(low), float(high)
