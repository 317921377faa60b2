"""Choosing configurations on validation, never on test: grids, validation scoring, random test
subsets, and the family of tests a correction covers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import make_split
from records import make_record, rank_arrays
from rich.console import Console

from bench.errors import BenchError
from bench.evaluate import summarize
from bench.labels import run_label
from bench.leaderboard import LeaderboardOptions, build_leaderboards
from bench.plan import parse_grid, plan_methods
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore
from bench.subsets import SampleChoice

N = 40


# ---------------------------------------------------------------- planning


def test_a_grid_expands_into_the_product_of_its_values():
    planned = plan_methods(
        ["pop", "sasrec"],
        {"sasrec": {"epochs": "2"}},
        parse_grid(["sasrec.hidden_size=16,32", "sasrec.lr=0.01,0.001,0.01"]),  # a repeated value counts once
    )
    assert [p.label for p in planned] == [
        "pop",
        "sasrec[epochs=2,hidden_size=16,lr=0.01]",
        "sasrec[epochs=2,hidden_size=16]",  # lr 0.001 is sasrec's default
        "sasrec[epochs=2,hidden_size=32,lr=0.01]",
        "sasrec[epochs=2,hidden_size=32]",
    ]
    assert [(p.config.hidden_size, p.config.lr, p.config.epochs) for p in planned[1:]] == [
        (16, 0.01, 2), (16, 0.001, 2), (32, 0.01, 2), (32, 0.001, 2),
    ]  # fmt: skip


def test_grid_values_that_resolve_alike_are_one_run():
    planned = plan_methods(["sasrec"], None, parse_grid(["sasrec.lr=0.001,1e-3"]))
    assert len(planned) == 1


def test_bad_grids_are_one_sentence():
    with pytest.raises(BenchError, match=r"Cannot read --grid 'sasrec.lr'; write it as method.field=v1,v2"):
        parse_grid(["sasrec.lr"])
    with pytest.raises(BenchError, match=r"--grid names cft, which is not among --methods pop"):
        plan_methods(["pop"], None, parse_grid(["cft.alpha=0.1,0.2"]))
    with pytest.raises(BenchError, match=r"Method 'sasrec' has no setting 'hiden_size'. Did you mean hidden_size"):
        plan_methods(["sasrec"], None, parse_grid(["sasrec.hiden_size=1,2"]))


def test_a_star_setting_reaches_every_method_that_has_it():
    planned = plan_methods(["pop", "sasrec", "gru4rec"], {"*": {"epochs": "2"}, "gru4rec": {"epochs": "5"}})
    assert [p.label for p in planned] == ["pop", "sasrec[epochs=2]", "gru4rec[epochs=5]"]  # the method's own wins
    with pytest.raises(BenchError, match=r"--set '\*.alpha' matches no method: none of pop, sasrec has a setting 'alpha'"):
        plan_methods(["pop", "sasrec"], {"*": {"alpha": "0.1"}})
    with pytest.raises(BenchError, match=r"--methods names no method"):
        plan_methods([], None)


def test_the_model_option_sets_every_llm_backbone(monkeypatch):
    from typer.testing import CliRunner

    from bench import cli

    seen = {}

    def fake_run(request, **kw):
        seen.update(methods=request.methods, overrides=request.overrides, evaluation=request.evaluation, grid=request.grid)
        return []

    monkeypatch.setattr("bench.runner.run_benchmark", fake_run)
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO()))
    out = CliRunner().invoke(cli.app, ["run", "--methods", "sft,pop", "--model", "tiny", "--set", "sft.model=x",
                                       "--limit-test", "5", "--grid", "sft.lr=0.1,0.2"])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert seen["overrides"] == {"*": {"model": "tiny"}, "sft": {"model": "x"}}
    plan = plan_methods(["sft", "pop"], seen["overrides"])
    assert [p.config.model for p in plan if p.name == "sft"] == ["x"]  # the method's own setting wins
    assert seen["evaluation"] == Evaluation(SampleChoice(5, "random", 0), SampleChoice(None, "random", 0))  # a grid scores valid
    with pytest.raises(BenchError, match=r"--set '\*.model' matches no method"):
        plan_methods(["pop"], {"*": {"model": "tiny"}})


# ---------------------------------------------------------------- subsets


def test_a_random_subset_is_seeded_sorted_and_the_same_for_everybody():
    a, b = SampleChoice(5, seed=3).indices(100), SampleChoice(5, seed=3).indices(100)
    assert a.tolist() == b.tolist() and a.tolist() == sorted(a.tolist()) and len(set(a.tolist())) == 5
    assert a.tolist() == np.sort(np.random.default_rng(3).permutation(100)[:5]).tolist()
    assert SampleChoice(5, seed=4).indices(100).tolist() != a.tolist()
    assert SampleChoice(5, "first").indices(100).tolist() == [0, 1, 2, 3, 4]
    assert SampleChoice(500).indices(100).tolist() == list(range(100)) and SampleChoice().indices(3).tolist() == [0, 1, 2]
    with pytest.raises(BenchError, match="positive number of samples"):
        SampleChoice(0)


def test_runs_record_their_random_test_subset_and_valid_scores(tmp_path):
    store, split = RunStore(tmp_path), make_split(n_test=30, n_valid=20)
    evaluation = Evaluation(SampleChoice(8, "random", 1), SampleChoice(6, "random", 1))
    (record,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=evaluation), split=split, store=store, show_progress=False
    )
    (run,) = store.runs("tiny")
    chosen = np.sort(np.random.default_rng(1).permutation(30)[:8])
    assert run.arrays()["sample_index"].tolist() == chosen.tolist()
    assert record.test_subset == {"limit": 8, "mode": "random", "seed": 1} and record.n_test == 8
    valid = run.arrays("valid")
    assert valid["sample_index"].tolist() == np.sort(np.random.default_rng(1).permutation(20)[:6]).tolist()
    # pop ranks every sample by training-target counts: recompute the validation ranks by hand
    counts = np.bincount(split.train.targets, minlength=30).astype(float)
    targets = split.valid.targets[valid["sample_index"]]
    expected = [int((counts >= counts[t]).sum()) - 1 for t in targets]
    assert valid["rank"].tolist() == expected
    assert record.valid.metrics == pytest.approx(summarize(np.asarray(expected)))
    # first-n runs keep the key they had before random subsets existed; random ones differ
    first = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=Evaluation(SampleChoice(8, mode="first"))),
        split=split,
        store=store,
        show_progress=False,
    )
    assert first[0].key != record.key and first[0].test_subset == {"limit": 8, "mode": "first", "seed": 0}
    from bench.store import run_key

    assert first[0].key == run_key("pop", "1", {}, split.hash, 0, 8)


def test_a_stored_run_without_valid_scores_is_run_again_when_they_are_asked(tmp_path):
    store, split = RunStore(tmp_path), make_split()
    (plain,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", name="a"), split=split, store=store, show_progress=False
    )
    assert plain.valid is None
    evaluation = Evaluation(valid=SampleChoice())
    (scored,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=evaluation, name="b"),
        split=split,
        store=store,
        show_progress=False,
    )
    assert scored.key == plain.key and scored.valid.n == 10 and scored.experiments == ["a", "b"]
    (again,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=evaluation), split=split, store=store, show_progress=False
    )
    assert again.created_at == scored.created_at  # stored with these scores: skipped


# ---------------------------------------------------------------- choosing on validation


def save(store, method, overrides, test_ranks, valid_ranks=None, seed=0, config=None):
    key = run_label(method, overrides) + f"-s{seed}"
    config_key = run_label(method, overrides)
    valid = None
    if valid_ranks is not None:
        valid = {"subset": None, "n": len(valid_ranks), "metrics": summarize(np.asarray(valid_ranks))}
    record = make_record(key=key, config_key=config_key, method=method, ranks=test_ranks, overrides=overrides, valid=valid,
                         config=config if config is not None else dict(overrides), seed=seed)  # fmt: skip
    store.save(record, rank_arrays(test_ranks), None if valid_ranks is None else rank_arrays(valid_ranks))


@pytest.fixture
def grid(tmp_path):
    """cft alpha 0.1 is best on validation, alpha 0.2 is best on test: the table must show 0.1.
    alpha 0.1 is cft's default, so only the chosen-values rule puts it in the label."""
    store = RunStore(tmp_path)
    cfg = {"alpha": 0.1, "beta": 0.25}
    save(store, "cft", {}, [3] * N, valid_ranks=[0] * 10, config=cfg)  # valid NDCG@10 1.0
    save(store, "cft", {"alpha": 0.2}, [0] * N, valid_ranks=[1] * 10, config=dict(cfg, alpha=0.2))  # valid 0.63
    save(store, "cft", {"alpha": 0.05}, [5] * N, valid_ranks=[-1] * 10, config=dict(cfg, alpha=0.05))
    save(store, "pop", {}, [-1] * N, valid_ranks=[-1] * 10)
    return store


