"""`bench leaderboard` and `bench report`: tables and pages rebuilt from the stored runs alone.

Both commands read their options into one bench.leaderboard.LeaderboardOptions (checked once,
each mistake one sentence) and pass it whole; an option both offer is declared once below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from bench import cli

Dataset = Annotated[str, typer.Option("--dataset", "-d")]
Metrics = Annotated[str, typer.Option("--metrics", help="Columns, e.g. NDCG@10,HR@10; the report's pictures use the first.")]
Test = Annotated[str, typer.Option("--test", help="Paired test: t, wilcoxon or randomization.")]
Correction = Annotated[str, typer.Option("--correction", help="Multiple-comparison correction: holm, bonferroni or none.")]
Alpha = Annotated[float, typer.Option("--alpha", help="Significance threshold.")]
Baseline = Annotated[
    Optional[str], typer.Option("--baseline", help="Row label to report paired bootstrap intervals of differences against.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the randomisation test and the bootstraps.")]
Name = Annotated[
    Optional[str],
    typer.Option("--name", help="Only the runs of this experiment (bench run --name); files are named <dataset>-<name>."),
]
Methods = Annotated[Optional[str], typer.Option("--methods", "-m", help="Only these methods, e.g. sft,cft.")]
Where = Annotated[list[str], typer.Option("--where", help="Only runs with this setting, e.g. model=smollm2-135m (repeatable).")]
Pairs = Annotated[
    str,
    typer.Option(
        "--pairs", help="The family of tests corrected together: all (every pair of rows) or baseline (each row vs --baseline)."
    ),
]
SelectOn = Annotated[
    Optional[str],
    typer.Option("--select-on", help="valid: one row per method, its configuration chosen on the validation split."),
]
SelectMetric = Annotated[str, typer.Option("--select-metric", help="The validation metric --select-on maximises.")]
AllConfigs = Annotated[bool, typer.Option("--all-configs", help="With --select-on, also show every configuration.")]
Beyond = Annotated[
    Optional[int],
    typer.Option(
        "--beyond",
        help="Beyond-accuracy metrics of the top-K lists (coverage, popularity, tail, novelty, Gini) at this K, 1 to 50.",
    ),
]
OutDir = Annotated[Optional[Path], typer.Option("--out-dir", help="Where the files go (default under <results>).")]
Experiment = Annotated[
    Optional[Path],
    typer.Option(
        "--experiment",
        "-e",
        help="An experiment file (experiments/NAME.toml): its tables on every dataset it names, with its options, "
        "published values and the summary across datasets.",
    ),
]
TargetEffect = Annotated[
    Optional[float],
    typer.Option(
        "--target-effect",
        help="With the power table: the test samples each comparison needs to detect a difference of this size (e.g. 0.01).",
    ),
]

METRICS = "NDCG@10,HR@10,NDCG@20,HR@20"


def _options(ctx: typer.Context, **fixed):
    """(dataset, the experiment file or None, the command's options as one checked object). Options
    an experiment file fixes are refused beside it, in one sentence."""
    from bench.leaderboard import LeaderboardOptions

    params = dict(ctx.params)
    dataset, path = params.pop("dataset"), params.pop("experiment")
    exp = None
    if path is not None:
        from bench.experiment import load
        from bench.leaderboard.experiment import FIXED

        _refuse_fixed(ctx, FIXED)
        exp = load(path)
    return dataset, exp, LeaderboardOptions.from_options(**(fixed | params))


def _refuse_fixed(ctx: typer.Context, fixed: tuple[str, ...]) -> None:
    from bench.errors import BenchError

    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        # compared by name: typer may bring its own copy of click, whose ParameterSource is another class
        if param.name in fixed and source is not None and source.name != "DEFAULT":
            raise BenchError(
                f"{param.opts[0]} cannot be given with --experiment, which fixes it; change the experiment file instead."
            )


@cli.app.command()
@cli.friendly
def leaderboard(
    ctx: typer.Context,
    dataset: Dataset = "ml-100k",
    metrics: Metrics = METRICS,
    test: Test = "t",
    correction: Correction = "holm",
    alpha: Alpha = 0.05,
    baseline: Baseline = None,
    formats: Annotated[str, typer.Option("--format", help="Output formats: md, tex, csv, json.")] = "md,tex,csv,json",
    out_dir: OutDir = None,
    seed: Seed = 0,
    name: Name = None,
    methods: Methods = None,
    where: Where = [],  # noqa: B006 (typer reads the default; it is never changed)
    pairs: Pairs = "all",
    select_on: SelectOn = None,
    select_metric: SelectMetric = "NDCG@10",
    all_configs: AllConfigs = False,
    cost: Annotated[
        bool, typer.Option("--cost", help="Also show what each row cost: times, samples/s, GPU-hours, memory, parameters.")
    ] = False,
    history: Annotated[
        bool,
        typer.Option(
            "--history", help="Also show how each row changes with the history removed, shuffled or cut to the last item."
        ),
    ] = False,
    beyond: Beyond = None,
    power: Annotated[
        bool,
        typer.Option("--power", help="Also show each tested pair's minimum detectable effect (80% power, corrected level)."),
    ] = False,
    target_effect: TargetEffect = None,
    experiment: Experiment = None,
):
    """Rebuild leaderboard tables from the stored runs alone: one table per experiment and test set."""
    from bench.leaderboard import experiment_command, leaderboard_command

    dataset, exp, options = _options(ctx)
    if exp is not None:
        written = experiment_command(exp, options, console=cli.console)
    else:
        written = leaderboard_command(dataset, options, console=cli.console)
    for path in written:
        cli.console.print(f"[dim]wrote {escape(str(path))}[/]")


@cli.app.command()
@cli.friendly
def report(
    ctx: typer.Context,
    dataset: Dataset = "ml-100k",
    name: Name = None,
    baseline: Baseline = None,
    out_dir: OutDir = None,
    metrics: Metrics = METRICS,
    methods: Methods = None,
    where: Where = [],  # noqa: B006 (typer reads the default; it is never changed)
    test: Test = "t",
    correction: Correction = "holm",
    alpha: Alpha = 0.05,
    pairs: Pairs = "all",
    select_on: SelectOn = None,
    select_metric: SelectMetric = "NDCG@10",
    all_configs: AllConfigs = False,
    beyond: Beyond = 10,
    seed: Seed = 0,
    target_effect: TargetEffect = None,
    experiment: Experiment = None,
):
    """Write an HTML page (self-contained) and Markdown with the tables, pictures, beyond-accuracy metrics and provenance."""
    from bench.leaderboard.options import REPORT
    from bench.report import experiment_report_command, report_command

    dataset, exp, options = _options(ctx, **REPORT)
    if exp is not None:
        written = experiment_report_command(exp, options, console=cli.console)
    else:
        written = report_command(dataset, options, console=cli.console)
    for path in written:
        cli.console.print(f"[dim]wrote {escape(str(path))}[/]")
