"""How each number reads, in every format: a value is formatted here once, and the renderers
only lay the text out (bench.leaderboard.sections builds the tables from these)."""

from __future__ import annotations

from bench.leaderboard.model import Cell, Interval


def value(cell: Cell) -> str:
    """A metric cell: the mean over seeds, ± the standard deviation over seeds when there are several."""
    return f"{cell.mean:.4f}" if cell.std is None else f"{cell.mean:.4f} ± {cell.std:.4f}"


def wins(cell: Cell) -> str:
    """The letters of the rows a cell beats; commas once letters have two characters (past 26 rows)."""
    return ("," if any(len(w) > 1 for w in cell.wins) else "").join(cell.wins)


def signed(x: float) -> str:
    return f"{x:+.4f}"


def bracket(low: str, high: str) -> str:
    return f"[{low}, {high}]"


def interval(iv: Interval) -> tuple[str, str]:
    """(difference, its interval) of a row against the baseline."""
    return signed(iv.diff), bracket(signed(iv.low), signed(iv.high))


def share(x: float) -> str:
    return f"{x:.0%}"


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


def cost(key: str, x) -> str:
    """A cost cell; "-" where the stored runs do not say (runs stored before it was recorded)."""
    if x is None:
        return "-"
    if key == "gpu_hours":
        return f"{x:.3f}"
    if isinstance(x, float):
        return f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


# decimals of each beyond-accuracy metric (bench.beyond.METRICS); 4 for the others, which are shares
BEYOND_DIGITS = {"avg_pop": 1, "novelty": 2}


def beyond(name: str, x: float | None) -> str:
    """A beyond-accuracy value, with the decimals of its metric (counts 1, bits 2, shares 4)."""
    if x is None or x != x:
        return "-"
    return f"{x:,.{BEYOND_DIGITS.get(name.split('@')[0], 4)}f}"
