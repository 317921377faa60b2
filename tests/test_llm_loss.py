"""The CFT loss against an independently written formula (protocol section 4)."""

from __future__ import annotations

import math

import pytest
import torch

from methods.llm.loss import cft_loss, label_logits, sft_loss, token_weights

torch.set_num_threads(1)

V = 11
LENGTHS = [5, 1, 3, 7, 2]  # label tokens per example in one micro-batch


def random_batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = sum(LENGTHS)
    z_f = torch.randn(n, V, generator=g) * 2
    z_cf = torch.randn(n, V, generator=g) * 2
    labels = torch.randint(0, V, (n,), generator=g)
    example_index = torch.cat([torch.full((m,), i) for i, m in enumerate(LENGTHS)])
    return z_f, z_cf, labels, example_index


def reference_weight(pos: int, n: int, beta: float, weighting: str) -> float:
    """Protocol section 4, written out: pos = 1..n."""
    if weighting == "reciprocal":
        if beta == 1.0:
            return 1.0
        b = 1 / (1 - beta)
        return 1 - pos / (b * n)
    return 1.0 if n == 1 else 1 - (pos - 1) * (1 - beta) / (n - 1)


def reference_loss(z_f, z_cf, labels, alpha: float, beta: float, weighting: str = "linear") -> float:
    """Plain Python: weights by the formula, log-softmax by hand, sums over the micro-batch."""

    def nll(row, y):
        m = max(row)
        log_z = m + math.log(sum(math.exp(v - m) for v in row))
        return log_z - row[y]

    zf, zcf, ys = z_f.tolist(), z_cf.tolist(), labels.tolist()
    num_f = num_cf = den = 0.0
    t = 0
    for n in LENGTHS:
        for pos in range(1, n + 1):
            w = reference_weight(pos, n, beta, weighting)
            diff = [a - b for a, b in zip(zf[t], zcf[t])]
            num_f += w * nll(zf[t], ys[t])
            num_cf += w * nll(diff, ys[t])
            den += w
            t += 1
    return num_f / den + alpha * num_cf / den


def test_token_weights_by_hand():
    example_index = torch.tensor([0] * 5 + [1] + [2] * 3)
    w = token_weights(example_index, beta=0.25)
    assert w[:5].tolist() == pytest.approx([1, 0.8125, 0.625, 0.4375, 0.25])
    assert w[5].item() == 1.0  # n = 1
    assert w[6:].tolist() == pytest.approx([1, 0.625, 0.25])
    assert torch.all(token_weights(example_index, beta=1.0) == 1)


def test_reciprocal_token_weights_by_hand():
    # n = 4, beta = 0.5 (b = 2): w_t = 1 - t/8
    w = token_weights(torch.tensor([0] * 4), beta=0.5, weighting="reciprocal")
    assert w.tolist() == pytest.approx([0.875, 0.75, 0.625, 0.5])
    # n = 1, beta = 0.25 (b = 4/3): 1 - 1/(4/3) = 0.25; n = 5, beta = 0.9 (b = 10): 1 - t/50
    w = token_weights(torch.tensor([0] + [1] * 5), beta=0.25, weighting="reciprocal")
    assert w[0].item() == pytest.approx(0.25)
    w = token_weights(torch.tensor([0] * 5), beta=0.9, weighting="reciprocal")
    assert w.tolist() == pytest.approx([0.98, 0.96, 0.94, 0.92, 0.9])
    assert torch.all(token_weights(torch.tensor([0] * 3 + [1] * 7), beta=1.0, weighting="reciprocal") == 1)
    # the linear form is unchanged by naming it
    example_index = torch.tensor([0] * 5 + [1] + [2] * 3)
    assert torch.equal(token_weights(example_index, 0.25, "linear"), token_weights(example_index, 0.25))
    with pytest.raises(ValueError, match="unknown weighting"):
        token_weights(example_index, 0.25, "cubic")


@pytest.mark.parametrize("b", [1.1, 1.2, 1.4, 1.6, 2, 3, 10, 25])
def test_the_papers_beta_grid_is_the_reciprocal_b_grid(b):
    beta = {1.1: 0.09, 1.2: 0.16, 1.4: 0.29, 1.6: 0.38, 2: 0.5, 3: 0.66, 10: 0.9, 25: 0.96}[b]
    assert 1 - 1 / b == pytest.approx(beta, abs=0.01)  # the paper gives 1 - 1/b to two digits
    n = 6
    w = token_weights(torch.tensor([0] * n), beta=1 - 1 / b, weighting="reciprocal")
    assert w.tolist() == pytest.approx([1 - t / (b * n) for t in range(1, n + 1)], rel=1e-6)
    assert w[-1].item() == pytest.approx(1 - 1 / b)


