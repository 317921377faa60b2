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

from bench import distributed, evaluate, provenance, registry
from bench.data.split import Split
from bench.errors import BenchError
from bench.method import INSPECT, Context
from bench.seeding import resolve_device, seed_everything
from bench.store import TOP_N, RunStore, check_experiment_name, run_key, run_label


@dataclasses.dataclass
class Planned:
    name: str
    cls: type
    config: object
    resolved: dict
    overrides: dict

    @property
    def label(self) -> str:
        return run_label(self.name, self.overrides)


def plan_methods(methods: list[str], overrides: dict[str, dict[str, str]] | None) -> list[Planned]:
    """Resolve every method and its config before anything trains, so a typo fails at once."""
    overrides = overrides or {}
    unknown = set(overrides) - set(methods)
    if unknown:
        raise BenchError(
            f"--set names {', '.join(sorted(unknown))}, which is not among --methods {','.join(methods)}; "
            "fix the method name or add it to --methods."
        )
    planned = []
    for name in methods:
        cls = registry.load_class(name)
        config = registry.build_config(cls, overrides.get(name, {}))
        resolved = dataclasses.asdict(config)
        default = dataclasses.asdict(cls.Config())
        changed = {k: v for k, v in resolved.items() if default.get(k) != v}
        planned.append(Planned(name, cls, config, resolved, changed))
    return planned


def config_key(p: Planned, split_hash: str, limit_test: int | None) -> str:
    return run_key(p.name, p.cls.version, p.resolved, split_hash, -1, limit_test)


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


