"""Runs: for every (method, seed), fit on train/valid, recommend for the test samples, evaluate,
store. A run whose key is stored already is skipped, so re-running a command resumes it."""

from __future__ import annotations

import dataclasses
import shutil
import time
import traceback
from datetime import datetime, timezone

import numpy as np
from rich.markup import escape

from bench import distributed, evaluate, provenance
from bench.data.split import Split
from bench.errors import BenchError, is_storage_error
from bench.history import change_history
from bench.method import INSPECT, Context
from bench.plan import Planned
from bench.record import Provenance, Resources, RunRecord, Score, Timing
from bench.request import Evaluation, RunRequest
from bench.seeding import resolve_device, seed_everything
from bench.store import TOP_N, RunStore


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


def _per_sample(index: np.ndarray, prediction: Prediction) -> dict[str, np.ndarray]:
    return {
        "sample_index": index.astype(np.int64),
        "rank": prediction.ranks.astype(np.int64),
        "topk": prediction.topk.astype(np.int32),
        "invalid": prediction.invalid.astype(np.int32),
    }


def run_one(
    p: Planned,
    split: Split,
    seed: int,
    device: str,
    evaluation: Evaluation,
    store: RunStore,
    progress=None,
    experiments: list[str] | None = None,
) -> RunRecord:
    key = evaluation.key(p, split.hash, seed)
    work_dir = store.root / ".work" / key
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    method = p.cls(p.config)
    context = Context(
        device=device,
        seed=seed,
        items=split.items,
        card=split.card,
        work_dir=work_dir,
        cache_dir=_cache_dir(),
        progress=progress,
    )
    started = datetime.now(timezone.utc)
    meter = ResourceMeter(device)
    t0 = time.perf_counter()
    method.fit(split.train, split.valid, context)
    t1 = time.perf_counter()
    test_index = evaluation.test.indices(len(split.test))
    prediction = predict(method, split.test.subset(test_index))
    t2 = time.perf_counter()
    metrics = evaluate.summarize(prediction.ranks)
    t3 = time.perf_counter()
    valid, valid_arrays = None, None
    if evaluation.valid is not None:
        valid_index = evaluation.valid.indices(len(split.valid))
        scored = predict(method, split.valid.subset(valid_index))
        valid = Score(
            metrics=evaluate.summarize(scored.ranks),
            invalid_total=int(scored.invalid.sum()),
            n=len(valid_index),
            subset=evaluation.valid.as_record(),
            seconds=time.perf_counter() - t3,
        )
        valid_arrays = _per_sample(valid_index, scored)
    t4 = time.perf_counter()
    extra_parts, history = {}, {}
    for condition in evaluation.history:  # the same fitted model, the histories changed
        changed = change_history(split.test.subset(test_index), condition, seed=evaluation.test.seed)
        under = predict(method, changed)
        history[condition] = Score(metrics=evaluate.summarize(under.ranks), invalid_total=int(under.invalid.sum()))
        extra_parts[f"history_{condition}"] = _per_sample(test_index, under)
    t5 = time.perf_counter()
    timing = Timing.of(fit_s=t1 - t0, recommend_s=t2 - t1, metrics_s=t3 - t2, valid_s=t4 - t3, history_s=t5 - t4)
    record = RunRecord(
        key=key,
        config_key=evaluation.key(p, split.hash, -1),
        method=p.name,
        label=p.label,
        experiments=sorted(experiments or []),
        method_version=p.cls.version,
        config=p.resolved,
        overrides=p.overrides,
        dataset=split.name,
        split_hash=split.hash,
        seed=seed,
        limit_test=evaluation.test.limit,
        test_subset=evaluation.test.as_record(),
        n_test=len(test_index),
        metrics=metrics,
        invalid_total=int(prediction.invalid.sum()),
        valid=valid,
        history=history,
        timing=timing,
        resources=meter.read(timing.total_s),
        provenance=Provenance(
            **provenance.collect(device), seed=seed, split_hash=split.hash, processes=distributed.launched_processes()
        ),
        info=method.run_info(),
        extra=prediction.extra | ({"examples": prediction.examples} if prediction.examples else {}),
        started_at=started.isoformat(timespec="seconds"),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if distributed.is_main_process():  # under `accelerate launch` every process runs; rank 0 stores
        store.save(record, _per_sample(test_index, prediction), valid_arrays, extra_parts)
        shutil.rmtree(work_dir, ignore_errors=True)
    return record


def run_benchmark(
    request: RunRequest,
    *,
    split: Split | None = None,
    store: RunStore | None = None,
    console=None,
    show_progress: bool = True,
) -> list[RunRecord]:
    """Run every (configuration, seed) of the request not stored yet; return the records of all of
    them (stored or new). A failing method is reported and the others go on; BenchError is raised
    at the end if any failed. A request's `name` puts every run, new or stored, into that
    experiment (a table of its own in the leaderboard). One process computes a run key at a time:
    with `busy="wait"` a second process waits for the first and then finds the run stored; with
    "skip" it says so and goes on with the other runs. `split` and `store` replace the request's
    prepared dataset and the results folder (tests, notebooks)."""
    from rich.console import Console

    from bench.progress import make_progress

    console = console or Console()
    if not distributed.is_main_process():  # launched jobs: one process reports, all of them work
        console, show_progress = Console(quiet=True), False
    store = store or RunStore()
    evaluation, name, force, busy = request.evaluation, request.name, request.force, request.busy
    planned = request.plan()
    device = resolve_device(request.device)  # options first: a typo must not prepare or download a dataset
    if split is None:
        split = load_dataset(request.dataset, console, show_progress)
    for p in planned:  # e.g. a model that cannot be loaded: fail before anything trains
        p.cls.preflight(p.config)
    distributed.init_group(device)  # a launched job: one group per command, its backend the device's
    seeds = request.seeds
    records, failures, busy_skipped = [], [], []
    with make_progress(console, enabled=show_progress) as progress:
        overall = progress.add_task("runs", total=len(planned) * len(seeds))
        for p in planned:
            for seed in seeds:
                label = f"{escape(p.label)} seed {seed}"
                key = evaluation.key(p, split.hash, seed)
                lock = _claim(store, key, label, busy, console)
                if lock is None:
                    busy_skipped.append(f"{p.label} seed {seed}")
                    progress.advance(overall)
                    continue
                try:
                    stored, damaged = store.find(split.name, p.name, key)
                    if stored is not None and not force and evaluation.valid_done(stored):
                        if name is not None and distributed.is_main_process():
                            stored = store.add_experiment(stored, name)
                        records.append(stored.record)
                        console.print(f"[dim]{label}: stored already ({key}), skipped[/]")
                        progress.advance(overall)
                        continue
                    if damaged is not None:
                        console.print(
                            f"[yellow]{label}: the stored copy in {escape(str(damaged.folder))} is damaged ({damaged.reason}); computing it again[/]"
                        )
                    elif stored is not None and not force:
                        console.print(f"[dim]{label}: stored without these validation scores, run again[/]")
                    named = set(stored.record.experiments) if stored is not None else set()
                    named |= {name} if name else set()
                    progress.update(overall, description=f"{p.label} seed {seed}")
                    record, failure = _attempt(p, split, seed, device, evaluation, store, progress, sorted(named), console)
                finally:
                    if lock is not True:
                        lock.release()
                if failure is None:
                    records.append(record)
                    shown = ", ".join(f"{m} {record.metrics[m]:.4f}" for m in ("NDCG@10", "HR@10"))
                    console.print(f"[green]{label}[/]: {shown} ({record.timing.total_s:.1f}s)")
                else:
                    failures.append((p.label, seed, failure))
                    console.print(f"[red]{label} failed:[/] {escape(failure)}")
                progress.advance(overall)
    if busy_skipped:
        console.print(
            f"{len(busy_skipped)} run(s) were being computed by other processes and were skipped; run the same command again later to collect them."
        )
    if failures:
        names = "; ".join(f"{label} seed {seed}" for label, seed, _ in failures)
        raise BenchError(
            f"{len(failures)} run(s) failed ({names}); the {len(records)} other run(s) are stored, "
            "fix the cause above and run the same command again to finish."
        )
    return records


def load_dataset(dataset: str, console, show_progress: bool = True) -> Split:
    """The prepared split, prepared first when it is not (under a lock: concurrent callers wait)."""
    from bench.data.cards import load_card
    from bench.data.prepare import is_prepared, load_split, prepare
    from bench.progress import make_progress

    load_card(dataset)  # an unknown name is one sentence before anything is said or prepared
    if not is_prepared(dataset):
        if distributed.launched_processes() > 1:
            raise BenchError(
                f"Dataset '{dataset}' is not prepared; run `bench data prepare {dataset}` once before launching several processes."
            )
        console.print(f"[bold]preparing {escape(dataset)}[/] (first use)")
        with make_progress(console, enabled=show_progress) as progress:
            prepare(dataset, progress=progress)
    return load_split(dataset)


def _claim(store: RunStore, key: str, label: str, busy: str, console):
    """The key's lock, acquired; None when another process holds it and `busy` is "skip"; True
    (nothing to release) in a launched job, whose processes compute the same key together."""
    from bench.locks import Timeout

    if distributed.launched_processes() > 1:
        return True
    lock = store.lock(key)
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        if busy == "skip":
            console.print(f"[yellow]run {label} is being computed by another process; skipped[/]")
            return None
    console.print(f"[dim]run {label} is being computed by another process; waiting for it[/]")
    lock.acquire()
    return lock


def _attempt(p, split, seed, device, evaluation, store, progress, experiments, console) -> tuple[RunRecord | None, str | None]:
    """(record, None) or (None, the failure in one sentence); a bug's trace is printed."""
    try:
        return run_one(p, split, seed, device, evaluation, store, progress, experiments), None
    except BenchError as exc:
        return None, str(exc)
    except Exception as exc:  # a bug in a method: keep the other runs going, show the trace
        if is_storage_error(exc):
            raise  # a folder the user must make writable or free: one sentence, not one failure per run
        if distributed.launched_processes() > 1:
            # one process failing alone would leave the others waiting in a collective: stop the job
            raise
        if _is_out_of_memory(exc):
            return (
                None,
                f"out of memory on {device}; lower the batch size (e.g. --set {p.name}.micro_batch=4) or use a smaller model.",
            )
        console.print(traceback.format_exc(), markup=False, highlight=False)
        return None, f"{type(exc).__name__}: {exc}"


def _cache_dir():
    from bench import paths

    return paths.cache_dir()


def _is_out_of_memory(exc: Exception) -> bool:
    return "out of memory" in str(exc).lower()
