"""Runs grouped into experiments: a name given at run time is stored with the run (not part of its
key), and the leaderboard makes one table per experiment, or shows the runs a user selects by
method, setting or name."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_split
from records import make_record, rank_arrays

from bench.errors import BenchError
from bench.leaderboard import LeaderboardOptions, Selection, build_leaderboards, parse_where
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore
from bench.subsets import SampleChoice


def _run(store, split, name=None, methods=("pop",), overrides=None, limit_test=None):
    return run_benchmark(
        RunRequest(
            list(methods),
            split.name,
            [0],
            device="cpu",
            name=name,
            overrides=overrides,
            evaluation=Evaluation(SampleChoice(limit_test, mode="first")),
        ),
        split=split,
        store=store,
        show_progress=False,
    )


def test_a_name_is_stored_with_the_run_and_is_not_part_of_its_key(tmp_path):
    store, split = RunStore(tmp_path), make_split()
    (plain,) = _run(store, split)
    assert plain.experiments == []
    (named,) = _run(store, split, name="first")  # stored already: skipped, named
    assert named.key == plain.key and named.created_at == plain.created_at
    (again,) = _run(store, split, name="second")
    assert again.experiments == ["first", "second"] and again.created_at == plain.created_at
    (stored,) = store.runs("tiny")
    assert stored.record.experiments == ["first", "second"]
    assert len(list((tmp_path / "runs" / "tiny" / "pop").iterdir())) == 1  # one run, no copies


def test_a_bad_experiment_name_is_one_sentence(tmp_path):
    with pytest.raises(BenchError, match=r"Experiment name 'a b' cannot be used; give 1 to 64 letters"):
        _run(RunStore(tmp_path), make_split(), name="a b")


def test_each_experiment_is_a_table_of_its_own(tmp_path):
    store, split = RunStore(tmp_path), make_split(n_test=10)
    _run(store, split, name="classic")
    _run(store, split, methods=("pop",), name="tiny-llm", limit_test=6)
    _run(store, split, methods=("pop",), overrides={"pop": {}}, name="tiny-llm")  # pop again, now also in tiny-llm
    boards = build_leaderboards("tiny", LeaderboardOptions(n_resamples=100), store=store)
    assert [(b.experiment, b.n_samples) for b in boards] == [("classic", 10), ("tiny-llm", 10), ("tiny-llm", 6)]
    assert [b.title for b in boards] == [
        "tiny · classic: 10 test samples",
        "tiny · tiny-llm: 10 test samples",
        "tiny · tiny-llm: the first 6 test samples",
    ]
    (only,) = build_leaderboards("tiny", LeaderboardOptions(n_resamples=100, selection=Selection(name="classic")), store=store)
    assert only.experiment == "classic" and [r.label for r in only.rows] == ["pop"]


def test_runs_without_a_name_come_first_then_named_experiments(tmp_path):
    store, split = RunStore(tmp_path), make_split()
    _run(store, split, name="zeta", limit_test=5)
    _run(store, split, limit_test=4)
    boards = build_leaderboards("tiny", LeaderboardOptions(n_resamples=100), store=store)
    assert [(b.experiment, b.n_samples) for b in boards] == [(None, 4), ("zeta", 5)]
    assert boards[0].title == "tiny: the first 4 test samples"


def _save(store, method, overrides, config, seed=0, experiments=()):

    ranks = np.zeros(8, dtype=np.int64) if method != "pop" else np.full(8, -1)
    key = f"{method}-{'-'.join(f'{k}{v}' for k, v in sorted(overrides.items()))}"
    record = make_record(key=key, config_key=key, method=method, ranks=ranks, config=config, overrides=overrides, seed=seed,
                         experiments=list(experiments))  # fmt: skip
    store.save(record, rank_arrays(ranks))


def test_runs_are_selected_by_method_and_setting(tmp_path):
    store = RunStore(tmp_path)
    _save(store, "sft", {"model": "smollm2-135m", "epochs": 1}, {"model": "smollm2-135m", "epochs": 1, "lora": False})
    _save(store, "cft", {"model": "smollm2-135m", "epochs": 1}, {"model": "smollm2-135m", "epochs": 1, "lora": False})
    _save(store, "sft", {}, {"model": "tiny", "epochs": 3, "lora": False})
    _save(store, "pop", {}, {})

    def labels(**kw):
        (board,) = build_leaderboards("toys", LeaderboardOptions(n_resamples=100, selection=Selection(**kw)), store=store)
        return [r.label for r in board.rows], board.shared

    # the SmolLM2 rows form their own table; what they share moves to the settings line
    assert labels(where=parse_where(["model=smollm2-135m"])) == (["cft", "sft"], {"epochs": 1, "model": "smollm2-135m"})
    assert labels(where={"model": "tiny"}) == (["sft"], {})
    assert labels(where={"epochs": "1.0", "lora": "false"}) == (["cft", "sft"], {"epochs": 1, "model": "smollm2-135m"})
    assert labels(methods=["sft", "pop"])[0] == ["pop", "sft", "sft[epochs=1,model=smollm2-135m]"]
    with pytest.raises(BenchError, match=r"No stored run of dataset 'toys' matches model=qwen; "):
        build_leaderboards("toys", LeaderboardOptions(selection=Selection(where={"model": "qwen"})), store=store)
    with pytest.raises(
        BenchError, match=r"Cannot read --where 'model'; write it as key=value, e.g. --where model=smollm2-135m\."
    ):
        parse_where(["model"])
