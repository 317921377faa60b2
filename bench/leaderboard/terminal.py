"""The leaderboard on a terminal or in a log: each of a board's sections (bench.leaderboard.sections)
as a table with row letters and short names, numbers never cut (see bench.tables), the caption and
the shared settings under it, and a legend line for every row whose full label is too long for the
name column."""

from __future__ import annotations

import string

from rich.text import Text

from bench.labels import short_name
from bench.leaderboard.model import Leaderboard
from bench.leaderboard.sections import Entry, Section, board_sections
from bench.tables import NAME_MAX, print_table, table_width, width_of

SUPERSCRIPT = dict(zip(string.ascii_lowercase + ",", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᑫʳˢᵗᵘᵛʷˣʸᶻ˒"))


def superscript(text: str) -> str:
    return "".join(SUPERSCRIPT[ch] for ch in text)


def entry_text(entry: Entry) -> Text:
    """A cell: the text (bold when best), the letters it beats in superscript, then its interval."""
    shown = Text.assemble((entry.text, "bold" if entry.bold else ""), (superscript(entry.wins), "cyan"))
    if entry.detail:
        shown.append(" " + entry.detail)
    return shown


def name_limit(rows_letters: list[str], value_cells: list[list], width: int, floor: int) -> int:
    """Room for the name column beside the letter and the widest value column."""
    widest = max((width_of(c) for values in value_cells for c in values), default=8)
    letter = max((len(x) for x in rows_letters), default=1)
    return max(floor, min(NAME_MAX, width - table_width([letter, widest, 0])))


def shown_names(board: Leaderboard, value_cells: list[list], width: int) -> tuple[list[str], list[str]]:
    """(name per row, legend lines) for a console `width` columns wide."""
    floor = max((len(r.method) + 3 for r in board.rows), default=6)
    limit = name_limit([r.letter for r in board.rows], value_cells, width, floor)
    names = [short_name(r.label, r.method, limit) for r in board.rows]
    legend = [f"{r.letter} = {r.label}" for r, n in zip(board.rows, names) if n != r.label]
    return names, legend


def print_section(console, section: Section, names: dict[str, str], legend: list[str] = ()) -> None:
    """One section, each row named by its letter and the board's short name for it."""
    rows = []
    for line in section.lines:
        keys = list(line.keys)
        if len(keys) == 2:
            keys[1] = names.get(keys[0], keys[1])
        rows.append((keys, [entry_text(e) for e in line.entries]))
    notes = list(section.caption) + [f"{name}: {meaning}" for name, meaning in section.legend]
    justify = ["left" if h in section.left else "right" for h in section.headers]
    print_table(console, section.title, list(section.key_headers), list(section.headers), rows, notes=notes,
                legend=legend, value_justify=justify)  # fmt: skip


def print_leaderboard(console, board: Leaderboard) -> None:
    sections = board_sections(board)
    values = [[entry_text(e) for e in line.entries] for line in sections[0].lines]
    names, legend = shown_names(board, values, console.width)
    by_letter = dict(zip((r.letter for r in board.rows), names))
    for k, section in enumerate(sections):
        print_section(console, section, by_letter, legend if k == 0 else ())
    console.print()