def test_the_validation_best_configuration_is_reported_on_test(grid):
    (board,) = build_leaderboards("toys", LeaderboardOptions(select_on="valid", n_resamples=100), store=grid)
    assert [r.label for r in board.rows] == ["cft[alpha=0.1]", "pop"]
    assert board.rows[0].cells["NDCG@10"].mean == pytest.approx(1 / np.log2(5))  # test rank 3, not alpha 0.2's rank 0
    assert board.title == "toys: 40 test samples, configurations chosen on validation NDCG@10"
    assert "cft: best of 3 configurations on validation NDCG@10 (1.0000)." in board.caption
    # significance on test only: cft (rank 3 on every sample) beats pop (never ranked)
    assert board.rows[0].cells["NDCG@10"].wins == ["b"]
    chosen, every = build_leaderboards(
        "toys", LeaderboardOptions(select_on="valid", all_configs=True, n_resamples=100), store=grid
    )
    assert chosen.view.startswith("configurations chosen") and every.view == "every configuration"
    assert [r.label for r in every.rows] == ["cft", "cft[alpha=0.05]", "cft[alpha=0.2]", "pop"]
    (hr,) = build_leaderboards("toys", LeaderboardOptions(select_on="valid", select_metric="hr@50", n_resamples=100), store=grid)
    assert [r.label for r in hr.rows] == ["cft[alpha=0.1]", "pop"]  # HR@50: 1.0 (0.1) = 1.0 (0.2): the first config key wins


