"""Statistical power of a table's paired comparisons: how large a difference each test could have
detected, and how many test samples a given difference needs.

For a pair of rows with paired per-sample differences d (n samples):

    minimum detectable effect (MDE)   the smallest difference of means the test detects with the
                                      target power (80 %) at the per-comparison level
    samples needed                    the smallest n at which a given effect reaches that power

Per-comparison level. A table corrects its m tests together: with "none" each test is at alpha;
with "bonferroni" at alpha / m; with "holm" the strictest step is alpha / m and later steps are
more lenient, so alpha / m is used as a conservative level and the Holm MDE is an upper bound.

Paired t-test: by its formula. T = mean(d) / (s / sqrt(n)) follows a noncentral t distribution
with n - 1 degrees of freedom and noncentrality effect * sqrt(n) / s, so the power of the
two-sided test is P(T > t_crit) + P(T < -t_crit), t_crit = t_{1 - level/2, n - 1}; the MDE solves
power = target for the effect (s is the observed standard deviation of d).

Wilcoxon signed-rank and randomisation (sign-flip) tests: by simulation from the observed
differences (seeded), with an effect that tilts their signs. The magnitudes |d| are resampled with
replacement to the sample size, and each is given a random sign, positive with probability
(1 + theta) / 2: theta = 0 is exactly the null both tests examine (differences symmetric about
zero), and theta > 0 a mean difference of theta * mean|d|, which is the effect reported. The power
is the share of resamples the test rejects at the level; the same resamples and random numbers
serve every theta, so the power grows with the effect and a bisection finds the MDE.

Why a tilt and not a shift of the centred differences: per-sample metric differences are mostly
exact zeros (both rows miss the target), and a shift moves that lump off zero, where the Wilcoxon
test (which drops zeros and ranks the rest) reads it as a huge effect; tilting signs keeps the
samples where the rows agree as they are. For the t and sign-flip tests, whose power depends on
the mean and variance of d, a tilt and a shift of the same mean are alike for large n. The largest
effect a tilt can make is mean|d| (every difference one way): a test that cannot reach the power
even there has MDE inf, and that many samples cannot show the difference.

The tests are those of bench.stats.paired_pvalue, vectorised over the resamples: Wilcoxon is
scipy's (zeros dropped; above 50 samples its normal approximation with the tie-corrected variance,
sum of squared ranks, computed here as scipy does); randomisation is the Monte Carlo sign-flip test
of bench.stats.randomization_pvalue, with one set of flips drawn on the magnitudes (a random sign
pattern times the data's signs is again a random pattern, so the flips need no redrawing per theta).
Simulation error: with R resamples the power estimate has standard error sqrt(0.8 * 0.2 / R), 0.018
at the default R = 500. Memory: about 24 R n bytes (R = 500, n = 10,000: 120 MB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from bench.stats import CORRECTIONS, TESTS

POWER = 0.8
N_SIMULATIONS = 500
N_FLIPS = 2000
MAX_SAMPLES = 10_000_000
_BLOCK = 1024  # columns drawn from one seeded stream
EXACT_WILCOXON_MAX_N = 50  # scipy's wilcoxon is exact up to here (without ties or zeros), normal above


def comparison_level(alpha: float, correction: str, m: int) -> float:
    """The level one of m corrected tests is held to: alpha, or alpha / m (Bonferroni; Holm's
    strictest step, a conservative level for its later steps)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha if correction == "none" else alpha / max(int(m), 1)


def _check(d) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise ValueError(f"power needs at least 2 paired differences in a one-dimensional array, got shape {d.shape}")
    return d


# ---- the paired t-test, by formula ---------------------------------------------------------------


def t_power(effect: float, sd: float, n: int, level: float) -> float:
    """Power of the two-sided paired t-test at `level` for a true mean difference `effect`."""
    if sd == 0.0:
        return 1.0 if effect != 0.0 else level
    df = n - 1
    critical = scipy_stats.t.ppf(1.0 - level / 2.0, df)
    shift = effect * math.sqrt(n) / sd
    # P(T < -c) as P(T' > c) with the noncentrality negated: scipy's nct.cdf returns nan deep in the
    # lower tail (e.g. df 7, noncentrality 8), where the tail is below 1e-15; its sf there gives 0
    lower = scipy_stats.nct.sf(critical, df, -shift)
    return float(scipy_stats.nct.sf(critical, df, shift) + (0.0 if math.isnan(lower) else lower))


