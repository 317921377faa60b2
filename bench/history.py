"""How much does a ranking depend on the user's history? The test samples are evaluated again with
the history changed, by the same fitted model (no second training):

    full       the history as it is (the ordinary evaluation)
    none       no history: an LLM gets the counterfactual prompt (no input block), a sequence model
               an empty sequence (the padding item alone), a popularity ranking is unchanged
    shuffled   the same items in a seeded random order ("Lost in Sequence", arXiv 2502.13909)
    last       only the most recent item

Each condition is stored with the run, per sample (`history_<condition>.npz`), and compared with
the full history in the leaderboard (`bench leaderboard --history`): the metric under each
condition, its drop with a paired test and a bootstrap interval, and the share of samples whose
target rank changed.
"""

from __future__ import annotations

import numpy as np

from bench.data.split import Samples
from bench.errors import BenchError

CONDITIONS = ("none", "shuffled", "last")


def check_conditions(names: list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise BenchError(f"Unknown history condition '{unknown[0]}'; choose from {', '.join(CONDITIONS)}.")
    return tuple(dict.fromkeys(names))


def change_history(samples: Samples, condition: str, seed: int = 0) -> Samples:
    """The samples with their histories changed; users, targets and times stay."""
    if condition == "none":
        histories = [() for _ in samples.histories]
    elif condition == "last":
        histories = [tuple(h[-1:]) for h in samples.histories]
    elif condition == "shuffled":
        rng = np.random.default_rng(seed)
        histories = [tuple(int(h[i]) for i in rng.permutation(len(h))) for h in samples.histories]
    else:
        raise BenchError(f"Unknown history condition '{condition}'; choose from {', '.join(CONDITIONS)}.")
    return Samples(users=samples.users, histories=histories, targets=samples.targets, times=samples.times)
