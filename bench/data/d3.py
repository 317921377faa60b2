"""The D3 processing recipe (protocol section 1.2), from raw interactions to the canonical split.

    reviews ──window──► title filter ──iterative k-core (10k-items rule)──► merge ASINs by title
            ──► per-user sliding samples (history <= L) ──► global temporal 80/10/10 split

Ordering rules that make two implementations agree exactly: a user's interactions are ordered by
(time, raw item id); samples globally by (target time, user, position in the user's sequence);
with n samples the cuts are int(0.8 n) and int(0.9 n). Window bounds are inclusive, in UTC.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from bench.data.cards import DatasetCard
from bench.data.split import Catalogue, Samples

FIRST_YEAR = 1996  # D3 stops moving the window back here and accepts whatever survives


def clean_title(title: str) -> str:
    """D3's cleaning: unescape &quot; and &amp;, strip spaces, then strip double quotes."""
    return title.replace("&quot;", '"').replace("&amp;", "&").strip(" ").strip('"')


def title_problem(raw: str | None) -> str | None:
    """Why an item's title is rejected, or None when it is kept."""
    if raw is None:
        return "no_metadata"
    if not raw:
        return "no_title"
    if "<span id" in raw:
        return "html_title"
    cleaned = clean_title(raw)
    if len(cleaned) <= 1:
        return "title_too_short"
    if len(cleaned.split(" ")) > 20:
        return "title_too_long"
    return None


def window_bounds(start_year: int, end: str) -> tuple[int, int]:
    start = datetime(start_year, 10, 1, tzinfo=timezone.utc)
    stop = datetime.fromisoformat(end).replace(tzinfo=timezone.utc)
    return int(start.timestamp()), int(stop.timestamp())


@dataclass
class Processed:
    items: Catalogue
    train: Samples
    valid: Samples
    test: Samples
    window_start_year: int | None
    dropped: Counter = field(default_factory=Counter)
    counts: dict = field(default_factory=dict)

    @property
    def parts(self) -> dict[str, Samples]:
        return {"train": self.train, "valid": self.valid, "test": self.test}


def k_core(frame: pd.DataFrame, k: int, min_items: int = 0) -> tuple[pd.DataFrame, bool]:
    """Iteratively drop users and items with fewer than k interactions. Returns (frame, ok);
    ok is False as soon as a pass starts with fewer than `min_items` items (D3's 10k rule)."""
    while True:
        if min_items and frame["item"].nunique() < min_items:
            return frame, False
        user_n = frame.groupby("user")["item"].transform("size")
        item_n = frame.groupby("item")["user"].transform("size")
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            return frame, True
        frame = frame[keep]


def filter_titles(frame: pd.DataFrame, titles: dict[str, str], dropped: Counter) -> tuple[pd.DataFrame, dict[str, str]]:
    """Keep reviews of items with a usable title; returns the frame and item -> cleaned title."""
    cleaned: dict[str, str] = {}
    for item in frame["item"].unique():
        problem = title_problem(titles.get(item))
        if problem:
            dropped[f"items_{problem}"] += 1
        else:
            cleaned[item] = clean_title(titles[item])
    keep = frame["item"].isin(cleaned.keys())
    dropped["reviews_of_rejected_items"] += int((~keep).sum())
    return frame[keep], cleaned


def process(reviews: pd.DataFrame, titles: dict[str, str], card: DatasetCard) -> Processed:
    """reviews: columns user, item (raw ids, str), time (int seconds). titles: raw item id -> raw title."""
    dropped: Counter = Counter()
    start_year = card.window_start_year
    while True:
        attempt: Counter = Counter()
        frame = reviews
        if start_year is not None:
            lo, hi = window_bounds(start_year, card.window_end)
            inside = (frame["time"] >= lo) & (frame["time"] <= hi)
            attempt["reviews_outside_window"] = int((~inside).sum())
            frame = frame[inside]
        frame, cleaned = filter_titles(frame, titles, attempt)
        before = len(frame)
        frame, ok = k_core(frame, card.k_core, card.min_items if start_year is not None and start_year > FIRST_YEAR else 0)
        if ok or start_year is None:
            attempt["reviews_removed_by_k_core"] = before - len(frame)
            dropped.update(attempt)
            break
        start_year -= 1
    if frame.empty:
        raise_empty(card)
    return build_samples(frame, cleaned, card, start_year, dropped)


def raise_empty(card: DatasetCard):
    from bench.errors import BenchError

    raise BenchError(
        f"No interactions of '{card.name}' survive the window, title filter and {card.k_core}-core; "
        "check the raw files (are they the right category?) or the card's window settings."
    )


def build_samples(frame: pd.DataFrame, cleaned: dict[str, str], card: DatasetCard, start_year, dropped: Counter) -> Processed:
    # canonical items: unique cleaned titles, ids in sorted title order
    asins = sorted(frame["item"].unique())
    unique_titles = sorted({cleaned[a] for a in asins})
    title_id = {t: i for i, t in enumerate(unique_titles)}
    sources: list[list[str]] = [[] for _ in unique_titles]
    asin_id: dict[str, int] = {}
    for asin in asins:
        asin_id[asin] = title_id[cleaned[asin]]
        sources[asin_id[asin]].append(asin)

    frame = frame.assign(item_id=frame["item"].map(asin_id).astype("int64"))
    frame = frame.sort_values(["user", "time", "item"], kind="stable").reset_index(drop=True)
    user_codes, user_names = pd.factorize(frame["user"], sort=True)
    users = user_codes.astype(np.int64)
    items = frame["item_id"].to_numpy(np.int64)
    times = frame["time"].to_numpy(np.int64)
    position = frame.groupby("user", sort=False).cumcount().to_numpy()

    # history of row r: the previous <= L items of the same user (rows are grouped by user, in order)
    L = card.history_len
    rows = np.flatnonzero(position >= 1)
    histories = [tuple(items[r - min(position[r], L) : r].tolist()) for r in rows]
    order = np.lexsort((position[rows], users[rows], times[rows]))  # by time, then user, then position
    rows = rows[order]
    histories = [histories[i] for i in order]
    n = len(rows)
    cut1, cut2 = int(0.8 * n), int(0.9 * n)

    def part(lo: int, hi: int) -> Samples:
        sel = rows[lo:hi]
        return Samples(users=users[sel], histories=histories[lo:hi], targets=items[sel], times=times[sel])

    counts = {
        "users": int(len(user_names)),
        "items": len(unique_titles),
        "raw_items": int(len(asins)),
        "merged_raw_items": int(len(asins) - len(unique_titles)),
        "interactions": int(len(frame)),
        "samples": n,
    }
    return Processed(
        items=Catalogue(titles=unique_titles, sources=sources),
        train=part(0, cut1),
        valid=part(cut1, cut2),
        test=part(cut2, n),
        window_start_year=start_year,
        dropped=dropped,
        counts=counts,
    )
