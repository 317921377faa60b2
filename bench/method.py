"""The method interface. A method learns from training samples and returns ranked item ids; it
never computes a metric (the harness does, the same way for every method).

    class MyMethod(Method):
        name = "mine"
        description = "one line for `bench methods`"
        version = "1"                      # bump when a change alters results
        Config = MyConfig                  # a dataclass; every field can be set with --set mine.field=value

        def fit(self, train, valid, context): ...
        def recommend(self, samples, k) -> Recommendations: ...

Methods that score the whole catalogue subclass ScoreMethod and implement `score` instead of
`recommend`; the harness then ranks the target against every item with ties counted against the
model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from bench.data.cards import DatasetCard
from bench.data.split import Catalogue, Samples


@dataclass
class NoConfig:
    """For methods without hyperparameters."""


@dataclass
class Context:
    """What a method may know besides its samples."""

    device: str                    # "cpu", "cuda" or "cuda:N"
    seed: int
    items: Catalogue               # the catalogue: item id -> title
    card: DatasetCard              # domain noun, history length...
    work_dir: Path                 # scratch folder of this run (checkpoints); removed once the run is stored
    cache_dir: Path                # shared cache (built tokenizers, tiny models)
    progress: Any = None           # a rich Progress to add tasks to, or None

    @property
    def n_items(self) -> int:
        return len(self.items)


@dataclass
class Recommendations:
    """Ranked item ids per sample, best first; -1 pads lists shorter than k."""

    items: np.ndarray                             # (n, k) int64
    invalid: np.ndarray | None = None             # (n,) outputs that named no catalogue item (generative methods)
    extra: dict = field(default_factory=dict)     # small JSON-able facts stored with the run


class Method:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def fit(self, train: Samples, valid: Samples, context: Context) -> None:
        raise NotImplementedError

    def recommend(self, samples: Samples, k: int) -> Recommendations:
        raise NotImplementedError

    def run_info(self) -> dict:
        """Facts about the fitted method stored with the run (epochs trained, model id...)."""
        return {}


class ScoreMethod(Method):
    """A method that scores every catalogue item for each sample."""

    def score(self, samples: Samples) -> Iterator[tuple[np.ndarray, Any]]:
        """Yield (row indices, scores) with scores an (len(rows), n_items) numpy array or torch tensor,
        covering every sample exactly once."""
        raise NotImplementedError

    def recommend(self, samples: Samples, k: int) -> Recommendations:
        from bench.evaluate import topk_from_scores

        out = np.full((len(samples), k), -1, dtype=np.int64)
        for rows, scores in self.score(samples):
            out[rows] = topk_from_scores(scores, k)
        return Recommendations(items=out)
