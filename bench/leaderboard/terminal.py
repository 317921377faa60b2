"""The leaderboard on a terminal or in a log: row letters and short names, numbers never cut (see
bench.tables), the caption and the shared settings under the table, and a legend line for every
row whose full label is too long for the name column."""

from __future__ import annotations

from rich.text import Text

from bench.labels import short_name
from bench.leaderboard import cells
from bench.leaderboard.model import CI_CONFIDENCE, Leaderboard
from bench.tables import NAME_MAX, print_table, table_width, width_of


def _metric_cells(board: Leaderboard, row) -> list[Text]:
    out = []
    for m in board.metrics:
        c = row.cells[m]
        out.append(Text.assemble((cells.value(c), "bold" if c.best else ""), (cells.superscript(cells.wins(c)), "cyan")))
    return out


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


def print_leaderboard(console, board: Leaderboard) -> None:
    values = [_metric_cells(board, r) for r in board.rows]
    names, legend = shown_names(board, values, console.width)
    rows = [([r.letter, n], v) for r, n, v in zip(board.rows, names, values)]
    notes = [board.significance_line] + ([board.settings_line] if board.shared else []) + board.notes
    print_table(console, board.title, ["", "method"], board.metrics, rows, notes=notes, legend=legend)
    if board.history:
        headers, entries = cells.history_table(board)
        by_letter = dict(zip((r.letter for r in board.rows), names))
        rows = [([letter, by_letter.get(letter, label)], shown) for letter, label, shown in entries]
        print_table(console, f"History influence on {board.history_metric}", ["", "method"], headers, rows,
                    notes=[cells.history_caption(board)])  # fmt: skip
    if board.beyond:
        headers, entries = cells.beyond_table(board)
        by_letter = dict(zip((r.letter for r in board.rows), names))
        rows = [([letter, by_letter.get(letter, label)], shown) for letter, label, shown in entries]
        print_table(console, "Beyond accuracy", ["", "method"], headers, rows, notes=[cells.beyond_caption(board)])
    if board.show_cost:
        rows = [([r.letter, n], cells.cost(r)) for r, n in zip(board.rows, names)]
        headers = [header for _, header in cells.COST]
        print_table(console, "Cost (mean over seeds; GPU-hours summed)", ["", "method"], headers, rows,
                    value_justify=["right"] * (len(headers) - 1) + ["left"])  # fmt: skip
    if board.has_intervals():
        baseline = board.baseline_label
        others = [(r, n) for r, n in zip(board.rows, names) if r.label != baseline]
        rows = [([r.letter, n], [cells.interval(r.cells[m].vs_baseline) for m in board.metrics]) for r, n in others]
        title = f"Difference from {baseline} (paired bootstrap {CI_CONFIDENCE:.0%} interval)"
        print_table(console, title, ["", "method"], board.metrics, rows)
    console.print()
