"""Every table a leaderboard shows, built once as headers, rows of cells and a caption; the
terminal, Markdown, LaTeX and HTML renderers only lay these out, so a number reads the same in each.

    board_sections(board) -> [the accuracy table, differences from the baseline, published and
                              reproduced values, statistical power, history influence, beyond
                              accuracy, cost]   (those the board holds, in this order)

A cell (`Entry`) is its text, plus what a format may mark: bold for the best of a column, the
letters of the rows it beats (superscript), an interval shown after it, a tone (an interval above
or below zero) and a fill (its share of the column's best, which the page draws as a bar).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import stats
from bench.history import CONDITIONS
from bench.leaderboard import cells
from bench.leaderboard.model import CI_CONFIDENCE, Leaderboard

ROW_KEYS = ("", "Method")  # the row letter and label head every row of a board's tables


@dataclass(frozen=True)
class Entry:
    text: str
    bold: bool = False
    wins: str = ""
    detail: str = ""  # an interval, "[low, high]", shown after the text
    tone: str = ""  # "up" or "down": an interval that lies above or below zero
    fill: float | None = None

    @property
    def plain(self) -> str:
        """The cell as plain text, as every format reads once its markup is taken away."""
        return " ".join(filter(None, [self.text + self.wins, self.detail]))


@dataclass(frozen=True)
class Line:
    """A table row: its key cells (letter and label, or a field name) and its value cells."""

    keys: tuple[str, ...]
    entries: tuple[Entry, ...]
    method: str = ""  # the row's method: a narrow column shows a long label as method[…]


@dataclass(frozen=True)
class Section:
    kind: str  # board, intervals, published, power, history, beyond, cost, provenance; across, across-pairs
    title: str
    key_headers: tuple[str, ...]
    headers: tuple[str, ...]
    lines: tuple[Line, ...]
    caption: tuple[str, ...]  # sentences of the caption; a paragraph joins them with spaces
    legend: tuple[tuple[str, str], ...] = ()  # (column, what it means)
    left: tuple[str, ...] = ()  # value columns of text, aligned left (the others are numbers)

    @property
    def caption_text(self) -> str:
        return " ".join(filter(None, self.caption))


def _line(row, entries) -> Line:
    return Line((row.letter, row.label), tuple(entries), row.method)


def board_section(board: Leaderboard) -> Section:
    tops = {m: max((r.cells[m].mean for r in board.rows), default=0.0) for m in board.metrics}
    lines = []
    for r in board.rows:
        entries = []
        for m in board.metrics:
            c = r.cells[m]
            fill = c.mean / tops[m] if tops[m] > 0 and c.mean > 0 else 0.0
            entries.append(Entry(cells.value(c), bold=c.best, wins=cells.wins(c), fill=min(1.0, fill)))
        lines.append(_line(r, entries))
    caption = (board.significance_line, board.settings_line, *board.notes)
    return Section("board", board.title, ROW_KEYS, tuple(board.metrics), tuple(lines), tuple(filter(None, caption)))


def intervals_section(board: Leaderboard) -> Section:
    base = board.baseline_label
    lines = []
    for r in board.rows:
        if r.label == base:
            continue
        entries = []
        for m in board.metrics:
            iv = r.cells[m].vs_baseline
            if iv is None:
                entries.append(Entry("-"))
                continue
            diff, detail = cells.interval(iv)
            entries.append(Entry(diff, detail=detail, tone="up" if iv.low > 0 else "down" if iv.high < 0 else ""))
        lines.append(_line(r, entries))
    caption = (
        f"Mean of (row - {base}) with its paired bootstrap {CI_CONFIDENCE:.0%} interval "
        f"({board.n_resamples:,} resamples, seed {board.seed}).",
    )
    return Section("intervals", f"Difference from {base}", ROW_KEYS, tuple(board.metrics), tuple(lines), caption)


def published_section(board: Leaderboard) -> Section:
    """Each published value beside our value of the row it names; sources cited by number."""
    sources = list(dict.fromkeys(e["source"] for e in board.published))
    lines = []
    for e in board.published:
        interval = cells.bracket(f"{e['low']:.4f}", f"{e['high']:.4f}") if e["low"] is not None else ""
        inside = "-" if e["low"] is None else "yes" if e["inside"] else "no"
        entries = (Entry(e["metric"]), Entry(f"{e['mean']:.4f}", detail=interval), Entry(f"{e['published']:.4f}"),
                   Entry(cells.signed(e["difference"])), Entry(inside), Entry(f"[{sources.index(e['source']) + 1}]"))  # fmt: skip
        lines.append(Line((e["letter"], e["label"]), entries, _method(board, e["letter"])))
    confidence = board.published[0]["confidence"] if board.published else CI_CONFIDENCE
    caption = (
        f"Reproduced: the row's mean over its test samples (per-sample values averaged over its seeds) with Student's t "
        f"{confidence:.0%} interval; published: the value its source reports; difference: reproduced - published; inside: "
        "whether the published value lies inside our interval (- : too few samples for one).",
        "The interval covers which test samples were drawn only, not the variation between training runs nor any "
        "difference of setting between the published run and ours.",
        *board.published_notes,
    )
    legend = tuple((f"[{k}]", source) for k, source in enumerate(sources, start=1))
    headers = ("metric", "reproduced", "published", "difference", "inside", "source")
    return Section("published", "Published and reproduced", ROW_KEYS, headers, tuple(lines), caption, legend,
                   left=("metric", "inside", "source"))  # fmt: skip


def _method(board: Leaderboard, letter: str) -> str:
    return next((r.method for r in board.rows if r.letter == letter), "")


def power_section(board: Leaderboard) -> Section:
    """Per tested pair: the test samples it shares, and per metric the minimum detectable effect
    (and, given a target effect, the test samples that effect needs)."""
    pairs = list(dict.fromkeys((e["a"], e["b"]) for e in board.power))
    found = {(e["a"], e["b"], e["metric"]): e for e in board.power}
    effect = board.target_effect
    headers = ["n"] + [f"MDE {m}" for m in board.metrics]
    headers += [f"n for {effect:g} {m}" for m in board.metrics] if effect is not None else []
    lines = []
    for a, b in pairs:
        per_metric = [found[a, b, m] for m in board.metrics]
        entries = [Entry(f"{per_metric[0]['n']:,}")] + [Entry("∞" if e["mde"] is None else f"{e['mde']:.4f}") for e in per_metric]
        if effect is not None:
            entries += [Entry("-" if e["needed"] is None else f"{e['needed']:,}") for e in per_metric]
        lines.append(Line((f"{a} vs {b}",), tuple(entries)))
    caption = [
        board.power_note,
        "Pairs are named by the rows' letters; n: the test samples both rows share; MDE in the metric's units.",
    ]
    if any(e["mde"] is None for e in board.power):
        caption.append("∞: even every difference in one direction would not reach that power.")
    if effect is not None:
        caption.append(f"n for {effect:g} of a metric: the test samples a difference of {effect:g} needs for the same power at the same level.")  # fmt: skip
        caption += [f"-: {note[:1].upper()}{note[1:]}." for note in dict.fromkeys(e["needed_note"] for e in board.power if e["needed_note"])]  # fmt: skip
    return Section("power", "Statistical power", ("Pair",), tuple(headers), tuple(lines), tuple(caption))


def history_conditions(board: Leaderboard) -> list[str]:
    return [c for c in CONDITIONS if any(e["condition"] == c for e in board.history)]


def history_section(board: Leaderboard) -> Section:
    """The full-history value, then per condition the value, its difference from full with the
    bootstrap interval (* when the corrected paired test finds it significant) and the share of
    samples whose target rank changed."""
    conditions = history_conditions(board)
    headers = ["full"] + [h for c in conditions for h in (c, f"Δ {c} [95% CI]", f"{c}: rank moved")]
    by_row = {r.letter: r for r in board.rows}
    lines = []
    for letter in dict.fromkeys(e["letter"] for e in board.history):
        found = {e["condition"]: e for e in board.history if e["letter"] == letter}
        first = next(iter(found.values()))
        entries = [Entry(f"{first['full']:.4f}")]
        for c in conditions:
            e = found.get(c)
            if e is None:
                entries += [Entry("-")] * 3
                continue
            star = "*" if e.get("significant") else ""
            tone = "" if not star else "up" if e["diff"] > 0 else "down"
            detail = cells.bracket(cells.signed(e["low"]), cells.signed(e["high"]))
            entries += [Entry(f"{e['mean']:.4f}"), Entry(cells.signed(e["diff"]) + star, detail=detail, tone=tone),
                        Entry(cells.share(e["changed"]))]  # fmt: skip
        row = by_row.get(letter)
        lines.append(Line((letter, first["label"]), tuple(entries), row.method if row else ""))
    caption = (
        f"{board.history_metric} with the history changed (none: no history; shuffled: its order destroyed; last: the "
        f"last item only) by the same fitted model. Δ: mean difference from the full history with its paired bootstrap "
        f"95% interval; * marks a significant change ({stats.TESTS[board.test]}, {stats.CORRECTIONS[board.correction]} over the "
        f"table's row-condition pairs, p < {board.alpha:g}); rank moved: share of samples whose target rank changed.",
    )
    return Section("history", f"History influence on {board.history_metric}", ROW_KEYS, tuple(headers), tuple(lines), caption)


def beyond_caption(k: int) -> tuple[str, ...]:
    from bench.beyond import TAIL_SHARE
    from bench.store import TOP_N

    return (
        f"Who gets recommended, from the first {k} items of each run's stored top-{TOP_N} lists and the training split's targets.",
        "avg_pop, tail and novelty: mean over test samples, then over seeds; coverage, gini and pop_ratio: one value per "
        "run, mean over seeds.",
        "gini and pop_ratio carry a bias-corrected bootstrap 95% interval over test samples (the same samples for every "
        "seed; none where the resamples do not bracket the value); coverage has none, as a resample repeats samples and "
        "so shows fewer distinct items than the test set: its resamples would not describe its uncertainty.",
        f"Long tail: the least popular items holding {TAIL_SHARE:.0%} of the training interactions.",
    )


def beyond_section(board: Leaderboard) -> Section:
    from bench.beyond import METRICS, metric_names

    k = board.beyond[0]["k"]
    names = metric_names(k)
    lines = []
    by_row = {r.letter: r for r in board.rows}
    for entry in board.beyond:
        shown = []
        for name in names:
            iv = entry["intervals"].get(name)
            detail = cells.bracket(cells.beyond(name, iv[0]), cells.beyond(name, iv[1])) if iv else ""
            shown.append(Entry(cells.beyond(name, entry["values"].get(name)), detail=detail))
        row = by_row.get(entry["letter"])
        lines.append(Line((entry["letter"], entry["label"]), tuple(shown), row.method if row else ""))
    legend = tuple((name, text) for name, (_, text) in zip(names, METRICS))
    return Section("beyond", f"Beyond accuracy @{k}", ROW_KEYS, tuple(names), tuple(lines), beyond_caption(k), legend)


def cost_section(board: Leaderboard) -> Section:
    lines = [_line(r, [Entry(cells.cost(key, r.cost.get(key))) for key, _ in cells.COST]) for r in board.rows]
    caption = ("Mean over seeds; GPU-hours summed over seeds; peak memory is the GPU's, or the process's on a CPU.",)
    headers = tuple(header for _, header in cells.COST)
    return Section("cost", "Cost", ROW_KEYS, headers, tuple(lines), caption, left=("device",))


def board_sections(board: Leaderboard) -> list[Section]:
    """The tables of one board, in the order every format shows them."""
    found = [board_section(board)]
    found += [intervals_section(board)] if board.has_intervals() else []
    found += [published_section(board)] if board.published or board.published_notes else []
    found += [power_section(board)] if board.power else []
    found += [history_section(board)] if board.history else []
    found += [beyond_section(board)] if board.beyond else []
    found += [cost_section(board)] if board.show_cost else []
    return found
