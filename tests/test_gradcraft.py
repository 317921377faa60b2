"""GradCraft for CFT's two losses (methods.llm.gradcraft, balance=gradcraft): the three steps on
gradients worked by hand, the loop's per-task gradients, a training step on the tiny model against a
direct implementation written here, and the setting's place in the configuration and run keys."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_split
from test_llm_engine import cf_prompt_of, encoded, run_train, tiny_model

from bench.errors import BenchError
from bench.plan import plan_methods
from bench.runner import Evaluation
from bench.subsets import SampleChoice
from methods.llm.batching import collate
from methods.llm.cft import CFTConfig
from methods.llm.gradcraft import TaskGradients, align, crafted_update, merge, project
from methods.llm.loss import LabelLogits, token_weights
from methods.llm.objective import GradCraftSettings, Objective

torch.set_num_threads(1)


def t(*rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def settings(r=0.0, e=0.0, b=0.0) -> GradCraftSettings:
    return GradCraftSettings(r=r, e=e, b=b)


def close(a, b, tol=1e-12):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), rtol=0, atol=tol)


# ------------------------------------------------------------------------------ worked by hand


def test_alignment_moves_each_magnitude_part_of_the_way_to_the_largest():
    """|g1| = 6, |g2| = 5: aligned |g_i| = r * 6 + (1 - r) |g_i|."""
    grads = t([6, 0], [-3, 4])
    aligned, m = align(grads, torch.zeros(2), settings(r=0.5))
    close(m, [6, 5])
    close(aligned, [[6, 0], [-3.3, 4.4]])  # g2 scaled by 0.5 * 6/5 + 0.5 = 1.1: norm 5.5
    close(aligned.norm(dim=1), [6, 5.5])
    close(align(grads, torch.zeros(2), settings(r=1.0))[0].norm(dim=1), [6, 6])
    close(align(grads, torch.zeros(2), settings(r=0.0))[0], grads)


def test_magnitudes_are_a_moving_average_started_at_zero():
    """b = 0.5: norms (3, 4) then (5, 2) give m = (1.5, 2) then (3.25, 2); with r = 1 the second
    step's gradients are scaled by max(m)/m = (1, 1.625)."""
    m = torch.zeros(2)
    _, m = align(t([3, 0], [0, 4]), m, settings(r=1.0, b=0.5))
    close(m, [1.5, 2])
    aligned, m = align(t([5, 0], [0, 2]), m, settings(r=1.0, b=0.5))
    close(m, [3.25, 2])
    close(aligned, [[5, 0], [0, 3.25]])


def test_two_conflicting_tasks_end_at_the_inner_product_e_times_the_norms():
    """Aligned g1 = (6, 0), g2 = (-3.3, 4.4), g1.g2 = -19.8. e = 0: w1 = 19.8/30.25, w2 = 19.8/36,
    g1' = (3.84, 2.88), g2' = (0, 4.4), both orthogonal to the other. e = 0.1: the right-hand side
    gains 0.1 * 6 * 5.5 = 3.3, g1' = (3.48, 3.36), g2' = (0.55, 4.4), inner products 3.3."""
    aligned = t([6, 0], [-3.3, 4.4])
    crafted = project(aligned, e=0.0)
    close(crafted, [[3.84, 2.88], [0, 4.4]])
    close([crafted[0] @ aligned[1], crafted[1] @ aligned[0]], [0, 0])
    crafted = project(aligned, e=0.1)
    close(crafted, [[3.48, 3.36], [0.55, 4.4]])
    close([crafted[0] @ aligned[1], crafted[1] @ aligned[0]], [3.3, 3.3])
    close(merge(crafted), [2.015, 3.88])
    update, m, _ = crafted_update(t([6, 0], [-3, 4]), torch.zeros(2), settings(r=0.5, e=0.1))
    close(update, [2.015, 3.88])
    close(m, [6, 5])


def test_two_agreeing_tasks_are_only_aligned():
    """g1 = (3, 0), g2 = (1, 1): g1.g2 = 3 > 0, no projection; r = 1 scales g2 to norm 3."""
    grads = t([3, 0], [1, 1])
    aligned, _ = align(grads, torch.zeros(2), settings(r=1.0))
    s = 3 / math.sqrt(2)
    close(aligned, [[3, 0], [s, s]])
    close(project(aligned, e=0.1), aligned)
    close(crafted_update(grads, torch.zeros(2), settings(r=1.0, e=0.1))[0], [(3 + s) / 2, s / 2])


