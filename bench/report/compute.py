"""What the report shows beside the leaderboard tables, computed from the stored runs (no model):

curves       NDCG@K and HR@K for K = 1..50 from per-sample ranks, per seed, then averaged
pareto_front the rows no other row beats on both quality and cost
find_grids   a method's configurations differing in exactly two settings, with validation scores

Every number of the tables (cells, intervals, history, beyond accuracy, cost, provenance) comes
from the leaderboard (bench.leaderboard); these are what only the pictures need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from bench.leaderboard.model import Leaderboard, Row
from bench.leaderboard.select import valid_score
from bench.record import RunRecord
from bench.store import StoredRun

MAX_K = 50


def curves(ranks, max_k: int = MAX_K) -> dict[str, np.ndarray]:
    """HR@K and NDCG@K for K = 1..max_k (index K-1): rank r (0-based) is a hit at K when 0 <= r < K,
    with gain 1 / log2(r + 2); -1 (not ranked) is never a hit."""
    ranks = np.asarray(ranks, dtype=np.int64)
    if len(ranks) == 0:
        nan = np.full(max_k, np.nan)
        return {"NDCG": nan, "HR": nan.copy()}
    inside = ranks[(ranks >= 0) & (ranks < max_k)]
    counts = np.bincount(inside, minlength=max_k)[:max_k].astype(np.float64)
    gains = counts / np.log2(np.arange(max_k) + 2.0)
    return {"NDCG": np.cumsum(gains) / len(ranks), "HR": np.cumsum(counts) / len(ranks)}


def row_curves(runs: list[StoredRun], max_k: int = MAX_K) -> dict[str, np.ndarray]:
    """Each seed's curves over its own samples, averaged over seeds (as the table's cells are)."""
    per_seed = [curves(run.arrays()["rank"], max_k) for run in runs]
    return {name: np.mean([c[name] for c in per_seed], axis=0) for name in ("NDCG", "HR")}


def pareto_front(costs, qualities) -> list[int]:
    """Indices of the points no other point dominates (cost <= and quality >=, one of them strictly),
    ordered by increasing cost. Points with a missing (nan) cost or quality are never on it."""
    costs, qualities = np.asarray(costs, dtype=np.float64), np.asarray(qualities, dtype=np.float64)
    known = [i for i in range(len(costs)) if np.isfinite(costs[i]) and np.isfinite(qualities[i])]
    front = []
    for i in known:
        dominated = any(
            costs[j] <= costs[i] and qualities[j] >= qualities[i] and (costs[j] < costs[i] or qualities[j] > qualities[i])
            for j in known
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (costs[i], -qualities[i]))


def row_seconds(row: Row) -> float | None:
    """Everything a row's run spent (fit, recommendations, validation, history), the mean over its
    seeds, as the cost table shows it."""
    total = row.cost.get("total_s")
    return None if total is None else float(total)


def settings_of(record: RunRecord) -> dict:
    return record.config | record.overrides


def _sort_values(values: list) -> list:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sorted(values)
    return sorted(values, key=lambda v: json.dumps(v, sort_keys=True))


@dataclass
class Grid:
    """A method's configurations over two settings: the validation and test value of each cell
    (nan where that pair was not run), the row letter of each cell and the best cell on validation."""

    method: str
    metric: str
    x: str
    y: str
    x_values: list
    y_values: list
    valid: np.ndarray  # (len(y_values), len(x_values))
    test: np.ndarray
    letters: list[list[str | None]]
    best: tuple[int, int]  # (y index, x index) of the best validation value


def find_grids(board: Leaderboard, runs: dict[str, StoredRun], metric: str | None = None) -> list[Grid]:
    """One Grid per method whose rows with validation scores differ in exactly two settings."""
    metric = metric or board.metrics[0]
    grids = []
    for method in dict.fromkeys(r.method for r in board.rows):
        scored = []
        for row in board.rows:
            if row.method != method:
                continue
            stored = [runs[k] for k in row.run_keys if k in runs]
            score = valid_score(stored, metric) if stored and len(stored) == len(row.run_keys) else None
            if score is not None:
                scored.append((row, settings_of(stored[0].record), score))
        if len(scored) < 2:
            continue
        keys = sorted({k for _, s, _ in scored for k in s})
        differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for _, s, _ in scored}) > 1]
        if len(differing) != 2:
            continue
        x, y = differing
        x_values = _sort_values(list({json.dumps(s.get(x), sort_keys=True): s.get(x) for _, s, _ in scored}.values()))
        y_values = _sort_values(list({json.dumps(s.get(y), sort_keys=True): s.get(y) for _, s, _ in scored}.values()))
        xi = {json.dumps(v, sort_keys=True): i for i, v in enumerate(x_values)}
        yi = {json.dumps(v, sort_keys=True): i for i, v in enumerate(y_values)}
        valid = np.full((len(y_values), len(x_values)), np.nan)
        test = valid.copy()
        letters: list[list[str | None]] = [[None] * len(x_values) for _ in y_values]
        for row, s, score in scored:
            i, j = yi[json.dumps(s.get(y), sort_keys=True)], xi[json.dumps(s.get(x), sort_keys=True)]
            valid[i, j], test[i, j], letters[i][j] = score, row.cells[metric].mean if metric in row.cells else np.nan, row.letter
        best = np.unravel_index(int(np.nanargmax(valid)), valid.shape)
        grids.append(Grid(method, metric, x, y, x_values, y_values, valid, test, letters, (int(best[0]), int(best[1]))))
    return grids
