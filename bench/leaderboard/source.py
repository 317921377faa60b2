"""What the tables are made from: the stored runs of one dataset, scanned once, and the prepared
split they were scored on, loaded once and only when an analysis needs it (popularity comes from
its training part)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.leaderboard import select
from bench.store import DamagedRun, RunStore, StoredRun


@dataclass
class Source:
    dataset: str
    runs: list[StoredRun]
    damaged: list[DamagedRun]  # named wherever the tables are shown, never left out silently
    _splits: dict = field(default_factory=dict, repr=False)

    @classmethod
    def scan(cls, dataset: str, store: RunStore | None = None) -> Source:
        runs, damaged = (store if store is not None else RunStore()).scan(dataset)
        return cls(dataset, runs, damaged)

    def by_key(self) -> dict[str, StoredRun]:
        return {run.key: run for run in self.runs}

    def split(self, split_hash: str):
        """The prepared split, when it is the one the runs were scored on (item ids may differ
        between two preparations)."""
        if split_hash not in self._splits:
            self._splits[split_hash] = _load_split(self.dataset, split_hash)
        return self._splits[split_hash]


def _load_split(dataset: str, split_hash: str):
    from bench.data.prepare import is_prepared, load_split

    if not is_prepared(dataset):
        raise BenchError(
            f"Dataset '{dataset}' is not prepared, and beyond-accuracy metrics need its split; "
            f"run `bench data prepare {dataset}` first."
        )
    split = load_split(dataset)
    if split.hash != split_hash:
        raise BenchError(
            f"The prepared '{dataset}' split ({split.hash}) is not the one these runs used ({split_hash}); "
            "prepare that split again, or show the runs of the current split."
        )
    return split


@dataclass
class Chosen:
    """The runs the tables show: those the selection names, on one split."""

    dataset: str
    split_hash: str
    runs: list[StoredRun]


def choose(source: Source, selection: select.Selection) -> Chosen:
    if not source.runs:
        raise BenchError(
            f"No stored runs for dataset '{source.dataset}'; run `bench run --dataset {source.dataset} --methods ...` first."
        )
    runs = select.select(source.runs, selection)
    if not runs:
        raise BenchError(
            f"No stored run of dataset '{source.dataset}' matches {selection.describe()}; "
            f"`bench leaderboard --dataset {source.dataset}` shows every table with its rows' labels."
        )
    split_hash, runs = select.current_split(runs, source.dataset, selection.split_hash)
    return Chosen(source.dataset, split_hash, runs)