def test_three_tasks_one_conflicting_with_both_others():
    """g1 = (1, 0, 0) conflicts with g2 = (-1, 1, 0) and g3 = (-1, 0, 1), which agree (g2.g3 = 1).
    g1: [[2, 1], [1, 2]] w = (c, c), c = 1 + e sqrt 2, so w = (c/3, c/3); g2 and g3 each conflict
    with g1 alone: w = c. e = 0: (1/3, 1/3, 1/3), (0, 1, 0), (0, 0, 1), their mean (1/9, 4/9, 4/9)."""
    grads = t([1, 0, 0], [-1, 1, 0], [-1, 0, 1])
    crafted = project(grads, e=0.0)
    close(crafted, [[1 / 3, 1 / 3, 1 / 3], [0, 1, 0], [0, 0, 1]])
    close(merge(crafted), [1 / 9, 4 / 9, 4 / 9])
    e = 0.1
    c = 1 + e * math.sqrt(2)
    crafted = project(grads, e=e)
    close(crafted, [[1 - 2 * c / 3, c / 3, c / 3], [c - 1, 1, 0], [c - 1, 0, 1]])
    norms = grads.norm(dim=1)
    for i, j in ((0, 1), (0, 2), (1, 0), (2, 0)):  # every conflicting pair
        close(crafted[i] @ grads[j], e * norms[i] * norms[j])
    close(crafted[1] @ grads[2], 1 - c)  # a pair that agreed is not held: g2' = g2 + c g1 moves away from g3
    aligned, _ = align(grads, torch.zeros(3), settings(r=0.5))
    close(aligned.norm(dim=1), [(1 + math.sqrt(2)) / 2, math.sqrt(2), math.sqrt(2)])


def test_merge_sums_where_only_some_tasks_reach():
    crafted = t([1, 2], [3, 4])
    close(merge(crafted, torch.tensor([True, False])), [2, 6])


def test_a_zero_gradient_stays_zero():
    update, m, _ = crafted_update(t([0, 0], [1, 2]), torch.zeros(2), settings(r=0.5, e=0.1))
    close(update, [0.5, 1.0])
    close(m, [0, math.sqrt(5)])


def direct_craft(grads: list[torch.Tensor], magnitudes: list[float], r: float, e: float, b: float):
    """GradCraft written out per task, as the reference code loops: (crafted gradients, magnitudes)."""
    norms = [float(g.norm()) for g in grads]
    m = [b * old + (1 - b) * n for old, n in zip(magnitudes, norms)]
    aligned = [r * g * max(m) / mi + (1 - r) * g for g, mi in zip(grads, m)]
    crafted = []
    for g in aligned:
        conflicting = [h for h in aligned if float(g @ h) < 0]
        if not conflicting:
            crafted.append(g.clone())
            continue
        G = torch.stack(conflicting)
        rhs = -(G @ g) + e * g.norm() * G.norm(dim=1)
        crafted.append(g + G.T @ torch.linalg.solve(G @ G.T, rhs))
    return crafted, m


def test_the_update_in_one_is_the_steps_written_out():
    g = torch.Generator().manual_seed(3)
    grads = torch.randn(4, 40, generator=g, dtype=torch.float64)
    grads[1] = -0.6 * grads[0] + 0.2 * grads[1]  # conflicts
    previous = torch.rand(4, generator=g, dtype=torch.float64)
    update, m, _ = crafted_update(grads, previous, settings(r=0.3, e=0.05, b=0.4))
    crafted, m_direct = direct_craft(list(grads), previous.tolist(), 0.3, 0.05, 0.4)
    close(m, m_direct)
    close(update, torch.stack(crafted).mean(0), tol=1e-10)
    aligned, _ = align(grads, previous, settings(r=0.3, b=0.4))
    close(project(aligned, 0.05), torch.stack(crafted), tol=1e-10)


