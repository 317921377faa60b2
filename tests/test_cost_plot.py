"""The quality-against-cost picture: costs far apart get panels of their own (a broken x axis),
and rows at the same point are drawn around it, so that no row hides another."""

from __future__ import annotations

import numpy as np
from records import make_record, rank_arrays

from bench.leaderboard import LeaderboardOptions, build_leaderboards
from bench.report.cost_plot import cost_figure, cost_panels, overlapping
from bench.store import RunStore

N = 20


def test_costs_far_apart_get_panels_of_their_own():
    # pop's hundredth of a second, two classic models at a minute, LLMs at a quarter of an hour
    assert cost_panels([700.0, 0.01, 55.0, 60.0, 900.0]) == [[1], [2, 3], [0, 4]]
    assert cost_panels([1.0, 5.0, 40.0, 300.0]) == [[0, 1, 2, 3]]  # no gap wider than a factor of 10
    assert cost_panels([1.0]) == [[0]]


def test_rows_that_would_hide_each_other_are_found():
    # inches on the page: a and b at the same point, c just beside them, d far away
    spots = [(1.0, 1.0), (1.0, 1.0), (1.1, 1.05), (3.0, 2.0)]
    assert sorted(overlapping(spots)) == [[0, 1, 2], [3]]


def test_the_cost_picture_keeps_coincident_rows_apart():
    store = RunStore()
    for method, seconds in (("pop", 0.01), ("sasrec", 60.0), ("gru4rec", 60.0), ("sft", 800.0)):
        ranks = np.zeros(N) if method != "pop" else np.full(N, -1)
        record = make_record(method=method, ranks=ranks, timing={"fit_s": seconds, "total_s": seconds})
        store.save(record, rank_arrays(ranks))
    (board,) = build_leaderboards("toys", LeaderboardOptions(n_resamples=100))
    fig, front = cost_figure(board, "NDCG@10")
    panels = [ax for ax in fig.axes if ax.get_xlim()[1] > 0]
    assert len(panels) == 3  # 0.01 s, 60 s and 800 s: three cost scales
    # rows a gru4rec, b pop, c sasrec, d sft: a and c tie at 60 s, both on the front; d is as good, slower
    assert front == ["b", "a", "c"]
    # the two rows at the same point: two markers in different places, each with its letter
    middle = panels[1]
    letters = {t.get_text(): t for t in middle.texts if t.get_text() in ("a", "c")}
    fig.canvas.draw()
    boxes = [letters[x].get_window_extent() for x in ("a", "c")]
    assert not boxes[0].overlaps(boxes[1])
    markers = [line.get_transform().transform(line.get_xydata())[0] for line in middle.lines if line.get_markersize() >= 8]
    assert len(markers) == 2 and np.hypot(*(markers[0] - markers[1])) > 20  # pixels apart, not on top of each other
