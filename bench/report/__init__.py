"""`bench report`: the leaderboard tables with pictures, beyond-accuracy metrics and provenance, as
one self-contained HTML page and the same content as Markdown.

compute.py   curves over K, the Pareto front, two-setting grids, beyond-accuracy rows, provenance
plots.py     the pictures (matplotlib, Agg, Okabe-Ito), written as PNG and SVG
html.py      the page (inline stylesheet, pictures embedded as SVG)
markdown.py  the Markdown (pictures linked as PNG files)
command.py   build the report from the store and write the folder
"""

from bench.report.command import Report, build_report, report_command
from bench.report.compute import curves, find_grids, pareto_front

__all__ = ["Report", "build_report", "curves", "find_grids", "pareto_front", "report_command"]
