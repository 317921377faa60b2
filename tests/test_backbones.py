"""The two LLM backbones' decoding aids through `bench run`, on the tiny model and a small split whose
training targets give pop a known order: D3's text-free assistant (assistant_scale) in constrained
decoding and BIGRec's adjusted grounding (grounding_adjust, grounding_gamma), with the assistant a
score method fitted once per command beside one fit of the LLM; `--select-on valid` choosing among
them; and the refusals, one sentence each."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
from conftest import make_split
from test_store import quiet_console

from bench import registry
from bench.errors import BenchError
from bench.leaderboard import LeaderboardOptions, build_leaderboards
from bench.method import ScoreMethod
from bench.plan import plan_methods
from bench.request import RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore
from methods.llm.base import LLMMethod
from methods.pop import Pop

N_ITEMS = 30
# pop's order: ORDER[j] is a training target 13 - j times (j < 12), every other item once
ORDER = np.random.default_rng(1).permutation(N_ITEMS)
COUNTS = np.ones(N_ITEMS, dtype=np.int64)
COUNTS[ORDER[:12]] = 13 - np.arange(12)
FAST = {"model": "tiny", "epochs": "1", "max_train_samples": "16", "max_valid_samples": "4", "micro_batch": "8",
        "grad_accum": "1", "warmup_steps": "1", "max_new_tokens": "16"}  # fmt: skip
FITS: list[str] = []


class Oracle(ScoreMethod):
    """An assistant that knows each sample's target (score 1 there, 0 elsewhere): where its rows
    reach the samples they belong to, the target comes first."""

    name = "oracle"

    def _fit(self, train, valid, context):
        FITS.append("oracle")

    def _score(self, samples):
        scores = np.zeros((len(samples), N_ITEMS), dtype=np.float32)
        scores[np.arange(len(samples)), samples.targets] = 1.0
        yield np.arange(len(samples)), scores


def backbone_split():
    split = make_split(n_items=N_ITEMS, n_train=int(COUNTS.sum()))
    targets = np.repeat(np.arange(N_ITEMS), COUNTS)
    np.random.default_rng(2).shuffle(targets)
    return dataclasses.replace(split, train=dataclasses.replace(split.train, targets=targets))


@pytest.fixture
def counted(monkeypatch):
    """Every fit of an LLM method, of pop and of the oracle is named in FITS, in order."""
    registry.register("oracle", "test_backbones:Oracle", "test assistant")
    FITS.clear()
    for cls, name in ((LLMMethod, "llm"), (Pop, "pop")):
        fit = cls._fit

        def counting(self, train, valid, context, fit=fit, name=name):
            FITS.append(name)
            return fit(self, train, valid, context)

        monkeypatch.setattr(cls, "_fit", counting)
    torch.set_num_threads(1)
    yield
    registry.BUILTIN.pop("oracle", None)


def run(store, method: str, sets: dict, grid=()):
    settings = [f"{method}.{k}={v}" for k, v in {**FAST, **sets}.items()]
    request = RunRequest.from_options(method, sets=settings, grid=list(grid), device="cpu", valid=True)
    console, _ = quiet_console()
    return run_benchmark(request, split=backbone_split(), store=store, console=console, show_progress=False)


def arrays(store, record) -> dict:
    return store.load("tiny", record.method, record.key).arrays()


def test_the_text_free_assistant_shares_one_fit_and_mixes_as_gamma_says(counted, tmp_path):
    store = RunStore(tmp_path)
    (plain,) = run(store, "sft", {"decoding": "constrained"})
    assert FITS == ["llm"]
    # the LLM learned from a seeded subset of 16 training samples, and the run says which
    from methods.llm.examples import cap_samples

    assert plain.train_samples == {"n": 16, "sha256": cap_samples(backbone_split().train, 16, 0).content_hash()}
    FITS.clear()
    records = run(store, "sft", {"decoding": "constrained"}, ["sft.assistant=pop,oracle", "sft.assistant_scale=1,0.5,0"])
    # the LLM's fit comes from the fit cache (the first command stored it); each assistant once
    assert FITS == ["pop", "oracle"]
    assert len({r.key for r in records} | {plain.key}) == 7
    assert [r.reused_fit_of for r in records] == [plain.key] * 6
    assert records[0].timing.fit_s > 0 and all(r.timing.fit_s == 0 for r in records[1:])  # loaded once
    by = {(r.config["assistant"], r.config["assistant_scale"]): r for r in records}
    for (assistant, scale), r in by.items():
        (use,) = r.assistants
        assert use["method"] == assistant
        assert (use["fit_s"] > 0) == (scale == 1.0)  # fitted in the first run naming it, reused after
    # gamma 1 is the LLM alone: the plain run's lists, whichever assistant is named
    for assistant in ("pop", "oracle"):
        assert np.array_equal(arrays(store, by[(assistant, 1.0)])["topk"], arrays(store, plain)["topk"])
    # gamma 0 is the assistant alone: every title branches from the others at one token, so the
    # beams are pop's top 10 in pop's order for every sample (its counts are distinct there)
    top = arrays(store, by[("pop", 0.0)])["topk"][:, :10]
    assert (top == ORDER[:10]).all()
    assert not np.array_equal(arrays(store, by[("pop", 0.5)])["topk"], arrays(store, plain)["topk"])
    # the oracle's rows reach their own samples (decoded in batches sorted by prompt length)
    assert by[("oracle", 0.0)].metrics["HR@1"] == 1.0 and by[("oracle", 0.0)].valid.metrics["HR@1"] == 1.0


def test_adjusted_grounding_popularity_collaborative_and_the_choice_on_valid(counted, tmp_path):
    store = RunStore(tmp_path)
    grid = [
        "bigrec.assistant=pop,oracle",
        "bigrec.grounding_adjust=none,popularity,collaborative",
        "bigrec.grounding_gamma=0,1,50",
    ]
    records = run(store, "bigrec", {}, grid)
    assert FITS == ["llm", "pop", "oracle"] and len(records) == 18
    assert sum(r.reused_fit_of is None for r in records) == 1
    top = {
        (r.config["assistant"], r.config["grounding_adjust"], r.config["grounding_gamma"]): arrays(store, r)["topk"]
        for r in records
    }
    plain = top[("pop", "none", 0.0)]
    for gamma in (0.0, 1.0, 50.0):
        assert np.array_equal(top[("oracle", "popularity", gamma)], top[("pop", "popularity", gamma)])
        # pop's score row is its counts, whose min-max is the popularity signal
        assert np.array_equal(top[("pop", "collaborative", gamma)], top[("pop", "popularity", gamma)])
    assert np.array_equal(top[("pop", "popularity", 0.0)], plain)  # gamma 0: the plain L2 order
    # the nearest item stays first; popular items move up
    strong = top[("pop", "popularity", 50.0)]
    assert np.array_equal(strong[:, 0], plain[:, 0]) and not np.array_equal(strong, plain)
    assert COUNTS[strong[:, 1:10]].mean() > COUNTS[plain[:, 1:10]].mean()
    # the oracle's rows: its target at most second in each beam's ranking, so within the first 10
    oracle = next(
        r
        for r in records
        if (r.config["assistant"], r.config["grounding_adjust"], r.config["grounding_gamma"]) == ("oracle", "collaborative", 50.0)
    )
    assert oracle.metrics["HR@10"] == 1.0 and oracle.valid.metrics["HR@10"] == 1.0
    # --select-on valid reports the configuration best on validation NDCG@10
    best = max(r.valid.metrics["NDCG@10"] for r in records)
    (board,) = build_leaderboards("tiny", LeaderboardOptions(select_on="valid", n_resamples=10), store=store)
    (row,) = board.rows
    (chosen,) = [r for r in records if r.key in row.run_keys]
    assert chosen.valid.metrics["NDCG@10"] == best and chosen.config["grounding_adjust"] == "collaborative"
    assert chosen.config["assistant"] == "oracle" and chosen.config["grounding_gamma"] > 0


@pytest.mark.parametrize(
    ("settings", "sentence"),
    [
        ({"assistant_scale": "0.5"}, "assistant_scale=0.5 mixes an assistant's scores into decoding, but none is named"),
        ({"assistant": "pop", "assistant_scale": "0.5", "decoding": "grounded"}, "acts in constrained decoding only"),
        ({"assistant": "pop", "assistant_scale": "0.5", "search": "transformers"}, "runs in the own beam search only"),
        ({"grounding_adjust": "collaborative", "decoding": "grounded"}, "ranks by an assistant's scores, but none is named"),
        ({"grounding_adjust": "popularity"}, "grounding_adjust=popularity acts in grounded decoding only"),
        ({"assistant": "pop", "assistant_set": "epochs"}, "assistant_set must be setting=value pairs joined by ';'"),
        ({"assistant_set": "epochs=3"}, "assistant_set gives settings to an assistant, but none is named"),
        ({"assistant": "sft"}, "Method 'sft' cannot be its own assistant"),
    ],
)
def test_refusals_are_one_sentence(settings, sentence):
    with pytest.raises(BenchError, match=sentence) as caught:
        (p,) = plan_methods(["sft"], {"sft": settings})
        _ = p.key_config
    message = str(caught.value)
    assert message.endswith(".") and not re.search(r"\. [A-Z]", message), message


def test_the_assistants_settings_are_its_own():
    (p,) = plan_methods(["sft"], {"sft": {"assistant": "sasrec", "assistant_set": "epoch=3"}})
    with pytest.raises(BenchError, match="Method 'sasrec' has no setting 'epoch'. Did you mean epochs?"):
        _ = p.key_config


def test_an_assistant_that_is_no_score_method_is_refused_before_anything_trains(counted):
    (p,) = plan_methods(["cft"], {"cft": {"model": "tiny", "assistant": "sft", "assistant_set": "epochs=1"}})
    with pytest.raises(
        BenchError,
        match=r"^The assistant 'sft' of cft does not score every catalogue item, so decoding cannot use it; name a score method such as sasrec or pop\.$",
    ):
        p.cls.preflight(p.config)
    assert FITS == []


def test_the_assistant_is_keyed_by_what_it_resolves_to():
    (a,) = plan_methods(["sft"], {"sft": {"assistant": "sasrec", "assistant_set": "epochs=3;hidden_size=64"}})
    (b,) = plan_methods(["sft"], {"sft": {"assistant": "sasrec", "assistant_set": " hidden_size=064 ; epochs=3 "}})
    (c,) = plan_methods(["sft"], {"sft": {"assistant": "sasrec", "assistant_set": "epochs=4;hidden_size=64"}})
    assert a.config.assistant_settings() == {"epochs": "3", "hidden_size": "64"}
    assert a.key_config["assistant_key"] == b.key_config["assistant_key"] != c.key_config["assistant_key"]
    assert a.key_config["assistant_key"]["config"]["epochs"] == 3 and a.fit_key_config == c.fit_key_config


def test_the_papers_four_backbones_are_registered():
    """bigrec, cft (CFT on BIGRec), d3 and d3-cft (CFT on D3): the paper's comparison by name."""
    from bench.plan import plan_methods

    bigrec, cft, d3, d3_cft = plan_methods(["bigrec", "cft", "d3", "d3-cft"])
    assert (bigrec.config.decoding, cft.config.decoding) == ("grounded", "grounded")
    for p in (d3, d3_cft):
        c = p.config
        assert (c.decoding, c.num_beams, c.assistant, c.assistant_scale) == ("constrained", 10, "sasrec", 0.5)
        assert p.key_config["assistant_key"]["method"] == "sasrec" and "assistant" not in p.key_config
        assert "assistant_scale" in p.cls.decode_settings  # a grid over gamma shares one fine-tuning
    assert (d3_cft.config.alpha, d3_cft.config.beta) == (cft.config.alpha, cft.config.beta) == (0.1, 0.25)
    assert not hasattr(d3.config, "alpha")
