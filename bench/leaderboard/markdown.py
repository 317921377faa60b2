"""Markdown (GitHub tables): one section per table, its caption, and the intervals against the
baseline when asked."""

from __future__ import annotations

from tabulate import tabulate

from bench.leaderboard import cells
from bench.leaderboard.model import CI_CONFIDENCE, Leaderboard


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def _table(board: Leaderboard) -> str:
    body = []
    for r in board.rows:
        shown = []
        for m in board.metrics:
            c = r.cells[m]
            text = f"**{cells.value(c)}**" if c.best else cells.value(c)
            shown.append(text + (f"<sup>{cells.wins(c)}</sup>" if c.wins else ""))
        body.append([r.letter, _escape(r.label), *shown])
    return tabulate(body, headers=["", "Method", *board.metrics], tablefmt="github", disable_numparse=True)


def _intervals(board: Leaderboard) -> str:
    others = [r for r in board.rows if r.label != board.baseline_label]
    body = [[_escape(r.label), *(cells.interval(r.cells[m].vs_baseline) for m in board.metrics)] for r in others]
    return tabulate(body, headers=["Method", *board.metrics], tablefmt="github", disable_numparse=True)


def to_markdown(boards: list[Leaderboard]) -> str:
    parts = [f"# Leaderboard: {boards[0].dataset}", "", f"Split `{boards[0].split_hash}`.", ""]
    for board in boards:
        parts += [f"## {board.title}", "", _table(board), "", board.caption, ""]
        if board.history:
            headers, entries = cells.history_table(board)
            body = [[letter, _escape(label), *shown] for letter, label, shown in entries]
            parts += [f"### History influence on {board.history_metric}", "", cells.history_caption(board), "",
                      tabulate(body, headers=["", "Method", *headers], tablefmt="github", disable_numparse=True), ""]  # fmt: skip
        if board.beyond:
            headers, entries = cells.beyond_table(board)
            body = [[letter, _escape(label), *shown] for letter, label, shown in entries]
            parts += ["### Beyond accuracy", "", cells.beyond_caption(board), "",
                      tabulate(body, headers=["", "Method", *headers], tablefmt="github", disable_numparse=True), ""]  # fmt: skip
        if board.show_cost:
            body = [[r.letter, _escape(r.label), *cells.cost(r)] for r in board.rows]
            headers = ["", "Method", *(header for _, header in cells.COST)]
            parts += ["### Cost", "", "Mean over seeds; GPU-hours summed over seeds; peak memory is the GPU's, or the process's on a CPU.", "",
                      tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]  # fmt: skip
        if board.has_intervals():
            parts += [
                f"### Difference from {board.baseline_label}",
                "",
                f"Mean of (row - {_escape(board.baseline_label)}) with its paired bootstrap {CI_CONFIDENCE:.0%} interval "
                f"({board.n_resamples:,} resamples, seed {board.seed}).",
                "",
                _intervals(board),
                "",
            ]
    return "\n".join(parts)
