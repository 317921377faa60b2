"""Which samples of a split are scored. A smoke run or a validation pass may score fewer than all:
either the first n samples, or n drawn at random with a seed that is the same for every method and
run seed, so that the rows of a table are paired on identical samples.

    SampleChoice()                        every sample
    SampleChoice(200)                     200 random samples (seed 0), kept in split order
    SampleChoice(200, mode="first")       the first 200 samples (the earliest targets)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError

MODES = ("random", "first")


@dataclass(frozen=True)
class SampleChoice:
    limit: int | None = None
    mode: str = "random"
    seed: int = 0

    def __post_init__(self):
        if self.limit is not None and self.limit <= 0:
            raise BenchError(f"A sample limit must be a positive number of samples, not {self.limit}.")
        if self.mode not in MODES:
            raise BenchError(f"Unknown subset '{self.mode}'; choose random or first.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise BenchError(f"A subset seed is a whole number from 0, not {self.seed!r}; e.g. --subset-seed 0.")

    def indices(self, n: int) -> np.ndarray:
        """Sorted indices of the chosen samples among n."""
        if self.limit is None or self.limit >= n:
            return np.arange(n, dtype=np.int64)
        if self.mode == "first":
            return np.arange(self.limit, dtype=np.int64)
        return np.sort(np.random.default_rng(self.seed).permutation(n)[: self.limit]).astype(np.int64)

    @property
    def tag(self) -> str | None:
        """What identifies the choice beyond its limit: None for all samples and for the first n
        (so runs stored before random subsets existed keep their keys), "random:<seed>" otherwise."""
        return f"random:{self.seed}" if self.limit is not None and self.mode == "random" else None

    def describe(self, n_chosen: int) -> str:
        if self.limit is None:
            return f"{n_chosen:,} samples"
        if self.mode == "first":
            return f"the first {n_chosen:,} samples"
        return f"{n_chosen:,} random samples (seed {self.seed})"

    def as_record(self) -> dict | None:
        return None if self.limit is None else {"limit": self.limit, "mode": self.mode, "seed": self.seed}

    @classmethod
    def from_record(cls, limit: int | None, record: dict | None) -> SampleChoice:
        """The choice a stored run used; runs stored before subsets had a mode used the first n."""
        if limit is None:
            return cls()
        record = record or {"mode": "first"}
        return cls(limit, record.get("mode", "first"), int(record.get("seed", 0)))
