"""LaTeX (booktabs): one table environment per table, its caption naming the test and the
correction; bold for the best mean, superscript letters for significant wins."""

from __future__ import annotations

import re

from tabulate import DataRow, Line, TableFormat, tabulate

from bench.leaderboard import cells
from bench.leaderboard.model import Leaderboard

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$",
}  # fmt: skip

_BOOKTABS = TableFormat(
    lineabove=Line(r"\toprule", "", "", ""),
    linebelowheader=Line(r"\midrule", "", "", ""),
    linebetweenrows=None,
    linebelow=Line(r"\bottomrule", "", "", ""),
    headerrow=DataRow("", " & ", r" \\"),
    datarow=DataRow("", " & ", r" \\"),
    padding=0,
    with_header_hide=None,
)  # tabulate's own latex_booktabs escapes every cell, which would break \textbf and $^{}$


def latex_escape(text: str) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def _table(board: Leaderboard, index: int) -> str:
    body = []
    for r in board.rows:
        shown = []
        for m in board.metrics:
            c = r.cells[m]
            text = latex_escape(cells.value(c))
            text = rf"\textbf{{{text}}}" if c.best else text
            shown.append(text + (f"$^{{{cells.wins(c)}}}$" if c.wins else ""))
        body.append([r.letter, latex_escape(r.label), *shown])
    headers = ["", "Method", *(latex_escape(m) for m in board.metrics)]
    tabular = tabulate(body, headers=headers, tablefmt=_BOOKTABS, disable_numparse=True)
    name = "-".join(filter(None, [board.dataset, board.experiment]))
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(board.caption)}}}",
            rf"\label{{tab:{re.sub('[^A-Za-z0-9]+', '-', name)}-{index}}}",
            rf"\begin{{tabular}}{{ll{'r' * len(board.metrics)}}}",
            tabular,
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def to_latex(boards: list[Leaderboard]) -> str:
    return "\n\n".join(_table(b, k + 1) for k, b in enumerate(boards)) + "\n"
