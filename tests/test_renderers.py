"""One board through every format: the terminal, Markdown, LaTeX and the page show the same cells.

Every table of a board (accuracy, differences from the baseline, published and reproduced values,
statistical power, history influence, beyond accuracy, cost) is built once as sections; each format is read back here, its markup taken away,
and every row must read exactly as the section's plain cells."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from conftest import make_split
from records import make_record, rank_arrays
from rich.console import Console

from bench.experiment import Reference
from bench.leaderboard import LeaderboardOptions, board_sections, build_tables, print_leaderboard, to_latex, to_markdown
from bench.leaderboard.source import Source, choose
from bench.leaderboard.terminal import SUPERSCRIPT
from bench.report.html import section_html
from bench.store import RunStore

N = 10
SPLIT = make_split(n_test=N)


def _save(store, method, ranks, seed=0, timing=None, topk_shift=0):
    ranks = np.asarray(ranks, dtype=np.int64)
    topk = (np.arange(N)[:, None] + np.arange(50)[None, :] + topk_shift) % 30
    record = make_record(key=f"{method}-s{seed}", config_key=f"cfg-{method}", method=method, ranks=ranks, dataset="tiny",
                         split_hash=SPLIT.hash, seed=seed, timing=timing or {"fit_s": 12.5, "recommend_s": 0.5, "total_s": 13.0})  # fmt: skip
    history = {"history_none": rank_arrays(np.where(ranks >= 0, ranks + 4, -1), topk=topk)}
    store.save(record, rank_arrays(ranks, topk=topk), extra_parts=history)


@pytest.fixture
def board(tmp_path):
    """a: rank 0 then 3 (two seeds: mean ± std), b: never ranked, c: rank 1; b is the baseline."""
    store = RunStore(tmp_path)
    _save(store, "alpha", np.zeros(N), seed=0)
    _save(store, "alpha", np.full(N, 3), seed=1)
    _save(store, "beta", np.full(N, -1), timing={"fit_s": 0.01, "recommend_s": 0.002, "total_s": 0.012}, topk_shift=7)
    _save(store, "gamma_x", np.ones(N), topk_shift=3)
    published = Reference("gamma_x", "tiny", "NDCG@10", 0.5, "Someone et al. 2024", table="Table 3", url="https://example.org")
    options = LeaderboardOptions(baseline="beta", cost=True, history=True, beyond=5, n_resamples=200, beyond_resamples=50,
                                 references=(published,), power=True, target_effect=0.25)  # fmt: skip
    (found,) = build_tables(choose(Source.scan("tiny", store), options.selection), options, SPLIT)
    return found


def _sections_of(board):
    sections = board_sections(board)
    assert [s.kind for s in sections] == ["board", "intervals", "published", "power", "history", "beyond", "cost"]
    return sections


def _expected(section) -> list[list[str]]:
    return [[*line.keys, *(e.plain for e in line.entries)] for line in section.lines]


def test_the_sections_hold_the_board_numbers(board):
    a = board.row("alpha")
    assert a.cells["NDCG@10"].mean == pytest.approx((1 + 1 / np.log2(5)) / 2)
    first = _sections_of(board)[0]
    assert first.lines[0].entries[0].plain == f"{a.cells['NDCG@10'].mean:.4f} ± {a.cells['NDCG@10'].std:.4f}bc"
    assert first.lines[0].entries[0].bold and first.lines[2].entries[0].wins == "b"


# ------------------------------------------------------------------------------- reading back


def _markdown_cell(text: str) -> str:
    text = re.sub(r"<sup>(.*?)</sup>", r"\1", text.replace("**", ""))
    return re.sub(r"\\(.)", r"\1", text).strip()


def _markdown_tables(text: str) -> list[list[list[str]]]:
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            current = [] if current is None else current
            current.append([_markdown_cell(c) for c in re.split(r"(?<!\\)\|", line)[1:-1]])
        elif current is not None:
            tables.append(current[2:])  # header and rule left out
            current = None
    return tables + ([current[2:]] if current else [])


TEX = {r"$\pm$": "±", r"$\Delta$": "Δ", r"\textless{}": "<", r"\textgreater{}": ">", r"\%": "%", r"\_": "_", r"\&": "&"}


def _latex_cell(text: str) -> str:
    text = re.sub(r"\\textbf\{(.*?)\}(?=\$|$| )", r"\1", text)
    text = re.sub(r"\$\^\{(.*?)\}\$", r"\1", text)
    for code, plain in TEX.items():
        text = text.replace(code, plain)
    return text.strip()


def _latex_tables(text: str) -> list[list[list[str]]]:
    tables = []
    for body in re.findall(r"\\midrule\n(.*?)\n\\bottomrule", text, re.S):
        tables.append([[_latex_cell(c) for c in line[: -len(r" \\")].split(" & ")] for line in body.splitlines()])
    return tables


class Cells(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows, self.cell, self.in_body = [], None, False

    def handle_starttag(self, tag, attrs):
        self.in_body |= tag == "tbody"
        if tag == "tr" and self.in_body:
            self.rows.append([])
        if tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def _terminal_rows(text: str, sections) -> list[list[list[str]]]:
    """Per section, its rows as printed (the table's block starts at its title)."""
    plain = "".join({v: k for k, v in SUPERSCRIPT.items()}.get(ch, ch) for ch in text)
    lines = plain.splitlines()
    starts = [next(i for i, line in enumerate(lines) if line.strip() == s.title) for s in sections]
    found = []
    for start, section in zip(starts, sections):
        body = lines[start + 3 : start + 3 + len(section.lines)]  # title, header, rule, then the rows
        found.append([re.split(r"\s{2,}", line.strip()) for line in body])
    return found


# ------------------------------------------------------------------------------------ the test


def test_every_format_shows_the_same_cells(board):
    sections = _sections_of(board)
    expected = [_expected(s) for s in sections]
    assert _markdown_tables(to_markdown([board])) == expected
    assert _latex_tables(to_latex([board])) == expected
    for section, rows in zip(sections, expected):
        parser = Cells()
        parser.feed(section_html(section, "x"))
        assert parser.rows == rows, section.kind
    out = io.StringIO()
    print_leaderboard(Console(file=out, width=400, color_system=None), board)
    # the terminal shows each row as letter and name, then the cells; split on runs of spaces
    assert _terminal_rows(out.getvalue(), sections) == expected


def test_published_and_power_sections_read_the_board(board):
    """gamma_x ranks every target at 1: NDCG@10 = 1/log2(3) on each of the 10 samples, a point interval;
    alpha - beta is the same on every sample (beta never ranks a target), so the t-test detects any effect."""
    (published, power) = [s for s in _sections_of(board) if s.kind in ("published", "power")]
    ours = 1 / np.log2(3)
    assert [e.plain for e in published.lines[0].entries] == [
        "NDCG@10", f"{ours:.4f} [{ours:.4f}, {ours:.4f}]", "0.5000", f"{ours - 0.5:+.4f}", "no", "[1]",
    ]  # fmt: skip
    assert published.legend == (("[1]", "Someone et al. 2024 (Table 3, https://example.org)"),)
    assert [line.keys for line in power.lines] == [("a vs b",), ("a vs c",), ("b vs c",)]
    assert [e.plain for e in power.lines[0].entries][:2] == ["10", "0.0000"]
    assert power.headers[-1] == "n for 0.25 HR@20" and power.lines[0].entries[-1].plain == "2"


def test_each_beyond_metric_has_its_own_decimals(board):
    """Counts with one decimal, bits with two, shares with four, in every format (the formats once
    disagreed: the leaderboard wrote avg_pop with four decimals, the page with one)."""
    (beyond,) = [s for s in _sections_of(board) if s.kind == "beyond"]
    values = board.beyond[0]["values"]
    shown = dict(zip(beyond.headers, (e.text for e in beyond.lines[0].entries)))
    assert shown["avg_pop@5"] == f"{values['avg_pop@5']:,.1f}"
    assert shown["novelty@5"] == f"{values['novelty@5']:.2f}"
    assert shown["coverage@5"] == f"{values['coverage@5']:.4f}" and shown["tail@5"] == f"{values['tail@5']:.4f}"
