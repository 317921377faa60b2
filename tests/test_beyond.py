"""Beyond-accuracy metrics on a tiny catalogue worked by hand.

Catalogue of 6 items, training targets [0,0,0,0,0, 1,1,1, 2, 3]:
    popularity = [5, 3, 1, 1, 0, 0], n_train = 10
Three top-3 lists (the last padded):
    A = [0, 1, 2]    B = [0, 2, 4]    C = [3, 0, -1]
"""

from __future__ import annotations

from math import log2

import numpy as np
import pytest
from conftest import make_split

from bench.beyond import (
    METRICS,
    average_popularity,
    beyond_metrics,
    bootstrap_interval,
    coverage,
    gini,
    gini_exposure,
    item_popularity,
    long_tail_mask,
    long_tail_share,
    metric_names,
    novelty,
    popularity_ratio,
)

TRAIN_TARGETS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 3])
POP = np.array([5, 3, 1, 1, 0, 0])
N_ITEMS, N_TRAIN = 6, 10
TOPK = np.array([[0, 1, 2], [0, 2, 4], [3, 0, -1]], dtype=np.int32)
# self-information -log2(p) per item: p = pop / 10, and 1 / 11 for the never-seen items 4 and 5
INFO = [log2(10 / 5), log2(10 / 3), log2(10), log2(10), log2(11), log2(11)]


def test_item_popularity_counts_training_targets():
    assert item_popularity(TRAIN_TARGETS, N_ITEMS).tolist() == POP.tolist()
    assert item_popularity([], 3).tolist() == [0, 0, 0]


def test_long_tail_mask():
    # ascending popularity, ties by id: item 4 (0), 5 (0), 2 (1), 3 (1), 1 (3), 0 (5)
    # cumulative interactions        0,     0,     1,     2,     5,    10   of 10
    # cumulative share               0,     0,    .1,    .2,    .5,   1.0  -> <= .2 for items 4, 5, 2, 3
    assert long_tail_mask(POP).tolist() == [False, False, True, True, True, True]
    # ties broken by id: two items of 1 out of 10 each, only the first fits under 10 %
    assert long_tail_mask([1, 1, 8], share=0.1).tolist() == [True, False, False]
    # no interactions at all: every item has zero popularity, so every item is in the tail
    assert long_tail_mask([0, 0]).all()


def test_average_popularity():
    # A: (5 + 3 + 1) / 3    B: (5 + 1 + 0) / 3    C: (1 + 5) / 2, the pad left out
    assert average_popularity(TOPK, POP, 3) == pytest.approx([3.0, 2.0, 3.0])


def test_long_tail_share():
    tail = long_tail_mask(POP)  # items 2, 3, 4, 5
    # A: only 2 -> 1/3    B: 2 and 4 -> 2/3    C: 3 of the two valid items -> 1/2
    assert long_tail_share(TOPK, tail, 3) == pytest.approx([1 / 3, 2 / 3, 1 / 2])


def test_novelty_with_smoothing_for_unseen_items():
    expected = [
        (INFO[0] + INFO[1] + INFO[2]) / 3,  # (1 + 1.737 + 3.322) / 3 = 2.0196
        (INFO[0] + INFO[2] + INFO[4]) / 3,  # (1 + 3.322 + 3.459) / 3 = 2.5938, item 4 unseen: p = 1/11
        (INFO[3] + INFO[0]) / 2,  # (3.322 + 1) / 2 = 2.1610
    ]
    assert novelty(TOPK, POP, 3, N_TRAIN) == pytest.approx(expected)
    # an unseen item is more novel than the rarest seen one, and finite
    assert np.isfinite(novelty([[4]], POP, 1, N_TRAIN)[0]) and INFO[4] > INFO[2]


def test_all_padding_list_gives_nan_and_is_ignored_by_list_metrics():
    padded = np.vstack([TOPK, [[-1, -1, -1]]])
    tail = long_tail_mask(POP)
    for values in (
        average_popularity(padded, POP, 3),
        long_tail_share(padded, tail, 3),
        novelty(padded, POP, 3, N_TRAIN),
    ):
        assert np.isnan(values[3]) and not np.isnan(values[:3]).any()
    assert coverage(padded, N_ITEMS, 3) == coverage(TOPK, N_ITEMS, 3)
    assert gini_exposure(padded, N_ITEMS, 3) == gini_exposure(TOPK, N_ITEMS, 3)


