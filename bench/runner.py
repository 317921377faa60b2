"""Runs: for every (method, seed), fit on train/valid, recommend for the test samples, evaluate,
store. A run whose key is stored already is skipped, so re-running a command resumes it."""

from __future__ import annotations

import dataclasses
import shutil
import time
import traceback
from datetime import datetime, timezone

from rich.markup import escape

from bench import distributed, evaluate, provenance
from bench.data.split import Split
from bench.errors import BenchError, is_storage_error
from bench.fitcache import FitCache, budget_bytes
from bench.fits import FitBusy, Fits
from bench.history import change_history
from bench.method import Context
from bench.plan import Planned
from bench.predict import ResourceMeter, per_sample, predict
from bench.record import Provenance, RunRecord, Score, Timing
from bench.request import Evaluation, RunRequest
from bench.seeding import resolve_device, seed_everything
from bench.store import RunStore


def run_one(
    p: Planned,
    split: Split,
    seed: int,
    device: str,
    evaluation: Evaluation,
    store: RunStore,
    progress=None,
    experiments: list[str] | None = None,
    fits: Fits | None = None,
) -> RunRecord:
    key = evaluation.key(p, split.hash, seed)
    work_dir = store.root / ".work" / key
    work_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    fits = fits or Fits(evaluation, split.hash, store.root / ".work", FitCache(store.root))
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
    # fit_s: fitting or loading it from the fit cache; 0 when an earlier run of the command fitted it
    method, fit_s, reused_fit_of = fits.method_for(p, seed, key, split.train, split.valid, context)
    t1 = time.perf_counter()
    test_index = evaluation.test.indices(len(split.test))
    prediction = predict(method, split.test.subset(test_index))
    t2 = time.perf_counter()
    metrics = evaluate.summarize(prediction.ranks)
    t3 = time.perf_counter()
    valid, valid_arrays = _score_valid(method, split, evaluation)
    t4 = time.perf_counter()
    history, extra_parts = _score_history(method, split, evaluation, test_index)
    t5 = time.perf_counter()
    timing = Timing.of(fit_s=fit_s, recommend_s=t2 - t1, metrics_s=t3 - t2, valid_s=t4 - t3, history_s=t5 - t4)
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
        train_samples=_trained_on(method, split),
        reused_fit_of=reused_fit_of,
        assistants=[u.as_record() for u in fits.uses],
        extra=prediction.extra | ({"examples": prediction.examples} if prediction.examples else {}),
        started_at=started.isoformat(timespec="seconds"),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    if distributed.is_main_process():  # under `accelerate launch` every process runs; rank 0 stores
        store.save(record, per_sample(test_index, prediction), valid_arrays, extra_parts)
        shutil.rmtree(work_dir, ignore_errors=True)
    return record


def _trained_on(method, split: Split) -> dict:
    samples = getattr(method, "trained_samples", None)
    samples = split.train if samples is None else samples  # None: every training sample
    return {"n": len(samples), "sha256": samples.content_hash()}


def _score_valid(method, split: Split, evaluation: Evaluation) -> tuple[Score | None, dict | None]:
    """The validation scores asked for, and their per-sample arrays."""
    if evaluation.valid is None:
        return None, None
    started = time.perf_counter()
    valid_index = evaluation.valid.indices(len(split.valid))
    scored = predict(method, split.valid.subset(valid_index))
    valid = Score(
        metrics=evaluate.summarize(scored.ranks),
        invalid_total=int(scored.invalid.sum()),
        n=len(valid_index),
        subset=evaluation.valid.as_record(),
        seconds=time.perf_counter() - started,
    )
    return valid, per_sample(valid_index, scored)


