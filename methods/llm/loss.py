"""Training objectives on label-position logits: plain SFT token cross-entropy and the CFT loss of
protocol section 4.

Every function here works on the flat list of a micro-batch's label tokens, in order:

    example_index  0 0 0 0 0 1 1 1 2 2 2 2 ...     which example each label token belongs to
    labels         y y y y y y y y y y y y ...     the token to predict (the response's tokens, EOS last)
    z_f            (N, V) factual logits predicting each label
    z_cf           (N, V) counterfactual logits predicting the same label (history removed)

so the losses are testable on random tensors. `label_logits` produces these rows from a causal LM
without computing the vocabulary projection anywhere but at label positions.

Choices where the protocol leaves one open:
- Cross-entropy is computed in float32 whatever the model dtype (bf16 logits are upcast).
- The normaliser is the micro-batch's total weight (protocol: "sums run over all label tokens of
  the micro-batch"); with gradient accumulation the micro-batch losses are averaged, as the
  reference trainer does.
- With alpha = 0 the counterfactual term is not computed at all (the trainer then skips the
  counterfactual forward pass): the value is identical and the cost halves.
- Under balance=gradcraft (methods.llm.objective) the two terms are back-propagated apart:
  `pass_terms` gives L_f and L_cf of a pass, normalised as `pass_loss` normalises their sum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.llm.objective import Objective
from methods.llm.options import LINEAR, RECIPROCAL, WEIGHTINGS


def token_weights(example_index: torch.Tensor, beta: float, weighting: str = LINEAR) -> torch.Tensor:
    """Position weights over each example's n label tokens (t = 1..n), last token beta:

        "linear"      w_t = 1 - (t - 1)(1 - beta)/(n - 1)   first token 1; n = 1 gives 1
        "reciprocal"  w_t = 1 - t / (b n), b = 1/(1 - beta), i.e. 1 - t (1 - beta)/n
                      (the older form in the reference code's history: first token 1 - 1/(b n))

    beta = 1 gives all weights 1 in both. The paper's beta grid {0.09, 0.16, 0.29, 0.38, 0.5, 0.66,
    0.9, 0.96} is b in {1.1, 1.2, 1.4, 1.6, 2, 3, 10, 25} of the reciprocal form.

    `example_index` (N,) must list each example's label tokens contiguously and in order. The
    positions are read from the values (a host synchronisation on a GPU); the training loop gets
    them from the collator instead (`weights_at`)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    example_index = example_index.long()
    n_examples = int(example_index.max().item()) + 1 if example_index.numel() else 0
    counts = torch.bincount(example_index, minlength=n_examples)  # n per example
    starts = torch.cumsum(counts, 0) - counts  # first flat index per example
    pos0 = torch.arange(example_index.numel(), device=example_index.device) - starts[example_index]  # t - 1
    return weights_at(pos0, counts[example_index], beta, weighting)


def weights_at(pos0: torch.Tensor, n: torch.Tensor, beta: float, weighting: str = LINEAR) -> torch.Tensor:
    """token_weights from each label token's position in its example (t - 1) and its example's
    label count n, as the collator lists them (`label_pos`, `label_len`): no value is read on the
    host."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")
    n = n.to(torch.float32)
    if weighting == RECIPROCAL:
        # 1/b = 1 - beta, so beta = 1 (b infinite) needs no special case
        return 1.0 - (pos0.to(torch.float32) + 1.0) * (1.0 - beta) / n
    slope = (1.0 - beta) / torch.clamp(n - 1.0, min=1.0)  # n = 1: pos0 = 0, weight 1
    return 1.0 - pos0.to(torch.float32) * slope


def token_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy (N,), in float32."""
    return F.cross_entropy(logits.float(), labels.long(), reduction="none")


