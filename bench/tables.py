"""Terminal tables that stay readable at any width from 60 columns up, in a terminal or a log.

Rich squeezes columns when a table is wider than the console, which cuts numbers and can shrink a
name column to nothing. Here no cell is ever cut or wrapped: the key columns (a row letter, a short
name) are repeated, and the value columns are split into as many tables, one under another, as
the width needs. Long configurations never go into a column: the caller shows a short name in the
table and prints the full label in a legend line under it.

    print_table(console, "ml-100k: 200 test samples", ["", "method"], ["NDCG@10", "HR@10", ...],
                rows=[(["a", "pop"], ["0.0056", "0.0150"]), ...],
                notes=["Every row with these settings: epochs=1"], legend=["c = cft[alpha=0.2]"])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

Cell = Union[str, Text]
BOX = box.SIMPLE_HEAD  # no vertical rules: labels and numbers can be copied out whole
NAME_MAX = 28  # a longer label goes to the legend, the table shows its short name


def _plain(cell: Cell) -> Text:
    """A cell as literal text: `cft[epochs=1]` must not be read as rich markup."""
    return cell if isinstance(cell, Text) else Text(cell)


def width_of(cell: Cell) -> int:
    return cell.cell_len if isinstance(cell, Text) else cell_len(cell)


def table_width(widths: Sequence[int]) -> int:
    """Characters a SIMPLE_HEAD table with these column widths takes (padding 1 each side, one
    space between columns, no edge)."""
    return sum(widths) + 3 * len(widths) - 1


def column_groups(key_widths: Sequence[int], value_widths: Sequence[int], width: int) -> list[list[int]]:
    """Value columns (by index) split into consecutive groups that each fit beside the key columns
    in `width`; a column too wide even alone gets a group of its own."""
    base = table_width(key_widths)
    groups: list[list[int]] = [[]]
    used = base
    for j, w in enumerate(value_widths):
        if groups[-1] and used + w + 3 > width:
            groups.append([])
            used = base
        groups[-1].append(j)
        used += w + 3
    return groups


def print_table(
    console,
    title: str | None,
    key_headers: Sequence[str],
    value_headers: Sequence[str],
    rows: Sequence[tuple[Sequence[Cell], Sequence[Cell]]],
    notes: Sequence[str] = (),
    legend: Sequence[str] = (),
    key_justify: Sequence[str] | None = None,
    value_justify: Sequence[str] | None = None,
) -> None:
    """Print rows of (key cells, value cells). Value columns are right-aligned unless
    `value_justify` says otherwise; nothing is cut.
    `notes` (captions) wrap at spaces; `legend` lines are printed whole (the terminal may fold
    them, a log keeps them on one line)."""
    key_justify = list(key_justify or ["left"] * len(key_headers))
    value_justify = list(value_justify or ["right"] * len(value_headers))
    key_widths = [max([cell_len(h)] + [width_of(keys[i]) for keys, _ in rows]) for i, h in enumerate(key_headers)]
    value_widths = [max([cell_len(h)] + [width_of(values[j]) for _, values in rows]) for j, h in enumerate(value_headers)]
    width = console.width
    for n, group in enumerate(column_groups(key_widths, value_widths, width)):
        shown_title = Text(title) if title is not None and n == 0 else None
        table = Table(title=shown_title, box=BOX, show_edge=False, title_justify="left", pad_edge=True)
        for header, w, justify in zip(key_headers, key_widths, key_justify):
            table.add_column(header, justify=justify, no_wrap=True, min_width=w)
        for j in group:
            table.add_column(value_headers[j], justify=value_justify[j], no_wrap=True, min_width=value_widths[j])
        for keys, values in rows:
            table.add_row(*map(_plain, keys), *(_plain(values[j]) for j in group))
        needed = table_width(key_widths + [value_widths[j] for j in group])
        console.print(table, width=max(width, needed), crop=False)
    for line in notes:
        console.print(Text(line), width=width)
    for line in legend:
        console.print(Text(line), soft_wrap=True)
