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
    kind: str  # curves, forest, grid, cost, history; cd (across datasets)
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
    power: Section | None = None  # the power of the table's tests, shown in "About the numbers"

    @property
    def anchor(self) -> str:
        return f"table-{self.number}"

    def page(self) -> list[tuple[str, Section | Picture]]:
        """(anchor, section or picture) in page order: the table, its differences from the baseline
        and the published values beside its rows, the pictures, then the other tables (provenance
        follows them)."""
        a = self.anchor
        first = ("board", "intervals", "published")
        head = [s for s in self.sections if s.kind in first]
        tail = [s for s in self.sections if s.kind not in first]
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
    heading: str = ""  # an experiment's description, printed above the tables
    across: Across | None = None  # an experiment's summary across datasets; None for one dataset's report
    problems: list[str] = field(default_factory=list)  # datasets of an experiment without tables, and why

    def power_parts(self) -> list[tuple[Chapter, Section | None, str]]:
        """(chapter, its power table or None, the sentence said for it) for "About the numbers"."""
        return [(c, c.power, c.board.power_note) for c in self.chapters]


@dataclass
class Across:
    """An experiment's summary across datasets: its tables and critical-difference diagram, or the
    sentence saying why it is absent."""

    sections: list[Section]
    pictures: list[Picture]
    sentence: str = ""  # why there is no summary ("" when there is one)
    anchor: str = "across"
    title: str = "Across datasets"


# What every report says about how its numbers are made, above the power of its tests.
ABOUT = (
    "Full ranking over the whole catalogue, no negative sampling. Rank r (0-based) is a hit at K when r < K; "
    "NDCG@K = 1/log2(r + 2) for a hit. Cells are the mean over seeds of each seed's mean over its test samples "
    "(± the standard deviation across seeds); tests are paired over the test samples rows share, on per-sample values "
    "averaged over seeds. Everything in this report is rebuilt from the stored runs alone."
)
