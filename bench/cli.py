"""The `bench` command line. Heavy libraries are imported inside the commands that need them, so
`bench --help` and `bench methods` start instantly."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.errors import BenchError

app = typer.Typer(
    help="Benchmark sequential recommenders, classic and LLM-based, on identical splits.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Prepare and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()


def friendly(fn):
    """Turn a BenchError into one red sentence and exit code 2, with no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenchError as exc:
            console.print(f"[red bold]error:[/] {escape(str(exc))}", soft_wrap=True)  # a path is never folded
            raise typer.Exit(2)
        except PermissionError as exc:  # a read-only results, data or cache folder
            where = exc.filename or "a file"
            console.print(
                f"[red bold]error:[/] cannot write {escape(str(where))} (permission denied); make the folder writable "
                "or choose another with --results-dir, --data-dir or --cache-dir. Nothing stored was lost.",
                soft_wrap=True,
            )
            raise typer.Exit(2)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: finished runs are stored; run the same command again to resume.[/]")
            raise typer.Exit(130)

    return wrapper


@app.callback()
def locations(
    data_dir: Optional[Path] = typer.Option(None, envvar="BENCH_DATA_DIR", help="Where prepared splits are written."),
    results_dir: Optional[Path] = typer.Option(None, envvar="BENCH_RESULTS_DIR", help="Where runs and leaderboards are written."),
    cache_dir: Optional[Path] = typer.Option(
        None, envvar="BENCH_CACHE_DIR", help="Where built tokenizers and models are cached."
    ),
):
    for var, value in (("BENCH_DATA_DIR", data_dir), ("BENCH_RESULTS_DIR", results_dir), ("BENCH_CACHE_DIR", cache_dir)):
        if value is not None:
            os.environ[var] = str(value)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command()
@friendly
def run(
    methods: str = typer.Option(..., "--methods", "-m", help="Comma-separated method names, e.g. cft,sft,sasrec."),
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
    force: bool = typer.Option(False, "--force", help="Recompute runs that are stored already."),
    busy: str = typer.Option(
        "wait", "--busy", help="A run another process is computing: wait for it, or skip it and go on with the others."
    ),
    executor: Optional[str] = typer.Option(
        None, "--executor", help="Run each (method, configuration, seed) as a job: local (processes) or slurm (submitit)."
    ),
    jobs: int = typer.Option(1, "--jobs", help="Local executor: jobs at a time (CPU threads are split between them)."),
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
):
    """Fit and evaluate methods on a dataset; stored runs are skipped (resume)."""
    from bench.history import check_conditions
    from bench.jobs import Cluster
    from bench.plan import ALL, parse_grid
    from bench.registry import parse_overrides
    from bench.runner import Evaluation, run_benchmark
    from bench.subsets import SampleChoice

    try:
        seed_list = [int(s) for s in _csv(seeds)]
    except ValueError:
        raise BenchError(f"--seeds '{seeds}' is not a list of integers; write e.g. --seeds 0,1,2.")
    overrides = parse_overrides(set_)
    if model is not None:
        overrides.setdefault(ALL, {})["model"] = model
    grid_points = parse_grid(grid)
    score_valid = bool(grid_points) if valid is None else valid
    if limit_valid is not None and not score_valid:
        raise BenchError("--limit-valid needs validation scoring; add --valid (or a --grid).")
    evaluation = Evaluation(
        test=SampleChoice(limit_test, test_subset, subset_seed),
        valid=SampleChoice(limit_valid, "random", subset_seed) if score_valid else None,
        history=check_conditions(_csv(history or "")),
    )
    if executor is not None:
        _submit_jobs(
            _csv(methods), dataset, seed_list, device, evaluation, overrides, grid_points, force, name, executor, jobs,
            Cluster(partition, gpus_per_job, time_min, cpus_per_job, _pairs(sbatch, "--sbatch")),
        )  # fmt: skip
        return
    records = run_benchmark(
        _csv(methods),
        dataset,
        seed_list,
        device=device,
        evaluation=evaluation,
        overrides=overrides,
        grid=grid_points,
        force=force,
        console=console,
        name=name,
        busy=busy,
    )
    from bench.distributed import is_main_process

    if is_main_process():  # a launched job: rank 0 reports
        _print_runs(dataset, records)


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"Cannot read {option} '{item}'; write it as key=value, e.g. {option} account=abc.")
        out[key.strip()] = value.strip()
    return out