def t_mde(sd: float, n: int, level: float, power: float = POWER) -> float:
    """The effect at which the two-sided paired t-test reaches `power` (0 when sd is 0)."""
    if sd == 0.0:
        return 0.0
    high = sd / math.sqrt(n)  # one standard error; the answer is a few of them
    while t_power(high, sd, n, level) < power:
        high *= 2.0
    return float(optimize.brentq(lambda e: t_power(e, sd, n, level) - power, 0.0, high, xtol=1e-12 * high, rtol=1e-10))


def t_samples_needed(sd: float, effect: float, level: float, power: float = POWER, max_n: int = MAX_SAMPLES) -> int:
    """The smallest n >= 2 at which the paired t-test detects `effect` with `power`."""
    if effect == 0.0:
        raise ValueError("a target effect of 0 cannot be detected; give the smallest difference that matters")
    return _smallest_n(lambda n: t_power(abs(effect), sd, n, level) >= power, 2, max_n)


def _smallest_n(enough, low: int, max_n: int, guess: int | None = None) -> int:
    """The smallest n in [low, max_n] with enough(n), for enough monotone in n."""
    if enough(low):
        return low
    high = max(low + 1, guess or low * 2)
    while not enough(high):
        low, high = high, high * 2
        if high > max_n:
            if enough(max_n):
                high = max_n
                break
            raise ValueError(f"more than {max_n:,} samples would be needed; the effect is too small to detect")
    while high - low > 1:  # enough(high), not enough(low)
        middle = (low + high) // 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return high


# ---- Wilcoxon and randomisation, by simulation ---------------------------------------------------


@dataclass
class _Resamples:
    """R resamples of the magnitudes at one sample size, and what their tests need."""

    magnitudes: np.ndarray  # (R, n)
    uniforms: np.ndarray  # (R, n): a sign is positive where the uniform is below (1 + theta) / 2
    ranks: np.ndarray | None = None  # Wilcoxon, n > 50: ranks among the non-zero magnitudes, 0 at zeros
    flip_sums: np.ndarray | None = None  # randomisation: (R, B) sums of the magnitudes under B sign patterns


def _resample(pool: np.ndarray, n: int, test: str, n_simulations: int, n_flips: int, seed: int) -> _Resamples:
    """Drawn in blocks of columns, each block from its own seeded stream, so that the resamples of
    size n are the first n columns of those of any larger size: the estimated power then moves
    smoothly with n, and a search over n is not misled by fresh noise at every size."""
    magnitudes = np.empty((n_simulations, n))
    uniforms = np.empty((n_simulations, n), dtype=np.float32)
    flip_sums = np.zeros((n_simulations, n_flips)) if test == "randomization" else None
    for block, start in enumerate(range(0, n, _BLOCK)):
        width = min(_BLOCK, n - start)
        rng = np.random.default_rng([seed, block])
        columns = slice(start, start + width)
        magnitudes[:, columns] = pool[rng.integers(0, len(pool), size=(n_simulations, _BLOCK))[:, :width]]
        uniforms[:, columns] = rng.random((n_simulations, _BLOCK), dtype=np.float32)[:, :width]
        if flip_sums is not None:
            signs = np.where(rng.random((n_flips, _BLOCK)) < 0.5, -1.0, 1.0)[:, :width]
            flip_sums += magnitudes[:, columns] @ signs.T
    ranks = None
    if test == "wilcoxon" and n > EXACT_WILCOXON_MAX_N:
        zeros = np.count_nonzero(magnitudes == 0, axis=1)
        # zeros are the smallest magnitudes: a non-zero one's rank among the non-zero ones is its
        # rank among all minus the number of zeros
        ranks = np.where(magnitudes > 0, scipy_stats.rankdata(magnitudes, axis=1) - zeros[:, None], 0.0)
    return _Resamples(magnitudes, uniforms, ranks, flip_sums)


