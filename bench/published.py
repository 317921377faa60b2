"""Our value of a metric beside a published one (an experiment file's [[references]]).

Given a row's per-sample values of one metric (as the leaderboard has them: one value per test
sample, averaged over the row's seeds) and a published value, `compare_with_published` returns our
mean, its 95 % interval, the published value, the difference (ours - published) and whether the
published value lies inside our interval.

The interval is Student's t interval of the mean over the test samples,

    mean +- t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)      (s: sample standard deviation, ddof 1)

chosen over a bootstrap because it is deterministic (no seed, the same on every machine) and, at
the sizes of a test split (thousands of samples), the mean of bounded per-sample values such as
NDCG@10 or HR@10 is close to normal: on 5,000 skewed values, four in five of them zero, the t
limits lie within 5 % of the interval's half-width of a 10,000-resample percentile bootstrap's
(tests/test_experiment_files.py), most of that the bootstrap's own resampling noise. What it measures: the uncertainty due to which test samples were drawn. It does not
include the variation between training runs (seeds), nor any difference of setting between the
published run and ours (data processing, training recipe, decoding), so "outside the interval"
says the two numbers differ by more than test-sample noise, not why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from bench.experiment import Reference

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Reproduction:
    metric: str
    n: int  # test samples
    mean: float  # ours
    low: float  # our interval; nan with fewer than 2 samples
    high: float
    confidence: float
    published: float
    difference: float  # ours - published
    inside: bool  # the published value lies inside our interval
    source: str = ""

    def sentence(self) -> str:
        head = f"{self.metric}: ours {self.mean:.4f}" if self.metric else f"ours {self.mean:.4f}"
        if math.isnan(self.low):
            return f"{head} from {self.n} test sample(s), too few for an interval; published {self.published:.4f}{self._cited()}."
        verdict = "inside" if self.inside else "outside"
        return (
            f"{head} [{self.low:.4f}, {self.high:.4f}] ({self.confidence:.0%} t interval over {self.n:,} test samples), "
            f"published {self.published:.4f}{self._cited()}: difference {self.difference:+.4f}, "
            f"the published value lies {verdict} our interval."
        )

    def _cited(self) -> str:
        return f" ({self.source})" if self.source else ""


def t_interval(values, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of `values`; low and high are nan with fewer than 2 values."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"per-sample values must be a non-empty one-dimensional array, got shape {x.shape}")
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def compare_with_published(
    values, published: float, confidence: float = CONFIDENCE, metric: str = "", source: str = ""
) -> Reproduction:
    """Our mean and t interval of per-sample `values` beside a `published` value."""
    mean, low, high = t_interval(values, confidence)
    inside = (not math.isnan(low)) and low <= published <= high
    return Reproduction(
        metric=metric,
        n=int(np.asarray(values).size),
        mean=mean,
        low=low,
        high=high,
        confidence=confidence,
        published=float(published),
        difference=mean - float(published),
        inside=bool(inside),
        source=source,
    )


def reproduce(values, reference: Reference, confidence: float = CONFIDENCE) -> Reproduction:
    """compare_with_published for one [[references]] value of an experiment file."""
    return compare_with_published(values, reference.value, confidence, reference.metric, reference.citation())
