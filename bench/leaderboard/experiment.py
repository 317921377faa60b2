"""An experiment file's tables: `bench leaderboard --experiment FILE` (and the report's chapters).

    the file (bench.experiment) ── its options fixed on the command's ── for each of its datasets:
        the tables of its runs (name and methods), its published values beside the rows they name
    ── across datasets: each method's rank per dataset on the first metric, mean ranks, the
       Friedman test and pairwise tests with Holm (bench.across), from each dataset's first table

Rows are matched across datasets by method name when every table has one row per method (always so
with select_on, whose chosen configuration may differ per dataset), else by their full labels.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.labels import run_label
from bench.leaderboard import select
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.options import LeaderboardOptions
from bench.leaderboard.sections import Entry, Line, Section
from bench.leaderboard.source import Source
from bench.store import RunStore

# the options of `bench leaderboard` an experiment file fixes: given beside --experiment, they are refused
FIXED = ("dataset", "metrics", "test", "correction", "alpha", "baseline", "pairs", "select_on", "select_metric", "all_configs",
         "seed", "name", "methods")  # fmt: skip


def experiment_options(exp, options: LeaderboardOptions) -> LeaderboardOptions:
    """The command's options with what the file fixes: its table options, its name and methods
    (power when the file or the command asks for it)."""
    fixed = exp.table_options().as_kwargs()
    fixed["power"] = fixed.get("power", False) or options.power
    selection = select.Selection(methods=tuple(exp.methods), where=dict(options.selection.where), name=exp.name)
    return dataclasses.replace(options, selection=selection, **fixed)


def dataset_options(exp, options: LeaderboardOptions, dataset: str) -> LeaderboardOptions:
    return dataclasses.replace(options, references=tuple(exp.references_for(dataset)))


def missing_runs(exp, source: Source, options: LeaderboardOptions) -> str:
    """Why a dataset has no tables yet ("" when it has runs of the experiment)."""
    if select.select(source.runs, options.selection):
        return ""
    return f"{source.dataset}: no stored run of experiment '{exp.name}' yet; `bench run --experiment {exp.path}` runs it."


@dataclass
class DatasetTables:
    dataset: str
    boards: list[Leaderboard] = field(default_factory=list)
    problem: str = ""  # why this dataset has no tables
    damaged: list = field(default_factory=list)  # bench.store.DamagedRun: named wherever the tables are shown


@dataclass
class ExperimentTables:
    heading: str  # the file's description, printed above the tables
    name: str
    datasets: list[DatasetTables]
    across: object  # bench.across.AcrossDatasets
    metric: str  # the metric the summary across datasets ranks on
    values: dict[str, dict[str, float]]  # row key -> dataset -> mean of `metric`
    keyed_by: str  # "method" or "label"


def each_dataset(exp, options: LeaderboardOptions, store: RunStore | None, build: Callable, boards_of: Callable = list):
    """(DatasetTables, build's result or None) per dataset of the file, `build(source, options)` given
    each dataset's options (its published values); `boards_of(result)` are its tables. A dataset
    without runs of the experiment, or whose tables fail, is said, not an error, unless no dataset
    has tables."""
    found, failures = [], []
    for dataset in exp.datasets:
        source = Source.scan(dataset, store)
        part, result = DatasetTables(dataset, problem=missing_runs(exp, source, options), damaged=source.damaged), None
        if not part.problem:
            try:
                result = build(source, dataset_options(exp, options, dataset))
                part.boards = list(boards_of(result))
            except BenchError as exc:  # e.g. a baseline with no runs on this dataset: the others still show
                part.problem = f"{dataset}: {exc}"
                failures.append(exc)
        found.append((part, result))
    if not any(part.boards for part, _ in found):
        if failures:
            raise failures[0]
        raise BenchError(
            f"No stored run of experiment '{exp.name}' on {', '.join(exp.datasets)}; run `bench run --experiment {exp.path}` first."
        )
    return found


def build_experiment(exp, options: LeaderboardOptions, store: RunStore | None = None) -> ExperimentTables:
    """Every dataset's tables and the summary across datasets."""
    from bench.leaderboard.compare import leaderboards_of

    options = experiment_options(exp, options)
    return summarize(exp, [part for part, _ in each_dataset(exp, options, store, leaderboards_of)], options)


def summarize(exp, parts: list[DatasetTables], options: LeaderboardOptions) -> ExperimentTables:
    """The summary across datasets of each dataset's first table (bench.across), on the first metric."""
    from bench.across import summarize_across

    metric = options.metrics[0]
    firsts = {p.dataset: p.boards[0] for p in parts if p.boards}
    by_method = options.select_on is not None or all(len({r.method for r in b.rows}) == len(b.rows) for b in firsts.values())
    values: dict[str, dict[str, float]] = {}
    for dataset, board in firsts.items():
        for row in board.rows:
            key = row.method if by_method else run_label(row.method, row.overrides)
            values.setdefault(key, {})[dataset] = row.cells[metric].mean
    across = summarize_across(values, alpha=options.alpha)
    keyed_by = "method" if by_method else "label"
    return ExperimentTables(exp.heading(), exp.name, parts, across, metric, values, keyed_by)


# ---- the summary across datasets, as sections --------------------------------------------------


def across_sections(tables: ExperimentTables) -> list[Section]:
    """The mean-rank table and the pairwise tests; none when the summary is absent (its reason is said instead)."""
    from bench.across import caption

    s = tables.across
    if not s.available:
        return []
    best = min(s.mean_ranks.values())
    lines = []
    for method in s.methods:
        entries = [Entry(f"{s.ranks[d][method]:g}", detail=f"({tables.values[method][d]:.4f})") for d in s.datasets]
        rank = s.mean_ranks[method]
        entries.append(Entry(f"{rank:.2f}", bold=abs(rank - best) < 1e-12))
        lines.append(Line((method,), tuple(entries)))
    keyed = (
        "Rows are methods (each dataset's chosen configuration)"
        if tables.keyed_by == "method"
        else "Rows are matched by their full labels"
    )
    ranks = Section(
        "across", f"Across datasets: mean rank on {tables.metric}", ("Method",), (*s.datasets, "mean rank"), tuple(lines),
        (caption(s), f"Each cell: the rank on that dataset (1 = best) and, in brackets, its {tables.metric} (mean over seeds) "
         f"in the dataset's first table. {keyed}.", *s.notes),
    )  # fmt: skip
    pair_lines = tuple(
        Line((f"{c.better} vs {c.worse}",), (Entry(str(c.wins)), Entry(str(c.losses)), Entry(str(c.ties)), Entry(f"{c.pvalue:.4f}"),
             Entry(f"{c.adjusted:.4f}"), Entry("yes" if c.significant else "no")))
        for c in s.pairs
    )  # fmt: skip
    test = "Wilcoxon signed-rank test" if s.test == "wilcoxon" else "sign test"
    pairs = Section(
        "across-pairs", "Across datasets: pairwise tests", ("Pair",), ("wins", "losses", "ties", "p", "p (Holm)", "differ"),
        pair_lines,
        (f"Each pair on its per-dataset {tables.metric} ({test}); wins, losses, ties: datasets where the first is better, "
         f"worse, equal; p (Holm): corrected over the {len(s.pairs)} pairs; differ: p (Holm) < {s.alpha:g}.",),
        left=("differ",),
    )  # fmt: skip
    return [ranks, pairs]


def across_sentence(tables: ExperimentTables) -> str:
    """What is said in place of the summary when it is absent ("" when present)."""
    s = tables.across
    return "" if s.available else " ".join([s.reason or "", *s.notes])


def across_json(tables: ExperimentTables) -> str:
    payload = {"experiment": tables.name, "description": tables.heading, "metric": tables.metric,
               "keyed_by": tables.keyed_by, "values": tables.values, "summary": dataclasses.asdict(tables.across)}  # fmt: skip
    return json.dumps(payload, indent=2) + "\n"


def across_csv(sections: list[Section]) -> str:
    """Every line of the sections as plain cells, one table after the other."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for section in sections:
        writer.writerow(["table", *section.key_headers, *section.headers])
        for line in section.lines:
            writer.writerow([section.kind, *line.keys, *(e.plain for e in line.entries)])
    return out.getvalue()


def write_across(tables: ExperimentTables, options: LeaderboardOptions, out_dir: Path) -> list[Path]:
    """<out_dir>/<experiment>-across.<format> for each format asked for; nothing when the summary is absent."""
    from bench.atomic import write_text
    from bench.leaderboard.latex import table_tex
    from bench.leaderboard.markdown import md, section_md

    sections = across_sections(tables)
    if not sections:
        return []
    stem = f"{tables.name}-across"
    texts = {
        "md": "\n".join([f"# Across datasets: {md(tables.name)}", "", md(tables.heading), "",
                         *(line for s in sections for line in section_md(s, "##"))]),
        "tex": "\n\n".join(table_tex(s, f"tab:{stem}-{s.kind}") for s in sections) + "\n",
        "csv": across_csv(sections),
        "json": across_json(tables),
    }  # fmt: skip
    return [write_text(out_dir / f"{stem}.{fmt}", texts[fmt]) for fmt in options.formats]
