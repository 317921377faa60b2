"""Leaderboard tables, rebuilt from the run store alone (no model, no GPU).

select.py    which runs form which table (method, setting, experiment; split; evaluation set)
labels.py    row names: full labels, settings shared by every row, letters
compare.py   per-sample values, paired tests, corrections, bootstrap intervals -> Leaderboard
model.py     the Leaderboard records (reloadable from JSON)
cells.py     how a cell reads in every format
terminal.py  rich tables for a terminal or a log, at any width from 60 columns
markdown.py, latex.py, export.py (CSV, JSON)   the files
command.py   `bench leaderboard`: build, print, write <dataset>[-<experiment>].<format>
"""

from bench.leaderboard.command import FORMATS, leaderboard_command
from bench.leaderboard.compare import DEFAULT_METRICS, build_leaderboards
from bench.leaderboard.export import load_leaderboards, to_csv, to_json
from bench.leaderboard.latex import latex_escape, to_latex
from bench.leaderboard.markdown import to_markdown
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.select import Selection, parse_where
from bench.leaderboard.terminal import print_leaderboard

__all__ = [
    "DEFAULT_METRICS", "FORMATS", "Leaderboard", "Selection", "build_leaderboards", "latex_escape", "leaderboard_command",
    "load_leaderboards", "parse_where", "print_leaderboard", "to_csv", "to_json", "to_latex", "to_markdown",
]  # fmt: skip
