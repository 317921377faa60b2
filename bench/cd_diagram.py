"""The critical-difference diagram of a comparison across datasets (Demšar 2006), drawn from the
mean ranks and groups of bench.across (no pyplot, no display).

      1        2        3        4          mean rank (1 = best)
      |--------|--------|--------|
        ===========                         a bar joins methods whose pairwise tests are not
                 ==============               significant (bench.across: Wilcoxon or sign, Holm)
    A ---+     |       |     +--- D
    B ---------+       +-------- C

The better half of the methods (lower mean rank) is named on the left, best on the top line, the
other half on the right, worst on the top line, so that no two leader lines cross. Black and grey
only, so the picture reads the same in greyscale print.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

ROW = 0.32  # vertical distance between label lines, in the picture's units (inches)
BAR_STEP = 0.16  # between stacked group bars
FONT = 10
CHAR_INCHES = 0.075  # width of one character at FONT points, roughly


def _plain(text: str) -> str:
    return str(text).replace("$", r"\$")  # $ would start mathematical notation


def cd_figure(mean_ranks: Mapping[str, float], cliques: Sequence[Sequence[str]] = (), title: str | None = None,
              note: str | None = None) -> Figure:  # fmt: skip
    """A Figure of the diagram: `mean_ranks` {method: mean rank}, `cliques` the groups to join."""
    if len(mean_ranks) < 2:
        raise ValueError("a critical-difference diagram needs at least two methods with a mean rank")
    order = sorted(mean_ranks, key=lambda m: (mean_ranks[m], list(mean_ranks).index(m)))
    k = len(order)
    labels = {m: f"{m} ({mean_ranks[m]:.2f})" for m in order}
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2 :][::-1]
    left_margin = CHAR_INCHES * max(len(labels[m]) for m in left) + 0.5
    right_margin = CHAR_INCHES * max((len(labels[m]) for m in right), default=0) + 0.5
    span = max(4.0, 0.9 * k)  # inches for the rank axis
    width = span + left_margin + right_margin
    bars_top = 0.35
    rows_top = bars_top + BAR_STEP * max(len(cliques), 1) + 0.25
    height_body = rows_top + ROW * (max(len(left), len(right)) - 1) + 0.15
    head = 0.75 + (0.3 if title else 0.0)
    note_lines = textwrap.wrap(_plain(note), width=max(40, int(width / (CHAR_INCHES * 0.95)))) if note else []
    foot = 0.35 + 0.19 * len(note_lines)
    total = head + height_body + foot
    fig = Figure(figsize=(width, total))
    ax = fig.add_axes((left_margin / width, foot / total, span / width, height_body / total))
    ax.set_xlim(1, k)
    ax.set_ylim(height_body, 0.0)  # y grows downwards, in inches below the axis line
    ax.axis("off")
    _axis(ax, k)
    _bars(ax, cliques, mean_ranks, bars_top)
    per_inch = (k - 1) / span  # rank units per inch: labels sit just outside the axis
    for row, method in enumerate(left):
        _leader(ax, mean_ranks[method], rows_top + row * ROW, 1 - 0.15 * per_inch, labels[method], "right")
    for row, method in enumerate(right):
        _leader(ax, mean_ranks[method], rows_top + row * ROW, k + 0.15 * per_inch, labels[method], "left")
    if title:
        fig.text(
            (left_margin + span / 2) / width,
            1 - 0.3 / total,
            _plain(title),
            ha="center",
            va="center",
            fontsize=FONT + 1,
            fontweight="bold",
        )
    if note_lines:
        fig.text(0.02, 0.15 / total, "\n".join(note_lines), ha="left", va="bottom", fontsize=FONT - 1, color="#404040")
    return fig


def _axis(ax, k: int) -> None:
    ax.plot([1, k], [0, 0], color="black", linewidth=1.2, clip_on=False)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, -0.12], color="black", linewidth=1.0, clip_on=False)
        ax.text(tick, -0.18, str(tick), ha="center", va="bottom", fontsize=FONT)
    for half in range(1, k):
        ax.plot([half + 0.5, half + 0.5], [0, -0.06], color="black", linewidth=0.8, clip_on=False)
    ax.text((1 + k) / 2, -0.5, "mean rank (1 = best)", ha="center", va="bottom", fontsize=FONT - 1, color="#404040")


def _bars(ax, cliques, mean_ranks, top: float) -> None:
    for level, group in enumerate(cliques):
        ranks = [mean_ranks[m] for m in group]
        y = top + level * BAR_STEP
        ax.plot([min(ranks) - 0.04, max(ranks) + 0.04], [y, y], color="black", linewidth=3.5, solid_capstyle="butt", zorder=3)


def _leader(ax, rank: float, y: float, x_text: float, text: str, side: str) -> None:
    ax.plot([rank, rank], [0, y], color="#606060", linewidth=0.9, clip_on=False)
    ax.plot([rank, x_text], [y, y], color="#606060", linewidth=0.9, clip_on=False)
    offset = -0.03 if side == "right" else 0.03
    ax.text(x_text + offset, y, _plain(text), ha=side, va="center", fontsize=FONT, clip_on=False)