def test_choosing_without_validation_scores_is_one_sentence(tmp_path):
    store = RunStore(tmp_path)
    save(store, "cft", {}, [0] * N, valid_ranks=[0] * 10)
    save(store, "cft", {"alpha": 0.2}, [0] * N)
    with pytest.raises(
        BenchError, match=r"1 of the 2 configurations of 'cft' have no validation scores; run them again with --valid"
    ):
        build_leaderboards("toys", LeaderboardOptions(select_on="valid"), store=store)
    with pytest.raises(BenchError, match=r"chosen on valid only, not 'test' \(never on test\)"):
        build_leaderboards("toys", LeaderboardOptions(select_on="test"), store=store)


def test_each_row_against_the_baseline_is_a_smaller_family(grid):
    every = build_leaderboards("toys", LeaderboardOptions(n_resamples=100), store=grid)[0]
    against = build_leaderboards("toys", LeaderboardOptions(baseline="pop", pairs="baseline", n_resamples=100), store=grid)[0]
    assert len({(c.a, c.b) for c in every.comparisons}) == 6  # 4 rows: all pairs
    assert sorted({(c.a, c.b) for c in against.comparisons}) == [("a", "d"), ("b", "d"), ("c", "d")]  # m - 1 = 3
    assert "Holm correction over the 3 comparisons with pop" in against.caption
    # Holm over 3 p-values instead of 6: each adjusted p is at most the all-pairs one
    p_every = {(c.metric, c.a, c.b): c.p_adjusted for c in every.comparisons}
    for c in against.comparisons:
        assert c.p_adjusted <= p_every[(c.metric, c.a, c.b)] + 1e-12
    with pytest.raises(BenchError, match=r"--pairs baseline compares each row with the baseline; name it with --baseline"):
        build_leaderboards("toys", LeaderboardOptions(pairs="baseline"), store=grid)
