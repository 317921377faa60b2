"""Quality against cost: each row's metric against the seconds its runs spent, the Pareto front
marked, drawn so that no row hides another.

- Costs more than GAP times apart go to panels of their own (a broken x axis, y shared): pop's
  hundredth of a second beside LLM runs of a quarter of an hour would otherwise press every LLM
  row into one column. A panel spanning more than a factor LOG_SPAN uses a log axis.
- Rows that would overlap (closer than CLOSE_IN inches on the page) keep a dot at their true point
  and have their markers and letters drawn around it, each joined to the dot by a thin line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import offset_copy

from bench.leaderboard.model import Leaderboard, Row
from bench.report.compute import pareto_front, row_seconds
from bench.report.plots import GREY, STYLE, figure, row_name, row_style

GAP = 10.0  # costs further apart than this factor are drawn in separate panels
LOG_SPAN = 5.0  # a panel whose costs span more than this factor has a log axis
MAX_PANELS = 4
CLOSE_IN = 0.2  # markers closer than this (inches) are drawn around their point
WIDTH, HEIGHT = 8.0, 4.6  # inches of the plotting area
RING = 16.0  # points from the true position to a moved marker


@dataclass
class Point:
    index: int  # the row's index in the table (its colour, marker)
    row: Row
    seconds: float
    quality: float
    on_front: bool = False


def cost_panels(seconds: list[float]) -> list[list[int]]:
    """Indices of the sorted costs, cut into groups where neighbours lie more than GAP apart
    (the widest gaps first, MAX_PANELS groups at most)."""
    order = sorted(range(len(seconds)), key=lambda i: seconds[i])
    ratios = [seconds[order[k + 1]] / seconds[order[k]] for k in range(len(order) - 1)]
    cuts = sorted(k for k in sorted(range(len(ratios)), key=lambda k: -ratios[k])[: MAX_PANELS - 1] if ratios[k] > GAP)
    groups, start = [], 0
    for k in cuts:
        groups.append(order[start : k + 1])
        start = k + 1
    return groups + [order[start:]]


def _x_limits(costs: list[float]) -> tuple[float, float, bool]:
    """(left, right, log axis) of a panel holding these costs."""
    low, high = min(costs), max(costs)
    if high / low > LOG_SPAN:
        return low / 1.6, high * 1.6, True
    pad = (high - low) * 0.15 if high > low else low * 0.3
    return max(low - pad, low * 0.05), high + pad, False


def _x_axis(ax, group: list[Point], width_in: float) -> tuple[float, float, bool]:
    """A panel's x axis: its limits and scale, its ticks written short (0.012, 60, 1,020)."""
    left, right, log = _x_limits([p.seconds for p in group])
    ax.set_xscale("log" if log else "linear")
    ax.set_xlim(left, right)
    if not log:
        if len(group) == 1:  # one tick, at the row's cost
            ax.set_xticks([group[0].seconds])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=max(2, int(width_in * 1.2)), steps=[1, 2, 5, 10]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.4g}"))
    return left, right, log


def _y_limits(qualities: list[float]) -> tuple[float, float]:
    low, high = min(qualities), max(qualities)
    pad = (high - low) * 0.18 if high > low else max(abs(high) * 0.2, 1e-3)
    return low - pad, high + pad


def _spots(points: list[Point], where, width_in: float) -> list[tuple[float, float]]:
    """Each point's position in inches within its panel, to find the ones that would overlap."""
    (left, right, log), (bottom, top) = where
    scale = math.log10 if log else float
    span = scale(right) - scale(left)
    return [((scale(p.seconds) - scale(left)) / span * width_in, (p.quality - bottom) / (top - bottom) * HEIGHT) for p in points]


def overlapping(spots: list[tuple[float, float]]) -> list[list[int]]:
    """Groups of spots (by index) closer than CLOSE_IN to another of the group."""
    parent = list(range(len(spots)))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(spots)):
        for j in range(i + 1, len(spots)):
            if math.dist(spots[i], spots[j]) < CLOSE_IN:
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(spots)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _draw_point(ax, fig, p: Point, dx: float, dy: float) -> None:
    """A row's marker, moved (dx, dy) points from its true position, with its letter beyond it."""
    style = row_style(p.index)
    moved = offset_copy(ax.transData, fig=fig, x=dx, y=dy, units="points")
    ax.plot([p.seconds], [p.quality], linestyle="none", marker=style["marker"], markersize=10 if p.on_front else 8,
            color=style["color"], markeredgecolor="black" if p.on_front else "white",
            markeredgewidth=1.8 if p.on_front else 0.8, transform=moved, zorder=4, clip_on=False)  # fmt: skip
    if dx or dy:
        ax.annotate("", (p.seconds, p.quality), xytext=(dx, dy), textcoords="offset points", zorder=3,
                    arrowprops=dict(arrowstyle="-", color=GREY, linewidth=0.8, shrinkA=0, shrinkB=0))  # fmt: skip
        norm = math.hypot(dx, dy)
        text = (dx + 11 * dx / norm, dy + 11 * dy / norm)
    else:
        text = (8.0, 6.0)
    ax.annotate(p.row.letter, (p.seconds, p.quality), xytext=text, textcoords="offset points", ha="center", va="center",
                fontsize=10, fontweight="bold" if p.on_front else "normal", zorder=5, annotation_clip=False)  # fmt: skip


