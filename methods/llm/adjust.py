"""BIGRec's grounding adjusted by a statistic (Bao et al., arXiv 2308.08434): the L2 ranking of the
catalogue for a generated text re-weighted by item popularity ("popularity", BIGRec's PDA) or by a
collaborative model's scores for the same sample ("collaborative", BIGRec's CI).

Per ranked row (one generated text of one sample), with d its L2 distances to every item and s a
signal in [0, 1] per item:

    score = minmax(d) * (1 + s) ** (-gamma)          lower is better; ties: the lower item id first

    minmax(x) = (x - min x) / (max x - min x) along the row, and 0 for a constant row
    popularity s = minmax(count of each item among the training targets / number of targets)
    collaborative s = minmax(the model's score row for the sample)

`grounding_adjust`: "none" is today's ranking by the L2 distance itself (`GroundingAdjustment`
returns the distances untouched); gamma = 0 gives the same order up to float32 rounding of the
normalisation (distinct distances may round to one normalised value, then the lower id wins).

What the reference does (BIGRec `data/movie/adjust_pda.py`, `adjust_ci.py`; no epsilon anywhere):
- distances: torch.cdist of beam 0's generation ("predict"[0]) to every title embedding, min-max
  normalised per row (a constant row divides by zero there; here it becomes zeros, so the signal
  alone cannot reorder a row with no information and the row keeps the item-id order);
- popularity: per-item counts from a file (`pop_count_real_time.json`, per seed; how it was
  counted is not in the repository), divided by their sum (frequencies), then min-max normalised
  over the catalogue (items never counted are 0). Here the counts are those of the training
  split's targets; counts and frequencies give the same min-max values, the frequencies are kept
  as the reference computes them;
- collaborative: the classic model's score matrix for the split (its last column dropped: a
  padding item), min-max normalised per row;
- ranking: ascending argsort of minmax(d) * (1 + s) ** (-gamma); an unstable sort there, a stable
  one here (ties by the lower item id, as `ground.ground_by_l2`);
- gamma is grid-searched on validation, separately per metric and cutoff: `POPULARITY_GAMMAS`
  0, 1, ..., 99 (`range(0, 10000, 100)` / 100) and `COLLABORATIVE_GAMMAS` 0.00, 0.01, ..., 0.99
  then 1, 2, ..., 99;
- the reference adjusts beam 0's ranking only ("original"); with "interleaved" grounding each
  beam's row is adjusted alone and the adjusted rankings are merged as before.
The nearest item of a row has minmax(d) = 0, so it stays first for every gamma and signal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from methods.llm.options import COLLABORATIVE, GROUNDING_ADJUSTS, NONE, POPULARITY

POPULARITY_GAMMAS = tuple(float(g) for g in range(100))
COLLABORATIVE_GAMMAS = tuple(g / 100 for g in range(100)) + tuple(float(g) for g in range(1, 100))


def check_adjust(mode: str) -> str:
    if mode not in GROUNDING_ADJUSTS:
        raise ValueError(f"grounding_adjust must be one of {', '.join(GROUNDING_ADJUSTS)}, not '{mode}'")
    return mode


def check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"the grounding adjustment's gamma must be a finite number >= 0, not {gamma}")
    return gamma


def min_max(x: torch.Tensor) -> torch.Tensor:
    """float32 (x - min) / (max - min) along the last dimension; 0 where a row is constant."""
    x = x.to(torch.float32)
    low = x.amin(dim=-1, keepdim=True)
    span = x.amax(dim=-1, keepdim=True) - low
    return torch.where(span > 0, (x - low) / torch.where(span > 0, span, 1.0), 0.0)


def popularity_signal(train_targets, n_items: int, device=None) -> torch.Tensor:
    """(n_items,) float32 in [0, 1]: each item's share of the training targets, min-max normalised
    (BIGRec's PDA signal)."""
    targets = torch.from_numpy(np.array(train_targets, dtype=np.int64))  # a copy: split arrays are read-only
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= n_items):
        raise ValueError(f"training targets must be item ids in [0, {n_items})")
    counts = torch.bincount(targets, minlength=n_items).to(torch.float32)
    frequencies = counts / max(float(counts.sum()), 1.0)
    return min_max(frequencies).to(device)