@pytest.mark.parametrize("weighting", ["linear", "reciprocal"])
@pytest.mark.parametrize("alpha,beta", [(0.1, 0.25), (0.3, 0.09), (0.0, 0.5), (1.0, 1.0)])
def test_cft_loss_matches_independent_formula(alpha, beta, weighting):
    z_f, z_cf, labels, example_index = random_batch()
    loss, parts = cft_loss(z_f, z_cf, labels, example_index, alpha, beta, weighting)
    assert loss.item() == pytest.approx(reference_loss(z_f, z_cf, labels, alpha, beta, weighting), rel=1e-5)
    assert parts["l_f"].item() == pytest.approx(reference_loss(z_f, z_cf, labels, 0.0, beta, weighting), rel=1e-5)
    if weighting == "linear":  # the default form
        assert loss.item() == cft_loss(z_f, z_cf, labels, example_index, alpha, beta)[0].item()


def test_reciprocal_differs_from_linear():
    z_f, z_cf, labels, example_index = random_batch(3)
    linear = cft_loss(z_f, z_cf, labels, example_index, 0.1, 0.5, "linear")[0].item()
    reciprocal = cft_loss(z_f, z_cf, labels, example_index, 0.1, 0.5, "reciprocal")[0].item()
    assert linear != pytest.approx(reciprocal, rel=1e-4)


def test_alpha_zero_beta_one_is_plain_cross_entropy():
    z_f, z_cf, labels, example_index = random_batch(1)
    loss, _ = cft_loss(z_f, z_cf, labels, example_index, alpha=0.0, beta=1.0)
    expected = torch.nn.functional.cross_entropy(z_f, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert sft_loss(z_f, labels).item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradients_flow_through_both_passes():
    z_f, z_cf, labels, example_index = random_batch(2)
    z_f.requires_grad_(True)
    z_cf.requires_grad_(True)
    loss, _ = cft_loss(z_f, z_cf, labels, example_index, alpha=0.1, beta=0.25)
    loss.backward()
    assert z_f.grad is not None and z_f.grad.abs().sum() > 0
    assert z_cf.grad is not None and z_cf.grad.abs().sum() > 0
    # the counterfactual gradient is exactly -alpha * w/sum(w) * (softmax(z_f - z_cf) - onehot)
    w = token_weights(example_index, 0.25)
    p = torch.softmax((z_f - z_cf).detach(), dim=-1)
    onehot = torch.nn.functional.one_hot(labels, V).float()
    expected = -0.1 * (w / w.sum())[:, None] * (p - onehot)
    torch.testing.assert_close(z_cf.grad, expected, rtol=1e-5, atol=1e-7)

    z_f.grad = z_cf.grad = None
    loss, _ = cft_loss(z_f, z_cf, labels, example_index, alpha=0.0, beta=0.25)
    loss.backward()
    assert z_f.grad.abs().sum() > 0
    assert z_cf.grad is None or z_cf.grad.abs().sum() == 0


def test_head_at_label_positions_equals_full_logits():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            tie_word_embeddings=True,
        )
    ).eval()
    ids = torch.randint(1, 50, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # right padding
    mask[2, 6:] = 0
    rows = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    cols = torch.tensor([8, 9, 10, 6, 7, 2, 3, 4])
    labels = ids[rows, cols + 1]
    example_index = rows
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        fast = label_logits(model, ids, mask, rows, cols)
        torch.testing.assert_close(fast, full[rows, cols], rtol=1e-5, atol=1e-5)
        z_cf_full = model(input_ids=ids.flip(1), attention_mask=torch.ones_like(ids)).logits
        z_cf_fast = label_logits(model, ids.flip(1), torch.ones_like(ids), rows, cols)
        a, _ = cft_loss(full[rows, cols], z_cf_full[rows, cols], labels, example_index, 0.1, 0.25)
        b, _ = cft_loss(fast, z_cf_fast, labels, example_index, 0.1, 0.25)
    assert a.item() == pytest.approx(b.item(), rel=1e-5)