def _pvalues(test: str, sample: _Resamples, theta: float) -> np.ndarray:
    """Two-sided p-values of each resample with its signs tilted by theta."""
    signs = np.where(sample.uniforms < (1.0 + theta) / 2.0, 1.0, -1.0)
    n = signs.shape[1]
    if test == "wilcoxon" and sample.ranks is not None:
        variance = np.sum(sample.ranks**2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.sum(signs * sample.ranks, axis=1) / np.sqrt(variance)
        return np.where(variance > 0, 2.0 * scipy_stats.norm.sf(np.abs(z)), 1.0)
    rows = signs * sample.magnitudes
    if test == "wilcoxon":  # at most 50 samples: scipy's exact or approximate test, as paired_pvalue
        with np.errstate(all="ignore"):
            p = scipy_stats.wilcoxon(rows, axis=1).pvalue
        return np.where(np.isnan(p), 1.0, p)  # every difference zero: no evidence
    if test == "t":
        mean, sd = rows.mean(axis=1), rows.std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sd > 0, mean / (sd / math.sqrt(n)), np.where(mean != 0, np.inf, 0.0))
        return 2.0 * scipy_stats.t.sf(np.abs(t), n - 1)
    observed = np.abs(rows.sum(axis=1))
    threshold = observed - 1e-12 * sample.magnitudes.sum(axis=1)  # as bench.stats: a tie counts
    hits = np.count_nonzero(np.abs(sample.flip_sums) >= threshold[:, None], axis=1)
    return (hits + 1.0) / (sample.flip_sums.shape[1] + 1.0)


def _flips_for(level: float, n_flips: int) -> int:
    # a Monte Carlo p-value is at least 1 / (B + 1): keep that well below the level
    return max(n_flips, math.ceil(20.0 / level))


def _pool(d) -> tuple[np.ndarray, float]:
    """The magnitudes to resample and their mean, the largest effect a tilt can make."""
    magnitudes = np.abs(_check(d))
    return magnitudes, float(magnitudes.mean())


def simulated_power(d, effect: float, test: str, level: float, n: int | None = None, n_simulations: int = N_SIMULATIONS,
                    n_flips: int = N_FLIPS, seed: int = 0) -> float:  # fmt: skip
    """Share of resamples (size n, default len(d)) the test rejects at `level` when the signs are
    tilted to a mean difference of `effect`, at most mean|d| (every difference in one direction)."""
    pool, largest = _pool(d)
    if abs(effect) > largest:
        raise ValueError(f"no tilt of these differences makes a mean difference of {abs(effect):.4g}; the largest is mean|d| = {largest:.4g}")  # fmt: skip
    sample = _resample(pool, n or len(pool), test, n_simulations, _flips_for(level, n_flips), seed)
    return float(np.mean(_pvalues(test, sample, abs(effect) / largest if largest > 0 else 0.0) < level))


def simulated_mde(d, test: str, level: float, power: float = POWER, n_simulations: int = N_SIMULATIONS,
                  n_flips: int = N_FLIPS, seed: int = 0, tolerance: float = 1e-3) -> float:  # fmt: skip
    """The smallest mean difference (within `tolerance` relative) at which the simulated power
    reaches `power`; inf when even every difference in one direction does not."""
    pool, largest = _pool(d)
    if largest == 0.0:
        return math.inf
    sample = _resample(pool, len(pool), test, n_simulations, _flips_for(level, n_flips), seed)

    def reached(theta: float) -> bool:
        return float(np.mean(_pvalues(test, sample, theta) < level)) >= power

    if not reached(1.0):
        return math.inf
    low, high = 0.0, 1.0
    while high - low > tolerance * high:
        middle = (low + high) / 2.0
        low, high = (low, middle) if reached(middle) else (middle, high)
    return high * largest


