"""Evaluation, registry, store and runner: the harness's own numbers and rules."""

from __future__ import annotations

import math
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest
from conftest import make_split

from bench import evaluate, registry
from bench.errors import BenchError
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore
from bench.subsets import SampleChoice

# --- evaluation ---------------------------------------------------------------------------------


def test_metrics_by_hand():
    ranks = np.array([0, 1, 4, 9, 10, -1])
    m = evaluate.summarize(ranks, ks=(1, 5, 10))
    assert m["HR@1"] == pytest.approx(1 / 6)
    assert m["HR@5"] == pytest.approx(3 / 6)
    assert m["HR@10"] == pytest.approx(4 / 6)
    assert m["NDCG@1"] == pytest.approx(1 / 6)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 6)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 6)


def test_ranks_from_lists_first_occurrence_and_missing():
    items = np.array([[3, 1, 2], [5, 5, 7], [1, 2, -1]])
    assert evaluate.ranks_from_lists(items, np.array([2, 5, 9])).tolist() == [2, 0, -1]


def test_ties_count_against_the_model_numpy_and_torch():
    torch = pytest.importorskip("torch")
    scores = np.array([[0.5, 0.9, 0.5, 0.1], [1.0, 1.0, 1.0, 1.0]])
    targets = np.array([0, 3])
    # row 0: items scoring >= 0.5 are 0, 1, 2 -> rank 2; row 1: all tie -> rank 3 (last)
    assert evaluate.ranks_from_scores(scores, targets).tolist() == [2, 3]
    assert evaluate.ranks_from_scores(torch.tensor(scores), targets).tolist() == [2, 3]
    assert evaluate.topk_from_scores(scores, 2).tolist() == [[1, 0], [0, 1]]
    assert evaluate.topk_from_scores(torch.tensor(scores), 2).tolist() == [[1, 0], [0, 1]]


# --- registry -----------------------------------------------------------------------------------


def test_unknown_method_suggests_close_names():
    with pytest.raises(BenchError, match="Did you mean sasrec"):
        registry.get_spec("sasrek")


def test_overrides_are_typed_and_checked():
    from dataclasses import dataclass

    @dataclass
    class Cfg:
        lr: float = 0.1
        epochs: int = 3
        lora: bool = False
        model: str = "tiny"
        cap: int | None = None

    class M:
        name = "m"
        Config = Cfg

    cfg = registry.build_config(M, {"lr": "0.5", "epochs": "7", "lora": "true", "cap": "none"})
    assert (cfg.lr, cfg.epochs, cfg.lora, cfg.cap) == (0.5, 7, True, None)
    assert registry.build_config(M, {"cap": "12"}).cap == 12
    with pytest.raises(BenchError, match="Did you mean epochs"):
        registry.build_config(M, {"epoch": "2"})
    with pytest.raises(BenchError, match="as int"):
        registry.build_config(M, {"epochs": "two"})
    assert registry.parse_overrides(["cft.alpha=0.2", "sft.epochs=1"]) == {"cft": {"alpha": "0.2"}, "sft": {"epochs": "1"}}
    with pytest.raises(BenchError, match="method.field=value"):
        registry.parse_overrides(["alpha=0.2"])


def test_plugin_methods_come_from_entry_points(monkeypatch):
    ep = EntryPoint(name="mypop", value="methods.pop:Pop", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep] if group == registry.ENTRY_POINT_GROUP else [])
    assert registry.all_specs()["mypop"].origin == "plugin"
    cls = registry.load_class("mypop")
    assert cls.name == "mypop" and issubclass(cls, registry.load_class("pop"))


def test_listing_methods_imports_no_torch():
    code = (
        "import sys; from bench.cli import app; from bench.registry import all_specs; all_specs(); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- store and runner ---------------------------------------------------------------------------


def test_pop_run_is_stored_with_provenance_and_resumed(tmp_path):
    split = make_split(n_items=20, n_train=200, n_valid=20, n_test=40)
    store = RunStore(tmp_path / "res")
    records = run_benchmark(RunRequest(["pop"], "tiny", [0, 1], device="cpu"), split=split, store=store, show_progress=False)
    assert len(records) == 2 and len(store.runs("tiny")) == 2
    r = records[0]
    assert r.provenance.seed == 0 and r.provenance.split_hash == split.hash and r.provenance.device.startswith("cpu")
    assert "numpy" in r.provenance.packages and r.provenance.git_dirty in (True, False, None)
    assert r.timing.fit_s > 0 and r.timing.recommend_s > 0 and r.timing.metrics_s > 0
    # pop's ranking by hand: counts of training targets, ties against the model
    counts = np.bincount(split.train.targets, minlength=20)
    expected = [(counts >= counts[t]).sum() - 1 for t in split.test.targets]
    arrays = store.runs("tiny")[0].arrays()
    assert arrays["rank"].tolist() == expected
    assert arrays["topk"].shape == (40, 50) and (arrays["topk"][:, 20:] == -1).all()
    assert r.metrics["HR@10"] == pytest.approx(np.mean(np.array(expected) < 10))
    # second call: everything is stored, nothing is recomputed
    again = run_benchmark(RunRequest(["pop"], "tiny", [0, 1], device="cpu"), split=split, store=store, show_progress=False)
    assert [x.created_at for x in again] == [x.created_at for x in records]
    # a different test limit is a different run
    limited = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=Evaluation(SampleChoice(10, mode="first"))),
        split=split,
        store=store,
        show_progress=False,
    )
    assert limited[0].key not in {x.key for x in records} and limited[0].n_test == 10


def test_half_written_runs_are_invisible(tmp_path):
    store = RunStore(tmp_path)
    folder = tmp_path / "runs" / "tiny" / "pop"
    (folder / ".abc.tmp-1").mkdir(parents=True)
    (folder / ".abc.tmp-1" / "run.json").write_text("{}")
    assert store.runs("tiny") == []


def test_failing_method_keeps_other_runs(tmp_path, monkeypatch):
    from methods.pop import Pop

    class Broken(Pop):
        def _fit(self, train, valid, context):
            raise BenchError("broken on purpose; nothing to do")

    monkeypatch.setattr("methods.pop.Broken", Broken, raising=False)
    registry.register("broken", "methods.pop:Broken", "always fails")
    try:
        store = RunStore(tmp_path)
        with pytest.raises(BenchError, match="1 run\\(s\\) failed"):
            run_benchmark(
                RunRequest(["broken", "pop"], "tiny", [0], device="cpu"), split=make_split(), store=store, show_progress=False
            )
        assert [r.record.method for r in store.runs("tiny")] == ["pop"]
    finally:
        registry.BUILTIN.pop("broken")


def test_set_for_a_method_not_run_is_an_error():
    with pytest.raises(BenchError, match="not among --methods"):
        run_benchmark(
            RunRequest(["pop"], "tiny", [0], overrides={"cft": {"alpha": "1"}}), split=make_split(), show_progress=False
        )


def test_cli_run_on_ml100k_and_errors(tmp_path):
    from typer.testing import CliRunner

    from bench.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["run", "--methods", "pop", "--dataset", "ml-100k", "--limit-test", "500", "--device", "cpu"])
    assert out.exit_code == 0, out.output
    runs = RunStore().runs("ml-100k")
    assert len(runs) == 1 and runs[0].record.n_test == 500
    bad = runner.invoke(app, ["run", "--methods", "pop", "--dataset", "ml-100k", "--set", "pop.alpha=1"])
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, ["run", "--methods", "pop", "--seeds", "a,b"])
    assert bad.exit_code == 2 and "--seeds" in bad.output