def _submit_jobs(methods, dataset, seeds, device, evaluation, overrides, grid, force, name, executor, n_jobs, cluster) -> None:
    from bench import jobs
    from bench.plan import plan_methods
    from bench.runner import load_dataset
    from bench.seeding import resolve_device
    from bench.store import RunStore, check_experiment_name

    jobs.check_executor(executor, n_jobs)
    if name is not None:
        check_experiment_name(name)
    if not seeds:
        raise BenchError("--seeds names no seed; give at least one, e.g. --seeds 0 or --seeds 0,1,2.")
    planned = plan_methods(methods, overrides, grid)
    if executor == "local":
        resolve_device(device)  # a Slurm job's device is checked where it runs
        for p in planned:
            p.cls.preflight(p.config)
    split = load_dataset(dataset, console)
    options = jobs.run_options(evaluation, device, name, force)
    try:
        jobs.submit(planned, seeds, split, evaluation, RunStore(), executor, n_jobs, cluster, options, force, console)
    finally:
        if executor == "local":
            _print_jobs(dataset)


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
        rows.append(([mark, shown], [str(job.seed), job.state, job.executor, job.job_id or "-", job.log]))
    print_table(console, f"{dataset}: {len(found)} job(s)", ["", "method"], ["seed", "state", "executor", "id", "log"], rows,
                legend=legend, value_justify=["right", "left", "left", "right", "left"])  # fmt: skip


@app.command("jobs")
@friendly
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
        console,
        f"{dataset}: {len(records)} run(s)",
        ["", "method"],
        ["seed", "NDCG@10", "HR@10", "invalid", "time (s)", "key"] + (["valid NDCG@10"] if with_valid else []),
        rows,
        notes=["key: the first 8 characters of the run key"],
        legend=legend,
    )


