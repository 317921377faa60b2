"""The accelerator path, checked on the CPU: precision settings train what they claim, a pass of
several micro-batches trains the model that single micro-batches train, the training loop waits
for the device at most once per optimiser step, batch sizes follow their rule, and settings added
later keep the stored runs' keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import make_split
from test_llm_engine import cf_prompt_of, encoded, run_train, tiny_model

from bench import registry
from bench.errors import BenchError
from bench.plan import plan_methods
from bench.store import run_key
from bench.syncs import count_host_syncs
from methods.llm import setup, sizing
from methods.llm.batching import EpochBatches, collate
from methods.llm.cft import CFTConfig
from methods.llm.loss import LabelLogits, cft_loss, pass_loss
from methods.llm.objective import Objective
from methods.llm.precision import Precision

torch.set_num_threads(1)


def _train(split, config: CFTConfig, n: int = 32, valid: int = 0):
    loaded = tiny_model(split)
    loaded.model.to(Precision.resolve(config.precision, "cpu").weights_dtype)  # as the LLM methods load it
    before = {k: v.detach().clone().float() for k, v in loaded.model.named_parameters()}
    examples = encoded(split, loaded.tokenizer)[:n]
    valid_examples = encoded(split, loaded.tokenizer, "valid")[:valid]
    model, result = run_train(loaded, examples, valid_examples, cf_prompt_of(split, loaded.tokenizer), config)
    after = {k: v.detach().float() for k, v in model.named_parameters()}
    return before, after, result


def _config(**kw) -> CFTConfig:
    base = dict(model="tiny", epochs=1, micro_batch=4, grad_accum=2, alpha=0.1, beta=0.25, lr=1e-4, warmup_steps=0)
    return CFTConfig(**dict(base, **kw))


# ------------------------------------------------------------------------------------ precision


def test_auto_precision_is_fp32_on_a_cpu_and_bf16_mixed_on_a_gpu():
    assert Precision.resolve("auto", "cpu").name == "fp32"
    assert Precision.resolve("auto", "cuda:1").name == "bf16-mixed"
    mixed = Precision.resolve("bf16-mixed", "cuda")
    assert (mixed.weights_dtype, mixed.decode_dtype, mixed.mixed_precision) == (torch.float32, torch.bfloat16, "bf16")
    pure = Precision.resolve("bf16-pure", "cpu")
    assert (pure.weights_dtype, pure.mixed_precision) == (torch.bfloat16, "no")
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16-mixed, bf16-pure, not 'fp16'"):
        Precision.resolve("fp16", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "bf16-mixed"])
def test_every_trainable_weight_changes_with_float32_master_weights(precision):
    """An AdamW step moves every weight by about lr (1e-5 here, the reference schedule's learning
    rate in its first warm-up steps): with float32 master weights (fp32, and bf16-mixed under CPU
    autocast) every weight moves, and all elements of every weight but the embedding (whose rows of
    tokens absent from the batches get no gradient) except at most 2 or 0.1 %: an element comes back
    to its value when two updates cancel exactly."""
    before, after, result = _train(make_split(), _config(precision=precision, lr=1e-5))
    assert result.precision == precision and result.optimizer_steps == 4
    for name, w in after.items():
        assert w.dtype == torch.float32
        unchanged = int((w == before[name]).sum())
        allowed = w.numel() - 1 if "embed" in name else max(2, w.numel() // 1000)
        assert unchanged <= allowed, f"{name}: {unchanged} of its {w.numel()} elements did not move under {precision}"


def test_pure_bf16_loses_small_updates_and_the_share_is_reported(capsys):
    """The reference code's setting: bf16 weights trained directly. Updates below half the bf16
    spacing round away: at lr 1e-5 on the tiny model (weights ~N(0, 0.02), spacing about 1e-4;
    norm weights 1.0, spacing 2^-7) most elements never move, the norm weights not at all."""
    before, after, result = _train(make_split(), _config(precision="bf16-pure", lr=1e-5))
    assert result.precision == "bf16-pure"
    total = sum(w.numel() for w in after.values())
    unchanged = sum(int((w == before[n]).sum()) for n, w in after.items())
    norms = [n for n in after if "norm" in n]
    assert norms and all(torch.equal(after[n], before[n]) for n in norms)  # 1.0 +- 1e-4 rounds back to 1.0
    share = unchanged / total
    with capsys.disabled():
        print(f"\nbf16-pure, 4 AdamW steps at lr 1e-5 on the tiny model: {share:.1%} of the weight elements unchanged")
    assert share > 0.5


def test_the_run_record_says_which_precision_trained_it(tmp_path):
    from bench.method import Context

    split = make_split(n_test=2)
    cls = registry.load_class("cft")
    config = registry.build_config(
        cls,
        {
            "model": "tiny",
            "epochs": "1",
            "max_train_samples": "8",
            "max_valid_samples": "4",
            "micro_batch": "4",
            "grad_accum": "1",
            "max_new_tokens": "8",
        },
    )
    method = cls(config)
    from bench import paths

    method.fit(split.train, split.valid, Context("cpu", 0, split.items, split.card, tmp_path, paths.cache_dir()))
    info = method.run_info()
    assert (info["precision"], info["train_weights_dtype"], info["autocast"], info["decode_dtype"]) == (
        "fp32", "float32", "none", "float32",
    )  # fmt: skip


# ------------------------------------------------------------------------------ device batches


def test_a_pass_of_two_micro_batches_has_the_gradient_of_two_accumulated_passes():
    split = make_split()
    loaded = tiny_model(split)
    examples = encoded(split, loaded.tokenizer)[:7]  # 4 + 3: a short second micro-batch
    cf = cf_prompt_of(split, loaded.tokenizer)
    module = LabelLogits(loaded.model)
    objective = Objective(0.1, 0.25)

    def grads(loss):
        loaded.model.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in loaded.model.parameters()])

    pad = loaded.tokenizer.pad_token_id
    fused = collate(examples, cf, pad, counterfactual=True, micro_batch=4)
    assert fused["n_chunks"] == 2 and fused["chunk"].tolist() == [0] * sum(len(e.response) for e in examples[:4]) + [1] * sum(
        len(e.response) for e in examples[4:]
    )
    g_fused = grads(pass_loss(*module(fused, counterfactual=True), fused, objective, per_pass=2))
    g_sum = 0
    for part in (examples[:4], examples[4:]):  # the protocol's loss per micro-batch, averaged over the 2 accumulated
        b = collate(part, cf, pad, counterfactual=True)
        z_f, z_cf = module(b, counterfactual=True)
        g_sum = g_sum + grads(cft_loss(z_f, z_cf, b["labels"], b["example_index"], 0.1, 0.25)[0] / 2)
    torch.testing.assert_close(g_fused, g_sum, rtol=1e-5, atol=1e-7)


def test_device_batch_trains_the_model_single_micro_batches_train():
    """micro_batch 4 x grad_accum 2: one pass of 8 examples per step against two passes of 4."""
    split = make_split()
    _, single, r1 = _train(split, _config(lr=1e-3, device_batch=0), valid=8)
    _, joined, r2 = _train(split, _config(lr=1e-3, device_batch=8), valid=8)
    assert (r1.device_batch, r2.device_batch, r1.optimizer_steps, r2.optimizer_steps) == (4, 8, 4, 4)
    assert r1.history[0]["valid_loss"] == pytest.approx(r2.history[0]["valid_loss"], rel=1e-5)
    assert r1.history[0]["train_loss"] == pytest.approx(r2.history[0]["train_loss"], rel=1e-5)
    for name in single:  # weights of about 0.02 that moved by about 4e-3: equal to float32 rounding
        torch.testing.assert_close(single[name], joined[name], rtol=1e-4, atol=1e-5)


def test_device_batch_must_be_whole_micro_batches_dividing_grad_accum():
    with pytest.raises(
        ValueError,
        match=r"device_batch=6 is not a whole number of micro-batches of 4 dividing grad_accum=4; choose one of 4, 8, 16",
    ):
        _config(device_batch=6, grad_accum=4)  # the one config checks it when it is made
    with pytest.raises(ValueError, match=r"choose one of 4, 12"):
        _config(device_batch=8, grad_accum=3)
    assert setup.passes_per_micro_batch(_config(device_batch=0), None, [], 0, "cpu") == 1  # a CPU: one micro-batch
    assert setup.passes_per_micro_batch(_config(device_batch=8, grad_accum=4), None, [], 0, "cpu") == 2
    with pytest.raises(BenchError, match=r"Method 'cft': device_batch=6 is not a whole number .* choose one of 16, 32, 64"):
        plan_methods(["cft"], {"cft": {"device_batch": "6"}})  # when the run is planned, before anything loads


def test_passes_join_consecutive_micro_batches_of_the_same_order():
    lengths = [5, 9, 3, 7, 2, 8, 6, 4, 1, 10]
    plain = EpochBatches(10, 2, seed=3, lengths=lengths)
    joined = EpochBatches(10, 2, seed=3, lengths=lengths, per_pass=2)
    mbs = plain.batches()
    assert joined.passes() == [mbs[0] + mbs[1], mbs[2] + mbs[3], mbs[4]] and len(joined) == 3


def test_the_memory_rule_joins_micro_batches_while_they_fit():
    qwen = sizing.Shape(parameters=494_032_768, layers=24, hidden=896, intermediate=4864, vocab=151_936, kv_heads=2, head_dim=64)
    h200 = 139 * 2**30
    # Qwen2-0.5B, 200-token examples with 20 labels, a counterfactual pass of 100 tokens: 4 x 16 in one pass
    assert sizing.training_passes(qwen, 16, 4, 200, 20, True, h200, cf_tokens=100) == 4
    # a 24 GB card holds two micro-batches of 16 and not four, a 12 GB card one (or less)
    assert sizing.training_passes(qwen, 16, 4, 200, 20, True, 24 * 2**30, cf_tokens=100) == 2
    assert sizing.training_passes(qwen, 16, 4, 200, 20, True, 12 * 2**30, cf_tokens=100) == 1
    one = sizing.example_bytes(qwen, 300, 20, True, False)
    assert one == 300 * 24 * (16 * 896 + 6 * 4864) + 20 * 151_936 * 10 * 2
    # the largest divisor of grad_accum that fits: 3 of grad_accum 6 when 4 would fit but does not divide
    budget = (16 * qwen.parameters + 4.5 * 16 * one) / sizing.TRAIN_SHARE
    assert sizing.training_passes(qwen, 16, 6, 200, 20, True, int(budget), cf_tokens=100) == 3
    assert sizing.decode_batch(qwen, 200, 10, 64, 0) == 1
    assert sizing.decode_batch(qwen, 200, 10, 64, h200) == sizing.MAX_DECODE_BATCH


# ------------------------------------------------------------------------------------ host syncs


@pytest.mark.parametrize("alpha, device_batch", [(0.0, 0), (0.1, 0), (0.1, 8)])
def test_training_waits_for_the_device_at_most_once_per_optimiser_step(alpha, device_batch):
    """Counted with a dispatch hook: the loss weights come from the collator, the running loss
    stays on the device, and the attention mask is prepared (no mask values read): one read at
    the end of the epoch, plus one per optimiser step for the progress line when it is shown."""
    split = make_split()
    loaded = tiny_model(split)
    examples = encoded(split, loaded.tokenizer)[:32]
    config = _config(alpha=alpha, device_batch=device_batch, lr=1e-3)
    with count_host_syncs() as counts:
        _, result = run_train(loaded, examples, [], cf_prompt_of(split, loaded.tokenizer), config)
    assert result.optimizer_steps == 4
    assert counts.syncs <= 1, dict(counts.by_sync)


def test_training_with_progress_reads_the_loss_once_per_step():
    from rich.progress import Progress

    split = make_split()
    loaded = tiny_model(split)
    examples = encoded(split, loaded.tokenizer)[:32]
    with Progress(disable=True) as progress, count_host_syncs() as counts:
        _, result = run_train(loaded, examples, [], cf_prompt_of(split, loaded.tokenizer), _config(), progress=progress)
    assert counts.syncs <= result.optimizer_steps + 1, dict(counts.by_sync)


def test_the_sync_counter_counts_what_makes_a_gpu_wait():
    x = torch.arange(6.0)
    with count_host_syncs() as counts:
        float(x.sum())
        _ = x[x > 2]
        torch.bincount(torch.tensor([0, 1, 1]))
        _ = x * 2
        _ = x.repeat_interleave(2)  # an int: the size is known
    assert counts.syncs == 3 and dict(counts.by_sync) == {"aten._local_scalar_dense": 1, "aten.index": 1, "aten.bincount": 1}


# ----------------------------------------------------------------------------------------- keys


def test_settings_added_later_keep_the_stored_runs_keys():
    """precision=auto, device_batch=0, eval_batch_size=0 (auto), balance=fixed (with GradCraft's
    settings at their defaults) and the decoding aids off (no assistant, assistant_scale 1,
    assistant_reduce max, grounding_adjust none, grounding_gamma 0) are keyed as the runs stored
    before they existed were (eval_batch_size 8); setting them otherwise makes a new run."""
    (p,) = plan_methods(["cft"], {"cft": {"model": "tiny"}})
    later = ("precision", "device_batch", "balance", "gradcraft_r", "gradcraft_e", "gradcraft_b", "assistant", "assistant_set",
             "assistant_scale", "assistant_reduce", "grounding_adjust", "grounding_gamma")  # fmt: skip
    before = {k: v for k, v in p.resolved.items() if k not in later} | {"eval_batch_size": 8}
    assert p.key_config == before
    assert run_key("cft", "2", p.key_config, "h", 0, None) == run_key("cft", "2", before, "h", 0, None)
    (pure,) = plan_methods(["cft"], {"cft": {"model": "tiny", "precision": "bf16-pure"}})
    assert pure.key_config["precision"] == "bf16-pure" and pure.label == "cft[model=tiny,precision=bf16-pure]"
    assert dataclasses.asdict(p.config)["precision"] == "auto"


# ---------------------------------------------------------------------------- offline model file


def test_a_smollm2_file_can_be_named_instead_of_the_wheel(tmp_path, monkeypatch):
    """A GPU node given the GGUF file by hand (benchmarks/gpu_campaign.sh joins it from parts)."""
    from methods.llm import models

    monkeypatch.setenv(models.SMOLLM2_VARIABLE, str(tmp_path / "missing.gguf"))
    with pytest.raises(BenchError, match=r"BENCH_SMOLLM2_GGUF names .*missing.gguf, which is not a file"):
        models.smollm2_gguf()
    file = tmp_path / "SmolLM2-135M-Instruct.gguf"
    file.write_bytes(b"GGUF")
    monkeypatch.setenv(models.SMOLLM2_VARIABLE, str(file))
    assert models.smollm2_gguf() == file


def test_run_keys_are_those_of_the_runs_stored_before_the_accelerator_settings():
    """Keys computed by the harness before precision, device_batch and eval_batch_size=0 existed."""
    from bench.runner import Evaluation
    from bench.subsets import SampleChoice

    evaluation = Evaluation(SampleChoice(200, "random", 0))
    before = {"cft": "f4c35ae9f21b3b8a", "sft": "ed5fb55673abfdc2", "sasrec": "7f3e941add2bdf07", "pop": "a593635a827c2e7b"}
    for method, key in before.items():
        settings = {method: {"model": "tiny", "epochs": "1"}} if method in ("cft", "sft") else None
        (p,) = plan_methods([method], settings)
        assert evaluation.key(p, "abc", 0) == key, method