def run_one(
    p: Planned,
    split: Split,
    seed: int,
    device: str,
    limit_test: int | None,
    store: RunStore,
    progress=None,
    name: str | None = None,
) -> dict:
    key = run_key(p.name, p.cls.version, p.resolved, split.hash, seed, limit_test)
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
    t0 = time.perf_counter()
    method.fit(split.train, split.valid, context)
    t1 = time.perf_counter()
    test = split.test.head(limit_test)
    prediction = predict(method, test)
    t2 = time.perf_counter()
    metrics = evaluate.summarize(prediction.ranks)
    t3 = time.perf_counter()
    record = {
        "key": key,
        "config_key": config_key(p, split.hash, limit_test),
        "method": p.name,
        "label": p.label,
        "experiments": [name] if name else [],
        "method_version": p.cls.version,
        "config": p.resolved,
        "overrides": p.overrides,
        "dataset": split.name,
        "split_hash": split.hash,
        "seed": seed,
        "limit_test": limit_test,
        "n_test": len(test),
        "metrics": metrics,
        "invalid_total": int(prediction.invalid.sum()),
        "timing": {"fit_s": t1 - t0, "recommend_s": t2 - t1, "evaluate_s": t3 - t2, "total_s": t3 - t0},
        "provenance": provenance.collect(device)
        | {"seed": seed, "split_hash": split.hash, "processes": distributed.launched_processes()},
        "info": method.run_info(),
        "extra": prediction.extra | ({"examples": prediction.examples} if prediction.examples else {}),
        "started_at": started.isoformat(timespec="seconds"),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    arrays = {
        "sample_index": np.arange(len(test), dtype=np.int64),
        "rank": prediction.ranks.astype(np.int64),
        "topk": prediction.topk.astype(np.int32),
        "invalid": prediction.invalid.astype(np.int32),
    }
    if distributed.is_main_process():  # under `accelerate launch` every process runs; rank 0 stores
        store.save(record, arrays)
        shutil.rmtree(work_dir, ignore_errors=True)
    return record


def run_benchmark(
    methods: list[str],
    dataset: str,
    seeds: list[int],
    device: str = "auto",
    limit_test: int | None = None,
    overrides: dict[str, dict[str, str]] | None = None,
    split: Split | None = None,
    store: RunStore | None = None,
    force: bool = False,
    console=None,
    show_progress: bool = True,
    name: str | None = None,
) -> list[dict]:
    """Run every (method, seed) not stored yet; return the records of all of them (stored or new).
    A failing method is reported and the others go on; BenchError is raised at the end if any failed.
    `name` puts every run, new or stored, into that experiment (a table of its own in the leaderboard)."""
    from rich.console import Console

    from bench.progress import make_progress

    console = console or Console()
    if not distributed.is_main_process():  # launched jobs: one process reports, all of them work
        console, show_progress = Console(quiet=True), False
    store = store or RunStore()
    if name is not None:
        check_experiment_name(name)
    planned = plan_methods(methods, overrides)
    if split is None:
        from bench.data.prepare import is_prepared, load_split, prepare

        if not is_prepared(dataset):
            if distributed.launched_processes() > 1:
                raise BenchError(
                    f"Dataset '{dataset}' is not prepared; run `bench data prepare {dataset}` once before launching several processes."
                )
            console.print(f"[bold]preparing {escape(dataset)}[/] (first use)")
            with make_progress(console, enabled=show_progress) as progress:
                prepare(dataset, progress=progress)
        split = load_split(dataset)
    if limit_test is not None and limit_test <= 0:
        raise BenchError("--limit-test must be a positive number of test samples.")
    device = resolve_device(device)
    for p in planned:  # e.g. a model that cannot be loaded: fail before anything trains
        p.cls.preflight(p.config)
    records, failures = [], []
    with make_progress(console, enabled=show_progress) as progress:
        overall = progress.add_task("runs", total=len(planned) * len(seeds))
        for p in planned:
            for seed in seeds:
                key = run_key(p.name, p.cls.version, p.resolved, split.hash, seed, limit_test)
                if store.has(split.name, p.name, key) and not force:
                    stored = store.load(split.name, p.name, key)
                    if name is not None and distributed.is_main_process():
                        stored = store.add_experiment(stored, name)
                    records.append(stored.record)
                    console.print(f"[dim]{escape(p.label)} seed {seed}: stored already ({key}), skipped[/]")
                    progress.advance(overall)
                    continue
                progress.update(overall, description=f"{p.label} seed {seed}")
                try:
                    record = run_one(p, split, seed, device, limit_test, store, progress, name)
                except BenchError as exc:
                    failures.append((p.label, seed, str(exc)))
                    console.print(f"[red]{escape(p.label)} seed {seed} failed:[/] {escape(str(exc))}")
                except Exception as exc:  # a bug in a method: keep the other runs going, show the trace
                    if distributed.launched_processes() > 1:
                        # one process failing alone would leave the others waiting in a collective: stop the job
                        raise
                    if _is_out_of_memory(exc):
                        msg = f"out of memory on {device}; lower the batch size (e.g. --set {p.name}.micro_batch=4) or use a smaller model."
                    else:
                        msg = f"{type(exc).__name__}: {exc}"
                        console.print(traceback.format_exc(), markup=False, highlight=False)
                    failures.append((p.label, seed, msg))
                    console.print(f"[red]{escape(p.label)} seed {seed} failed:[/] {escape(msg)}")
                else:
                    records.append(record)
                    shown = ", ".join(f"{m} {record['metrics'][m]:.4f}" for m in ("NDCG@10", "HR@10"))
                    console.print(f"[green]{escape(p.label)} seed {seed}[/]: {shown} ({record['timing']['total_s']:.1f}s)")
                progress.advance(overall)
    if failures:
        names = "; ".join(f"{label} seed {seed}" for label, seed, _ in failures)
        raise BenchError(
            f"{len(failures)} run(s) failed ({names}); the {len(records)} other run(s) are stored, "
            "fix the cause above and run the same command again to finish."
        )
    return records


def _cache_dir():
    from bench import paths

    return paths.cache_dir()


def _is_out_of_memory(exc: Exception) -> bool:
    return "out of memory" in str(exc).lower()
