"""The popularity baseline: rank items by how often they are a training target."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bench.data.split import Samples
from bench.method import Context, ScoreMethod


class Pop(ScoreMethod):
    name = "pop"
    version = "1"

    def _fit(self, train: Samples, valid: Samples, context: Context) -> None:
        self.counts = np.bincount(train.targets, minlength=context.n_items).astype(np.float64)

    def _score(self, samples: Samples, batch_size: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for start in range(0, len(samples), batch_size):
            rows = np.arange(start, min(start + batch_size, len(samples)))
            yield rows, np.broadcast_to(self.counts, (len(rows), len(self.counts)))

    def run_info(self) -> dict:
        return {"distinct_targets": int((self.counts > 0).sum())}
