"""Full-ranking evaluation (protocol section 6): one target per sample, ranked against the whole
catalogue, no negative sampling, nothing masked.

    rank r (0-based)        HR@K = 1[r < K]        NDCG@K = 1[r < K] / log2(r + 2)

A rank of NOT_RANKED (-1) means the target is not in the method's list: no hit at any K.
Score-based methods: rank = number of items scoring >= the target's score, minus one (ties count
against the model).
"""

from __future__ import annotations

import numpy as np

KS: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
NOT_RANKED = -1
METRICS = ("NDCG", "HR")


def metric_names(ks=KS) -> list[str]:
    return [f"{m}@{k}" for m in METRICS for k in ks]


def ranks_from_lists(items: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Position of each target in its ranked list (first occurrence), NOT_RANKED when absent."""
    items = np.asarray(items)
    targets = np.asarray(targets)
    if items.shape[1] == 0:
        return np.full(len(targets), NOT_RANKED, dtype=np.int64)
    hit = items == targets[:, None]
    found = hit.any(axis=1)
    return np.where(found, hit.argmax(axis=1), NOT_RANKED).astype(np.int64)


def ranks_from_scores(scores, targets) -> np.ndarray:
    """Pessimistic rank of each target under (b, n_items) scores (numpy array or torch tensor)."""
    if hasattr(scores, "detach"):  # torch, without importing it here
        import torch

        t = torch.as_tensor(np.asarray(targets), device=scores.device, dtype=torch.long)
        target_scores = scores.gather(1, t[:, None])
        return ((scores >= target_scores).sum(dim=1) - 1).cpu().numpy().astype(np.int64)
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    return ((scores >= target_scores).sum(axis=1) - 1).astype(np.int64)


def topk_from_scores(scores, k: int) -> np.ndarray:
    """The k best items per row, best first (ties broken by lower item id)."""
    if hasattr(scores, "detach"):
        import torch

        k = min(k, scores.shape[1])
        # a stable descending sort breaks ties by item id, like the numpy path
        order = torch.sort(scores.float(), dim=1, descending=True, stable=True).indices[:, :k]
        return order.cpu().numpy().astype(np.int64)
    scores = np.asarray(scores)
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order.astype(np.int64)


def per_sample_metrics(ranks: np.ndarray, ks=KS) -> dict[str, np.ndarray]:
    """HR@K and NDCG@K per sample, as float64 arrays keyed "NDCG@10", "HR@10", ..."""
    ranks = np.asarray(ranks, dtype=np.int64)
    ranked = ranks != NOT_RANKED
    gain = np.zeros(len(ranks), dtype=np.float64)
    gain[ranked] = 1.0 / np.log2(ranks[ranked] + 2.0)
    out = {}
    for k in ks:
        hit = ranked & (ranks < k)
        out[f"NDCG@{k}"] = np.where(hit, gain, 0.0)
        out[f"HR@{k}"] = hit.astype(np.float64)
    return {name: out[name] for name in metric_names(ks)}


def summarize(ranks: np.ndarray, ks=KS) -> dict[str, float]:
    """Mean of each metric over the samples."""
    if len(ranks) == 0:
        return {name: float("nan") for name in metric_names(ks)}
    return {name: float(values.mean()) for name, values in per_sample_metrics(ranks, ks).items()}
