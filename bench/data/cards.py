"""Dataset cards: one small TOML file per dataset in `datasets/`, so a new Amazon category is a
new card, not new code."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomllib

from bench import paths
from bench.errors import BenchError

SOURCES = ("amazon2018", "movielens")


@dataclass(frozen=True)
class DatasetCard:
    name: str
    source: str  # "amazon2018" or "movielens"
    description: str = ""
    category: str = ""  # Amazon category file stem, e.g. "Toys_and_Games"
    noun: str = "item"  # singular domain noun used in the prompt: "toy"
    noun_plural: str = "items"  # "toys"
    verb: str = "bought"  # "The user has <verb> the following <noun_plural> before"
    window_start_year: int | None = None  # None: no time window (MovieLens)
    window_end: str = "2018-11-01"  # inclusive, UTC
    min_items: int = 0  # D3's 10k-items rule; 0 disables it
    k_core: int = 5
    history_len: int = 10
    reviews: str = "full"  # Amazon: "full" (<Category>.json.gz) or "5core" (<Category>_5.json.gz)
    base_url: str = ""  # Amazon download root
    title_with_year: bool = False  # MovieLens: "Toy Story (1995)"
    reference: dict = field(default_factory=dict)  # published sizes/anchors, for the stats table

    @property
    def path(self) -> Path:
        return paths.cards_dir() / f"{self.name}.toml"


def list_cards() -> list[str]:
    root = paths.cards_dir()
    return sorted(p.stem for p in root.glob("*.toml")) if root.is_dir() else []


def load_card(name: str) -> DatasetCard:
    path = paths.cards_dir() / f"{name}.toml"
    if not path.is_file():
        known = list_cards()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BenchError(
            f"Unknown dataset '{name}'.{hint} Known datasets: {', '.join(known) or 'none'}; "
            f"add a card at {path} to define a new one."
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"Dataset card {path} is not valid TOML ({exc}); fix the file.") from exc
    allowed = {f.name for f in fields(DatasetCard)}
    unknown = set(raw) - allowed
    if unknown:
        raise BenchError(f"Dataset card {path} has unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}.")
    raw.setdefault("name", name)
    if raw.get("source") not in SOURCES:
        raise BenchError(f"Dataset card {path} must set source to one of {SOURCES}.")
    return DatasetCard(**raw)
