"""The report's pictures, drawn with matplotlib's Agg renderer (no pyplot, no display, no global
backend switch): Okabe-Ito colours with line styles, markers and hatches as well, so that every
picture also reads in greyscale print; rows are named by the table's letters and labels.

Each function returns a Figure, or None when there is nothing to draw; `render` turns it into SVG
and PNG data in memory (the report writes them beside the page later). The quality-against-cost
picture is in cost_plot.py.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bench.labels import short_name
from bench.leaderboard.model import Leaderboard, Row
from bench.leaderboard.sections import history_conditions
from bench.report.compute import Grid

# Okabe & Ito (2008), a palette distinguishable with every common colour-vision deficiency;
# yellow last (faint on white)
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
GREY = "#7F7F7F"
LINESTYLES = ("-", "--", "-.", ":")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LABEL_LIMIT = 34  # characters of a row label shown in a picture; the table beside it spells it out

STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#D0D0D0",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "svg.hashsalt": "bench-report",  # the same picture gives the same SVG
    "svg.fonttype": "path",  # text as outlines: the picture looks the same without the fonts
}
DPI = 150


def row_style(index: int) -> dict:
    """The colour, line style and marker of the index-th row of a table, the same in every picture."""
    return {
        "color": OKABE_ITO[index % len(OKABE_ITO)],
        "linestyle": LINESTYLES[(index // len(OKABE_ITO) + index) % len(LINESTYLES)],
        "marker": MARKERS[index % len(MARKERS)],
    }


def plain(text) -> str:
    """Text matplotlib shows as written ($ would start mathematical notation)."""
    return str(text).replace("$", r"\$")


def row_name(row: Row, limit: int = LABEL_LIMIT) -> str:
    return plain(f"{row.letter}  {short_name(row.label, row.method, limit)}")


def render(fig: Figure) -> tuple[bytes, bytes]:
    """(SVG, PNG) of a figure."""
    with matplotlib.rc_context(STYLE):
        svg = io.BytesIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=DPI, facecolor="white")
    return svg.getvalue(), png.getvalue()


def figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def curves_figure(board: Leaderboard, curves: dict[str, dict[str, np.ndarray]]) -> Figure | None:
    """NDCG@K and HR@K against K, one line per row (curves: letter -> {"NDCG", "HR"})."""
    rows = [r for r in board.rows if r.letter in curves]
    if not rows:
        return None
    with matplotlib.rc_context(STYLE):
        fig = figure(10.0, 4.0 + 0.22 * ((len(rows) + 1) // 2))
        axes = fig.subplots(1, 2)
        for ax, name in zip(axes, ("NDCG", "HR")):
            for index, row in enumerate(board.rows):
                if row.letter not in curves:
                    continue
                values = curves[row.letter][name]
                ks = np.arange(1, len(values) + 1)
                marks = [k - 1 for k in (1, 3, 5, 10, 20, 50) if k <= len(values)]
                ax.plot(ks, values, label=row_name(row), linewidth=1.8, markersize=5, markevery=marks, **row_style(index))
            ax.set_xlabel("K (length of the recommended list)")
            ax.set_ylabel(f"{name}@K")
            ax.set_title(f"{name}@K")
            ax.set_xlim(1, 50)
            ax.set_xticks([1, 5, 10, 20, 30, 40, 50])
            ax.set_ylim(bottom=0)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(rows)))
    return fig


def forest_figure(board: Leaderboard, metric: str) -> Figure | None:
    """Each row's paired bootstrap interval of (row - baseline) on `metric`."""
    rows = [r for r in board.rows if metric in r.cells and r.cells[metric].vs_baseline is not None]
    if not rows:
        return None
    with matplotlib.rc_context(STYLE):
        fig = figure(8.0, max(2.4, 1.3 + 0.42 * len(rows)))
        ax = fig.subplots()
        for y, row in enumerate(reversed(rows)):
            iv = row.cells[metric].vs_baseline
            if iv.low > 0:
                color, marker, face = OKABE_ITO[2], "o", OKABE_ITO[2]
            elif iv.high < 0:
                color, marker, face = OKABE_ITO[1], "s", OKABE_ITO[1]
            else:
                color, marker, face = GREY, "o", "white"
            ax.plot([iv.low, iv.high], [y, y], color=color, linewidth=2.2, solid_capstyle="butt")
            ax.plot([iv.low, iv.high], [y, y], linestyle="none", marker="|", markersize=10, color=color)
            ax.plot([iv.diff], [y], marker=marker, markersize=8, color=color, markerfacecolor=face, markeredgewidth=1.6)
        ax.axvline(0.0, color="#333333", linewidth=1.0, linestyle="--")
        ax.set_yticks(range(len(rows)), [row_name(r) for r in reversed(rows)])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(plain(f"{metric}: row − {board.baseline_label} (mean, 95% bootstrap interval)"))
        ax.set_title(plain(f"Difference from {board.baseline_label}"))
    return fig