def test_task_gradients_accumulate_and_merge_by_parameter():
    """a reached by both tasks (mean), b by task 0 only (sum), c by none (no gradient); two passes
    accumulated. Task 0: L = a.u + b.v, task 1: L = a.w."""
    a, b, c = (torch.nn.Parameter(torch.zeros(2)) for _ in range(3))
    tasks = TaskGradients([a, b, c], 2, settings(r=0.5, e=0.1))
    passes = [(t(1, 0), t(0, 2), t(-2, 1)), (t(2, 0), t(1, 0), t(-1, 1))]
    for u, v, w in passes:
        (a.double() @ u + b.double() @ v).backward()
        tasks.collect(0)
        (a.double() @ w).backward()
        tasks.collect(1)
    rows = [torch.cat([sum(p[0] for p in passes), sum(p[1] for p in passes)]), torch.cat([sum(p[2] for p in passes), t(0, 0)])]
    crafted, _ = direct_craft(rows, [0.0, 0.0], 0.5, 0.1, 0.0)
    tasks.write_update()
    close(a.grad, (crafted[0][:2] + crafted[1][:2]) / 2, tol=1e-6)
    close(b.grad, crafted[0][2:] + crafted[1][2:], tol=1e-6)
    assert c.grad is None
    assert float(rows[0] @ rows[1]) < 0  # the case with a projection
    assert torch.count_nonzero(tasks.grads) == 0 and tasks.touched.sum() == 0  # the next step starts afresh


# ---------------------------------------------------------------------- training on the tiny model


def gradcraft_config(**kw) -> CFTConfig:
    base = dict(model="tiny", epochs=1, lr=1e-3, micro_batch=4, grad_accum=2, warmup_steps=0, patience=0, beta=0.25)
    return CFTConfig(**dict(base, balance="gradcraft", gradcraft_r=0.5, gradcraft_e=0.01, **kw))


@pytest.fixture(scope="module")
def trained_start():
    """Weights after an epoch of plain (alpha 0) training, where L_f's and L_cf's gradients
    conflict, beside the freshly initialised ones, where they do not."""
    split = make_split()
    loaded = tiny_model(split)
    fresh = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    tok = loaded.tokenizer
    config = CFTConfig(model="tiny", epochs=1, lr=3e-3, micro_batch=8, grad_accum=2, warmup_steps=1, alpha=0.0)
    model, _ = run_train(loaded, encoded(split, tok), [], cf_prompt_of(split, tok), config)
    return {"fresh": fresh, "trained": {k: v.clone() for k, v in model.state_dict().items()}}


def tiny_from(split, weights):
    loaded = tiny_model(split)
    loaded.model.load_state_dict(weights)
    return loaded


