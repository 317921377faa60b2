"""LaTeX (booktabs): every section of a board (bench.leaderboard.sections) as a table environment,
its caption naming the test and the correction; bold for the best mean, superscript letters for
significant wins."""

from __future__ import annotations

import re

from tabulate import DataRow, Line, TableFormat, tabulate

from bench.leaderboard.model import Leaderboard
from bench.leaderboard.sections import Entry, Section, board_sections

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$",
    "Δ": r"$\Delta$", "·": r"$\cdot$", "…": r"\dots{}", "∞": r"$\infty$",
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


def entry_tex(entry: Entry) -> str:
    text = latex_escape(entry.text)
    text = rf"\textbf{{{text}}}" if entry.bold else text
    text += f"$^{{{entry.wins}}}$" if entry.wins else ""
    return text + (" " + latex_escape(entry.detail) if entry.detail else "")


def _caption(section: Section) -> str:
    """The board's own caption; a further section's starts with its title, and says what its columns mean."""
    said = [f"{section.title}." if section.kind != "board" else "", section.caption_text]
    said += [f"{name}: {meaning}." for name, meaning in section.legend]
    return " ".join(filter(None, said))


def table_tex(section: Section, label: str) -> str:
    body = [[latex_escape(k) for k in line.keys] + [entry_tex(e) for e in line.entries] for line in section.lines]
    headers = [latex_escape(h) for h in (*section.key_headers, *section.headers)]
    tabular = tabulate(body, headers=headers, tablefmt=_BOOKTABS, disable_numparse=True)
    columns = "l" * len(section.key_headers) + "".join("l" if h in section.left else "r" for h in section.headers)
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(_caption(section))}}}",
            rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{columns}}}",
            tabular,
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def to_latex(boards: list[Leaderboard]) -> str:
    tables = []
    for index, board in enumerate(boards, start=1):
        name = re.sub("[^A-Za-z0-9]+", "-", "-".join(filter(None, [board.dataset, board.experiment])))
        for section in board_sections(board):
            suffix = "" if section.kind == "board" else f"-{section.kind}"
            tables.append(table_tex(section, f"tab:{name}-{index}{suffix}"))
    return "\n\n".join(tables) + "\n"
