"""Beyond-accuracy metrics from the stored top-K lists and the training split, with no rerun.

A run stores, per test sample, its top-50 item ids (`topk`, -1 pads a short list); only the first
k columns count, and only their valid (>= 0) ids. Popularity comes from the training split:

    pop(i)       number of training samples whose target is i: the interactions the sequential
                 models learn to predict (items seen only inside histories count 0)
    n_train      number of training samples (= sum of pop)

Per sample (one value per test sample, testable for significance like NDCG): avg_pop@K, tail@K,
novelty@K. Per run (one number over all lists): coverage@K, gini@K, pop_ratio@K; gini and
pop_ratio get a seeded bias-corrected bootstrap interval over test samples (bootstrap_interval),
coverage none (see there why). A table row's values over its seeds: bench.leaderboard.analyses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

METRICS: tuple[tuple[str, str], ...] = (
    ("coverage@K", "share of the catalogue shown in at least one top-K list"),
    ("avg_pop@K", "mean training popularity of the recommended items"),
    ("pop_ratio@K", "mean recommended popularity / mean popularity of the test targets"),
    ("tail@K", "share of the recommended items in the long tail"),
    ("novelty@K", "mean self-information -log2(pop / n_train) of the recommended items"),
    ("gini@K", "Gini coefficient of item exposure over the whole catalogue"),
)
TAIL_SHARE = 0.2  # the long tail holds this share of the training interactions
WITH_INTERVAL = ("gini@K", "pop_ratio@K")  # list-level metrics with a bootstrap interval; coverage has none


def metric_names(k: int) -> list[str]:
    return [name.replace("@K", f"@{k}") for name, _ in METRICS]


def item_popularity(train_targets, n_items: int) -> np.ndarray:
    """pop(i) = number of training samples whose target is i, for i in 0..n_items-1 (int64)."""
    return np.bincount(np.asarray(train_targets, dtype=np.int64), minlength=n_items)[:n_items]


def long_tail_mask(popularity, share: float = TAIL_SHARE) -> np.ndarray:
    """Boolean mask of the long-tail items: the least popular items holding `share` of the interactions.

    Sort the items by popularity ascending, ties by lower item id; walk that order and keep every
    item while the cumulative popularity / total stays <= share. Items with zero popularity add
    nothing to the sum, so they are always in the tail (all items are, when there is no interaction).
    """
    popularity = np.asarray(popularity, dtype=np.int64)
    total = popularity.sum()
    mask = np.ones(len(popularity), dtype=bool)
    if total == 0:
        return mask
    order = np.lexsort((np.arange(len(popularity)), popularity))  # last key sorts first
    # the cumulative sum only grows, so "while <= share" is the same as "every item with <= share"
    mask[order] = np.cumsum(popularity[order]) / total <= share
    return mask


def _valid_top(topk, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(the first k columns with pads replaced by item 0, mask of the real ids)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    items = np.asarray(topk, dtype=np.int64)[:, :k]
    valid = items >= 0
    return np.where(valid, items, 0), valid


def _mean_over_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row means of `values` over the valid cells; nan for a row with no valid cell."""
    counts = valid.sum(axis=1)
    sums = np.where(valid, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def average_popularity(topk, popularity, k: int) -> np.ndarray:
    """avg_pop@k(u) = (1 / |L_u|) sum_{i in L_u} pop(i), L_u the valid ids of u's first k; nan if L_u is empty."""
    items, valid = _valid_top(topk, k)
    return _mean_over_valid(np.asarray(popularity, dtype=np.float64)[items], valid)


def long_tail_share(topk, tail_mask, k: int) -> np.ndarray:
    """tail@k(u) = |{i in L_u : i in the long tail}| / |L_u|; nan if L_u is empty."""
    items, valid = _valid_top(topk, k)
    return _mean_over_valid(np.asarray(tail_mask, dtype=np.float64)[items], valid)


def novelty(topk, popularity, k: int, n_train: int) -> np.ndarray:
    """novelty@k(u) = (1 / |L_u|) sum_{i in L_u} -log2 p(i), p(i) = pop(i) / n_train; nan if L_u is empty.

    An item never seen as a training target gets p = 1 / (n_train + 1): slightly rarer than an item
    seen once, so it is the most novel, and the logarithm stays finite.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    p = np.where(popularity > 0, popularity / n_train, 1.0 / (n_train + 1))
    items, valid = _valid_top(topk, k)
    return _mean_over_valid(-np.log2(p)[items], valid)


def exposure_counts(topk, n_items: int, k: int) -> np.ndarray:
    """How many of the top-k lists show each catalogue item (pads ignored)."""
    items, valid = _valid_top(topk, k)
    return np.bincount(items[valid], minlength=n_items)[:n_items]


def coverage(topk, n_items: int, k: int) -> float:
    """coverage@k = |union of the valid top-k ids over all lists| / n_items."""
    return float(np.count_nonzero(exposure_counts(topk, n_items, k)) / n_items)


def gini(values) -> float:
    """G = sum_i (2i - n - 1) x_(i) / (n sum_i x_i), x sorted ascending, i = 1..n; nan when sum x = 0.

    0 when all x are equal; (n - 1) / n when a single x holds everything.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total == 0:
        return float("nan")
    weights = 2.0 * np.arange(1, n + 1) - n - 1
    return float(weights @ x / (n * total))


def gini_exposure(topk, n_items: int, k: int) -> float:
    """gini@k = gini(exposure counts of ALL n_items items), never-recommended items counting 0."""
    return gini(exposure_counts(topk, n_items, k))


def popularity_ratio(avg_pop_of_recs: float, avg_pop_of_targets: float) -> float:
    """pop_ratio = avg_pop_of_recs / avg_pop_of_targets: > 1 when the lists favour popular items; nan if the denominator is 0."""
    if avg_pop_of_targets == 0 or np.isnan(avg_pop_of_targets):
        return float("nan")
    return float(avg_pop_of_recs / avg_pop_of_targets)


def nanmean(values: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nan (or empty) gives nan, which is meant
        return float(np.nanmean(values))


@dataclass
class BeyondMetrics:
    k: int
    per_sample: dict[str, np.ndarray]  # avg_pop@k, tail@k, novelty@k: one value per test sample
    list_level: dict[str, float]  # coverage@k, gini@k, pop_ratio@k: one value per run

    def summary(self) -> dict[str, float]:
        """Every metric as one number (per-sample ones averaged over samples with a valid item), in METRICS order."""
        values = {**{name: nanmean(v) for name, v in self.per_sample.items()}, **self.list_level}
        return {name: values[name] for name in metric_names(self.k)}


def beyond_metrics(arrays, popularity, tail_mask, n_items: int, n_train: int, test_targets, k: int) -> BeyondMetrics:
    """All beyond-accuracy metrics of one run from its stored arrays (`StoredRun.arrays()`).

    `test_targets` are the split's test targets; `arrays["sample_index"]` picks the run's samples
    from them, so runs on a subset of the test set compare against their own targets.
    pop_ratio@k = mean over samples of avg_pop@k (samples with no valid item left out) / mean pop of the targets.
    """
    topk = arrays["topk"]
    targets = np.asarray(test_targets, dtype=np.int64)[arrays["sample_index"]]
    avg_pop = average_popularity(topk, popularity, k)
    per_sample = {
        f"avg_pop@{k}": avg_pop,
        f"tail@{k}": long_tail_share(topk, tail_mask, k),
        f"novelty@{k}": novelty(topk, popularity, k, n_train),
    }
    target_pop = nanmean(np.asarray(popularity, dtype=np.float64)[targets])
    list_level = {
        f"coverage@{k}": coverage(topk, n_items, k),
        f"gini@{k}": gini_exposure(topk, n_items, k),
        f"pop_ratio@{k}": popularity_ratio(nanmean(avg_pop), target_pop),
    }
    return BeyondMetrics(k=k, per_sample=per_sample, list_level=list_level)


def bootstrap_interval(
    list_metric, *per_sample_arrays, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """(low, high) bias-corrected (BC) bootstrap interval of a list-level metric over resampled
    test samples, or None when the resamples cannot give one.

    Each resample draws n row indices with replacement and calls list_metric on those rows of every
    array in `per_sample_arrays` (the same rows for all), e.g.
        bootstrap_interval(lambda t: gini_exposure(t, n_items, 10), topk)
        bootstrap_interval(lambda r, t: popularity_ratio(np.nanmean(r), t.mean()), avg_pop, target_pop)
    A list-level metric is not a mean over samples, and its resamples can sit off-centre around the
    value of the whole set; the BC interval (Efron 1987) shifts the percentiles by z0, the normal
    quantile of the share of resamples below that value (ties count half):
        low, high = percentiles Phi(2 z0 - z), Phi(2 z0 + z) of the resamples, z = Phi^-1((1 + confidence) / 2)
    It holds the value whenever |z0| <= z. When |z0| > z the value lies outside the central
    `confidence` share of its own resamples: the resamples do not describe its uncertainty and
    there is no interval (None). Coverage is such a metric: a resample repeats samples, so it
    almost always shows fewer distinct items than the whole set.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    arrays = [np.asarray(a) for a in per_sample_arrays]
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError(f"per-sample arrays must be non-empty and of equal length, got {[len(a) for a in arrays]}")
    estimate = float(list_metric(*arrays))
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for r in range(n_resamples):  # list-level metrics do not vectorise over resamples: one call each
        idx = rng.integers(0, n, size=n)
        values[r] = list_metric(*(a[idx] for a in arrays))
    values = values[np.isfinite(values)]
    if not values.size or not np.isfinite(estimate):
        return None
    below = np.mean(values < estimate) + 0.5 * np.mean(values == estimate)
    below = min(max(below, 0.5 / len(values)), 1.0 - 0.5 / len(values))  # a finite z0 when all lie on one side
    normal = NormalDist()
    z0, z = normal.inv_cdf(below), normal.inv_cdf((1.0 + confidence) / 2.0)
    if abs(z0) > z:
        return None
    low, high = np.percentile(values, [100.0 * normal.cdf(2 * z0 - z), 100.0 * normal.cdf(2 * z0 + z)])
    return float(low), float(high)
