"""Every table the CLI prints is readable at 60, 80 and 200 columns and in a log: each row's letter
and name show, and no number or label is ever cut (a label too long for its column is spelt out
whole on a legend line under the table)."""

from __future__ import annotations

import io
import re

import pytest
from conftest import prepare_ml100k
from rich.console import Console
from typer.testing import CliRunner

from bench import cli
from bench.store import RunStore
from bench.tables import column_groups, print_table, table_width

WIDTHS = (60, 80, 200)


@pytest.fixture(scope="module")
def ml100k_dir(tmp_path_factory):
    """MovieLens-100k prepared once for the module (each test reads it, none writes it)."""
    return prepare_ml100k(tmp_path_factory, "prepared")


def run_cli(monkeypatch, width: int, *args: str) -> str:
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=width, color_system=None))
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, out.getvalue() + result.output
    return out.getvalue()


def body_lines(text: str) -> list[str]:
    """Lines that must fit the width: all but legend lines ("x = label")."""
    return [line for line in text.splitlines() if not re.match(r"^[a-z]{1,2} = ", line)]


def test_labels_with_brackets_are_shown_as_written():
    """`cft[epochs=1]` looks like rich markup; tables, titles and notes show it literally."""
    out = io.StringIO()
    print_table(Console(file=out, width=80, color_system=None), "ml[/x] [bold]", ["", "method"], ["NDCG@10"],
                [(["a", "cft[epochs=1]"], ["0.1000"]), (["b", "sasrec[epochs=2]"], ["0.2000"])],
                notes=["Every row with these settings: [lr=0.1]."], legend=["c = sft[epochs=1,lr=0.1]"])  # fmt: skip
    text = out.getvalue()
    for shown in ("ml[/x] [bold]", " a   cft[epochs=1] ", " b   sasrec[epochs=2] ", "[lr=0.1]", "c = sft[epochs=1,lr=0.1]"):
        assert shown in text, shown


def test_column_groups_fit_the_width():
    # keys 1 + 6 wide take 1+6+3*2-1 = 12 characters; each value column adds its width + 3
    assert table_width([1, 6]) == 12
    assert column_groups([1, 6], [7, 7, 7, 7], 42) == [[0, 1, 2], [3]]  # 12 + 3 * 10 = 42
    assert column_groups([1, 6], [7, 7, 7, 7], 41) == [[0, 1], [2, 3]]
    assert column_groups([1, 6], [50], 40) == [[0]]  # too wide alone: a group of its own


@pytest.mark.parametrize("width", WIDTHS)
def test_print_table_splits_columns_and_cuts_nothing(width):
    values = [f"{v:,.4f}" for v in (123456.789, 0.5, 98765.4321, 1.25, 7.0, 4242.4242, 0.0001, 31415.9265)]
    rows = [(["a", "sasrec"], values), (["b", "gru4rec"], values[::-1])]
    out = io.StringIO()
    print_table(
        Console(file=out, width=width, color_system=None),
        "title",
        ["", "method"],
        [f"metric{k}" for k in range(8)],
        rows,
        legend=["b = gru4rec[" + "x=1," * 30 + "y=2]"],
    )
    text = out.getvalue()
    assert max(len(line) for line in body_lines(text)) <= width
    for v in values:
        assert text.count(v) == 2
    for k in range(8):
        assert f"metric{k}" in text
    # the letters and names head every block of columns
    blocks = len(column_groups([1, 7], [max(len(v), 7) for v in values], width))
    assert text.count(" a   sasrec") == blocks and text.count(" b   gru4rec") == blocks
    assert "b = gru4rec[" + "x=1," * 30 + "y=2]" in text.splitlines()


@pytest.mark.parametrize("width", WIDTHS)
def test_data_stats_and_lists_never_cut_a_number(monkeypatch, width, ml100k_dir):
    from bench.data.prepare import load_split

    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    manifest = load_split("ml-100k").manifest
    text = run_cli(monkeypatch, width, "data", "stats", "ml-100k")
    assert max(len(line) for line in text.splitlines()) <= width
    for number in ("943", "1,340", "78,675", "9,834", "9,835", manifest["split_hash"]):
        assert re.search(rf"(^|\s){re.escape(number)}(\s|$)", text, re.M), number
    text = run_cli(monkeypatch, width, "data", "list")
    assert max(len(line) for line in text.splitlines()) <= width
    for name in ("books", "cds", "games", "ml-100k", "sports", "toys", "Sports_and_Outdoors"):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", text, re.M), name
    text = run_cli(monkeypatch, width, "methods")
    assert max(len(line) for line in text.splitlines()) <= width
    for name in ("bert4rec", "bigrec", "cft-no-cf", "cft-no-tw", "gru4rec", "sasrec", "sft", "pop"):
        assert re.search(rf"^\s*{re.escape(name)}\s", text, re.M), name


@pytest.mark.parametrize("width", WIDTHS)
def test_run_summary_and_leaderboard_show_letters_names_and_whole_numbers(monkeypatch, width, tmp_path, ml100k_dir):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    text = run_cli(
        monkeypatch,
        width,
        "run",
        "--methods",
        "pop",
        "--dataset",
        "ml-100k",
        "--limit-test",
        "300",
        "--device",
        "cpu",
        "--name",
        "smoke",
    )
    record = RunStore().runs("ml-100k")[0].record
    assert max(len(line) for line in body_lines(text)) <= width
    # at 60 columns the columns come in two blocks, each headed by the row's letter and name
    assert re.search(r"^ a\s+pop\s+0\s+" + re.escape(f"{record.metrics['NDCG@10']:.4f}"), text, re.M), text
    for value in (f"{record.metrics['HR@10']:.4f}", record.key[:8]):
        assert re.search(rf"^ a\s+pop\s.*\s{value}(\s|$)", text, re.M), value

    text = run_cli(
        monkeypatch,
        width,
        "leaderboard",
        "--dataset",
        "ml-100k",
        "--name",
        "smoke",
        "--metrics",
        "NDCG@10,HR@10,NDCG@20,HR@20,NDCG@50,HR@50",
        "--out-dir",
        str(tmp_path / "tables"),
    )
    assert max(len(line) for line in body_lines(text)) <= width
    assert "ml-100k · smoke: 300 random test samples (seed 0)" in text
    for metric in ("NDCG@10", "HR@10", "NDCG@20", "HR@20", "NDCG@50", "HR@50"):
        assert re.search(rf"\s{re.escape(metric)}(\s|$)", text), metric
        value = f"{record.metrics[metric]:.4f}"
        assert re.search(rf"\s{re.escape(value)}(\s|$)", text), (metric, value)
    assert re.search(r"^ a\s+pop\s", text, re.M)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "ml-100k-smoke.csv",
        "ml-100k-smoke.json",
        "ml-100k-smoke.md",
        "ml-100k-smoke.tex",
    ]