def direct_step(loaded, examples, cf, lr: float, r: float, e: float, micro_batch: int, accum: int):
    """One AdamW step written out: per micro-batch the CFT terms, one gradient per term
    (autograd.grad, the graph kept), accumulated with 1/accum, crafted, assigned, clipped at 1."""
    model, pad = loaded.model, loaded.tokenizer.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    rows = [torch.zeros(sum(p.numel() for p in params)) for _ in range(2)]
    order = np.random.default_rng([0, 0]).permutation(len(examples))  # EpochBatches' plain order, seed 0, epoch 0
    losses = []
    for start in range(0, len(examples), micro_batch):
        batch = collate([examples[i] for i in order[start : start + micro_batch]], cf, pad, counterfactual=True)
        z_f, z_cf = LabelLogits(model)(batch, counterfactual=True)
        w = token_weights(batch["example_index"], 0.25)
        l_f = (w * F.cross_entropy(z_f, batch["labels"], reduction="none")).sum() / w.sum()
        l_cf = (w * F.cross_entropy(z_f - z_cf, batch["labels"], reduction="none")).sum() / w.sum()
        losses.append(float(l_f + l_cf.detach()))
        for row, loss in zip(rows, (l_f, l_cf)):
            grads = torch.autograd.grad(loss / accum, params, retain_graph=True)
            row += torch.cat([g.flatten() for g in grads])
    crafted, _ = direct_craft([row.double() for row in rows], [0.0, 0.0], r, e, 0.0)
    update = (crafted[0] + crafted[1]).float() / 2
    offset = 0
    for p in params:
        p.grad = update[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    torch.optim.AdamW(params, lr=lr, weight_decay=0.0).step()
    return float(rows[0] @ rows[1]), sum(losses) / len(losses)


@pytest.mark.parametrize("start, conflict", [("fresh", False), ("trained", True)])
def test_a_training_step_equals_the_direct_implementation(trained_start, start, conflict):
    split = make_split()
    config = gradcraft_config(group_by_length=False)
    engine = tiny_from(split, trained_start[start])
    tok = engine.tokenizer
    examples, cf = encoded(split, tok)[:8], cf_prompt_of(split, tok)
    model, state = run_train(engine, examples, [], cf, config)
    assert state.optimizer_steps == 1
    direct = tiny_from(split, trained_start[start])
    inner, loss = direct_step(direct, examples, cf, 1e-3, 0.5, 0.01, micro_batch=4, accum=2)
    assert (inner < 0) == conflict
    assert state.history[0]["train_loss"] == pytest.approx(loss, rel=1e-5)
    # AdamW's first step is about lr * sign(gradient): elements whose gradient is near 0 differ by
    # up to 1 % of lr between the two summation orders, every other one to float32 rounding
    expected = dict(direct.model.named_parameters())
    moved = 0
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name].detach(), rtol=1e-5, atol=1e-5, msg=name)
        step = expected[name].detach() - trained_start[start][name]
        assert (p.detach() - expected[name].detach()).norm() <= 1e-3 * step.norm(), name
        moved += not torch.equal(p.detach(), trained_start[start][name])
    assert moved == len(expected)
    assert state.gradcraft_magnitudes is not None and len(state.gradcraft_magnitudes) == 2


def weights_after(split, start, **kw):
    loaded = tiny_from(split, start)
    tok = loaded.tokenizer
    torch.manual_seed(0)  # LoRA's initial adapters
    model, state = run_train(loaded, encoded(split, tok)[:16], [], cf_prompt_of(split, tok), gradcraft_config(**kw))
    return {n: p.detach().clone() for n, p in model.named_parameters()}, state


def assert_same_weights(a, b, rtol=1e-4, atol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)


@pytest.mark.parametrize(
    "speed",
    [dict(device_batch=8), dict(gradient_checkpointing=True), dict(compile=True)],
    ids=["one-pass-per-step", "checkpointing", "compile"],
)
def test_speed_settings_take_the_same_crafted_steps(trained_start, monkeypatch, speed):
    """Two micro-batches in one pass, activation checkpointing (the graph kept for the second
    backward is recomputed), torch.compile with AOTAutograd (whose backward would free its buffers
    after the first of the two backward passes): the steps of the plain loop."""
    import torch._dynamo

    from methods.llm import setup

    torch._dynamo.reset()
    monkeypatch.setattr(setup, "COMPILE_OPTIONS", dict(setup.COMPILE_OPTIONS, backend="aot_eager"))
    split = make_split()
    plain, state = weights_after(split, trained_start["trained"])
    other, other_state = weights_after(split, trained_start["trained"], **speed)
    assert state.optimizer_steps == other_state.optimizer_steps == 2
    assert_same_weights(other, plain)


def test_lora_crafts_the_adapters_gradients(trained_start):
    split = make_split()
    plain, _ = weights_after(split, trained_start["trained"], lora=True, lr=1e-2)
    checkpointed, state = weights_after(split, trained_start["trained"], lora=True, lr=1e-2, gradient_checkpointing=True)
    assert 0 < state.trainable_parameters < 20_000
    assert_same_weights(checkpointed, plain)
    changed = {n for n, w in plain.items() if not torch.equal(w, trained_start["trained"][n])}
    assert changed and all("q_proj" in n or "v_proj" in n for n in changed)


