"""Statistical power (bench.power): the paired t-test's formula against scipy's noncentral t and a
Monte Carlo of real t-tests, the simulations against the formula where both apply."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench import power

# ten hand-made paired differences: mean 0.09, squared deviations summing to 0.199
D10 = np.array([0.1, -0.2, 0.3, 0.05, 0.0, 0.15, -0.05, 0.2, 0.1, 0.25])
SD10 = math.sqrt(0.199 / 9)


def test_per_comparison_level():
    assert power.comparison_level(0.05, "none", 6) == 0.05
    assert power.comparison_level(0.05, "holm", 6) == pytest.approx(0.05 / 6)
    assert power.comparison_level(0.05, "bonferroni", 6) == pytest.approx(0.05 / 6)
    with pytest.raises(ValueError, match="unknown correction"):
        power.comparison_level(0.05, "sidak", 6)


def test_t_mde_solves_the_noncentral_t_power_equation_on_hand_made_differences():
    assert D10.std(ddof=1) == pytest.approx(SD10)
    level = 0.05 / 3
    mde = power.t_mde(SD10, 10, level)
    # independently: P(|T| > t_crit) for T ~ noncentral t(9, mde sqrt(10) / sd)
    critical = scipy_stats.t.ppf(1 - level / 2, 9)
    shift = mde * math.sqrt(10) / SD10
    assert scipy_stats.nct.sf(critical, 9, shift) + scipy_stats.nct.cdf(-critical, 9, shift) == pytest.approx(0.8, abs=1e-8)
    # and a hair less effect falls short
    smaller = (mde * 0.99) * math.sqrt(10) / SD10
    assert scipy_stats.nct.sf(critical, 9, smaller) + scipy_stats.nct.cdf(-critical, 9, smaller) < 0.8
    # with n = 10 the t-test needs more than the normal approximation's (z_{1-a/2} + z_0.8) sd / sqrt(n)
    normal = (scipy_stats.norm.ppf(1 - level / 2) + scipy_stats.norm.ppf(0.8)) * SD10 / math.sqrt(10)
    assert mde > normal * 1.1


def test_t_mde_approaches_the_normal_formula_for_large_n():
    mde = power.t_mde(1.0, 10_000, 0.05)
    assert mde == pytest.approx((1.959964 + 0.841621) / 100, rel=1e-3)


def test_t_power_agrees_with_a_monte_carlo_of_paired_t_tests():
    rng = np.random.default_rng(5)
    n, sd, effect, level = 20, 1.0, 0.6, 0.05
    samples = rng.normal(effect, sd, size=(4000, n))
    rejected = np.mean(scipy_stats.ttest_1samp(samples, 0.0, axis=1).pvalue < level)
    # 4,000 tests: standard error sqrt(0.75 * 0.25 / 4000) = 0.007; 4 of them
    assert power.t_power(effect, sd, n, level) == pytest.approx(rejected, abs=0.028)


def test_t_samples_needed_is_the_first_n_reaching_the_power():
    n = power.t_samples_needed(1.0, 0.1, 0.05)
    assert power.t_power(0.1, 1.0, n, 0.05) >= 0.8 > power.t_power(0.1, 1.0, n - 1, 0.05)
    # the normal approximation ((1.96 + 0.8416) / 0.1)^2 = 784.9, and the t-test needs a little more
    assert 785 <= n <= 789
    with pytest.raises(ValueError, match="target effect of 0"):
        power.t_samples_needed(1.0, 0.0, 0.05)


# Simulation against the formula. n = 400 normal differences, R = 2000 resamples. Near 80 % power the
# power curve is P(e) = Phi(e sqrt(n) / sd - z), whose slope times the MDE is phi(z_0.8) (z_a + z_b)
# = 0.28 * 2.8; a power estimate from R resamples has standard error sqrt(0.16 / R) = 0.0089, so the
# simulated MDE's relative standard error is 0.0089 / 0.785 = 1.1 %. The tolerance, 5 %, is four of
# them and a little for the tilt's variance, E d^2 - e^2 against the formula's s^2 (0.4 % here).
# The t and sign-flip tests depend on the mean and variance of d only, so they match the formula.
# The Wilcoxon test under a tilt of signs: its statistic sum(sign * rank) has mean theta n(n+1)/2 and
# standard deviation sqrt(n(n+1)(2n+1)/6), so z = theta sqrt(3n)/2, against the t-test's
# z = theta E|d| sqrt(n) / sd = theta sqrt(2/pi) sqrt(n) for normal magnitudes: its MDE is
# sqrt(2/pi) / (sqrt(3)/2) = 0.921 times the t-test's.
NORMAL = np.random.default_rng(11).normal(0.05, 1.0, 400)


@pytest.mark.parametrize(
    ("test", "ratio"), [("t", 1.0), ("randomization", 1.0), ("wilcoxon", math.sqrt(2 / math.pi) / (math.sqrt(3) / 2))]
)
def test_simulated_mde_agrees_with_the_formula(test, ratio):
    formula = power.t_mde(NORMAL.std(ddof=1), len(NORMAL), 0.05)
    simulated = power.simulated_mde(NORMAL, test, 0.05, n_simulations=2000)
    assert simulated == pytest.approx(formula * ratio, rel=0.05)


def test_simulated_samples_needed_agrees_with_the_formula():
    # at n near 785 the slope of the power in n is phi(0.84) e / (2 sd sqrt(n)) = 0.0005 per sample;
    # R = 1000 gives a power standard error of 0.0126, i.e. 25 samples (3.2 %): tolerance 12 %
    sd = NORMAL.std(ddof=1)
    formula = power.t_samples_needed(sd, 0.1, 0.05)
    for test in ("t", "randomization"):
        simulated = power.simulated_samples_needed(NORMAL, 0.1, test, 0.05, n_simulations=1000, n_flips=1000)
        assert simulated == pytest.approx(formula, rel=0.12), test


def test_simulations_are_seeded():
    skewed = np.random.default_rng(2).exponential(1.0, 60) - 0.8
    first = power.simulated_mde(skewed, "wilcoxon", 0.05, n_simulations=200, seed=3)
    assert power.simulated_mde(skewed, "wilcoxon", 0.05, n_simulations=200, seed=3) == first
    assert power.simulated_power(skewed, 0.2, "randomization", 0.05, n_simulations=200, seed=1) == power.simulated_power(
        skewed, 0.2, "randomization", 0.05, n_simulations=200, seed=1
    )


def test_simulated_power_grows_with_the_effect():
    powers = [power.simulated_power(NORMAL, e, "wilcoxon", 0.05, n_simulations=300) for e in (0.0, 0.1, 0.2)]
    assert powers[0] == pytest.approx(0.05, abs=0.035) and powers[0] < powers[1] < powers[2]
    assert powers[2] > 0.95  # 0.2 is 4 standard errors at n = 400


def test_table_power_uses_the_corrected_level_for_every_pair():
    rng = np.random.default_rng(0)
    differences = {("cft", "bigrec"): rng.normal(0.01, 0.2, 300), ("cft", "sft"): rng.normal(0.0, 0.3, 300),
                   ("bigrec", "sft"): rng.normal(-0.01, 0.25, 300)}  # fmt: skip
    rows = power.table_power(differences, test="t", correction="holm", alpha=0.05, target_effect=0.02)
    assert [(r.row, r.other) for r in rows] == list(differences)
    for r, d in zip(rows, differences.values()):
        assert r.level == pytest.approx(0.05 / 3) and r.method == "noncentral t" and r.n == 300
        assert r.mde == pytest.approx(power.t_mde(d.std(ddof=1), 300, 0.05 / 3))
        assert r.needed == power.t_samples_needed(d.std(ddof=1), 0.02, 0.05 / 3)
        assert r.observed == pytest.approx(d.mean())
    simulated = power.table_power(
        {("a", "b"): differences["cft", "sft"]}, test="randomization", correction="none", n_simulations=200
    )
    assert simulated[0].method == "simulation" and simulated[0].level == 0.05 and simulated[0].needed is None


def test_power_note_says_the_level_and_how():
    note = power.power_note("t", "holm", 0.05, 6)
    assert "0.05/6 = 0.00833 per comparison (Holm's strictest step, so an upper bound" in note
    assert "paired t-test detects with 80% power" in note and "noncentral t" in note
    assert "by simulation" in power.power_note("wilcoxon", "none", 0.05, 3)


def test_degenerate_input():
    with pytest.raises(ValueError, match="at least 2 paired differences"):
        power.simulated_mde([0.1], "t", 0.05)
    with pytest.raises(ValueError, match="unknown test"):
        power.table_power({("a", "b"): D10}, test="z")
    assert power.t_mde(0.0, 10, 0.05) == 0.0  # the same difference on every sample: any effect shows


def _ndcg_like_differences(n: int, seed: int) -> np.ndarray:
    """Per-sample NDCG@10 of two rows, minus each other: most differences exactly zero."""
    rng = np.random.default_rng(seed)
    ranks = rng.geometric([[0.02], [0.025]], size=(2, n)) - 1
    values = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)
    return values[0] - values[1]


def test_no_tilt_holds_each_test_at_its_level():
    # with theta = 0 the signs are fair coins: about 5 % rejections (2,000 resamples: standard error 0.005),
    # for skewed differences and for differences that are mostly zeros
    skewed = np.random.default_rng(8).exponential(1.0, 200)
    zeros = _ndcg_like_differences(2000, 1)
    assert np.mean(zeros == 0) > 0.5
    for d in (skewed, zeros):
        for test in ("t", "wilcoxon", "randomization"):
            assert power.simulated_power(d, 0.0, test, 0.05, n_simulations=2000) == pytest.approx(0.05, abs=0.02), test


def test_differences_mostly_zero_give_an_mde_near_the_formulas():
    # a band, not an agreement: the Wilcoxon test's efficiency depends on the sizes' distribution;
    # a shift of centred differences gave the Wilcoxon an MDE of 0 here (the zeros moved off zero)
    d = _ndcg_like_differences(3000, 2)
    formula = power.t_mde(d.std(ddof=1), len(d), 0.05 / 6)
    for test in ("wilcoxon", "randomization"):
        assert 0.7 * formula < power.simulated_mde(d, test, 0.05 / 6, n_simulations=300) < 1.3 * formula


def test_vectorised_wilcoxon_is_scipys_above_50_samples():
    pool = np.round(np.abs(np.random.default_rng(3).normal(0, 1, 80)), 1) * (np.arange(80) % 3 > 0)  # ties and zeros
    sample = power._resample(pool, 120, "wilcoxon", 5, 0, seed=0)
    ours = power._pvalues("wilcoxon", sample, 0.3)
    signs = np.where(sample.uniforms < 0.65, 1.0, -1.0)
    for row, p in zip(signs * sample.magnitudes, ours):
        assert p == pytest.approx(scipy_stats.wilcoxon(row).pvalue, rel=1e-9)


def test_an_effect_no_tilt_reaches():
    few = np.r_[np.zeros(95), np.full(5, 0.5)]  # 5 differences: a sign-flip p-value is at least 2/32
    assert power.simulated_mde(few, "randomization", 0.05, n_simulations=200) == math.inf
    with pytest.raises(ValueError, match="needs \\(almost\\) every difference in one direction"):
        power.simulated_samples_needed(few, 0.025, "wilcoxon", 0.05)
    with pytest.raises(ValueError, match="the largest is mean\\|d\\| = 0.025"):
        power.simulated_power(few, 0.03, "t", 0.05)
