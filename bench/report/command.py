"""`bench report`: build the report (bench.report.build), then write one folder,
<results>/report/<dataset>[-<experiment>]/ (for an experiment file, <results>/report/<experiment>/)
unless told otherwise: index.html (self-contained, pictures embedded as SVG), report.md (the same
content, linking the PNG files) and every picture beside them as t<n>-<kind>.png and .svg (the
critical-difference diagram across datasets: across-cd.png and .svg)."""

from __future__ import annotations

import re
from pathlib import Path

from bench import paths
from bench.atomic import atomic_file, write_text
from bench.leaderboard.options import LeaderboardOptions
from bench.leaderboard.source import Source
from bench.report.build import report_of
from bench.report.model import Report
from bench.store import RunStore

PICTURE_FILE = re.compile(r"(t\d+|across)-[a-z]+(-[A-Za-z0-9._-]+)?\.(png|svg)")


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """The pictures, index.html and report.md into out_dir; pictures an earlier report left there
    that this one does not draw are removed (nothing else is). Returns the page and the Markdown."""
    from bench.report.html import to_html
    from bench.report.markdown import to_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.iterdir():
        if old.is_file() and PICTURE_FILE.fullmatch(old.name):
            old.unlink()
    pictures = [p for chapter in report.chapters for p in chapter.pictures] + (report.across.pictures if report.across else [])
    for picture in pictures:
        for name, data in ((picture.svg, picture.svg_data), (picture.png, picture.png_data)):
            with atomic_file(out_dir / name) as tmp:
                tmp.write_bytes(data)
    return [write_text(out_dir / "index.html", to_html(report)), write_text(out_dir / "report.md", to_markdown(report))]


def report_command(
    dataset: str, options: LeaderboardOptions | None = None, store: RunStore | None = None, console=None
) -> list[Path]:
    """Build the report and write it into options.out_dir (default <results>/report/<dataset>[-<experiment>]);
    damaged runs are named on the console (and in the page) before anything else."""
    from rich.text import Text

    options = options if options is not None else LeaderboardOptions.for_report()
    source = Source.scan(dataset, store)
    if console is not None:
        for damaged in source.damaged:  # never left out silently
            console.print(Text(f"warning: left out of the report: {damaged.sentence()}", style="yellow"), soft_wrap=True)
    report = report_of(source, options)
    out_dir = options.out_dir if options.out_dir is not None else paths.results_dir() / "report" / options.file_stem(dataset)
    return write_report(report, out_dir)


def experiment_report_command(exp, options: LeaderboardOptions | None = None, store: RunStore | None = None,
                              console=None) -> list[Path]:  # fmt: skip
    """Build an experiment file's report and write it into options.out_dir (default
    <results>/report/<experiment>); damaged runs and datasets without tables are named on the console."""
    from rich.text import Text

    from bench.report.experiment import experiment_report

    options = options if options is not None else LeaderboardOptions.for_report()
    report = experiment_report(exp, options, store)
    if console is not None:
        for damaged in report.damaged:  # never left out silently
            console.print(Text(f"warning: left out of the report: {damaged.sentence()}", style="yellow"), soft_wrap=True)
        for problem in report.problems:
            console.print(Text(problem, style="yellow"))
    out_dir = options.out_dir if options.out_dir is not None else paths.results_dir() / "report" / exp.name
    return write_report(report, out_dir)
