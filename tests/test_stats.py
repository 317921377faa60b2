"""Paired tests, corrections and bootstrap intervals against hand formulas and scipy."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import stats


@pytest.fixture
def pair():
    rng = np.random.default_rng(7)
    a = rng.random(40)
    b = a - 0.05 + rng.normal(0.0, 0.1, size=40)
    return a, b


def test_ttest_matches_hand_formula(pair):
    a, b = pair
    d = a - b
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    expected = 2.0 * scipy_stats.t.sf(abs(t), df=len(d) - 1)
    assert stats.paired_pvalue(a, b, "t") == pytest.approx(expected, rel=1e-10)


def test_ttest_on_a_small_hand_example():
    # d = [1, 2, 3]: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3, df 2
    a = np.array([1.0, 2.0, 3.0])
    b = np.zeros(3)
    expected = 2.0 * scipy_stats.t.sf(2.0 * math.sqrt(3.0), df=2)
    assert stats.paired_pvalue(a, b, "t") == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(0.0742, abs=1e-4)


def test_wilcoxon_matches_scipy(pair):
    a, b = pair
    assert stats.paired_pvalue(a, b, "wilcoxon") == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue, rel=1e-12)


@pytest.mark.parametrize("test", list(stats.TESTS))
def test_identical_arrays_give_one_without_warnings(test):
    a = np.array([0.0, 0.5, 1.0, 0.25, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.paired_pvalue(a, a.copy(), test) == 1.0
        assert stats.paired_pvalue(np.zeros(30), np.zeros(30), test) == 1.0


def test_constant_nonzero_difference_is_certain_for_the_t_test():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.paired_pvalue(np.ones(50), np.zeros(50), "t") == 0.0


def test_randomization_exact_equals_enumeration():
    d = np.array([0.3, -0.1, 0.4, 0.2, 0.0, 0.5, -0.2, 0.1])
    observed = abs(d.sum())
    flips = [abs(np.dot(s, d)) for s in itertools.product((1, -1), repeat=len(d))]
    expected = sum(f >= observed - 1e-12 for f in flips) / len(flips)
    got = stats.paired_pvalue(d, np.zeros_like(d), "randomization")  # 7 non-zero: exact path
    assert got == pytest.approx(expected, abs=1e-15)
    assert stats.randomization_pvalue(d, exact=True) == got


def test_randomization_exact_hand_example():
    # d = [1, 2, 3]: the 8 signed sums are 6, 0, 2, -4, 4, -2, 0, -6; |sum| >= 6 twice -> 2 / 8
    assert stats.paired_pvalue([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], "randomization") == 0.25
    # d = [1, 1, 1, 1, 0]: the zero does not count; 2 of 16 patterns reach |sum| 4
    assert stats.randomization_pvalue([1.0, 1.0, 1.0, 1.0, 0.0]) == 2 / 16


def test_randomization_resampling_approaches_the_exact_value():
    rng = np.random.default_rng(3)
    d = rng.normal(0.2, 1.0, size=14)
    exact = stats.randomization_pvalue(d, exact=True)
    sampled = stats.randomization_pvalue(d, seed=1, n_resamples=20_000, exact=False)
    assert sampled == pytest.approx(exact, abs=0.01)


def test_randomization_is_seeded(pair):
    a, b = pair
    p1 = stats.paired_pvalue(a, b, "randomization", seed=5, n_resamples=2_000)
    assert p1 == stats.paired_pvalue(a, b, "randomization", seed=5, n_resamples=2_000)
    # the resampled p-value has the (hits + 1) / (n + 1) form
    assert (p1 * 2_001) == pytest.approx(round(p1 * 2_001))


def test_unknown_test_name():
    with pytest.raises(ValueError, match="wilcoxon"):
        stats.paired_pvalue([1.0], [0.0], "z")


def test_holm_hand_example():
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_and_capped():
    p = np.array([0.5, 0.001, 0.3, 0.02, 0.9])
    adjusted = stats.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert adjusted.max() == 1.0
    assert np.all(adjusted >= p)


def test_adjust_methods():
    p = [0.01, 0.2, 0.04]
    np.testing.assert_allclose(stats.adjust(p, "none"), p)
    np.testing.assert_allclose(stats.adjust(p, "bonferroni"), [0.03, 0.6, 0.12])
    np.testing.assert_allclose(stats.adjust(p, "holm"), [0.03, 0.2, 0.08])
    assert len(stats.adjust([], "holm")) == 0
    with pytest.raises(ValueError, match="holm"):
        stats.adjust(p, "fdr")


def test_bootstrap_ci_contains_the_true_difference_and_is_seeded():
    rng = np.random.default_rng(11)
    b = rng.random(500)
    a = b + 0.1 + rng.normal(0.0, 0.05, size=500)  # true mean difference 0.1
    mean, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=2_000, seed=0)
    assert mean == pytest.approx((a - b).mean())
    assert low < 0.1 < high
    assert low < mean < high
    assert high - low < 0.02  # about 2 * 1.96 * 0.05 / sqrt(500) = 0.0088
    assert stats.paired_bootstrap_ci(a, b, n_resamples=2_000, seed=0) == (mean, low, high)
    assert stats.paired_bootstrap_ci(a, b, n_resamples=2_000, seed=1) != (mean, low, high)


def test_bootstrap_ci_of_identical_arrays_is_a_point():
    a = np.linspace(0, 1, 20)
    assert stats.paired_bootstrap_ci(a, a, n_resamples=100) == (0.0, 0.0, 0.0)


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_pvalue([1.0, 2.0], [1.0], "t")