@app.command("methods")
@friendly
def list_methods(
    name: Optional[str] = typer.Argument(None, help="A method: show its settings (type, default, meaning)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON (with a name: its settings)."),
):
    """List the registered methods (built-in and plugins), or one method's settings."""
    from bench.registry import all_specs

    if name is not None:
        from rich.text import Text

        from bench.describe import default_text, describe
        from bench.tables import print_table

        info = describe(name)
        if as_json:
            print(json.dumps(info, indent=2))
            return
        console.print(Text(f"{info['name']} (version {info['version']}, {info['origin']}): {info['description']}"))
        settings = info["settings"]
        if not settings:
            console.print(Text(f"{name} has no settings."))
            return
        rows = [([s["name"]], [s["type"], default_text(s["default"])]) for s in settings]
        notes = [f"{s['name']}: {s['help'] or '(no description)'}" for s in settings]
        notes.append(f"Change one with --set {name}.SETTING=VALUE.")
        print_table(console, None, ["setting"], ["type", "default"], rows, notes=notes, value_justify=["left", "left"])
        return
    if as_json:
        specs = sorted(all_specs().values(), key=lambda s: s.name)
        print(json.dumps([{"name": s.name, "description": s.description, "origin": s.origin} for s in specs], indent=2))
        return
    table = Table(title="methods", box=box.SIMPLE_HEAD, show_edge=False, title_justify="left")
    names = all_specs()
    table.add_column("name", style="bold", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("description", ratio=1)
    table.add_column("from", no_wrap=True)
    for spec in sorted(names.values(), key=lambda s: s.name):
        table.add_row(spec.name, spec.description, spec.origin)
    console.print(table)


@app.command()
@friendly
def leaderboard(
    dataset: str = typer.Option("ml-100k", "--dataset", "-d"),
    metrics: str = typer.Option("NDCG@10,HR@10,NDCG@20,HR@20", "--metrics", help="Columns, e.g. NDCG@10,HR@10."),
    test: str = typer.Option("t", "--test", help="Paired test: t, wilcoxon or randomization."),
    correction: str = typer.Option("holm", "--correction", help="Multiple-comparison correction: holm, bonferroni or none."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance threshold."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Row label to report bootstrap CIs of differences against."),
    formats: str = typer.Option("md,tex,csv,json", "--format", help="Output formats."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Default: <results>/leaderboard."),
    seed: int = typer.Option(0, "--seed", help="Seed of the randomisation test and the bootstrap."),
    name: Optional[str] = typer.Option(
        None, "--name", help="Only the runs of this experiment (bench run --name); files are <dataset>-<name>.*"
    ),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Only these methods, e.g. sft,cft."),
    where: list[str] = typer.Option([], "--where", help="Only runs with this setting, e.g. model=smollm2-135m (repeatable)."),
    pairs: str = typer.Option(
        "all",
        "--pairs",
        help="The family of tests corrected together: all (every pair of rows) or baseline (each row vs --baseline).",
    ),
    select_on: Optional[str] = typer.Option(
        None, "--select-on", help="valid: one row per method, its configuration chosen on the validation split."
    ),
    select_metric: str = typer.Option("NDCG@10", "--select-metric", help="The validation metric --select-on maximises."),
    all_configs: bool = typer.Option(False, "--all-configs", help="With --select-on, also show every configuration."),
    cost: bool = typer.Option(
        False, "--cost", help="Also show what each row cost: times, samples/s, GPU-hours, memory, parameters."
    ),
    history: bool = typer.Option(
        False, "--history", help="Also show how each row changes with the history removed, shuffled or cut to the last item."
    ),
    beyond: Optional[int] = typer.Option(
        None,
        "--beyond",
        help="Also show beyond-accuracy metrics of the top-K lists (coverage, popularity, tail, novelty, Gini) at this K.",
    ),
):
    """Rebuild leaderboard tables from the stored runs alone: one table per experiment and test set."""
    from bench.leaderboard import Selection, leaderboard_command, parse_where
    from bench.store import check_experiment_name

    selection = Selection(
        methods=_csv(methods or ""), where=parse_where(where), name=check_experiment_name(name) if name is not None else None
    )
    paths = leaderboard_command(
        dataset,
        metrics=_csv(metrics),
        test=test,
        correction=correction,
        alpha=alpha,
        baseline=baseline,
        out_dir=out_dir,
        formats=tuple(_csv(formats)),
        seed=seed,
        console=console,
        selection=selection,
        pairs=pairs,
        select_on=select_on,
        select_metric=select_metric,
        all_configs=all_configs,
        cost=cost,
        history=history,
        beyond=beyond,
    )
    for path in paths:
        console.print(f"[dim]wrote {escape(str(path))}[/]")


@app.command("runs")
@friendly
def runs_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="One dataset; every dataset when omitted."),
    prune: bool = typer.Option(False, "--prune", help="Delete damaged runs and leftover work and temporary folders."),
):
    """List stored runs with their state; find damaged runs and leftover folders, and prune them."""
    import shutil

    from bench.labels import letters, short_name
    from bench.store import RunStore
    from bench.tables import NAME_MAX, print_table

    store = RunStore()
    runs, damaged = store.scan(dataset)
    leftovers = store.leftovers()
    marks = letters(len(runs))
    rows, legend = [], []
    for mark, run in zip(marks, runs):
        r = run.record
        shown = short_name(r.label, r.method, NAME_MAX)
        if shown != r.label:
            legend.append(f"{mark} = {r.label}")
        rows.append(([mark, shown], [r.dataset, str(r.seed), f"{r.n_test:,}", ",".join(r.experiments) or "-", r.key[:8]]))
    title = f"{len(runs)} stored run(s)" + (f" of {dataset}" if dataset else "")
    print_table(console, title, ["", "method"], ["dataset", "seed", "test", "experiments", "key"], rows, legend=legend,
                value_justify=["left", "right", "right", "left", "left"])  # fmt: skip
    for problem in damaged:
        console.print(Text(("removed: " if prune else "damaged: ") + problem.sentence()), soft_wrap=True)
        if prune:
            shutil.rmtree(problem.folder, ignore_errors=True)
    for folder in leftovers:
        console.print(Text(("removed: " if prune else "leftover: ") + str(folder)), soft_wrap=True)
        if prune:
            shutil.rmtree(folder, ignore_errors=True)
    if (damaged or leftovers) and not prune:
        console.print("Run `bench runs --prune` to delete the damaged runs and leftover folders listed above.")
    if not (damaged or leftovers):
        console.print("No damaged run and no leftover folder.")


@data_app.command("list")
@friendly
def data_list():
    """List dataset cards and whether each is prepared."""
    from bench.data.cards import list_cards, load_card
    from bench.data.prepare import is_prepared
    from bench.tables import print_table

    rows, notes = [], []
    for name in list_cards():
        card = load_card(name)
        rows.append(([name], [card.source, card.category or "-", "yes" if is_prepared(name) else "no"]))
        notes.append(f"{name}: {card.description}")
    print_table(console, "datasets", ["name"], ["source", "category", "prepared"], rows, notes=notes, value_justify=["left"] * 3)


@data_app.command("prepare")
@friendly
def data_prepare(
    name: str = typer.Argument(..., help="Dataset card name, e.g. ml-100k or toys."),
    raw_dir: Optional[Path] = typer.Option(
        None,
        "--raw-dir",
        help="Folder holding raw files you already have (Amazon: missing ones are downloaded there; MovieLens: ml-100k.inter and ml-100k.item).",
    ),
    force: bool = typer.Option(False, "--force", help="Rebuild even if prepared."),
    reviews: Optional[str] = typer.Option(None, "--reviews", help="Amazon only: full (default) or 5core."),
):
    """Download (Amazon) or read (MovieLens) raw data and write the canonical split."""
    from bench.data.prepare import prepare
    from bench.progress import make_progress

    with make_progress(console) as progress:
        manifest = prepare(name, raw_dir=raw_dir, force=force, progress=progress, reviews=reviews)
    _print_stats([manifest])


