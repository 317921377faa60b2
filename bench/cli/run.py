"""`bench run` and `bench jobs`: fit and evaluate, here or as jobs, and what the jobs are doing."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bench import cli
from bench.errors import BenchError


@cli.app.command()
@cli.friendly
def run(
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Comma-separated method names, e.g. cft,sft,sasrec."),
    dataset: str = typer.Option("ml-100k", "--dataset", "-d", help="A dataset card name (bench data list)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    limit_test: Optional[int] = typer.Option(
        None, "--limit-test", help="Evaluate N test samples only (smoke runs): a seeded random subset unless --test-subset first."
    ),
    test_subset: str = typer.Option("random", "--test-subset", help="random (seeded, the same for every method) or first."),
    subset_seed: int = typer.Option(0, "--subset-seed", help="Seed of the random test and validation subsets."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a setting: method.field=value, or *.field=value for every method that has it (repeatable)."
    ),
    model: Optional[str] = typer.Option(
        None, "--model", help="Backbone of every LLM method in the command (tiny, smollm2-135m, an HF id or a folder)."
    ),
    grid: list[str] = typer.Option(
        [], "--grid", help="Run every combination: method.field=v1,v2,... (repeatable); scores validation by default."
    ),
    valid: Optional[bool] = typer.Option(
        None, "--valid/--no-valid", help="Also score the validation split (per sample); on by default with --grid."
    ),
    limit_valid: Optional[int] = typer.Option(None, "--limit-valid", help="Score N seeded random validation samples only."),
    history: Optional[str] = typer.Option(
        None, "--history", help="Evaluate the test samples again with the history changed: none,shuffled,last (any of them)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Recompute runs that are stored already, fitting again rather than loading a cached fit."
    ),
    busy: str = typer.Option(
        "wait",
        "--busy",
        help="A run (or its model's fit) another process is computing: wait for it, or skip it and go on with the others.",
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Run each (method, configuration, seed) as a job: local (processes) or slurm (submitit)."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Local executor: jobs at a time (CPU threads and GPUs are split between them)."),
    partition: Optional[str] = typer.Option(None, "--partition", help="Slurm partition."),
    gpus_per_job: int = typer.Option(0, "--gpus-per-job", help="Slurm: GPUs per job; above 1 the job runs under torchrun."),
    time_min: int = typer.Option(240, "--time", help="Slurm: time limit of a job in minutes."),
    cpus_per_job: Optional[int] = typer.Option(None, "--cpus-per-job", help="Slurm: CPUs per job."),
    sbatch: list[str] = typer.Option([], "--sbatch", help="Slurm: any other sbatch parameter, key=value (repeatable)."),
    name: Optional[str] = typer.Option(
        None,
        "--name",
        help="Experiment name stored with the runs (not part of their key); the leaderboard shows each experiment as its own table.",
    ),
    experiment: Optional[Path] = typer.Option(
        None, "--experiment", "-e", help="An experiment file (experiments/NAME.toml): run what it names that is not stored yet."
    ),
):
    """Fit and evaluate methods on a dataset; stored runs are skipped (resume)."""
    from bench.jobs import Cluster
    from bench.request import RunRequest, parse_sbatch

    cluster = Cluster(partition, gpus_per_job, time_min, cpus_per_job, parse_sbatch(sbatch))
    if experiment is not None:
        given = {"--methods": methods, "--set": set_, "--grid": grid, "--model": model, "--limit-test": limit_test,
                 "--limit-valid": limit_valid, "--name": name, "--seeds": seeds != "0", "--dataset": dataset != "ml-100k",
                 "--valid/--no-valid": valid is not None, "--test-subset": test_subset != "random", "--subset-seed": subset_seed}  # fmt: skip
        clash = [option for option, value in given.items() if value]
        if clash:
            raise BenchError(f"{clash[0]} cannot be given with --experiment, which fixes it; change the experiment file instead.")
        _run_experiment(experiment, device, force, busy, history, executor, jobs, cluster)
        return
    if methods is None:
        raise BenchError("Name the methods to run with --methods, e.g. --methods pop,sasrec, or give an --experiment file.")
    request = RunRequest.from_options(
        methods, seeds=seeds, sets=set_, grid=grid, model=model, limit_test=limit_test, test_subset=test_subset,
        subset_seed=subset_seed, valid=valid, limit_valid=limit_valid, history=history,
        dataset=dataset, device=device, force=force, busy=busy, name=name,
    )  # fmt: skip
    _execute(request, executor, jobs, cluster)


def _execute(request, executor: str | None, n_jobs: int, cluster) -> None:
    from bench.runner import run_benchmark

    if executor is not None:
        _submit_jobs(request, executor, n_jobs, cluster)
        return
    records = run_benchmark(request, console=cli.console)
    from bench.distributed import is_main_process

    if is_main_process():  # a launched job: rank 0 reports
        _print_runs(request.dataset, records)


def _run_experiment(path: Path, device: str, force: bool, busy: str, history, executor, n_jobs: int, cluster) -> None:
    """Every dataset of an experiment file: its runs that are not stored yet, here or as jobs
    (the file's executor hints apply where the command gives none)."""
    from rich.text import Text

    from bench.experiment import load
    from bench.jobs import Cluster

    exp = load(path)
    cli.console.print(Text(exp.heading()))  # wrapped to the terminal
    for spec in exp.runs():
        fields = {"force": force, "busy": busy, "history": history} | ({"device": device} if device != "auto" else {})
        request = spec.to_request(**fields)
        chosen = executor or spec.executor.executor
        hinted = cluster if cluster != Cluster() else spec.cluster()
        cli.console.print(f"[bold]{request.dataset}[/]: {spec.command()}", highlight=False, soft_wrap=True)
        _execute(request, chosen, n_jobs if n_jobs != 1 else spec.executor.jobs, hinted)


def _submit_jobs(request, executor: str, n_jobs: int, cluster) -> None:
    """Hand the request's runs to an executor, one job per (configuration, seed)."""
    from bench import jobs
    from bench.runner import load_dataset
    from bench.seeding import resolve_device
    from bench.store import RunStore

    jobs.check_executor(executor, n_jobs)
    planned = request.plan()
    if executor == "local":
        resolve_device(request.device)  # a Slurm job's device is checked where it runs
        for p in planned:
            p.cls.preflight(p.config)
    split = load_dataset(request.dataset, cli.console)
    try:
        jobs.submit(request, planned, split, RunStore(), executor, n_jobs, cluster, cli.console)
    finally:
        if executor == "local":
            _print_jobs(request.dataset)


def _print_jobs(dataset: str) -> None:
    from bench import jobs
    from bench.labels import letters, short_name
    from bench.store import RunStore
    from bench.tables import NAME_MAX, print_table

    found = jobs.status(dataset, RunStore())
    marks = letters(len(found))
    rows, legend = [], []
    for mark, job in zip(marks, found):
        shown = short_name(job.label, job.label.split("[")[0], NAME_MAX)
        if shown != job.label:
            legend.append(f"{mark} = {job.label}")
        # why a job ended or cannot be followed, in Slurm's own words (e.g. CANCELLED by 0)
        state = f"{job.state} ({job.detail})" if job.detail and job.state in ("failed", "lost", "unknown") else job.state
        rows.append(([mark, shown], [str(job.seed), state, job.executor, job.job_id or "-", job.log]))
    print_table(cli.console, f"{dataset}: {len(found)} job(s)", ["", "method"], ["seed", "state", "executor", "id", "log"], rows,
                legend=legend, value_justify=["right", "left", "left", "right", "left"])  # fmt: skip


@cli.app.command("jobs")
@cli.friendly
def jobs_command(dataset: str = typer.Option("ml-100k", "--dataset", "-d")):
    """Jobs submitted by `bench run --executor ...`: pending, running, finished, failed, with logs."""
    _print_jobs(dataset)


def _print_runs(dataset: str, records: list) -> None:
    """One line per run: letter, short name, seed and the headline numbers (all metrics: `bench leaderboard`)."""
    from bench.labels import letters, short_name
    from bench.tables import NAME_MAX, print_table

    marks = letters(len(records))
    names = [short_name(r.label, r.method, NAME_MAX) for r in records]
    with_valid = any(r.valid for r in records)
    rows = []
    for mark, shown, r in zip(marks, names, records):
        m = r.metrics
        rows.append(
            (
                [mark, shown],
                [
                    str(r.seed),
                    f"{m['NDCG@10']:.4f}",
                    f"{m['HR@10']:.4f}",
                    f"{r.invalid_total:,}",
                    f"{r.timing.total_s:,.1f}",
                    r.key[:8],
                ]
                + ([f"{r.valid.metrics['NDCG@10']:.4f}" if r.valid else "-"] if with_valid else []),
            )
        )
    legend = [f"{mark} = {r.label}" for mark, shown, r in zip(marks, names, records) if shown != r.label]
    print_table(
        cli.console,
        f"{dataset}: {len(records)} run(s)",
        ["", "method"],
        ["seed", "NDCG@10", "HR@10", "invalid", "time (s)", "key"] + (["valid NDCG@10"] if with_valid else []),
        rows,
        notes=["key: the first 8 characters of the run key"],
        legend=legend,
    )