def _score_history(method, split: Split, evaluation: Evaluation, test_index) -> tuple[dict, dict]:
    """The same fitted model on the test samples with their histories changed, per condition."""
    history, parts = {}, {}
    for condition in evaluation.history:
        changed = change_history(split.test.subset(test_index), condition, seed=evaluation.test.seed)
        under = predict(method, changed)
        history[condition] = Score(metrics=evaluate.summarize(under.ranks), invalid_total=int(under.invalid.sum()))
        parts[f"history_{condition}"] = per_sample(test_index, under)
    return history, parts


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
    budget_bytes()  # a BENCH_FIT_CACHE_GB that is not a size: one sentence before anything starts
    if split is None:
        split = load_dataset(request.dataset, console, show_progress)
    for p in planned:  # e.g. a model that cannot be loaded: fail before anything trains
        p.cls.preflight(p.config)
    distributed.init_group(device)  # a launched job: one group per command, its backend the device's
    fits = Fits(evaluation, split.hash, store.root / ".work", FitCache(store.root), busy=busy, force=force, say=console.print)
    command = _Command(split, store, evaluation, device, console, name, force, busy, fits)
    records, failures, busy_skipped = [], [], []
    try:
        with make_progress(console, enabled=show_progress) as progress:
            overall = progress.add_task("runs", total=len(planned) * len(request.seeds))
            for p, seed in run_order(planned, request.seeds, fits):
                progress.update(overall, description=f"{p.label} seed {seed}")
                outcome, value = command.run(p, seed, progress)
                if outcome == "busy":
                    busy_skipped.append(f"{p.label} seed {seed}")
                elif outcome == "failed":
                    failures.append((p.label, seed, value))
                else:
                    records.append(value)
                progress.advance(overall)
    finally:
        fits.close()
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


def run_order(planned: list[Planned], seeds, fits: Fits) -> list[tuple[Planned, int]]:
    """(configuration, seed) in the order of --methods and the grid, seeds inner; configurations
    that share a fit (they differ in decode-time settings only) run one after the other for each
    seed, so the fitted model is reused rather than fitted again."""
    groups: dict[str, list[Planned]] = {}
    for p in planned:
        groups.setdefault(fits.fit_key(p, -1), []).append(p)
    return [(p, seed) for group in groups.values() for seed in seeds for p in group]


@dataclasses.dataclass
class _Command:
    """What every run of one `bench run` shares."""

    split: Split
    store: RunStore
    evaluation: Evaluation
    device: str
    console: object
    name: str | None
    force: bool
    busy: str
    fits: Fits

    def run(self, p: Planned, seed: int, progress) -> tuple[str, object]:
        """("stored" | "done", record), ("failed", sentence) or ("busy", None)."""
        label = f"{escape(p.label)} seed {seed}"
        key = self.evaluation.key(p, self.split.hash, seed)
        lock = _claim(self.store, key, label, self.busy, self.console)
        if lock is None:
            return "busy", None
        try:
            stored, damaged = self.store.find(self.split.name, p.name, key)
            if stored is not None and not self.force and self.evaluation.valid_done(stored):
                if self.name is not None and distributed.is_main_process():
                    stored = self.store.add_experiment(stored, self.name)
                self.console.print(f"[dim]{label}: stored already ({key}), skipped[/]")
                return "stored", stored.record
            if damaged is not None:
                self.console.print(
                    f"[yellow]{label}: the stored copy in {escape(str(damaged.folder))} is damaged ({damaged.reason}); computing it again[/]"
                )
            elif stored is not None and not self.force:
                self.console.print(f"[dim]{label}: stored without these validation scores, run again[/]")
            named = set(stored.record.experiments) if stored is not None else set()
            named |= {self.name} if self.name else set()
            try:
                record, failure = _attempt(p, self.split, seed, self.device, self.evaluation, self.store, progress,
                                           sorted(named), self.console, self.fits)  # fmt: skip
            except FitBusy:
                self.console.print(f"[yellow]run {label}: another process is fitting its model; skipped[/]")
                return "busy", None
        finally:
            if lock is not True:
                lock.release()
        if failure is not None:
            self.console.print(f"[red]{label} failed:[/] {escape(failure)}")
            return "failed", failure
        shown = ", ".join(f"{m} {record.metrics[m]:.4f}" for m in ("NDCG@10", "HR@10"))
        reused = ""
        if record.reused_fit_of:
            where = "loaded from the fit cache" if self.fits.loaded_from_cache else "reused"
            reused = f", the fit of {record.reused_fit_of[:8]} {where}"
        self.console.print(f"[green]{label}[/]: {shown} ({record.timing.total_s:.1f}s{reused})")
        return "done", record


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


def _attempt(
    p, split, seed, device, evaluation, store, progress, experiments, console, fits
) -> tuple[RunRecord | None, str | None]:
    """(record, None) or (None, the failure in one sentence); a bug's trace is printed."""
    try:
        return run_one(p, split, seed, device, evaluation, store, progress, experiments, fits), None
    except BenchError as exc:
        return None, str(exc)
    except FitBusy:
        raise
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