@data_app.command("stats")
@friendly
def data_stats(
    name: Optional[str] = typer.Argument(None, help="A dataset; all prepared ones when omitted."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
):
    """Users, items, samples per split, history length, window and what was dropped."""
    from bench.data.cards import list_cards
    from bench.data.prepare import is_prepared, load_split

    names = [name] if name else [n for n in list_cards() if is_prepared(n)]
    if not names:
        raise BenchError("No dataset is prepared yet; run `bench data prepare ml-100k` first.")
    manifests = [load_split(n).manifest for n in names]
    if as_json:
        print(json.dumps(manifests if name is None else manifests[0], indent=2, sort_keys=True))
    else:
        _print_stats(manifests)


def _print_stats(manifests: list[dict]) -> None:
    from bench.tables import print_table

    rows = []
    for m in manifests:
        c, s = m["counts"], m["samples"]
        rows.append(
            (
                [m["dataset"]],
                [
                    f"{c['users']:,}",
                    f"{c['items']:,}",
                    f"{c['merged_raw_items']:,}",
                    f"{s['train']:,}",
                    f"{s['valid']:,}",
                    f"{s['test']:,}",
                    f"{m['avg_history']['train']:.2f}",
                    m["window"],
                    m["split_hash"],
                ],
            )
        )
    print_table(
        console,
        "prepared datasets",
        ["dataset"],
        ["users", "items", "merged ids", "train", "valid", "test", "avg history", "window", "split hash"],
        rows,
        value_justify=["right"] * 7 + ["left"] * 2,
    )
    for m in manifests:
        if m["dropped"]:
            dropped = [([reason.replace("_", " ")], [f"{count:,}"]) for reason, count in m["dropped"].items()]
            print_table(console, f"{m['dataset']}: dropped and why", ["reason"], ["count"], dropped)


@app.command()
@friendly
def report(
    dataset: str = typer.Option("ml-100k", "--dataset", "-d"),
    name: Optional[str] = typer.Option(None, "--name", help="Only the runs of this experiment (bench run --name)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Row label to compare every row with (forest plot)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Default: <results>/report/<dataset>[-<name>]."),
    metrics: str = typer.Option("NDCG@10,HR@10,NDCG@20,HR@20", "--metrics", help="Columns; the first is the pictures' metric."),
    methods: Optional[str] = typer.Option(None, "--methods", "-m", help="Only these methods, e.g. sft,cft."),
    where: list[str] = typer.Option([], "--where", help="Only runs with this setting, e.g. model=smollm2-135m (repeatable)."),
    test: str = typer.Option("t", "--test", help="Paired test: t, wilcoxon or randomization."),
    correction: str = typer.Option("holm", "--correction", help="Multiple-comparison correction: holm, bonferroni or none."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance threshold."),
    pairs: str = typer.Option("all", "--pairs", help="The family of tests: all (every pair of rows) or baseline."),
    select_on: Optional[str] = typer.Option(None, "--select-on", help="valid: one row per method, chosen on validation."),
    select_metric: str = typer.Option("NDCG@10", "--select-metric", help="The validation metric --select-on maximises."),
    all_configs: bool = typer.Option(False, "--all-configs", help="With --select-on, also show every configuration."),
    seed: int = typer.Option(0, "--seed", help="Seed of the randomisation test and the bootstraps."),
):
    """Write an HTML page (self-contained) and Markdown with the tables, pictures, beyond-accuracy metrics and provenance."""
    from bench.leaderboard import Selection, parse_where
    from bench.report import report_command
    from bench.store import check_experiment_name

    selection = Selection(
        methods=_csv(methods or ""), where=parse_where(where), name=check_experiment_name(name) if name is not None else None
    )
    written = report_command(
        dataset,
        out_dir=out_dir,
        selection=selection,
        metrics=_csv(metrics),
        test=test,
        correction=correction,
        alpha=alpha,
        baseline=baseline,
        seed=seed,
        pairs=pairs,
        select_on=select_on,
        select_metric=select_metric,
        all_configs=all_configs,
    )
    for path in written:
        console.print(f"[dim]wrote {escape(str(path))}[/]")


def main() -> None:
    from bench import distributed

    try:
        app()
    finally:  # a launched job's processes leave their group before exit, on success and on failure
        distributed.destroy_group()


if __name__ == "__main__":
    main()