def _draw_panel(ax, fig, points: list[Point], where, width_in: float) -> None:
    for group in overlapping(_spots(points, where, width_in)):
        if len(group) == 1:
            _draw_point(ax, fig, points[group[0]], 0.0, 0.0)
            continue
        for k, i in enumerate(group):
            angle = math.radians(135) + 2 * math.pi * k / len(
                group
            )  # from up-left: the front's staircase comes from below and leaves to the right
            ax.plot([points[i].seconds], [points[i].quality], marker="o", markersize=3, color="black", zorder=5)
            _draw_point(ax, fig, points[i], RING * math.cos(angle), RING * math.sin(angle))


def _front_line(ax, points: list[Point], carried: float | None, left: float, right: float) -> None:
    """The front's staircase across one panel: the best quality reachable at each cost, starting
    from the level the cheaper panels reached."""
    front = [p for p in points if p.on_front]
    xs = ([left] if carried is not None else []) + [p.seconds for p in front]
    ys = ([carried] if carried is not None else []) + [p.quality for p in front]
    if xs:
        ax.step(xs + [right], ys + [ys[-1]], where="post", color="black", linewidth=1.2, linestyle="--", zorder=1)


def _break_marks(axes) -> None:
    """Short slanted strokes where the x axis is broken between two panels."""
    for k, ax in enumerate(axes):
        for side in ([0.0] if k else []) + ([1.0] if k < len(axes) - 1 else []):
            ax.plot([side - 0.012, side + 0.012], [-0.025, 0.025], transform=ax.transAxes, color="black", linewidth=1.0,
                    clip_on=False)  # fmt: skip


def cost_figure(board: Leaderboard, metric: str) -> tuple[Figure | None, list[str]]:
    """Quality (metric) against the seconds each row spent, the Pareto front marked. Returns the
    figure and the letters of the rows on the front."""
    points = [  # a log axis has no zero: a thousandth of a second at least
        Point(i, r, max(row_seconds(r), 1e-3), r.cells[metric].mean)
        for i, r in enumerate(board.rows)
        if row_seconds(r) is not None and metric in r.cells
    ]
    if not points:
        return None, []
    front = pareto_front([p.seconds for p in points], [p.quality for p in points])
    for k in front:
        points[k].on_front = True
    panels = [[points[i] for i in group] for group in cost_panels([p.seconds for p in points])]
    bottom, top = _y_limits([p.quality for p in points])
    ratios = [1 + len(group) for group in panels]
    with matplotlib.rc_context(STYLE):
        fig = figure(WIDTH + 2.2, HEIGHT + 0.9)
        axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True, width_ratios=ratios))
        carried = None
        for ax, group, share in zip(axes, panels, ratios):
            left, right, log = _x_axis(ax, group, WIDTH * share / sum(ratios))
            ax.set_ylim(bottom, top)
            if len(front) > 1:
                _front_line(ax, group, carried, left, right)
            _draw_panel(ax, fig, group, ((left, right, log), (bottom, top)), WIDTH * share / sum(ratios))
            carried = max([p.quality for p in group if p.on_front] + ([carried] if carried is not None else []), default=None)
        _break_marks(axes)
        axes[0].set_ylabel(metric)
        broken = "; the x axis is broken between panels" if len(axes) > 1 else ""
        fig.supxlabel(f"seconds spent per run: fit, evaluation, validation, history (mean over seeds){broken}", fontsize=10)
        fig.suptitle(f"{metric} against cost", fontsize=11, fontweight="bold")
        handles = [Line2D([], [], linestyle="none", markersize=8, label=row_name(p.row) + ("  (front)" if p.on_front else ""),
                          **{k: v for k, v in row_style(p.index).items() if k != "linestyle"}) for p in points]  # fmt: skip
        if len(front) > 1:
            handles.insert(0, Line2D([], [], color="black", linestyle="--", linewidth=1.2, label="Pareto front"))
        fig.legend(handles=handles, loc="outside right upper")  # below, it would meet the x label
    return fig, [points[k].row.letter for k in front]
