"""The report of an experiment file (`bench report --experiment FILE`): the file's description, the
chapters of every dataset's tables (numbered on across datasets), the summary across datasets with
its critical-difference diagram (or why it is absent), and the power of every table's tests in
"About the numbers"."""

from __future__ import annotations

from datetime import datetime

from bench.leaderboard.experiment import across_sections, across_sentence, each_dataset, experiment_options, summarize
from bench.leaderboard.options import LeaderboardOptions
from bench.report import plots
from bench.report.build import count_runs, dataset_chapters, generated_at
from bench.report.model import Across, Picture, Report
from bench.store import RunStore


def across_part(tables) -> Across:
    """The summary's tables and its critical-difference diagram, or the sentence saying why it is absent."""
    from bench.across import caption
    from bench.cd_diagram import cd_figure

    sections = across_sections(tables)
    if not sections:
        return Across([], [], across_sentence(tables))
    s = tables.across
    figure = cd_figure(s.mean_ranks, s.cliques, title=f"Mean rank on {tables.metric} across {len(s.datasets)} datasets")
    svg, png = plots.render(figure)
    said = (
        f"Each method at its mean rank on {tables.metric} over {', '.join(s.datasets)} (1 = best); a bar joins methods whose "
        f"pairwise tests do not differ. {caption(s)}"
    )
    return Across(sections, [Picture("cd", "Critical-difference diagram", said, "across-cd", svg, png)])


def experiment_report(exp, options: LeaderboardOptions | None = None, store: RunStore | None = None,
                      now: datetime | None = None) -> Report:  # fmt: skip
    """The report of an experiment file's runs, in memory (nothing is written)."""
    options = experiment_options(exp, options if options is not None else LeaderboardOptions.for_report())
    numbered = [0]

    def chapters_of(source, dataset_options):
        found = dataset_chapters(source, dataset_options, numbered[0] + 1)
        numbered[0] += len(found[0])
        return found

    found = each_dataset(exp, options, store, chapters_of, boards_of=lambda result: [c.board for c in result[0]])
    chapters = [c for _, result in found if result for c in result[0]]
    hashes = [f"{result[1]} ({part.dataset})" for part, result in found if result]
    beyond_note = next((result[2] for _, result in found if result and result[2]), "")
    tables = summarize(exp, [part for part, _ in found], options)
    generated, n_runs = generated_at(now), count_runs(chapters)
    facts = [("Experiment", exp.name), ("Datasets", ", ".join(exp.datasets)), ("Split hash", ", ".join(hashes)),
             ("Generated", generated.replace("T", " ").replace("+00:00", " UTC")), ("Tables", str(len(chapters))),
             ("Runs", str(n_runs)), *options.describe()]  # fmt: skip
    damaged = [d for part, _ in found for d in part.damaged]
    problems = [part.problem for part, _ in found if part.problem]
    return Report(", ".join(exp.datasets), exp.name, ", ".join(hashes), generated, chapters, facts, damaged, n_runs,
                  beyond_note, heading=tables.heading, across=across_part(tables), problems=problems)  # fmt: skip
