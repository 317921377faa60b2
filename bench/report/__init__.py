"""`bench report`: the leaderboard's tables with pictures, as one self-contained HTML page and the
same content as Markdown. Every number comes from the leaderboard (bench.leaderboard); the report
adds pictures.

build.py     the report in memory: the leaderboard's sections and provenance, pictures rendered
experiment.py  an experiment file's report: every dataset's chapters, the summary across datasets
compute.py   what only the pictures need: curves over K, the Pareto front, two-setting grids
plots.py     the pictures (matplotlib, Agg, Okabe-Ito); cost_plot.py: quality against cost
model.py     Report, Chapter, Picture
html.py      the page (inline stylesheet, pictures embedded as SVG)
markdown.py  the Markdown (pictures linked as PNG files)
command.py   write the folder; `bench report`
"""

from __future__ import annotations

import importlib

_WHERE = {
    "Report": "model", "build_report": "build", "report_of": "build", "write_report": "command", "report_command": "command",
    "experiment_report": "experiment", "experiment_report_command": "command", "curves": "compute", "find_grids": "compute", "pareto_front": "compute",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.report' has no attribute '{name}'")
    return getattr(importlib.import_module(f"bench.report.{_WHERE[name]}"), name)