def test_coverage():
    # distinct valid items in the top-3: {0, 1, 2, 3, 4} -> 5 of 6
    assert coverage(TOPK, N_ITEMS, 3) == pytest.approx(5 / 6)


def test_gini_hand_cases():
    # uniform exposure: every item shown once
    assert gini_exposure([[0, 1, 2], [3, 4, 5]], N_ITEMS, 3) == pytest.approx(0.0)
    # one item takes all exposure: (n - 1) / n
    assert gini_exposure([[0], [0], [0]], N_ITEMS, 1) == pytest.approx(5 / 6)
    # tiny case: exposure per item 0..5 = [3, 1, 2, 1, 1, 0], sum 8; sorted [0, 1, 1, 1, 2, 3]
    # weights 2i - n - 1 for i = 1..6: -5, -3, -1, 1, 3, 5
    # sum = 0*-5 + 1*-3 + 1*-1 + 1*1 + 2*3 + 3*5 = 18 -> G = 18 / (6 * 8) = 0.375
    assert gini_exposure(TOPK, N_ITEMS, 3) == pytest.approx(0.375)
    assert np.isnan(gini([0, 0, 0]))  # nothing shown: undefined


def test_k_smaller_than_list_width():
    # top-2: A = [0, 1], B = [0, 2], C = [3, 0]
    assert average_popularity(TOPK, POP, 2) == pytest.approx([4.0, 3.0, 3.0])
    assert long_tail_share(TOPK, long_tail_mask(POP), 2) == pytest.approx([0.0, 0.5, 0.5])
    assert novelty(TOPK, POP, 2, N_TRAIN) == pytest.approx(
        [(INFO[0] + INFO[1]) / 2, (INFO[0] + INFO[2]) / 2, (INFO[3] + INFO[0]) / 2]
    )
    assert coverage(TOPK, N_ITEMS, 2) == pytest.approx(4 / 6)
    # exposure [3, 1, 1, 1, 0, 0], sorted [0, 0, 1, 1, 1, 3], sum 6: (-1 + 1 + 3 + 15) / (6 * 6) = 0.5
    assert gini_exposure(TOPK, N_ITEMS, 2) == pytest.approx(0.5)
    # k beyond the stored width uses what is there
    assert coverage(TOPK, N_ITEMS, 50) == coverage(TOPK, N_ITEMS, 3)
    with pytest.raises(ValueError):
        coverage(TOPK, N_ITEMS, 0)


def test_popularity_ratio():
    assert popularity_ratio(8 / 3, 3.0) == pytest.approx(8 / 9)
    assert np.isnan(popularity_ratio(2.0, 0.0))


