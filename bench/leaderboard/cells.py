"""How a cell reads in every format: mean (± std over seeds), the letters of the rows it beats,
and an interval against the baseline."""

from __future__ import annotations

import string

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
    ("eval_s", "eval (s)"),
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
