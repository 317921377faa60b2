"""How a cell reads in every format: mean (± std over seeds), the letters of the rows it beats,
and an interval against the baseline."""

from __future__ import annotations

import string

from bench import stats
from bench.leaderboard.model import Cell, Interval

SUPERSCRIPT = dict(zip(string.ascii_lowercase + ",", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᑫʳˢᵗᵘᵛʷˣʸᶻ˒"))


def value(cell: Cell) -> str:
    return f"{cell.mean:.4f}" if cell.std is None else f"{cell.mean:.4f} ± {cell.std:.4f}"


def wins(cell: Cell) -> str:
    return ("," if any(len(w) > 1 for w in cell.wins) else "").join(cell.wins)


def superscript(text: str) -> str:
    return "".join(SUPERSCRIPT[ch] for ch in text)


def interval(iv: Interval | None) -> str:
    return "" if iv is None else f"{iv.diff:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"


# what a row cost: (key in Row.cost, column header)
COST = (
    ("fit_s", "fit (s)"),
    ("recommend_s", "test (s)"),
    ("total_s", "total (s)"),
    ("samples_per_s", "samples/s"),
    ("gpu_hours", "GPU-h"),
    ("peak_mb", "peak MiB"),
    ("parameters", "trainable"),
    ("device", "device"),
)


def cost(row) -> list[str]:
    """A row's cost cells; "-" where the stored runs do not say (runs stored before it was recorded)."""
    out = []
    for key, _ in COST:
        value = row.cost.get(key)
        if value is None:
            out.append("-")
        elif key == "gpu_hours":
            out.append(f"{value:.3f}")
        elif isinstance(value, float):
            out.append(f"{value:,.1f}")
        elif isinstance(value, int):
            out.append(f"{value:,}")
        else:
            out.append(str(value))
    return out


def history_table(board) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(value headers, rows of (letter, label, cells)) of a board's history-influence entries:
    the full-history value, then per condition the value, its difference from full with the
    bootstrap interval (* when the corrected paired test finds it significant) and the share of
    samples whose target rank changed."""
    conditions = [c for c in ("none", "shuffled", "last") if any(e["condition"] == c for e in board.history)]
    headers = ["full"] + [h for c in conditions for h in (c, f"Δ {c} [95% CI]", f"{c}: rank moved")]
    rows = []
    for letter in dict.fromkeys(e["letter"] for e in board.history):
        entries = {e["condition"]: e for e in board.history if e["letter"] == letter}
        first = next(iter(entries.values()))
        shown = [f"{first['full']:.4f}"]
        for c in conditions:
            e = entries.get(c)
            if e is None:
                shown += ["-", "-", "-"]
                continue
            mark = "*" if e.get("significant") else ""
            shown += [f"{e['mean']:.4f}", f"{e['diff']:+.4f}{mark} [{e['low']:+.4f}, {e['high']:+.4f}]", f"{e['changed']:.0%}"]
        rows.append((letter, first["label"], shown))
    return headers, rows


def history_caption(board) -> str:
    return (
        f"{board.history_metric} with the history changed (none: no history; shuffled: its order destroyed; last: the "
        f"last item only) by the same fitted model. Δ: mean difference from the full history with its paired bootstrap "
        f"95% interval; * marks a significant change ({stats.TESTS[board.test]}, {stats.CORRECTIONS[board.correction]} over the table's "
        f"row-condition pairs, p < {board.alpha:g}); rank moved: share of samples whose target rank changed."
    )


def beyond_table(board) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(headers, rows of (letter, label, cells)) of the beyond-accuracy metrics; list-level ones
    carry their bootstrap interval."""
    from bench.beyond import METRICS

    k = board.beyond[0]["k"]
    names = [name.replace("@K", f"@{k}") for name, _ in METRICS]
    rows = []
    for entry in board.beyond:
        shown = []
        for name in names:
            value = entry["values"].get(name)
            text = "-" if value is None or value != value else (f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}")
            if name in entry["intervals"]:
                low, high = entry["intervals"][name]
                text += f" [{low:.4f}, {high:.4f}]"
            shown.append(text)
        rows.append((entry["letter"], entry["label"], shown))
    return names, rows


def beyond_caption(board) -> str:
    from bench.beyond import METRICS

    k = board.beyond[0]["k"]
    said = "; ".join(f"{name.replace('@K', f'@{k}')}: {text}" for name, text in METRICS)
    return f"Who gets recommended, from the stored top-{k} lists and the training split. {said}. Intervals: bootstrap 95% over test samples (coverage's sits below its value: a resample can only lose items)."