def collaborative_signal(scores) -> torch.Tensor:
    """(n, n_items) float32 in [0, 1]: a classic model's score rows, each min-max normalised
    (BIGRec's CI signal); higher score, higher signal."""
    return min_max(torch.as_tensor(scores))


def adjusted_scores(distances: torch.Tensor, signal: torch.Tensor, gamma: float) -> torch.Tensor:
    """minmax(distances) * (1 + signal) ** (-gamma), float32, lower is better.

    distances: (n, n_items) or (n, beams, n_items); signal: (n_items,) for every row, or (n,
    n_items) one row per sample (used for each of its beams), values in [0, 1]. No host sync."""
    gamma = check_gamma(gamma)
    signal = signal.to(device=distances.device, dtype=torch.float32)
    if signal.ndim == 2 and distances.ndim == 3:
        signal = signal[:, None, :]
    if signal.shape[-1] != distances.shape[-1] or (signal.ndim > 1 and signal.shape[0] != distances.shape[0]):
        raise ValueError(f"a signal of shape {tuple(signal.shape)} does not fit distances of shape {tuple(distances.shape)}")
    return min_max(distances) * torch.pow(1.0 + signal, -gamma)


def rank_ascending(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(..., min(k, n_items)) int64: the item ids of the k lowest scores per row, equal scores in
    item id order (a stable sort)."""
    k = min(int(k), scores.shape[-1])
    return torch.sort(scores, dim=-1, stable=True).indices[..., :k]


def rank_adjusted(distances: torch.Tensor, signal: torch.Tensor, gamma: float, k: int) -> torch.Tensor:
    """The top-k items of `adjusted_scores`, best first."""
    return rank_ascending(adjusted_scores(distances, signal, gamma), k)


# the signal rows of a slice of the grounded samples, (len, n_items) in [0, 1]
SignalRows = Callable[[slice], torch.Tensor]


@dataclass
class GroundingAdjustment:
    """What grounding applies to each chunk of distance rows before ranking them: `mode` (one of
    GROUNDING_ADJUSTS), `gamma`, and `signal`: (n_items,) for popularity; for collaborative
    (n_samples, n_items), one row per sample of the set being grounded, or a function giving the
    rows of a slice of those samples (so that no more than a chunk's rows exist at once); None for
    none."""

    mode: str = NONE
    gamma: float = 0.0
    signal: torch.Tensor | SignalRows | None = None

    def __post_init__(self):
        check_adjust(self.mode)
        self.gamma = check_gamma(self.gamma)
        if self.mode != NONE and self.signal is None:
            raise ValueError(f"grounding_adjust={self.mode} needs a signal")
        if self.mode == POPULARITY and (callable(self.signal) or self.signal.ndim != 1):
            raise ValueError("the popularity signal is one row for the whole catalogue, (n_items,)")
        if self.mode == COLLABORATIVE and not callable(self.signal) and self.signal.ndim != 2:
            raise ValueError("the collaborative signal is one row per sample, (n_samples, n_items)")

    def __call__(self, distances: torch.Tensor, rows: slice) -> torch.Tensor:
        """Scores to sort ascending for the distance rows (c, n_items) or (c, beams, n_items) of
        samples `rows` (a slice of the grounded set); "none": `distances` themselves."""
        if self.mode == NONE:
            return distances
        if self.mode == POPULARITY:
            signal = self.signal
        else:
            signal = self.signal(rows) if callable(self.signal) else self.signal[rows]
        return adjusted_scores(distances, signal, self.gamma)