def test_beyond_metrics_of_one_run():
    # the run scored test samples 2, 0, 3 of four; their targets 1, 2, 0 have popularity 3, 1, 5 (mean 3)
    arrays = {"sample_index": np.array([2, 0, 3]), "rank": np.array([0, -1, 1]), "topk": TOPK, "invalid": np.zeros(3)}
    result = beyond_metrics(arrays, POP, long_tail_mask(POP), N_ITEMS, N_TRAIN, np.array([2, 5, 1, 0]), k=3)
    assert result.per_sample["avg_pop@3"] == pytest.approx([3.0, 2.0, 3.0])
    summary = result.summary()
    assert list(summary) == metric_names(3) == ["coverage@3", "avg_pop@3", "pop_ratio@3", "tail@3", "novelty@3", "gini@3"]
    # mean recommended popularity (3 + 2 + 3) / 3 = 8/3, over the targets' mean 3
    assert summary["pop_ratio@3"] == pytest.approx(8 / 9)
    assert summary["avg_pop@3"] == pytest.approx(8 / 3)
    assert summary["tail@3"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert summary["coverage@3"] == pytest.approx(5 / 6)
    assert summary["gini@3"] == pytest.approx(0.375)


def test_metrics_names_have_descriptions():
    assert [name for name, _ in METRICS] == ["coverage@K", "avg_pop@K", "pop_ratio@K", "tail@K", "novelty@K", "gini@K"]
    assert all(description for _, description in METRICS)


def _skewed_run(n_samples: int = 200, n_items: int = 40, k: int = 10, seed: int = 1):
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    topk = np.array([rng.choice(n_items, size=k, replace=False, p=weights / weights.sum()) for _ in range(n_samples)])
    return topk, n_items, k


def test_bootstrap_interval_is_seeded_and_contains_the_estimate():
    topk, n_items, k = _skewed_run()

    def gini_of(rows):
        return gini_exposure(rows, n_items, k)

    first = bootstrap_interval(gini_of, topk, n_resamples=300, seed=7)
    assert first == bootstrap_interval(gini_of, topk, n_resamples=300, seed=7)
    assert first != bootstrap_interval(gini_of, topk, n_resamples=300, seed=8)
    low, high = first
    assert low < gini_of(topk) < high

    popularity = np.arange(n_items)[::-1].astype(np.int64)  # item 0 most popular
    avg_pop = average_popularity(topk, popularity, k)
    target_pop = popularity[np.random.default_rng(2).integers(0, n_items, size=len(topk))].astype(np.float64)

    def ratio_of(recs, targets):
        return popularity_ratio(recs.mean(), targets.mean())

    low, high = bootstrap_interval(ratio_of, avg_pop, target_pop, n_resamples=300, confidence=0.9, seed=0)
    assert low < ratio_of(avg_pop, target_pop) < high

    with pytest.raises(ValueError):
        bootstrap_interval(ratio_of, avg_pop, target_pop[:-1])


def test_on_a_prepared_split():
    split = make_split(n_items=30, n_train=60, n_test=10)
    n_items = len(split.items)
    popularity = item_popularity(split.train.targets, n_items)
    assert popularity.sum() == len(split.train.targets) == 60
    # test sample i recommends items i % 5 and (i + 1) % 5, then two pads: items 0..4 shown 4 times each
    topk = np.full((10, 50), -1, dtype=np.int32)
    topk[:, 0] = np.arange(10) % 5
    topk[:, 1] = (np.arange(10) + 1) % 5
    assert coverage(topk, n_items, 10) == pytest.approx(5 / 30)
    # 25 zeros then five 4s: weights 2i - 31 for i = 26..30 are 21, 23, 25, 27, 29 (sum 125)
    # G = 4 * 125 / (30 * 20) = 5/6, i.e. 1 - 5/30 for equal exposure of 5 items out of 30
    assert gini_exposure(topk, n_items, 10) == pytest.approx(5 / 6)

    arrays = {"sample_index": np.arange(10), "rank": np.full(10, -1), "topk": topk, "invalid": np.zeros(10)}
    result = beyond_metrics(arrays, popularity, long_tail_mask(popularity), n_items, 60, split.test.targets, k=10)
    by_hand = [(popularity[i % 5] + popularity[(i + 1) % 5]) / 2 for i in range(10)]
    assert result.per_sample["avg_pop@10"] == pytest.approx(by_hand)
    assert result.list_level["pop_ratio@10"] == pytest.approx(np.mean(by_hand) / popularity[split.test.targets].mean())


def test_no_interval_when_the_resamples_do_not_bracket_the_value():
    n_items, k = 2000, 10
    topk = np.random.default_rng(3).integers(0, n_items, size=(200, k))  # 2,000 shown out of a large catalogue

    def coverage_of(rows):
        return coverage(rows, n_items, k)

    # a resample repeats lists and so shows fewer distinct items: every resample lies below the value,
    # and a percentile interval would exclude it; the bias-corrected bootstrap gives none
    rng = np.random.default_rng(0)
    below = [coverage_of(topk[rng.integers(0, len(topk), len(topk))]) < coverage_of(topk) for _ in range(50)]
    assert all(below)
    assert bootstrap_interval(coverage_of, topk, n_resamples=300, seed=0) is None
    # the same list for every sample: every resample equals the value
    same = np.tile(topk[:1], (len(topk), 1))
    assert (
        bootstrap_interval(lambda rows: gini_exposure(rows, n_items, k), same, n_resamples=50)
        == (pytest.approx(gini_exposure(same, n_items, k)),) * 2
    )


def test_the_bias_corrected_interval_of_a_maximum_ends_at_it():
    # max of a resample of 0..19 is 19 with probability 1 - (19/20)^20 = 0.64, else below: the
    # value sits at the 68th percentile of its resamples (ties count half), z0 = 0.47, and the
    # interval runs from the 16th to the 99.8th percentile, which is the maximum itself
    values = np.arange(20.0)
    low, high = bootstrap_interval(lambda x: x.max(), values, n_resamples=2000, seed=1)
    assert high == 19.0 and 15.0 <= low < 19.0