def simulated_samples_needed(d, effect: float, test: str, level: float, power: float = POWER,
                             n_simulations: int = N_SIMULATIONS, n_flips: int = N_FLIPS, seed: int = 0,
                             max_n: int = 1_000_000) -> int:  # fmt: skip
    """The smallest n at which the simulated power at `effect` reaches `power` (the resamples
    of a smaller size are the first columns of those of a larger one: seeded and reproducible)."""
    pool, largest = _pool(d)
    if effect == 0.0:
        raise ValueError("a target effect of 0 cannot be detected; give the smallest difference that matters")
    if abs(effect) >= largest:
        raise ValueError(
            f"an effect of {abs(effect):.4g} needs (almost) every difference in one direction, since the differences' mean "
            f"size is {largest:.4g}; no number of samples drawn like these reaches it with certainty of direction"
        )
    theta, flips = abs(effect) / largest, _flips_for(level, n_flips)

    def enough(n: int) -> bool:
        sample = _resample(pool, n, test, n_simulations, flips, seed)
        return float(np.mean(_pvalues(test, sample, theta) < level)) >= power

    sd = float(np.std(np.asarray(d, dtype=np.float64), ddof=1))
    guess = t_samples_needed(sd, effect, level, power, MAX_SAMPLES) if sd > 0 else 2
    return _smallest_n(enough, 2, max_n, guess=max(3, guess))


# ---- one table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairPower:
    row: str
    other: str
    test: str
    n: int
    observed: float  # mean(row - other)
    sd: float  # of the paired differences
    level: float  # per-comparison level
    power: float
    mde: float  # in the metric's units
    method: str  # "noncentral t" or "simulation"
    effect: float | None = None  # a target effect asked about
    needed: int | None = None  # test samples that effect needs; None when not asked, or not reachable
    needed_note: str = ""  # why no number of samples reaches the effect ("" when one does)


def table_power(differences: Mapping[tuple[str, str], np.ndarray], test: str = "t", correction: str = "holm",
                alpha: float = 0.05, power: float = POWER, target_effect: float | None = None, seed: int = 0,
                n_simulations: int = N_SIMULATIONS, n_flips: int = N_FLIPS) -> list[PairPower]:  # fmt: skip
    """PairPower for each pair of a table: {(row, other): per-sample row - other on their shared
    samples}; the pairs are the table's family of tests, corrected together."""
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {', '.join(TESTS)}")
    level = comparison_level(alpha, correction, len(differences))
    found = []
    for (row, other), d in differences.items():
        d = _check(d)
        sd = float(d.std(ddof=1))
        if test == "t":
            mde, method = t_mde(sd, len(d), level, power), "noncentral t"
        else:
            mde, method = simulated_mde(d, test, level, power, n_simulations, n_flips, seed), "simulation"
        needed, note = None, ""
        if target_effect:
            try:
                if test == "t":
                    needed = t_samples_needed(sd, target_effect, level, power)
                else:
                    needed = simulated_samples_needed(d, target_effect, test, level, power, n_simulations, n_flips, seed)
            except ValueError as exc:  # an effect out of reach is an answer about this pair, not a failure of the table
                note = str(exc)
        found.append(PairPower(row, other, test, len(d), float(d.mean()), sd, level, power, mde, method, target_effect,
                               needed, note))  # fmt: skip
    return found


def power_note(test: str, correction: str, alpha: float, m: int, power: float = POWER) -> str:
    """The sentence printed under a table of minimum detectable effects."""
    level = comparison_level(alpha, correction, m)
    how = (
        "by the noncentral t distribution from the observed paired differences"
        if test == "t"
        else "by simulation: the sizes of the paired differences resampled, their signs tilted towards one row, and tested"
    )
    if correction == "none":
        at = f"at {alpha:g} per comparison"
    elif correction == "holm":
        at = f"at {alpha:g}/{m} = {level:.3g} per comparison (Holm's strictest step, so an upper bound for its other steps)"
    else:
        at = f"at {alpha:g}/{m} = {level:.3g} per comparison (Bonferroni)"
    return f"Minimum detectable effect: the smallest difference of means the {TESTS[test]} detects with {power:.0%} power {at}, {how}."