def sft_loss(z_f: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain SFT: mean token cross-entropy over the label tokens."""
    return token_ce(z_f, labels).mean()


def cft_loss(
    z_f: torch.Tensor,
    z_cf: torch.Tensor | None,
    labels: torch.Tensor,
    example_index: torch.Tensor,
    alpha: float,
    beta: float,
    weighting: str = LINEAR,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The CFT loss L_f + alpha * L_cf (protocol section 4) with `weighting`'s token weights (see
    token_weights; `weights` given: those, e.g. from weights_at). Returns (loss, parts) where parts
    holds the detached "l_f", "l_cf" (absent when alpha = 0) and "weight" (sum of weights)."""
    w = token_weights(example_index, beta, weighting) if weights is None else weights
    total = w.sum()
    l_f = (w * token_ce(z_f, labels)).sum() / total
    parts = {"l_f": l_f.detach(), "weight": total.detach()}
    if alpha == 0.0:
        return l_f, parts
    if z_cf is None:
        raise ValueError("alpha != 0 needs the counterfactual logits")
    # softmax of the logit difference; neither side is detached
    l_cf = (w * token_ce(z_f.float() - z_cf.float(), labels)).sum() / total
    parts["l_cf"] = l_cf.detach()
    return l_f + alpha * l_cf, parts


def pass_loss(z_f: torch.Tensor, z_cf: torch.Tensor | None, batch: dict, objective: Objective, per_pass: int = 1) -> torch.Tensor:
    """The loss of one forward/backward pass over a collated batch (methods.llm.batching.collate)
    that holds `batch["n_chunks"]` micro-batches: the mean of their CFT losses, each normalised by
    its own micro-batch's total weight as the protocol says, divided by `per_pass` (the micro-batches
    a full pass holds) rather than by the count present, so a short last pass weighs its
    micro-batches as single passes would. The gradient of one pass over k micro-batches equals the
    gradient accumulated over k passes of one micro-batch each, up to rounding: the micro-batch
    size and gradient accumulation define the model, the pass size only how it is computed. One
    micro-batch is exactly cft_loss."""
    w = weights_at(batch["label_pos"], batch["label_len"], objective.beta, objective.weighting)
    alpha = objective.alpha
    if batch["n_chunks"] == 1 and per_pass == 1:
        return cft_loss(z_f, z_cf, batch["labels"], batch["example_index"], alpha, objective.beta, weights=w)[0]
    share = _shares(w, batch["chunk"], per_pass)
    loss = (share * token_ce(z_f, batch["labels"])).sum()
    if alpha != 0.0:
        if z_cf is None:
            raise ValueError("alpha != 0 needs the counterfactual logits")
        loss = loss + alpha * (share * token_ce(z_f.float() - z_cf.float(), batch["labels"])).sum()
    return loss / per_pass


def pass_terms(
    z_f: torch.Tensor, z_cf: torch.Tensor, batch: dict, objective: Objective, per_pass: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_f, L_cf) of one pass, unweighted by alpha, each the mean over the pass's micro-batches of
    the micro-batch's term as `pass_loss` forms it (each micro-batch normalised by its own total
    weight, the sum divided by `per_pass`): L_f + alpha L_cf is pass_loss up to rounding. For
    balance=gradcraft, which back-propagates the two terms apart."""
    w = weights_at(batch["label_pos"], batch["label_len"], objective.beta, objective.weighting)
    share = _shares(w, batch["chunk"], per_pass)
    labels = batch["labels"]
    l_f = (share * token_ce(z_f, labels)).sum() / per_pass
    l_cf = (share * token_ce(z_f.float() - z_cf.float(), labels)).sum() / per_pass
    return l_f, l_cf


def _shares(w: torch.Tensor, chunk: torch.Tensor, per_pass: int) -> torch.Tensor:
    """Each label token's weight over its micro-batch's total weight (`chunk`: its micro-batch)."""
    totals = torch.zeros(per_pass, dtype=w.dtype, device=w.device).index_add_(0, chunk, w)
    return w / totals[chunk]


def label_logits(
    causal_lm,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    right_padded: bool = True,
) -> torch.Tensor:
    """Logits at positions (rows[i], cols[i]) only: the decoder's last hidden states are gathered
    there and the LM head is applied to those rows, never to the whole sequence.
    Works for any transformers causal LM with get_decoder()/get_output_embeddings() (PEFT-wrapped
    models too: the adapters live inside the decoder's layers)."""
    base = causal_lm.get_base_model() if hasattr(causal_lm, "get_base_model") else causal_lm
    mask = causal_mask(base, input_ids.shape[1], input_ids.device) if right_padded else None
    hidden = base.get_decoder()(
        input_ids=input_ids, attention_mask=attention_mask if mask is None else mask, use_cache=False
    ).last_hidden_state
    return base.get_output_embeddings()(hidden[rows, cols])


def causal_mask(model, width: int, device) -> torch.Tensor | None:
    """The attention mask of right-padded sequences, prepared for SDPA as a (1, 1, width, width)
    boolean lower triangle; None for other attention implementations (transformers then builds
    the mask from the 2-D padding mask itself).

    Under the causal mask no real token of a right-padded sequence attends to padding, so the
    triangle alone gives every real position what the padded mask gives it (positions count from
    0 on the left either way); padded positions compute unused values. transformers uses a 4-D mask
    as given, whereas from a 2-D mask (or none) it reads the mask's or the positions' values on the
    host to choose its kernel: a synchronisation with the GPU per forward pass, two per CFT
    micro-batch."""
    if getattr(getattr(model, "config", None), "_attn_implementation", None) != "sdpa":
        return None
    return torch.ones((width, width), dtype=torch.bool, device=device).tril_()[None, None]


class LabelLogits(torch.nn.Module):
    """The trainable module the trainer hands to accelerate: one forward computes the factual and,
    when asked, the counterfactual label-position logits, so that DDP sees a single forward per
    backward."""

    def __init__(self, causal_lm):
        super().__init__()
        self.lm = causal_lm

    def forward(self, batch: dict, counterfactual: bool = False):
        z_f = label_logits(self.lm, batch["input_ids"], batch["attention_mask"], batch["rows"], batch["cols"])
        if not counterfactual:
            return z_f, None
        z_cf = label_logits(self.lm, batch["cf_input_ids"], batch["cf_attention_mask"], batch["cf_rows"], batch["cf_cols"])
        return z_f, z_cf
