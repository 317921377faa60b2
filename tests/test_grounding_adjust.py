"""BIGRec's adjusted grounding (methods.llm.adjust) on distances and signals worked by hand: two
samples x four items, popularity from training targets and a collaborative score matrix, ties by
the lower item id, constant rows, gamma 0 and "none" as the plain L2 ranking, beams."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.llm.adjust import (
    COLLABORATIVE_GAMMAS,
    POPULARITY_GAMMAS,
    GroundingAdjustment,
    adjusted_scores,
    collaborative_signal,
    min_max,
    popularity_signal,
    rank_adjusted,
    rank_ascending,
)

# row 0: min 1, max 5 -> normalised [0, 0.5, 0.25, 1]; row 1 constant -> zeros
DISTANCES = torch.tensor([[1.0, 3.0, 2.0, 5.0], [4.0, 4.0, 4.0, 4.0]])
# counts [1, 3, 0, 2] of 6 -> frequencies [1/6, 1/2, 0, 1/3] -> min-max [1/3, 1, 0, 2/3]
TRAIN_TARGETS = np.array([0, 1, 1, 1, 3, 3])
# row 0: min -1, max 3 -> [0.75, 0, 0.25, 1]; row 1 constant -> zeros
SCORES = np.array([[2.0, -1.0, 0.0, 3.0], [1.0, 1.0, 1.0, 1.0]])


def test_min_max_of_rows_and_of_a_constant_row():
    assert min_max(DISTANCES).tolist() == [[0.0, 0.5, 0.25, 1.0], [0.0, 0.0, 0.0, 0.0]]
    assert min_max(torch.tensor([7.0])).tolist() == [0.0]


def test_popularity_signal_worked_by_hand():
    signal = popularity_signal(TRAIN_TARGETS, 4)
    assert signal.dtype == torch.float32
    assert torch.allclose(signal, torch.tensor([1 / 3, 1.0, 0.0, 2 / 3]), atol=1e-7)
    assert popularity_signal(np.array([2, 2]), 3).tolist() == [0.0, 0.0, 1.0]
    assert popularity_signal(np.array([], dtype=np.int64), 3).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="item ids"):
        popularity_signal(np.array([4]), 4)


def test_collaborative_signal_worked_by_hand():
    assert collaborative_signal(SCORES).tolist() == [[0.75, 0.0, 0.25, 1.0], [0.0, 0.0, 0.0, 0.0]]


def test_popularity_adjusted_ranking_worked_by_hand():
    """gamma 1: row 0 scores [0, 0.5/2, 0.25/1, 1/(5/3)] = [0, 0.25, 0.25, 0.6]: items 1 and 2 tie,
    the lower id first. gamma 3: item 3's 1 * (5/3)^-3 = 0.216 passes item 2's 0.25 (item 1:
    0.5/8). The plain L2 order is [0, 2, 1, 3]; the constant row 1 keeps the id order."""
    signal = popularity_signal(TRAIN_TARGETS, 4)
    scores = adjusted_scores(DISTANCES, signal, 1.0)
    assert torch.allclose(scores[0], torch.tensor([0.0, 0.25, 0.25, 0.6]), atol=1e-7)
    assert scores[0, 1] == scores[0, 2]  # an exact tie
    assert rank_adjusted(DISTANCES, signal, 1.0, k=4).tolist() == [[0, 1, 2, 3], [0, 1, 2, 3]]
    assert torch.allclose(adjusted_scores(DISTANCES, signal, 3.0)[0], torch.tensor([0.0, 0.0625, 0.25, 0.216]), atol=1e-7)
    assert rank_adjusted(DISTANCES, signal, 3.0, k=4).tolist() == [[0, 1, 3, 2], [0, 1, 2, 3]]
    assert rank_adjusted(DISTANCES, signal, 0.0, k=4).tolist() == [[0, 2, 1, 3], [0, 1, 2, 3]]
    assert rank_adjusted(DISTANCES, signal, 3.0, k=2).tolist() == [[0, 1], [0, 1]]


def test_collaborative_adjusted_ranking_worked_by_hand():
    """gamma 1: row 0 scores [0, 0.5/1, 0.25/1.25, 1/2] = [0, 0.5, 0.2, 0.5]: items 1 and 3 tie.
    gamma 2: [0, 0.5, 0.16, 0.25]."""
    signal = collaborative_signal(SCORES)
    assert torch.allclose(adjusted_scores(DISTANCES, signal, 1.0)[0], torch.tensor([0.0, 0.5, 0.2, 0.5]), atol=1e-7)
    assert rank_adjusted(DISTANCES, signal, 1.0, k=4).tolist() == [[0, 2, 1, 3], [0, 1, 2, 3]]
    assert torch.allclose(adjusted_scores(DISTANCES, signal, 2.0)[0], torch.tensor([0.0, 0.5, 0.16, 0.25]), atol=1e-7)
    assert rank_adjusted(DISTANCES, signal, 2.0, k=4).tolist() == [[0, 2, 3, 1], [0, 1, 2, 3]]
    # one sample's signal applies to that sample only: swapping the rows changes row 0's order
    assert rank_adjusted(DISTANCES, signal.flip(0), 2.0, k=4).tolist()[0] == [0, 2, 1, 3]


def test_gamma_zero_and_none_give_the_plain_l2_ranking():
    g = torch.Generator().manual_seed(0)
    distances = torch.rand(6, 50, generator=g) * 10
    distances[:, 7] = distances[:, 3]  # ties: the lower id first in both
    plain = torch.sort(distances, dim=1, stable=True).indices
    for signal in (torch.rand(50, generator=g), torch.rand(6, 50, generator=g)):
        assert torch.equal(rank_adjusted(distances, signal, 0.0, k=50), plain)
    none = GroundingAdjustment()
    assert none(distances, slice(0, 6)) is distances
    assert torch.equal(rank_ascending(none(distances, slice(0, 6)), 50), plain)


def test_beams_share_their_sample_signal():
    """(n, beams, n_items) distances: each beam's row adjusted alone with its sample's signal."""
    signal = collaborative_signal(SCORES)
    beams = torch.stack([DISTANCES, DISTANCES.flip(-1)], dim=1)  # (2 samples, 2 beams, 4 items)
    got = adjusted_scores(beams, signal, 2.0)
    assert torch.equal(got[:, 0], adjusted_scores(DISTANCES, signal, 2.0))
    assert torch.equal(got[:, 1], adjusted_scores(DISTANCES.flip(-1), signal, 2.0))
    # beam 1 of sample 0: normalised [1, 0.25, 0.5, 0] times (1 + [0.75, 0, 0.25, 1]) ** -2
    assert torch.allclose(got[0, 1], torch.tensor([1 / 1.75**2, 0.25, 0.5 / 1.25**2, 0.0]), atol=1e-7)


def test_grounding_adjustment_takes_the_chunk_rows_of_its_signal():
    signal = collaborative_signal(SCORES)
    adjust = GroundingAdjustment("collaborative", 2.0, signal)
    assert torch.equal(adjust(DISTANCES[1:], slice(1, 2)), adjusted_scores(DISTANCES[1:], signal[1:], 2.0))
    popularity = GroundingAdjustment("popularity", 3.0, popularity_signal(TRAIN_TARGETS, 4))
    assert rank_ascending(popularity(DISTANCES, slice(0, 2)), 4).tolist() == [[0, 1, 3, 2], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="grounding_adjust must be one of"):
        GroundingAdjustment("pda", 1.0, signal)
    with pytest.raises(ValueError, match="needs a signal"):
        GroundingAdjustment("popularity", 1.0)
    with pytest.raises(ValueError, match="one row per sample"):
        GroundingAdjustment("collaborative", 1.0, signal[0])
    with pytest.raises(ValueError, match=">= 0"):
        adjusted_scores(DISTANCES, signal, -1.0)
    with pytest.raises(ValueError, match="does not fit"):
        adjusted_scores(DISTANCES, signal[:, :3], 1.0)


def test_the_reference_gamma_grids():
    assert POPULARITY_GAMMAS[:3] == (0.0, 1.0, 2.0) and POPULARITY_GAMMAS[-1] == 99.0 and len(POPULARITY_GAMMAS) == 100
    assert COLLABORATIVE_GAMMAS[:3] == (0.0, 0.01, 0.02) and COLLABORATIVE_GAMMAS[99:102] == (0.99, 1.0, 2.0)
    assert COLLABORATIVE_GAMMAS[-1] == 99.0 and len(COLLABORATIVE_GAMMAS) == 199
