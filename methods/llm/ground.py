"""L2 grounding of generated texts to catalogue items (BIGRec; protocol section 5).

Every catalogue title and every generated title (the generation stripped of its quotes by
`PromptFormat.title_from_generation`, in the run's prompt format) is embedded alone with the fine-tuned
model (last layer's hidden state at the text's last token); each generated text ranks all items by
Euclidean distance. "original" keeps beam 0's ranking; "interleaved" merges the rankings of all
beams round-robin (rank 1 of beams 0..B-1, then rank 2, ...), dropping items already placed.
BIGRec's adjusted grounding (methods.llm.adjust: popularity, a collaborative model's scores)
re-weights each beam's distances before they are ranked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bench.progress import step_task
from methods.llm.adjust import GroundingAdjustment
from methods.llm.options import GROUNDINGS, INTERLEAVED, ORIGINAL
from methods.llm.prompts import PromptFormat


def _decoder_of(model):
    """The transformer body without the LM head (no logits over the vocabulary are needed)."""
    get = getattr(model, "get_decoder", None)
    if get is not None:
        try:
            decoder = get()
        except (AttributeError, NotImplementedError):
            decoder = None
        if decoder is not None and decoder is not model:
            return decoder
    return None


def embed_texts(model, tokenizer, texts: list[str], batch_size: int = 32, progress=None) -> torch.Tensor:
    """(n, hidden) float32 on the CPU: the last layer's hidden state at the last token of each text,
    tokenised alone without special tokens (the whole list in one tokenizer call, each text its
    own unpadded sequence). Batches are right-padded and the last real position is gathered through
    the attention mask, so positions and the causal context of every text are those it has alone;
    a text with no tokens is embedded as the EOS token."""
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(texts), add_special_tokens=False, padding=False, truncation=False)["input_ids"] if texts else []
    rows = [ids or [eos] for ids in encoded]
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i))
    out: torch.Tensor | None = None
    n_batches = (len(rows) + batch_size - 1) // batch_size
    decoder = _decoder_of(model)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), step_task(progress, "embed", n_batches) as task:
            for s in range(0, len(order), batch_size):
                batch = order[s : s + batch_size]
                width = max(len(rows[i]) for i in batch)
                ids = torch.tensor([rows[i] + [eos] * (width - len(rows[i])) for i in batch], dtype=torch.long)
                lengths = torch.tensor([len(rows[i]) for i in batch], dtype=torch.long)
                mask = (torch.arange(width) < lengths[:, None]).long()
                ids, mask = ids.to(device), mask.to(device)
                if decoder is not None:
                    h = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
                else:
                    h = model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True).hidden_states[-1]
                last = (lengths - 1).to(h.device)
                vec = h[torch.arange(len(batch), device=h.device), last].float().cpu()
                if out is None:
                    out = torch.empty((len(rows), vec.shape[1]), dtype=torch.float32)
                out[torch.tensor(batch)] = vec
                task.advance()
    finally:
        if was_training:
            model.train()
    if out is None:
        size = getattr(getattr(model, "config", None), "hidden_size", 0)
        return torch.empty((0, size), dtype=torch.float32)
    return out


def l2_distances(queries: torch.Tensor, items: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """(q, n_items) float32 Euclidean distances, computed chunk rows at a time. Only for tests and
    small inputs: `ground_by_l2` never holds more than one chunk of distances."""
    return torch.cat([_distances(queries[s : s + chunk], items) for s in range(0, len(queries), chunk)])


def _distances(queries: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return torch.cdist(queries.float().unsqueeze(0), items.float().unsqueeze(0)).squeeze(0)


def ground_by_l2(
    generated: torch.Tensor,
    items: torch.Tensor,
    k: int,
    mode: str = INTERLEAVED,
    chunk: int = 256,
    adjust: GroundingAdjustment | None = None,
) -> np.ndarray:
    """Rank catalogue items for each sample from the embeddings of its generated texts.

    generated: (n, beams, d); items: (n_items, d). Distances in float32, ties broken by the lower
    item id. "original": beam 0's ranking; "interleaved": round-robin merge of every beam's
    ranking without duplicates. Returns (n, min(k, n_items)) int64 distinct item ids per row; with
    k >= n_items every row is a full ranking. `chunk` samples are ranked at a time, so at most
    chunk x beams x n_items distances exist at once. `adjust` (BIGRec's adjusted grounding,
    methods.llm.adjust) turns each chunk's distances into the scores ranked instead, with the
    signal rows of the chunk's samples."""
    if mode not in GROUNDINGS:
        raise ValueError(f"unknown grounding mode {mode!r}; expected one of {GROUNDINGS}")
    if generated.ndim != 3:
        raise ValueError(f"generated must be (n, beams, d), got shape {tuple(generated.shape)}")
    n, n_beams, _ = generated.shape
    n_items = items.shape[0]
    k = min(int(k), n_items)
    out = np.empty((n, k), dtype=np.int64)
    if n == 0 or k == 0:
        return out
    items = items.float()
    # distances are translation invariant; centring shrinks the norms and with them the float32
    # cancellation error of the matrix-product form torch.cdist uses on large inputs
    centre = items.mean(dim=0, keepdim=True)
    items = items - centre
    beams = 1 if mode == ORIGINAL else n_beams
    for s in range(0, n, chunk):
        q = generated[s : s + chunk, :beams].float().to(items.device) - centre  # (c, B, d)
        c = q.shape[0]
        dist = _distances(q.reshape(c * beams, -1), items)  # (c*B, n_items)
        if adjust is not None:
            dist = adjust(dist.view(c, beams, n_items), slice(s, s + c)).view(c * beams, n_items)
        # stable sort: equal distances keep the lower item id first
        ranked = torch.sort(dist, dim=1, stable=True).indices  # (c*B, n_items)
        del dist
        if beams == 1:
            out[s : s + c] = ranked[:, :k].cpu().numpy()
            continue
        # interleaved: the merged list visits slot (rank r, beam b) at position r * B + b; an item's
        # place is its earliest such position over the beams, and sorting items by it is the
        # round-robin merge without duplicates
        ranked = ranked.view(c, beams, n_items)
        pos = torch.arange(n_items, device=ranked.device).mul(beams).view(1, 1, n_items)
        pos = pos + torch.arange(beams, device=ranked.device).view(1, beams, 1)
        first = torch.empty_like(ranked)
        first.scatter_(2, ranked, pos.expand(c, beams, n_items))  # first[c, b, item] = position
        first = first.min(dim=1).values  # (c, n_items)
        out[s : s + c] = torch.argsort(first, dim=1)[:, :k].cpu().numpy()
    return out


def count_invalid(generations: Sequence[Sequence[str]], titles: Sequence[str], fmt: PromptFormat) -> np.ndarray:
    """(n,) int32: per sample, the generations whose title (`fmt.title_from_generation`: closing
    quote removed, and the opening one in "quoted") is not exactly a catalogue title."""
    catalogue = set(titles)
    return np.array([sum(fmt.title_from_generation(g) not in catalogue for g in gens) for gens in generations], dtype=np.int32)