@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-pure"])
def test_bf16_precisions_take_a_crafted_step(trained_start, precision):
    """bf16 arithmetic (autocast, or bf16 weights and gradients; the per-task gradients kept in
    float32): two crafted steps land within 20 % of the float32 steps (measured: 10 % and 15 %)."""
    from methods.llm.precision import Precision

    split = make_split()
    exact, _ = weights_after(split, trained_start["trained"])
    loaded = tiny_from(split, trained_start["trained"])
    loaded.model.to(Precision.resolve(precision, "cpu").weights_dtype)
    tok = loaded.tokenizer
    config = gradcraft_config(precision=precision)
    model, state = run_train(loaded, encoded(split, tok)[:16], [], cf_prompt_of(split, tok), config)
    assert state.precision == precision and np.isfinite(state.history[0]["train_loss"])
    got = {n: p.detach().float() for n, p in model.named_parameters()}
    off = sum(float((got[n] - exact[n]).norm()) ** 2 for n in exact) ** 0.5
    step = sum(float((exact[n] - trained_start["trained"][n]).norm()) ** 2 for n in exact) ** 0.5
    assert off <= 0.2 * step


def test_a_resumed_run_keeps_the_moving_average(trained_start, tmp_path):
    """b = 0.5: the magnitudes after epoch 1 are saved with the checkpoint and go on in epoch 2."""
    split = make_split()

    class Stop(Exception):
        pass

    def run(work_dir, stop=False):
        loaded = tiny_from(split, trained_start["trained"])
        tok = loaded.tokenizer

        def hook(epoch, record):
            if stop:
                raise Stop

        config = gradcraft_config(epochs=2, gradcraft_b=0.5)
        return run_train(
            loaded, encoded(split, tok)[:16], [], cf_prompt_of(split, tok), config, work_dir=work_dir, on_epoch_end=hook
        )

    whole, whole_state = run(tmp_path / "a")
    with pytest.raises(Stop):
        run(tmp_path / "b", stop=True)
    resumed, state = run(tmp_path / "b")
    assert state.resumed_from_epoch == 1 and state.gradcraft_magnitudes == pytest.approx(whole_state.gradcraft_magnitudes)
    assert_same_weights(dict(resumed.named_parameters()), dict(whole.named_parameters()))


# --------------------------------------------------------------------------- the setting


def test_balance_is_a_setting_of_every_method_with_a_counterfactual_term():
    (cft,) = plan_methods(["cft"], {"cft": {"model": "tiny", "balance": "gradcraft"}})
    assert cft.label == "cft[balance=gradcraft,model=tiny]"
    assert cft.config.objective() == Objective(1.0, 0.25, "linear", "gradcraft", GradCraftSettings(0.1, 1e-10, 0.0))
    assert cft.config.objective().info() == {
        "alpha": 1.0, "beta": 0.25, "weighting": "linear", "balance": "gradcraft", "gradcraft": {"r": 0.1, "e": 1e-10, "b": 0.0},
    }  # fmt: skip
    (no_tw,) = plan_methods(["cft-no-tw"], {"cft-no-tw": {"balance": "gradcraft", "gradcraft_r": "0.3"}})
    assert no_tw.config.objective().gradcraft.r == 0.3 and no_tw.config.objective().beta == 1.0
    fixed = CFTConfig().objective()
    assert fixed.info() == {"alpha": 0.1, "beta": 0.25, "weighting": "linear"} and not fixed.crafted


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("cft", {"balance": "gradcraft", "alpha": "0.2"}, "alpha cannot be set with balance=gradcraft, which weighs the counterfactual term itself"),
        ("cft-no-cf", {"balance": "gradcraft"}, "balance=gradcraft needs a counterfactual term, which this method leaves out; use cft or cft-no-tw"),
        ("cft", {"gradcraft_r": "0.5"}, "gradcraft_r acts only with balance=gradcraft, so set balance=gradcraft or leave gradcraft_r unset"),
        ("cft", {"balance": "gradcraft", "gradcraft_r": "1.5"}, "gradcraft_r must be in [0, 1], not 1.5"),
        ("cft", {"balance": "gradcraft", "gradcraft_b": "1"}, "gradcraft_b must be in [0, 1), not 1.0"),
        ("cft", {"balance": "pcgrad"}, "balance must be one of fixed, gradcraft, not 'pcgrad'"),
    ],
)  # fmt: skip
def test_impossible_balance_settings_are_one_sentence(name, settings, message):
    with pytest.raises(BenchError) as err:
        plan_methods([name], {name: settings})
    assert str(err.value) == f"Method '{name}': {message}; change its --set value."


