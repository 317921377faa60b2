"""Run records for tests: one helper instead of a hand-written copy of the record in each file."""

from __future__ import annotations

import numpy as np

from bench.evaluate import summarize
from bench.labels import run_label
from bench.record import RunRecord


def make_record(*, method: str, ranks=None, **fields) -> RunRecord:
    """A record of `method` whose metrics are those of `ranks` (when given); any field can be
    given as it is stored in run.json (nested parts as mappings), and goes through the same
    checks as a stored run.json."""
    overrides = fields.get("overrides") or {}
    data = {
        "key": f"{method}-{run_label(method, overrides)}-s{fields.get('seed', 0)}",
        "method": method,
        "label": run_label(method, overrides),
        "method_version": "1",
        "dataset": "toys",
        "split_hash": "s",
        "seed": 0,
        "created_at": "2025-01-01T00:00:00+00:00",
        "schema": 2,
    }
    if ranks is not None:
        data |= {"n_test": len(ranks), "metrics": summarize(np.asarray(ranks, dtype=np.int64))}
    data |= {k: v for k, v in fields.items() if v is not None or k in ("limit_test", "valid")}
    return RunRecord.from_json(data)


def rank_arrays(ranks, sample_index=None, topk=None) -> dict[str, np.ndarray]:
    """The per-sample arrays a run stores, for the given target ranks (-1: not in the list)."""
    ranks = np.asarray(ranks, dtype=np.int64)
    n = len(ranks)
    return dict(
        sample_index=np.arange(n, dtype=np.int64) if sample_index is None else np.asarray(sample_index, dtype=np.int64),
        rank=ranks,
        topk=np.full((n, 50), -1, dtype=np.int32) if topk is None else np.asarray(topk, dtype=np.int32),
        invalid=np.zeros(n, dtype=np.int32),
    )
