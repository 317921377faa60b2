"""Leaderboard tables, rebuilt from the run store alone (no model, no GPU).

options.py   LeaderboardOptions: what the tables show and how they are tested, checked once
select.py    which runs form which table (method, setting, experiment; split; evaluation set)
source.py    the store scanned once, the prepared split loaded once
rows.py      per-sample values of each row's seeds, the cells' means and spreads
compare.py   paired tests, corrections, bootstrap intervals -> Leaderboard
analyses.py  cost, history influence and beyond-accuracy rows beside the accuracy table
model.py     the Leaderboard records (reloadable from JSON)
cells.py     how each number reads, in every format
sections.py  every table a board shows, as headers, rows of cells and a caption
provenance.py  where each row's runs came from, as tables
terminal.py, markdown.py, latex.py   lay the sections out; export.py: CSV and JSON
paper.py     published values beside reproduced ones, and the power of the table's tests
experiment.py  an experiment file's tables over its datasets, and the summary across them
command.py   `bench leaderboard`: build, print, then write <dataset>[-<experiment>].<format>

Names are imported when first used, so that importing one module here (select, options) does not
import the statistics (scipy) with it.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "DEFAULT_METRICS": "options", "FORMATS": "options", "LeaderboardOptions": "options", "Leaderboard": "model",
    "Selection": "select", "parse_where": "select", "Source": "source", "build_leaderboards": "compare",
    "build_tables": "compare", "leaderboards_of": "compare", "leaderboard_command": "command",
    "write_leaderboards": "command", "experiment_command": "command", "build_experiment": "experiment", "load_leaderboards": "export", "to_csv": "export", "to_json": "export",
    "latex_escape": "latex", "to_latex": "latex", "to_markdown": "markdown", "print_leaderboard": "terminal",
    "board_sections": "sections", "Section": "sections", "provenance_sections": "provenance",
}  # fmt: skip
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.leaderboard' has no attribute '{name}'")
    return getattr(importlib.import_module(f"bench.leaderboard.{_WHERE[name]}"), name)
