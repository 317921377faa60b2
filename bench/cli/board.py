"""`bench leaderboard` and `bench report`: tables and pages rebuilt from the stored runs alone."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from bench import cli


@cli.app.command()
@cli.friendly
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
        methods=cli.csv(methods or ""), where=parse_where(where), name=check_experiment_name(name) if name is not None else None
    )
    paths = leaderboard_command(
        dataset,
        metrics=cli.csv(metrics),
        test=test,
        correction=correction,
        alpha=alpha,
        baseline=baseline,
        out_dir=out_dir,
        formats=tuple(cli.csv(formats)),
        seed=seed,
        console=cli.console,
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
        cli.console.print(f"[dim]wrote {escape(str(path))}[/]")


@cli.app.command()
@cli.friendly
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
        methods=cli.csv(methods or ""), where=parse_where(where), name=check_experiment_name(name) if name is not None else None
    )
    written = report_command(
        dataset,
        out_dir=out_dir,
        selection=selection,
        metrics=cli.csv(metrics),
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
        cli.console.print(f"[dim]wrote {escape(str(path))}[/]")
