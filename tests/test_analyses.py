"""The leaderboard's analyses beside accuracy: beyond-accuracy metrics and cost, from stored runs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from bench import beyond
from bench.data.prepare import load_split, prepare
from bench.errors import BenchError
from bench.leaderboard import LeaderboardOptions, build_leaderboards, print_leaderboard
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore
from bench.subsets import SampleChoice


@pytest.fixture
def ml100k_pop(tmp_path):
    prepare("ml-100k")
    store = RunStore()
    run_benchmark(
        RunRequest(["pop"], "ml-100k", [0, 1], device="cpu", evaluation=Evaluation(SampleChoice(60))),
        store=store,
        show_progress=False,
    )
    return store


def test_beyond_metrics_in_the_leaderboard_equal_the_module(ml100k_pop):
    (board,) = build_leaderboards("ml-100k", LeaderboardOptions(beyond=10, n_resamples=100), store=ml100k_pop)
    split = load_split("ml-100k")
    popularity = beyond.item_popularity(split.train.targets, len(split.items))
    runs = ml100k_pop.runs("ml-100k")
    expected = beyond.beyond_metrics(runs[0].arrays(), popularity, beyond.long_tail_mask(popularity), len(split.items),
                                     len(split.train), split.test.targets, 10).summary()  # fmt: skip
    (entry,) = board.beyond
    assert entry["label"] == "pop" and entry["k"] == 10
    # pop gives every sample the same list: both seeds agree, coverage is 10 items of the catalogue
    assert entry["values"] == pytest.approx(expected)
    assert entry["values"]["coverage@10"] == pytest.approx(10 / len(split.items))
    assert entry["values"]["tail@10"] == 0.0
    assert entry["intervals"]["gini@10"] == pytest.approx([expected["gini@10"]] * 2)
    out = io.StringIO()
    print_leaderboard(Console(file=out, width=80, color_system=None), board)
    assert "Beyond accuracy" in out.getvalue() and f"{expected['coverage@10']:.4f}" in out.getvalue()


def test_cost_columns_come_from_the_records(ml100k_pop):
    (board,) = build_leaderboards("ml-100k", LeaderboardOptions(cost=True, n_resamples=100), store=ml100k_pop)
    records = [r.record for r in ml100k_pop.runs("ml-100k")]
    (row,) = board.rows
    assert row.cost["fit_s"] == pytest.approx(np.mean([r.timing.fit_s for r in records]))
    assert row.cost["total_s"] == pytest.approx(np.mean([r.timing.total_s for r in records]))
    assert row.cost["samples_per_s"] == pytest.approx(np.mean([60 / r.timing.recommend_s for r in records]))
    assert row.cost["peak_mb"] == max(r.resources.peak_rss_mb for r in records) and row.cost["gpu_hours"] is None
    assert row.cost["device"] == records[0].provenance.device


def test_beyond_needs_the_split_the_runs_used(ml100k_pop, monkeypatch):
    import bench.data.prepare as prep

    real = prep.load_split

    def other(name):
        split = real(name)
        split.hash = "0000000000000000"
        return split

    monkeypatch.setattr(prep, "load_split", other)
    with pytest.raises(BenchError, match=r"The prepared 'ml-100k' split \(0000000000000000\) is not the one these runs used"):
        build_leaderboards("ml-100k", LeaderboardOptions(beyond=10, n_resamples=100), store=ml100k_pop)
