"""A table's rows from their stored runs: per-sample metrics of each seed, the samples every seed
scored, per-sample values averaged over seeds (what the tests compare), and the cells' means and
standard deviations over seeds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench import labels
from bench.errors import BenchError
from bench.evaluate import per_sample_metrics
from bench.leaderboard.align import align
from bench.leaderboard.analyses import row_cost
from bench.leaderboard.model import Cell, Row
from bench.record import RunRecord
from bench.store import StoredRun


@dataclass
class RowData:
    label: str
    runs: list[StoredRun]
    sample_index: np.ndarray  # sorted, common to all seeds of the row
    per_seed: dict[str, list[float]]  # metric -> mean of each seed over its own samples
    values: dict[str, np.ndarray]  # metric -> per-sample value averaged over seeds

    @property
    def record(self) -> RunRecord:
        return self.runs[0].record


def _read_arrays(run: StoredRun) -> dict[str, np.ndarray]:
    try:
        return run.arrays()
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"Stored run {run.folder} cannot be read ({exc}); delete that folder and run it again.") from exc


def load_row(runs: list[StoredRun], metrics: list[str]) -> RowData:
    loaded = []
    for run in runs:
        arrays = _read_arrays(run)
        loaded.append((np.asarray(arrays["sample_index"]), per_sample_metrics(arrays["rank"])))
    common = loaded[0][0]
    for index, _ in loaded[1:]:
        common = np.intersect1d(common, index)
    common = np.unique(common)
    per_seed = {m: [float(v[m].mean()) for _, v in loaded] for m in metrics}
    values = {m: np.mean([align(i, v[m], common) for i, v in loaded], axis=0) for m in metrics}
    label = runs[0].record.label
    return RowData(label, runs, common, per_seed, values)


def paired(a: RowData, b: RowData, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Two rows' per-sample values on the samples both scored, in sample order."""
    common = np.intersect1d(a.sample_index, b.sample_index)
    return align(a.sample_index, a.values[metric], common), align(b.sample_index, b.values[metric], common)


def family_pairs(n_rows: int, base: int | None = None) -> list[tuple[int, int]]:
    """The pairs of rows (by index) one correction covers: every pair, or with `base` each row with that one."""
    if base is None:
        return [(i, j) for i in range(n_rows) for j in range(i + 1, n_rows)]
    return [(min(i, base), max(i, base)) for i in range(n_rows) if i != base]


def make_rows(data: list[RowData], metrics: list[str]) -> list[Row]:
    rows = []
    for letter, d in zip(labels.letters(len(data)), data):
        cells = {}
        for m in metrics:
            seeds = np.asarray(d.per_seed[m])
            std = float(seeds.std(ddof=1)) if len(seeds) > 1 else None
            cells[m] = Cell(mean=float(seeds.mean()), std=std)
        rows.append(
            Row(
                letter=letter,
                label=d.label,
                method=d.record.method,
                config_key=d.record.config_key or d.runs[0].key,
                overrides=dict(d.record.overrides),
                seeds=[r.record.seed for r in d.runs],
                run_keys=[r.key for r in d.runs],
                cells=cells,
                cost=row_cost([r.record for r in d.runs]),
            )
        )
    return rows
