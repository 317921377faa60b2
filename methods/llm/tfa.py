"""D3's text-free assistant (TFA; Bao et al., "Decoding Matters", arXiv 2406.14900) in the own
constrained beam search (methods.llm.beam): a classic recommender's item distribution for the same
sample, mixed into every constrained step.

At a step, for a beam at trie node n with the LLM's constrained log-probabilities `llm` (what
`beam._TrieMask` returns: log-softmax over the vocabulary, -inf on disallowed tokens):

    value(c)  = max (or sum) of the assistant's probabilities over the items whose response
                sequence passes through child c (the items whose title continues with that token)
    share(c)  = (value(c) + 1e-20) / sum over the allowed entries c' of n of (value(c') + 1e-20)
    score     = gamma * llm + (1 - gamma) * log(share)        at each allowed token
    score     = llm (-inf)                                     elsewhere

gamma = 1 is the LLM alone (bitwise), gamma = 0 the assistant alone. The D3 formula
`gamma * (llm - cf) + cf` is the same number; written as above, gamma = 1 returns the LLM's
log-probabilities exactly (no rounding through llm - cf + cf).

How it runs without a Python loop per beam or per token:
- `ItemTree.build(trie, sequences)` (once per catalogue and device): each item's node, the one
  reached after its EOS (items whose sequences are equal share it), each node's parent, and the
  node ranges of the trie's depths (`FlatTrie.build` numbers nodes level by level);
- `node_table(tree, item_probs, reduce)` (once per batch of prompts): every node's max (sum) of
  every prompt's item probabilities over the items below it, a (batch, n_nodes) float32 table on
  the model's device: a scatter of the items into their nodes, then one scatter per depth from the
  deepest level up into the parents;
- `mix(log_probs, tokens, children, node_values, gamma)` (every step): gathers the child nodes'
  values of each beam's allowed (token, child) table (`FlatTrie.allowed`), normalises them over
  the beam's allowed entries, and writes the mixed scores at the allowed tokens. No host sync.

What the reference does (DecodingMatters `code/LogitProcesser.py`, `CFEnhancedLogitsProcessor`,
driven by `code/evaluate.py`), and where this differs:
- its LLM scores are the log-softmax of the logits over the whole vocabulary (not renormalised
  over the allowed tokens), plus -1e6 on disallowed tokens; here disallowed tokens keep the
  constraint's -inf. The mixed score of a disallowed token there, gamma * llm - 1e6, never beats
  an allowed one, so the beams are the same;
- its assistant scores are the softmax over all items of SASRec's logits for the test sample
  (evaluate.py, one prompt per batch); `item_probabilities` is that softmax;
- per allowed token it looks up the items whose response tokens start with the beam's generated
  tokens plus that token (`sasrec_dict`, EOS included: the EOS after a complete title maps to
  the items with exactly that title), reduces their probabilities, adds an epsilon, normalises
  over the beam's allowed tokens and takes the log; tokens are visited one by one on the host;
- reduce: the file as it stands sums (`sublogits.sum() + 1e-20`, commented "max or sum"); its
  first release, which could not run (`from transfomers...`, `conitnue`), took the max
  (`sublogits.max() + 1e-10`). The max is the default here (the protocol's reading, section 5),
  the sum a setting (`reduce`); the epsilon is 1e-20 for both. With either, the assistant's scale
  cancels in the normalisation: any positive multiple of the probabilities gives the same scores;
- beams with nothing to allow: the reference skips them (a row of -1e6); here every node allows at
  least one token (beam.py: a complete sequence and DEAD allow EOS), and a beam none of whose
  allowed children holds an item (DEAD, past a title's EOS: only the search's filler beams, scored
  about -1e9) gets a uniform share, as the epsilon gives the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from methods.llm.beam import DEAD, ROOT, FlatTrie
from methods.llm.options import MAX, REDUCES, SUM

EPSILON = 1e-20  # added to every allowed token's value before normalising (the reference's)
_SCATTER = {MAX: "amax", SUM: "sum"}


def check_reduce(reduce: str) -> str:
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {', '.join(REDUCES)}, not '{reduce}'")
    return reduce


def check_gamma(gamma: float) -> float:
    gamma = float(gamma)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, not {gamma}")
    return gamma


@dataclass
class ItemTree:
    """The catalogue's items on a FlatTrie. `item_node[i]`: the node after item i's EOS;
    `parent[n]`: the node n hangs under (DEAD for DEAD and ROOT); `levels[d]`: the [first, end)
    node ids at depth d (ROOT alone at depth 0), host integers so that walking them needs no
    device read."""

    item_node: torch.Tensor  # (n_items,) int64, on the trie's device
    parent: torch.Tensor  # (n_nodes,) int64, on the trie's device
    levels: tuple[tuple[int, int], ...]
    n_nodes: int

    @classmethod
    def build(cls, trie: FlatTrie, sequences: Sequence[Sequence[int]]) -> ItemTree:
        """`sequences[i]`: item i's response token ids, EOS last, exactly as the trie holds them
        (items with equal sequences share a node). ValueError for a sequence not on the trie."""
        start, count, tokens, children = (x.cpu().numpy() for x in (trie.start, trie.count, trie.tokens, trie.children))
        n_nodes = len(count)
        by_start = np.argsort(start, kind="stable")
        owner = np.repeat(by_start, count[by_start])  # owner[e]: the node whose range holds edge e
        real = children != DEAD  # the EOS edges of complete sequences and of DEAD lead nowhere
        parent = np.full(n_nodes, DEAD, dtype=np.int64)
        parent[children[real]] = owner[real]
        item_node = _walk(owner, tokens, children, sequences, trie.eos)
        levels = _levels(np.bincount(owner[real], minlength=n_nodes), n_nodes)
        device = trie.device
        return cls(torch.as_tensor(item_node, device=device), torch.as_tensor(parent, device=device), levels, n_nodes)

    @property
    def n_items(self) -> int:
        return len(self.item_node)


def _walk(owner, tokens, children, sequences: Sequence[Sequence[int]], eos: int) -> np.ndarray:
    """(n_items,) the node each sequence leads to from ROOT, all sequences a token at a time: an
    edge is found by its key (owner, token) in the sorted keys of all edges."""
    n = len(sequences)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if n and (lengths.min() == 0 or any(int(s[-1]) != eos for s in sequences)):
        raise ValueError("every item's sequence must end with the trie's EOS token")
    bound = int(max(tokens.max(initial=0), max((max(s) for s in sequences if len(s)), default=0))) + 1
    keys = owner.astype(np.int64) * bound + tokens
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    node = np.full(n, ROOT, dtype=np.int64)
    padded = np.zeros((n, int(lengths.max(initial=0))), dtype=np.int64)
    for i, s in enumerate(sequences):
        padded[i, : len(s)] = s
    for depth in range(padded.shape[1]):
        going = depth < lengths
        key = node * bound + padded[:, depth]
        at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        found = keys[at] == key
        if (going & ~found).any():
            raise ValueError(f"item {int(np.flatnonzero(going & ~found)[0])}'s sequence is not on the trie")
        node = np.where(going, children[order[at]], node)
    return node


def _levels(n_children: np.ndarray, n_nodes: int) -> tuple[tuple[int, int], ...]:
    """Node ranges per depth: nodes are numbered level by level, so depth d + 1 holds the next
    (children of depth d's nodes) ids after depth d."""
    levels = [(ROOT, ROOT + 1)]
    while True:
        first, end = levels[-1]
        size = int(n_children[first:end].sum())
        if size == 0:
            break
        levels.append((end, end + size))
    if levels[-1][1] != n_nodes:
        raise ValueError("the trie's nodes are not numbered level by level (FlatTrie.build's order)")
    return tuple(levels)


def item_nodes(trie: FlatTrie, sequences: Sequence[Sequence[int]]) -> torch.Tensor:
    """(n_items,) int64 on the trie's device: the node after each item's EOS."""
    return ItemTree.build(trie, sequences).item_node


def item_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """The assistant's distribution over items: the float32 softmax of its (batch, n_items) scores
    (D3 takes SASRec's logits this way)."""
    return torch.softmax(scores.to(torch.float32), dim=-1)


def node_table(tree: ItemTree, item_probs: torch.Tensor, reduce: str = MAX) -> torch.Tensor:
    """(batch, n_nodes) float32: per prompt and node, the max (or sum) of `item_probs` (batch,
    n_items), non-negative, over the items whose sequence passes through the node; 0 at DEAD and
    at nodes no item reaches. No host sync."""
    how = _SCATTER[check_reduce(reduce)]
    if item_probs.ndim != 2 or item_probs.shape[1] != tree.n_items:
        raise ValueError(f"item_probs must be (batch, {tree.n_items}), got {tuple(item_probs.shape)}")
    probs = item_probs.to(device=tree.item_node.device, dtype=torch.float32)
    batch = probs.shape[0]
    table = probs.new_zeros((batch, tree.n_nodes))
    table.scatter_reduce_(1, tree.item_node.expand(batch, -1), probs, how, include_self=True)
    for first, end in reversed(tree.levels[1:]):  # deepest first; ROOT's value is never read
        below = table[:, first:end].clone()
        table.scatter_reduce_(1, tree.parent[first:end].expand(batch, -1), below, how, include_self=True)
    return table


def mix(
    log_probs: torch.Tensor,
    tokens: torch.Tensor,
    children: torch.Tensor,
    node_values: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """One step's scores with the assistant mixed in, written into `log_probs` and returned.

    log_probs: (batch * beams, vocab) float32, the constrained log-probabilities (`_TrieMask`'s
    fresh output; it is overwritten at the allowed tokens). tokens, children: (batch * beams,
    width), the beams' allowed tokens and child nodes (`FlatTrie.allowed(..., pad=vocab)`: padding
    entries hold token `vocab`; every row's first entry is a real one). node_values: (batch,
    n_nodes), `node_table` of the batch's prompts. gamma: a Python float (1 = the LLM alone)."""
    rows, vocab = log_probs.shape
    batch = node_values.shape[0]
    if rows % batch or tokens.shape != children.shape or tokens.shape[0] != rows:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)}, tokens {tuple(tokens.shape)}, children {tuple(children.shape)} "
            f"do not fit node values of {batch} prompts"
        )
    width = tokens.shape[1]
    used = tokens < vocab
    values = node_values.gather(1, children.reshape(batch, -1)).view(rows, width)
    values = torch.where(used, values + EPSILON, 0.0)
    assistant = torch.log(values / values.sum(dim=1, keepdim=True))
    # padding entries write entry 0's token with entry 0's value again: scatter sees no conflict
    index = torch.where(used, tokens, tokens[:, :1])
    if gamma == 0:  # the assistant alone (0 * an LLM's -inf would be nan)
        mixed = assistant
    else:
        mixed = gamma * log_probs.gather(1, index) + (1.0 - gamma) * assistant
    mixed = torch.where(used, mixed, mixed[:, :1])
    return log_probs.scatter_(1, index, mixed)


