"""History influence: the conditions change histories as they claim, the same fitted model scores
them, and the leaderboard reports the metric, its drop and the share of moved ranks."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import make_split
from rich.console import Console

from bench import registry
from bench.data.split import Samples
from bench.errors import BenchError
from bench.history import change_history, check_conditions
from bench.leaderboard import LeaderboardOptions, build_leaderboards, print_leaderboard
from bench.method import Method, Recommendations
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore


def samples() -> Samples:
    return Samples(
        users=np.array([7, 8, 9]),
        histories=[(3, 1, 4, 1, 5), (9,), ()],
        targets=np.array([2, 6, 5]),
        times=np.array([10, 11, 12]),
    )


def test_conditions_change_only_the_histories():
    s = samples()
    none, last = change_history(s, "none"), change_history(s, "last")
    assert none.histories == [(), (), ()] and last.histories == [(5,), (9,), ()]
    shuffled = change_history(s, "shuffled", seed=0)
    rng = np.random.default_rng(0)
    expected = [tuple(int(h[i]) for i in rng.permutation(len(h))) for h in s.histories]
    assert shuffled.histories == expected and sorted(shuffled.histories[0]) == [1, 1, 3, 4, 5]
    assert change_history(s, "shuffled", seed=0).histories == expected  # seeded
    for changed in (none, last, shuffled):
        assert changed.targets.tolist() == [2, 6, 5] and changed.users.tolist() == [7, 8, 9]
    with pytest.raises(BenchError, match="Unknown history condition 'reversed'"):
        check_conditions(["none", "reversed"])


def test_an_llm_without_history_gets_the_counterfactual_prompt(tmp_path):
    from methods.llm import prompts
    from methods.llm.examples import inference_prompts
    from methods.llm.models import load_tiny, tiny_training_texts

    split = make_split()
    titles = list(split.items.titles)
    tokenizer = load_tiny(tiny_training_texts(split.card, titles), cache_dir=tmp_path, seed=0).tokenizer
    fmt = prompts.PromptFormat(tokenizer, split.card, "quoted", 1024)
    texts = inference_prompts(fmt, titles, change_history(split.test.head(2), "none"))
    assert texts == [prompts.build_prompt(split.card, [], counterfactual=True, layout="quoted")] * 2
    assert "### Input:" not in texts[0]


@dataclass
class EchoConfig:
    pass


class Echo(Method):
    """Recommends the history's items, newest first: its ranking is the history."""

    name = "echo"
    Config = EchoConfig

    def _fit(self, train, valid, context):
        pass

    def _recommend(self, samples, k):
        items = np.full((len(samples), k), -1, dtype=np.int64)
        for row, h in enumerate(samples.histories):
            newest = list(dict.fromkeys(reversed(h)))[:k]
            items[row, : len(newest)] = newest
        return Recommendations(items=items)


@pytest.fixture
def echo(monkeypatch):
    monkeypatch.setattr("methods.pop.Echo", Echo, raising=False)
    registry.register("echo", "methods.pop:Echo", "the history as the ranking")
    yield
    registry.BUILTIN.pop("echo")


def test_history_conditions_are_stored_and_reported(tmp_path, echo):
    # every test target is placed as the newest history item: echo ranks it first with the full
    # history and with the last item, never without history
    split = make_split(n_test=12)
    split.test.histories = [tuple(h) + (int(t),) for h, t in zip(split.test.histories, split.test.targets)]
    store = RunStore(tmp_path)
    evaluation = Evaluation(history=("none", "shuffled", "last"))
    run_benchmark(
        RunRequest(["echo", "pop"], "tiny", [0], device="cpu", evaluation=evaluation),
        split=split,
        store=store,
        show_progress=False,
    )
    (echo_run,) = [r for r in store.runs("tiny") if r.record.method == "echo"]
    assert echo_run.arrays()["rank"].tolist() == [0] * 12
    assert echo_run.arrays("history_last")["rank"].tolist() == [0] * 12
    assert echo_run.arrays("history_none")["rank"].tolist() == [-1] * 12
    assert echo_run.record.history["none"].metrics["HR@10"] == 0.0

    (board,) = build_leaderboards("tiny", LeaderboardOptions(history=True, n_resamples=200), store=store)
    found = {(e["label"], e["condition"]): e for e in board.history}
    none, last = found[("echo", "none")], found[("echo", "last")]
    assert none["full"] == pytest.approx(1.0) and none["mean"] == 0.0 and none["diff"] == pytest.approx(-1.0)
    assert none["changed"] == 1.0 and none["significant"]
    assert last["diff"] == 0.0 and last["changed"] == 0.0 and not last["significant"]
    pop_none = found[("pop", "none")]
    assert pop_none["diff"] == 0.0 and pop_none["changed"] == 0.0  # popularity ignores the history
    out = io.StringIO()
    print_leaderboard(Console(file=out, width=80, color_system=None), board)
    assert "History influence on NDCG@10" in out.getvalue() and "-1.0000*" in out.getvalue()


def test_a_stored_run_without_the_conditions_is_run_again(tmp_path):
    store, split = RunStore(tmp_path), make_split()
    (first,) = run_benchmark(RunRequest(["pop"], "tiny", [0], device="cpu"), split=split, store=store, show_progress=False)
    (again,) = run_benchmark(
        RunRequest(["pop"], "tiny", [0], device="cpu", evaluation=Evaluation(history=("last",))),
        split=split,
        store=store,
        show_progress=False,
    )
    assert again.key == first.key and again.created_at >= first.created_at
    assert set(again.history) == {"last"} and store.runs("tiny")[0].has_part("history_last")
