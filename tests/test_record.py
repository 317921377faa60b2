"""The run record: one typed contract between `bench run` and every reader; old run.json files
are read through one migration; a hand-edited field is named, never a traceback."""

from __future__ import annotations

import json

import pytest
from conftest import make_split

from bench import paths
from bench.record import SCHEMA_VERSION, RecordError, RunRecord, Score, Timing
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore, check_run
from bench.subsets import SampleChoice

# a run.json as the first stored runs wrote it (schema 1): evaluate_s, a total without validation
SCHEMA_1 = {
    "schema": 1,
    "key": "0119612bae8db140",
    "config_key": "c0ffee",
    "method": "cft",
    "method_version": "2",
    "label": "cft[epochs=1]",
    "experiments": ["smollm2-128"],
    "config": {"epochs": 1, "alpha": 0.1},
    "overrides": {"epochs": 1},
    "dataset": "ml-100k",
    "split_hash": "ee9944b31294ccae",
    "seed": 0,
    "limit_test": 200,
    "n_test": 200,
    "metrics": {"NDCG@10": 0.0043, "HR@10": 0.01},
    "invalid_total": 3,
    "valid": {"subset": {"mode": "random", "seed": 0, "limit": 64}, "n": 64, "metrics": {"NDCG@10": 0.02}, "seconds": 4.0},
    "history": {"none": {"metrics": {"NDCG@10": 0.001}, "invalid_total": 0}},
    "timing": {"fit_s": 10.0, "recommend_s": 5.0, "evaluate_s": 0.5, "total_s": 15.5},
    "resources": {"peak_rss_mb": 900.0, "peak_gpu_mb": 1000.0, "gpu_hours": 0.0043},
    "provenance": {"git_commit": "abc", "git_dirty": False, "packages": {"torch": "2.13.0"}, "device": "cuda:0", "processes": 2},
    "info": {"train_samples": 128},
    "extra": {"generations": []},
    "started_at": "2026-01-01T00:00:00+00:00",
    "created_at": "2026-01-01T00:01:00+00:00",
}


def test_a_schema_1_record_is_migrated_in_one_place():
    record = RunRecord.from_json(json.loads(json.dumps(SCHEMA_1)))
    # the metrics step was evaluate_s; the total now counts the validation seconds it left out
    assert record.timing == Timing(fit_s=10.0, recommend_s=5.0, metrics_s=0.5, valid_s=4.0, history_s=None, total_s=19.5)
    # GPU-hours follow the total: 19.5 s on 2 processes
    assert record.resources.gpu_hours == round(19.5 * 2 / 3600, 4)
    assert record.valid == Score(metrics={"NDCG@10": 0.02}, n=64, subset={"mode": "random", "seed": 0, "limit": 64}, seconds=4.0)
    assert record.history["none"].metrics == {"NDCG@10": 0.001}
    assert record.provenance.processes == 2 and record.provenance.python is None
    assert record.schema == SCHEMA_VERSION == 2
    # written back, it is a schema-2 record that reads to the same object
    again = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record and again.to_json()["schema"] == 2


def test_fields_the_first_records_lacked_take_their_meaning():
    minimal = {k: SCHEMA_1[k] for k in ("key", "method", "dataset", "split_hash", "seed", "n_test", "metrics")}
    minimal["overrides"] = {"epochs": 1}
    record = RunRecord.from_json(minimal)
    assert record.label == "cft[epochs=1]"  # named as the tables name it
    assert record.valid is None and record.history == {} and record.experiments == [] and record.test_subset is None
    assert record.timing.total_s == 0.0 and record.resources.gpu_hours is None


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("n_test", "abc", "field n_test is 'abc', not a whole number"),
        ("seed", "x", "field seed is 'x', not a whole number"),
        ("seed", True, "field seed is True, not a whole number"),
        ("metrics", None, "field metrics is None, not a mapping of metric values"),
        ("metrics", {"NDCG@10": "high"}, "field metrics.NDCG@10 is 'high', not a number"),
        ("n_test", -1, "field n_test is -1, below 0"),
        ("timing", {"fit_s": "slow"}, "field timing.fit_s is 'slow', not a number"),
        ("valid", [], "field valid is [], not a mapping"),
        ("experiments", "a,b", "field experiments is 'a,b', not a list of names"),
        ("schema", 3, "was written with schema 3, newer than this bench's 2: update bench to read it"),
    ],
)
def test_a_wrong_field_is_named(field, value, reason):
    with pytest.raises(RecordError) as caught:
        RunRecord.from_json({**SCHEMA_1, "schema": 2, field: value})
    assert str(caught.value) == reason


def test_a_missing_field_list_names_them_all():
    with pytest.raises(RecordError, match=r"^lacks key, n_test$"):
        RunRecord.from_json({k: v for k, v in SCHEMA_1.items() if k not in ("key", "n_test")})


def test_the_stored_results_load_as_records():
    runs, damaged = RunStore(paths.PROJECT_ROOT / "results").scan()
    assert runs and not damaged
    for run in runs:
        assert run.record.timing.total_s >= run.record.timing.fit_s + run.record.timing.recommend_s
        assert isinstance(run.record.experiments, list) and run.record.label.startswith(run.record.method)


def test_total_time_covers_fit_recommendations_validation_and_history(tmp_path):
    store = RunStore(tmp_path)
    evaluation = Evaluation(SampleChoice(), valid=SampleChoice(), history=("none", "last"))
    (record,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=evaluation),
        split=make_split(),
        store=store,
        show_progress=False,
    )
    t = record.timing
    assert t.valid_s > 0 and t.history_s > 0 and t.fit_s > 0
    assert t.total_s == pytest.approx(t.fit_s + t.recommend_s + t.metrics_s + t.valid_s + t.history_s)
    assert record.valid.seconds <= t.valid_s
    stored, problem = check_run(store.run_dir("tiny", "pop", record.key))
    assert problem is None and stored == record  # what was saved is what was built
    assert json.loads((store.run_dir("tiny", "pop", record.key) / "run.json").read_text())["schema"] == SCHEMA_VERSION


def test_a_run_records_which_training_samples_it_learned_from(tmp_path):
    split = make_split()
    (record,) = run_benchmark(RunRequest(["pop"], "tiny", [0], device="cpu"), split=split, store=RunStore(tmp_path),
                              show_progress=False)  # fmt: skip
    assert record.train_samples == {"n": len(split.train), "sha256": split.train.content_hash()}
    # the hash is of the samples in their order: another order or one sample fewer is another hash
    n = len(split.train)
    hashes = {split.train.content_hash(), split.train.subset(list(range(n))[::-1]).content_hash(),
              split.train.head(n - 1).content_hash()}  # fmt: skip
    assert len(hashes) == 3 and split.train.subset(range(n)).content_hash() == split.train.content_hash()
