"""What a report is, built before anything is written: per leaderboard table a chapter with its
sections (the leaderboard's tables, bench.leaderboard.sections), its pictures (rendered in memory)
and its provenance, and the facts its header states."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.leaderboard.model import Leaderboard
from bench.leaderboard.sections import Section
from bench.store import DamagedRun


@dataclass
class Picture:
    kind: str  # curves, forest, grid, cost, history
    title: str
    caption: str
    stem: str  # file name beside the page, without the suffix
    svg_data: bytes  # embedded in the page and written as <stem>.svg
    png_data: bytes  # written as <stem>.png, linked by the Markdown

    @property
    def png(self) -> str:
        return f"{self.stem}.png"

    @property
    def svg(self) -> str:
        return f"{self.stem}.svg"


@dataclass
class Chapter:
    """One leaderboard table and everything shown beside it."""

    number: int
    board: Leaderboard
    sections: list[Section]  # the board's tables, as every format shows them
    provenance: list[Section]  # one per row
    pictures: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # pictures or tables left out, and why

    @property
    def anchor(self) -> str:
        return f"table-{self.number}"

    def page(self) -> list[tuple[str, Section | Picture]]:
        """(anchor, section or picture) in page order: the table and its differences from the
        baseline, the pictures, then the other tables (provenance follows them)."""
        a = self.anchor
        head = [s for s in self.sections if s.kind in ("board", "intervals")]
        tail = [s for s in self.sections if s.kind not in ("board", "intervals")]
        return (
            [(f"{a}-{s.kind}", s) for s in head]
            + [(f"{a}-{p.kind}-{i}", p) for i, p in enumerate(self.pictures)]
            + [(f"{a}-{s.kind}", s) for s in tail]
        )

    def contents(self) -> list[tuple[str, str]]:
        """(anchor, heading) of the chapter's parts: the table of contents."""
        found = [(anchor, "Table" if item.kind == "board" else item.title) for anchor, item in self.page()]
        return found + [(f"{self.anchor}-provenance", "Provenance")]


@dataclass
class Report:
    dataset: str
    experiment: str | None
    split_hash: str
    generated_at: str
    chapters: list[Chapter]
    facts: list[tuple[str, str]]  # (name, text) stated under the title
    damaged: list[DamagedRun]
    n_runs: int
    beyond_note: str = ""  # why beyond-accuracy metrics are missing ("" when shown or not asked for)
