"""From a method to per-sample results: its recommendations over the test or validation samples
(sharded over the processes of a launched job and gathered in order), the target ranks and top
lists the store keeps, and what the run cost beside its time."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import distributed, evaluate
from bench.errors import BenchError
from bench.method import INSPECT
from bench.record import Resources
from bench.store import TOP_N


@dataclasses.dataclass
class Prediction:
    """What the harness keeps of a method's recommendations for every sample."""

    ranks: np.ndarray  # (n,) target rank, NOT_RANKED when absent from the list
    topk: np.ndarray  # (n, k) item ids, -1 padded
    invalid: np.ndarray  # (n,)
    extra: dict  # the method's facts (from the first process)
    examples: list  # inspected samples, the first INSPECT rows


def _predict_slice(method, samples, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict, list]:
    n = len(samples)
    if n == 0:  # an empty slice (more processes than samples) asks the method nothing
        return (np.zeros(0, dtype=np.int64), np.full((0, k), -1, dtype=np.int64), np.zeros(0, dtype=np.int32), {}, [])
    recs = method.recommend(samples, k)
    topk = np.full((n, k), -1, dtype=np.int64)
    topk[:, : recs.items.shape[1]] = recs.items
    ranks = (
        evaluate.ranks_from_lists(recs.items, samples.targets) if recs.ranks is None else np.asarray(recs.ranks, dtype=np.int64)
    )
    invalid = np.zeros(n, dtype=np.int32) if recs.invalid is None else np.asarray(recs.invalid, dtype=np.int32)
    return ranks, topk, invalid, recs.extra, list(recs.examples)[:INSPECT]


def predict(method, samples, k: int = TOP_N) -> Prediction:
    """Recommend for `samples` and rank each target. Under a launched job each process handles one
    contiguous slice (bench.distributed.shard) and the slices are gathered, in rank order, on every
    process; when one process fails, every process stops with the same sentence."""
    distributed.init_group()
    rank, world = distributed.rank_and_world()
    part = distributed.shard(len(samples), rank, world)
    if world == 1:
        return Prediction(*_predict_slice(method, samples, k))
    mine, failure = None, None
    try:
        mine = _predict_slice(method, samples.subset(np.arange(part.start, part.stop)), k)
    except Exception as exc:  # tell the other processes instead of leaving them waiting in the gather
        failure = f"{type(exc).__name__}: {exc}"
    parts = distributed.gather((mine, failure))
    failed = [(r, f) for r, (_, f) in enumerate(parts) if f is not None]
    if failed:
        raise BenchError(
            f"Inference of '{method.name}' failed on process {failed[0][0]} of {world} ({failed[0][1]}); "
            "fix the cause and run the same command again."
        )
    slices = [p for p, _ in parts]
    return Prediction(
        ranks=np.concatenate([s[0] for s in slices]),
        topk=np.concatenate([s[1] for s in slices]),
        invalid=np.concatenate([s[2] for s in slices]),
        extra=slices[0][3],
        examples=[e for s in slices for e in s[4]][:INSPECT],
    )


class ResourceMeter:
    """What a run cost beside its time: peak GPU memory of this run, allocated and reserved (the
    process's peak resident memory on a CPU, which covers every run of the process so far) and
    GPU-hours."""

    def __init__(self, device: str):
        self.cuda = str(device).startswith("cuda")
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(device)
        self.device = device

    def read(self, seconds: float) -> Resources:
        """The resources of a run that took `seconds` in all."""
        import resource

        rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
        if not self.cuda:
            return Resources(peak_rss_mb=rss)
        import torch

        # allocated: what tensors held at the peak; reserved: what the caching allocator took
        # from the GPU (what another process could not use, and what nvidia-smi shows)
        return Resources(
            peak_rss_mb=rss,
            peak_gpu_mb=round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1),
            peak_gpu_reserved_mb=round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1),
            gpu_hours=round(seconds * distributed.launched_processes() / 3600, 4),
        )


def per_sample(index: np.ndarray, prediction: Prediction) -> dict[str, np.ndarray]:
    return {
        "sample_index": index.astype(np.int64),
        "rank": prediction.ranks.astype(np.int64),
        "topk": prediction.topk.astype(np.int32),
        "invalid": prediction.invalid.astype(np.int32),
    }