def _cell_text_colour(value: float, low: float, high: float) -> str:
    share = 0.5 if high <= low else (value - low) / (high - low)
    return "black" if share > 0.55 else "white"  # cividis is dark at the bottom, light at the top


def grid_figure(grid: Grid) -> Figure:
    """The metric over the two settings, on validation and on test, with the validation best boxed."""
    with matplotlib.rc_context(STYLE):
        width = max(8.0, 2.6 + 1.3 * len(grid.x_values) * 2)
        fig = figure(width, 1.6 + 0.75 * len(grid.y_values))
        axes = fig.subplots(1, 2)
        for ax, values, part in zip(axes, (grid.valid, grid.test), ("validation", "test")):
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            cmap = matplotlib.colormaps["cividis"].with_extremes(bad="#EEEEEE")
            image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high if high > low else low + 1e-9)
            for i in range(len(grid.y_values)):
                for j in range(len(grid.x_values)):
                    v = values[i, j]
                    if np.isfinite(v):
                        letter = grid.letters[i][j] or ""
                        ax.text(j, i, f"{v:.4f}\n{letter}", ha="center", va="center", fontsize=9,
                                color=_cell_text_colour(v, low, high))  # fmt: skip
                    else:
                        ax.text(j, i, "not run", ha="center", va="center", fontsize=8, color="#555555")
            bi, bj = grid.best
            ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, edgecolor=OKABE_ITO[1], linewidth=2.6))
            ax.set_xticks(range(len(grid.x_values)), [plain(v) for v in grid.x_values])
            ax.set_yticks(range(len(grid.y_values)), [plain(v) for v in grid.y_values])
            ax.set_xlabel(plain(grid.x))
            ax.set_ylabel(plain(grid.y))
            ax.grid(False)
            for side in ("top", "right"):
                ax.spines[side].set_visible(True)
            ax.set_title(plain(f"{grid.method}: {part} {grid.metric}"))
            fig.colorbar(image, ax=ax, shrink=0.85, label=grid.metric)
    return fig


CONDITION_STYLE = {
    "full": (GREY, ""),
    "none": (OKABE_ITO[1], "///"),
    "shuffled": (OKABE_ITO[3], "..."),
    "last": (OKABE_ITO[0], "xx"),
}


def history_figure(board: Leaderboard) -> Figure | None:
    """Per row, the metric with the full history and under each stored condition, with the
    condition's bootstrap interval (full + the interval of the difference); * a significant change."""
    if not board.history:
        return None
    letters = list(dict.fromkeys(e["letter"] for e in board.history))
    conditions = history_conditions(board)
    bars = ["full", *conditions]
    by_row = {r.letter: r for r in board.rows}
    with matplotlib.rc_context(STYLE):
        fig = figure(max(7.0, 1.6 + 1.5 * len(letters) * len(bars) / 3), 4.6)
        ax = fig.subplots()
        width = 0.8 / len(bars)
        for b, name in enumerate(bars):
            colour, hatch = CONDITION_STYLE[name]
            xs, heights, errors, marks = [], [], [[], []], []
            for i, letter in enumerate(letters):
                entries = {e["condition"]: e for e in board.history if e["letter"] == letter}
                first = next(iter(entries.values()))
                e = entries.get(name)
                if name == "full":
                    value, low, high, star = first["full"], first["full"], first["full"], False
                elif e is None:
                    continue
                else:
                    value, low, high, star = e["mean"], e["full"] + e["low"], e["full"] + e["high"], bool(e.get("significant"))
                xs.append(i + (b - (len(bars) - 1) / 2) * width)
                heights.append(value)
                errors[0].append(max(value - low, 0.0))
                errors[1].append(max(high - value, 0.0))
                marks.append(star)
            ax.bar(xs, heights, width=width * 0.92, color=colour, hatch=hatch, edgecolor="black", linewidth=0.6,
                   label="full history" if name == "full" else f"history: {name}")  # fmt: skip
            if name != "full":
                ax.errorbar(xs, heights, yerr=errors, fmt="none", ecolor="black", elinewidth=1.0, capsize=3)
                for x, h, e_high, star in zip(xs, heights, errors[1], marks):
                    if star:
                        ax.annotate("*", (x, h + e_high), xytext=(0, 1), textcoords="offset points", ha="center", fontsize=13)
        ax.set_xticks(range(len(letters)), [row_name(by_row[x], 22) if x in by_row else plain(x) for x in letters])
        ax.set_ylabel(board.history_metric)
        ax.set_xlabel("row")
        ax.set_title(f"{board.history_metric} with the history changed")
        ax.grid(axis="x", visible=False)
        ax.set_ylim(bottom=0)
        fig.legend(loc="outside lower center", ncol=len(bars))
    return fig
