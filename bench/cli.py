"""The `bench` command line. Heavy libraries are imported inside the commands that need them, so
`bench --help` and `bench methods` start instantly."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from bench.errors import BenchError

app = typer.Typer(help="Benchmark sequential recommenders, classic and LLM-based, on identical splits.", no_args_is_help=True, add_completion=False)
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
            console.print(f"[red bold]error:[/] {exc}")
            raise typer.Exit(2)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted: finished runs are stored; run the same command again to resume.[/]")
            raise typer.Exit(130)

    return wrapper


@app.callback()
def locations(
    data_dir: Optional[Path] = typer.Option(None, envvar="BENCH_DATA_DIR", help="Where prepared splits are written."),
    results_dir: Optional[Path] = typer.Option(None, envvar="BENCH_RESULTS_DIR", help="Where runs and leaderboards are written."),
    cache_dir: Optional[Path] = typer.Option(None, envvar="BENCH_CACHE_DIR", help="Where built tokenizers and models are cached."),
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
    limit_test: Optional[int] = typer.Option(None, "--limit-test", help="Evaluate only the first N test samples (smoke runs)."),
    set_: List[str] = typer.Option([], "--set", help="Override a setting: method.field=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Recompute runs that are stored already."),
):
    """Fit and evaluate methods on a dataset; stored runs are skipped (resume)."""
    from bench.registry import parse_overrides
    from bench.runner import run_benchmark

    try:
        seed_list = [int(s) for s in _csv(seeds)]
    except ValueError:
        raise BenchError(f"--seeds '{seeds}' is not a list of integers; write e.g. --seeds 0,1,2.")
    records = run_benchmark(
        _csv(methods), dataset, seed_list, device=device, limit_test=limit_test,
        overrides=parse_overrides(set_), force=force, console=console,
    )
    from bench.distributed import is_main_process
    from bench.store import wrappable_label

    if not is_main_process():   # a launched job: rank 0 reports
        return
    # the label wraps after each override; numbers are never cut (all metrics: `bench leaderboard`)
    table = Table(title=f"{dataset}: {len(records)} run(s)", caption="key: the first 8 characters of the run key")
    table.add_column("method", overflow="fold", min_width=16)
    for col in ("seed", "NDCG@10", "HR@10", "invalid", "time (s)", "key"):
        table.add_column(col, no_wrap=True, justify="right", min_width=len(col))
    for r in records:
        m = r["metrics"]
        table.add_row(wrappable_label(r["label"]), str(r["seed"]), f"{m['NDCG@10']:.4f}", f"{m['HR@10']:.4f}", str(r["invalid_total"]),
                      f"{r['timing']['total_s']:.1f}", r["key"][:8])
    console.print(table)


@app.command("methods")
@friendly
def list_methods():
    """List the registered methods (built-in and plugins)."""
    from bench.registry import all_specs

    table = Table(title="methods")
    table.add_column("name", style="bold")
    table.add_column("description")
    table.add_column("from")
    for spec in sorted(all_specs().values(), key=lambda s: s.name):
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
):
    """Rebuild leaderboard tables from the stored runs alone."""
    from bench.leaderboard import leaderboard_command

    paths = leaderboard_command(
        dataset, metrics=_csv(metrics), test=test, correction=correction, alpha=alpha, baseline=baseline,
        out_dir=out_dir, formats=tuple(_csv(formats)), seed=seed, console=console,
    )
    for path in paths:
        console.print(f"[dim]wrote {path}[/]")


@data_app.command("list")
@friendly
def data_list():
    """List dataset cards and whether each is prepared."""
    from bench.data.cards import list_cards, load_card
    from bench.data.prepare import is_prepared

    table = Table(title="datasets")
    for col in ("name", "source", "category", "prepared", "description"):
        table.add_column(col)
    for name in list_cards():
        card = load_card(name)
        table.add_row(name, card.source, card.category or "-", "yes" if is_prepared(name) else "no", card.description)
    console.print(table)


@data_app.command("prepare")
@friendly
def data_prepare(
    name: str = typer.Argument(..., help="Dataset card name, e.g. ml-100k or toys."),
    raw_dir: Optional[Path] = typer.Option(None, "--raw-dir", help="Folder holding raw files you already have (Amazon: missing ones are downloaded there; MovieLens: ml-100k.inter and ml-100k.item)."),
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
    table = Table(title="prepared datasets")
    for col in ("dataset", "users", "items", "merged ids", "train", "valid", "test", "avg history", "window", "split hash"):
        table.add_column(col, justify="right" if col not in ("dataset", "window") else "left")
    for m in manifests:
        c, s = m["counts"], m["samples"]
        table.add_row(
            m["dataset"], f"{c['users']:,}", f"{c['items']:,}", f"{c['merged_raw_items']:,}",
            f"{s['train']:,}", f"{s['valid']:,}", f"{s['test']:,}", f"{m['avg_history']['train']:.2f}",
            m["window"], m["split_hash"],
        )
    console.print(table)
    for m in manifests:
        if m["dropped"]:
            dropped = Table(title=f"{m['dataset']}: dropped and why")
            dropped.add_column("reason")
            dropped.add_column("count", justify="right")
            for reason, count in m["dropped"].items():
                dropped.add_row(reason.replace("_", " "), f"{count:,}")
            console.print(dropped)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
