"""`bench run`'s options as one request: read once, validated once, written back for jobs; and
the one key=value parser every option uses."""

from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.options import parse_mapping, parse_pairs, parse_table, split_list
from bench.request import Evaluation, RunRequest
from bench.subsets import SampleChoice


def test_pairs_are_read_in_order_with_their_forms():
    assert split_list(" a, b,,c ") == ["a", "b", "c"] and split_list("") == []
    assert parse_pairs(["a=1", " b = two words "], "--x", "a=1") == [("a", "1"), ("b", "two words")]
    assert parse_pairs(["cft.alpha=0.1,0.2,0.1"], "--grid", "e", dotted=True, many=True) == [(("cft", "alpha"), ["0.1", "0.2"])]
    assert parse_table(["cft.alpha=0.2", "sft.epochs=1", "cft.beta=0.5"], "--set", "e") == {
        "cft": {"alpha": "0.2", "beta": "0.5"},
        "sft": {"epochs": "1"},
    }
    assert parse_mapping(["account=abc", "qos="], "--sbatch", "account=abc") == {"account": "abc", "qos": ""}


@pytest.mark.parametrize(
    "item, kwargs, sentence",
    [
        ("account", {}, "Cannot read --x 'account'; write it as key=value, e.g. --x k=v."),
        ("=abc", {}, "Cannot read --x '=abc'; write it as key=value, e.g. --x k=v."),
        ("alpha=1", {"dotted": True}, "Cannot read --x 'alpha=1'; write it as method.field=value, e.g. --x k=v."),
        (".alpha=1", {"dotted": True}, "Cannot read --x '.alpha=1'; write it as method.field=value, e.g. --x k=v."),
        ("cft.alpha=,", {"dotted": True, "many": True}, "Cannot read --x 'cft.alpha=,'; write it as method.field=v1,v2,..., e.g. --x k=v."),
    ],
)  # fmt: skip
def test_a_pair_that_cannot_be_read_is_one_sentence(item, kwargs, sentence):
    with pytest.raises(BenchError) as caught:
        parse_pairs([item], "--x", "k=v", **kwargs)
    assert str(caught.value) == sentence


def test_the_options_of_bench_run_become_one_request():
    request = RunRequest.from_options(
        "cft, pop", seeds="0,2", sets=["cft.alpha=0.2"], grid=["cft.beta=0.25,0.5"], model="tiny", limit_test=20,
        subset_seed=3, history="none,last", dataset="toys", name="exp",
    )  # fmt: skip
    assert request.methods == ("cft", "pop") and request.seeds == (0, 2) and request.dataset == "toys"
    assert request.overrides == {"cft": {"alpha": "0.2"}, "*": {"model": "tiny"}}
    assert request.grid == {"cft": {"beta": ["0.25", "0.5"]}}
    # a grid scores the validation split, on the same subset seed as the test subset
    assert request.evaluation == Evaluation(SampleChoice(20, "random", 3), SampleChoice(None, "random", 3), ("none", "last"))
    planned = request.plan()
    assert [(p.name, p.config.beta if p.name == "cft" else None) for p in planned] == [("cft", 0.25), ("cft", 0.5), ("pop", None)]
    job = request.for_job(planned[1], 2)
    assert job.methods == ("cft",) and job.seeds == (2,) and job.grid == {}
    assert job.overrides == {"cft": {"alpha": "0.2", "beta": "0.5", "model": "tiny"}}
    (again,) = job.plan()
    assert again.resolved == planned[1].resolved


@pytest.mark.parametrize(
    "kwargs, sentence",
    [
        ({"seeds": "-1"}, "--seeds holds -1; seeds are whole numbers from 0, e.g. --seeds 0,1,2."),
        ({"seeds": "a"}, "--seeds 'a' is not a list of integers; write e.g. --seeds 0,1,2."),
        ({"seeds": ""}, "--seeds names no seed; give at least one, e.g. --seeds 0 or --seeds 0,1,2."),
        ({"subset_seed": -1}, "A subset seed is a whole number from 0, not -1; e.g. --subset-seed 0."),
        ({"history": ""}, "--history names no condition; give some of none,shuffled,last, or leave the option out."),
        ({"history": "later"}, "Unknown history condition 'later'; choose from none, shuffled, last."),
        ({"busy": "maybe"}, "Unknown --busy 'maybe'; choose wait (for the other process) or skip (go on with other runs)."),
        ({"limit_valid": 5, "valid": False}, "--limit-valid needs validation scoring; add --valid (or a --grid)."),
        ({"limit_test": 0}, "A sample limit must be a positive number of samples, not 0."),
    ],
)
def test_a_request_that_cannot_run_is_one_sentence(kwargs, sentence):
    with pytest.raises(BenchError) as caught:
        RunRequest.from_options("pop", **kwargs)
    assert str(caught.value) == sentence