def test_stored_keys_stay_and_gradcraft_runs_get_their_own():
    evaluation = Evaluation(SampleChoice(200, "random", 0))
    (fixed,) = plan_methods(["cft"], {"cft": {"model": "tiny", "epochs": "1", "balance": "fixed"}})
    assert evaluation.key(fixed, "abc", 0) == "f4c35ae9f21b3b8a"  # tests/test_accelerator_path.py pins it
    assert not {"balance", "gradcraft_r", "gradcraft_e", "gradcraft_b"} & set(fixed.key_config)
    (crafted,) = plan_methods(["cft"], {"cft": {"model": "tiny", "epochs": "1", "balance": "gradcraft"}})
    assert crafted.key_config["balance"] == "gradcraft" and evaluation.key(crafted, "abc", 0) != evaluation.key(fixed, "abc", 0)
    (r3,) = plan_methods(["cft"], {"cft": {"model": "tiny", "epochs": "1", "balance": "gradcraft", "gradcraft_r": "0.3"}})
    assert len({evaluation.key(p, "abc", 0) for p in (fixed, crafted, r3)}) == 3


def test_the_memory_rule_counts_the_per_task_gradients():
    """Qwen2-0.5B, 200-token examples: a budget that holds 4 micro-batches of 16 beside the model
    holds 2 once two float32 gradient copies (8 bytes per parameter, 3.95 GB) are kept too (3 would
    fit, but does not divide grad_accum 4)."""
    from methods.llm import sizing

    qwen = sizing.Shape(parameters=494_032_768, layers=24, hidden=896, intermediate=4864, vocab=151_936, kv_heads=2, head_dim=64)
    one = sizing.example_bytes(qwen, 300, 20, True, False)
    free = int((16 * qwen.parameters + 4 * 16 * one) / sizing.TRAIN_SHARE) + 1
    assert sizing.training_passes(qwen, 16, 4, 200, 20, True, free, cf_tokens=100) == 4
    assert sizing.training_passes(qwen, 16, 4, 200, 20, True, free, cf_tokens=100, gradient_copies=2) == 2


# ---------------------------------------------------------------------------- two processes

WORKER = """
import sys
import torch
from conftest import make_split
from test_llm_engine import cf_prompt_of, encoded, run_train, tiny_model
from bench import distributed
from methods.llm.cft import CFTConfig

torch.set_num_threads(1)
distributed.init_group("cpu")
split = make_split()
loaded = tiny_model(split)
config = CFTConfig(model="tiny", epochs=1, lr=1e-3, micro_batch=4, grad_accum=int(sys.argv[2]), warmup_steps=1,
                   balance="gradcraft", gradcraft_r=0.5, gradcraft_e=0.01, gradcraft_b=0.5)
model, state = run_train(loaded, encoded(split, loaded.tokenizer)[:32], [], cf_prompt_of(split, loaded.tokenizer), config)
torch.save({"weights": model.state_dict(), "steps": state.optimizer_steps}, f"{sys.argv[1]}/trained{distributed.rank_and_world()[0]}.pt")
distributed.destroy_group()
"""


@pytest.mark.slow
def test_two_processes_craft_the_steps_one_process_crafts(tmp_path, monkeypatch):
    """Data-parallel: two gloo processes with micro-batches of 4 and no accumulation craft each
    step from the all-reduced per-task gradients, so they train the weights one process trains
    accumulating 2 micro-batches of 4 (4 optimiser steps each), within float32 rounding."""
    import subprocess

    from test_distributed import torchrun

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    single_dir = tmp_path / "single"
    single_dir.mkdir()
    env = dict(__import__("os").environ, PYTHONPATH=":".join(sys.path))
    done = subprocess.run(
        [sys.executable, str(script), str(single_dir), "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    torchrun(str(script), str(tmp_path), "1", timeout=300)
    single = torch.load(single_dir / "trained0.pt")
    for rank in (0, 1):
        got = torch.load(tmp_path / f"trained{rank}.pt")
        assert got["steps"] == single["steps"] == 4
        for name, weight in single["weights"].items():
            torch.testing.assert_close(got["weights"][name], weight, rtol=1e-4, atol=1e-5, msg=f"{name} on rank {rank}")
