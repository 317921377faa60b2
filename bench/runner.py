"""Runs: for every (method, seed), fit on train/valid, recommend for the test samples, evaluate,
store. A run whose key is stored already is skipped, so re-running a command resumes it."""

from __future__ import annotations

import dataclasses
import shutil
import time
import traceback
from datetime import datetime, timezone

import numpy as np

from bench import distributed, evaluate, provenance, registry
from bench.data.split import Split
from bench.errors import BenchError
from bench.method import Context, ScoreMethod
from bench.seeding import resolve_device, seed_everything
from bench.store import TOP_N, RunStore, run_key, run_label


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


def predict(method, samples, k: int = TOP_N) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(ranks, top-k lists, invalid counts, extra) for `samples`, ranks computed by the harness."""
    if isinstance(method, ScoreMethod):
        ranks = np.empty(len(samples), dtype=np.int64)
        topk = np.full((len(samples), k), -1, dtype=np.int64)
        for rows, scores in method.score(samples):
            ranks[rows] = evaluate.ranks_from_scores(scores, samples.targets[rows])
            top = evaluate.topk_from_scores(scores, k)
            topk[rows, : top.shape[1]] = top
        return ranks, topk, np.zeros(len(samples), dtype=np.int32), {}
    recs = method.recommend(samples, k)
    items = np.asarray(recs.items, dtype=np.int64)
    if items.shape[0] != len(samples):
        raise BenchError(f"Method '{method.name}' returned {items.shape[0]} lists for {len(samples)} samples; this is a bug in the method.")
    topk = np.full((len(samples), k), -1, dtype=np.int64)
    topk[:, : min(k, items.shape[1])] = items[:, :k]
    invalid = np.zeros(len(samples), dtype=np.int32) if recs.invalid is None else np.asarray(recs.invalid, dtype=np.int32)
    return evaluate.ranks_from_lists(items, samples.targets), topk, invalid, recs.extra


def run_one(p: Planned, split: Split, seed: int, device: str, limit_test: int | None, store: RunStore, progress=None) -> dict:
    key = run_key(p.name, p.cls.version, p.resolved, split.hash, seed, limit_test)
    work_dir = store.root / ".work" / key
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    method = p.cls(p.config)
    context = Context(
        device=device, seed=seed, items=split.items, card=split.card, work_dir=work_dir,
        cache_dir=_cache_dir(), progress=progress,
    )
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    method.fit(split.train, split.valid, context)
    t1 = time.perf_counter()
    test = split.test.head(limit_test)
    ranks, topk, invalid, extra = predict(method, test)
    t2 = time.perf_counter()
    metrics = evaluate.summarize(ranks)
    t3 = time.perf_counter()
    record = {
        "key": key,
        "config_key": config_key(p, split.hash, limit_test),
        "method": p.name,
        "label": p.label,
        "method_version": p.cls.version,
        "config": p.resolved,
        "overrides": p.overrides,
        "dataset": split.name,
        "split_hash": split.hash,
        "seed": seed,
        "limit_test": limit_test,
        "n_test": len(test),
        "metrics": metrics,
        "invalid_total": int(invalid.sum()),
        "timing": {"fit_s": t1 - t0, "recommend_s": t2 - t1, "evaluate_s": t3 - t2, "total_s": t3 - t0},
        "provenance": provenance.collect(device) | {"seed": seed, "split_hash": split.hash,
                                                    "processes": distributed.launched_processes()},
        "info": method.run_info(),
        "extra": extra,
        "started_at": started.isoformat(timespec="seconds"),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    arrays = {
        "sample_index": np.arange(len(test), dtype=np.int64),
        "rank": ranks.astype(np.int64),
        "topk": topk.astype(np.int32),
        "invalid": invalid.astype(np.int32),
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
) -> list[dict]:
    """Run every (method, seed) not stored yet; return the records of all of them (stored or new).
    A failing method is reported and the others go on; BenchError is raised at the end if any failed."""
    from rich.console import Console

    from bench.progress import make_progress

    console = console or Console()
    if not distributed.is_main_process():   # launched jobs: one process reports, all of them work
        console, show_progress = Console(quiet=True), False
    store = store or RunStore()
    planned = plan_methods(methods, overrides)
    if split is None:
        from bench.data.prepare import load_split, is_prepared, prepare

        if not is_prepared(dataset):
            if distributed.launched_processes() > 1:
                raise BenchError(
                    f"Dataset '{dataset}' is not prepared; run `bench data prepare {dataset}` once before launching several processes."
                )
            console.print(f"[bold]preparing {dataset}[/] (first use)")
            with make_progress(console, enabled=show_progress) as progress:
                prepare(dataset, progress=progress)
        split = load_split(dataset)
    if limit_test is not None and limit_test <= 0:
        raise BenchError("--limit-test must be a positive number of test samples.")
    device = resolve_device(device)
    records, failures = [], []
    with make_progress(console, enabled=show_progress) as progress:
        overall = progress.add_task("runs", total=len(planned) * len(seeds))
        for p in planned:
            for seed in seeds:
                key = run_key(p.name, p.cls.version, p.resolved, split.hash, seed, limit_test)
                if store.has(split.name, p.name, key) and not force:
                    records.append(store.load(split.name, p.name, key).record)
                    console.print(f"[dim]{p.label} seed {seed}: stored already ({key}), skipped[/]")
                    progress.advance(overall)
                    continue
                progress.update(overall, description=f"{p.label} seed {seed}")
                try:
                    record = run_one(p, split, seed, device, limit_test, store, progress)
                except BenchError as exc:
                    failures.append((p.label, seed, str(exc)))
                    console.print(f"[red]{p.label} seed {seed} failed:[/] {exc}")
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
                    console.print(f"[red]{p.label} seed {seed} failed:[/] {msg}")
                else:
                    records.append(record)
                    shown = ", ".join(f"{m} {record['metrics'][m]:.4f}" for m in ("NDCG@10", "HR@10"))
                    console.print(f"[green]{p.label} seed {seed}[/]: {shown} ({record['timing']['total_s']:.1f}s)")
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