class AssistantMix:
    """The step hook of one search (one batch of prompts): `hook(log_probs, tokens, children)`
    after the trie constraint, with the arguments `mix` takes. `item_probs`: (batch, n_items), one
    row per prompt in the batch's order, e.g. `item_probabilities(assistant scores)`."""

    def __init__(self, tree: ItemTree, item_probs: torch.Tensor, gamma: float, reduce: str = MAX):
        self.gamma = check_gamma(gamma)
        self.node_values = node_table(tree, item_probs, reduce)

    def __call__(self, log_probs: torch.Tensor, tokens: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
        return mix(log_probs, tokens, children, self.node_values, self.gamma)


@dataclass
class TextFreeAssistant:
    """What constrained decoding mixes in (decode.constrained_beam_search): `scores_of(rows)` gives
    the assistant's (len(rows), n_items) scores for the prompts at positions `rows` of the decoded
    list, in that order; `gamma` and `reduce` as `AssistantMix` takes them."""

    scores_of: Callable[[Sequence[int]], torch.Tensor]
    gamma: float
    reduce: str = MAX

    def __post_init__(self):
        self.gamma = check_gamma(self.gamma)
        check_reduce(self.reduce)

    def step_hook(self, tree: ItemTree, rows: Sequence[int]) -> AssistantMix:
        """The step hook of the search over the prompts `rows` (one batch, in its order)."""
        return AssistantMix(tree, item_probabilities(self.scores_of(rows)), self.gamma, self.reduce)
