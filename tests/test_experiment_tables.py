"""An experiment file's tables (`bench leaderboard --experiment`, `bench report --experiment`) on a
store of known per-sample ranks: published values beside ours worked by hand, the power of every
tested pair as bench.power gives it, mean ranks across datasets worked by hand, and the report's
critical-difference diagram and "About the numbers"."""

from __future__ import annotations

import io
import math
import re
import textwrap

import numpy as np
import pytest
from records import make_record, rank_arrays
from rich.console import Console

from bench import experiment, power
from bench.leaderboard import LeaderboardOptions
from bench.leaderboard.experiment import across_sections, build_experiment, write_across
from bench.leaderboard.markdown import section_md
from bench.leaderboard.terminal import print_section
from bench.report.html import section_html
from bench.store import RunStore

T_975_7 = 2.3646242510102993  # Student's t, 97.5 % quantile, 7 degrees of freedom

# Hits (rank 0) and misses (not ranked) of 8 test samples: NDCG@10 and HR@10 are both the hit rate.
HITS = {
    "toys": {"pop": [[1, 0, 0, 0, 1, 0, 0, 0]], "sasrec": [[1, 1, 0, 0, 0, 1, 0, 1]],
             "sft": [[1, 1, 0, 1, 0, 0, 1, 1], [1, 0, 0, 1, 0, 1, 1, 1]]},  # sft: two seeds
    "sports": {"pop": [[0, 0, 0, 1, 0, 0, 0, 0]], "sasrec": [[1, 1, 1, 0, 1, 1, 0, 1]], "sft": [[0, 0, 1, 0, 0, 0, 0, 0]]},
    "cds": {"pop": [[0, 1, 0, 0, 0, 0, 1, 0]], "sasrec": [[1, 1, 1, 1, 1, 0, 0, 0]], "sft": [[1, 0, 1, 0, 1, 0, 1, 0]]},
}  # fmt: skip
OVERRIDES = {"sasrec": {"epochs": 3}}  # sasrec's rows are labelled sasrec[epochs=3]

FILE = """
name = "paper"
description = "Three methods on three datasets, to check the tables a paper needs."
datasets = DATASETS
methods = ["pop", "sasrec", "sft"]
seeds = [0, 1]

[leaderboard]
metrics = ["NDCG@10", "HR@10"]
power = true

[[references]]
row = "sft"
dataset = "toys"
values = { "HR@10" = 0.5, "NDCG@10" = 0.1 }
source = "Someone et al. 2024"
table = "Table 2"
url = "https://example.org/paper"

[[references]]
row = "sasrec[epochs=3]"
dataset = "cds"
values = { "HR@10" = 0.6 }
source = "Other et al. 2023"
doi = "10.1000/other"
"""


def _store_runs(store: RunStore) -> None:
    for dataset, methods in HITS.items():
        for method, seeds in methods.items():
            for seed, hits in enumerate(seeds):
                ranks = np.where(np.asarray(hits) == 1, 0, -1)
                record = make_record(method=method, ranks=ranks, dataset=dataset, seed=seed, config_key=f"{method}-cfg",
                                     key=f"{dataset}-{method}-s{seed}", overrides=OVERRIDES.get(method, {}),
                                     experiments=["paper"])  # fmt: skip
                store.save(record, rank_arrays(ranks))


def _file(tmp_path, datasets=("toys", "sports", "cds")):
    path = tmp_path / "paper.toml"
    text = FILE.replace("DATASETS", "[" + ", ".join(f'"{d}"' for d in datasets) + "]")
    if len(datasets) == 1:  # the cds reference would name a dataset the file does not list
        text = text[: text.index('[[references]]\nrow = "sasrec')]
    path.write_text(textwrap.dedent(text).lstrip())
    return experiment.load(path)


@pytest.fixture
def store():
    found = RunStore()
    _store_runs(found)
    return found


@pytest.fixture
def tables(store, tmp_path):
    return build_experiment(_file(tmp_path), LeaderboardOptions(n_resamples=200), store)


def _board(tables, dataset):
    (part,) = [p for p in tables.datasets if p.dataset == dataset]
    (board,) = part.boards
    return board


def _values(dataset, method) -> np.ndarray:
    """Per-sample hit values averaged over the row's seeds, as the tables use them."""
    return np.mean(np.asarray(HITS[dataset][method], dtype=float), axis=0)


# ---- published and reproduced -------------------------------------------------------------------


def test_published_values_beside_ours_worked_by_hand(tables):
    board = _board(tables, "toys")
    assert [r.label for r in board.rows] == ["pop", "sasrec[epochs=3]", "sft"]
    # sft on toys, per sample averaged over its two seeds: 1, .5, 0, 1, 0, .5, 1, 1: mean .625; squared
    # deviations .140625 x 4, .015625 x 2, .390625 x 2 = 1.375, s^2 = 1.375 / 7
    half = T_975_7 * math.sqrt(1.375 / 7) / math.sqrt(8)
    hr, ndcg = board.published  # the file's order within a row
    assert (hr["letter"], hr["metric"], hr["n"]) == ("c", "HR@10", 8)
    assert (
        hr["mean"] == pytest.approx(0.625)
        and hr["low"] == pytest.approx(0.625 - half)
        and hr["high"] == pytest.approx(0.625 + half)
    )
    assert (hr["published"], hr["difference"], hr["inside"]) == (0.5, pytest.approx(0.125), True)
    assert (ndcg["metric"], ndcg["difference"], ndcg["inside"]) == ("NDCG@10", pytest.approx(0.525), False)
    assert hr["source"] == "Someone et al. 2024 (Table 2, https://example.org/paper)"
    (section,) = [s for s in _sections(board) if s.kind == "published"]
    assert section.title == "Published and reproduced"
    assert [e.plain for e in section.lines[0].entries] == [
        "HR@10", f"0.6250 [{0.625 - half:.4f}, {0.625 + half:.4f}]", "0.5000", "+0.1250", "yes", "[1]",
    ]  # fmt: skip
    assert section.lines[1].entries[4].text == "no"
    assert section.legend == (("[1]", "Someone et al. 2024 (Table 2, https://example.org/paper)"),)


def test_a_reference_names_its_row_by_full_label_or_method(tables):
    (entry,) = _board(tables, "cds").published  # row = "sasrec[epochs=3]": the full label
    assert (entry["label"], entry["mean"], entry["published"]) == ("sasrec[epochs=3]", 0.625, 0.6)
    assert entry["inside"] and entry["source"] == "Other et al. 2023 (doi:10.1000/other)"
    assert _board(tables, "sports").published == []  # the file has no value for sports


def _sections(board):
    from bench.leaderboard import board_sections

    return board_sections(board)


# ---- power ---------------------------------------------------------------------------------------


def test_power_of_every_pair_is_bench_powers_for_the_same_differences(tables):
    board = _board(tables, "toys")
    values = {letter: _values("toys", m) for letter, m in zip("abc", ("pop", "sasrec", "sft"))}
    differences = {(a, b): values[a] - values[b] for a, b in (("a", "b"), ("a", "c"), ("b", "c"))}
    expected = power.table_power(differences, "t", "holm", 0.05)
    found = [e for e in board.power if e["metric"] == "NDCG@10"]
    assert [(e["a"], e["b"]) for e in found] == list(differences)
    for e, p in zip(found, expected):
        assert e["level"] == pytest.approx(0.05 / 3) and e["n"] == 8 and e["needed"] is None
        assert e["mde"] == pytest.approx(p.mde) and e["mde"] == pytest.approx(power.t_mde(p.sd, 8, 0.05 / 3))
    assert board.power_note == power.power_note("t", "holm", 0.05, 3)
    (section,) = [s for s in _sections(board) if s.kind == "power"]
    assert section.headers == ("n", "MDE NDCG@10", "MDE HR@10")
    assert [line.keys for line in section.lines] == [("a vs b",), ("a vs c",), ("b vs c",)]
    assert section.lines[0].entries[1].text == f"{expected[0].mde:.4f}" and section.caption[0] == board.power_note


def test_target_effect_gives_the_samples_needed(store, tmp_path):
    tables = build_experiment(_file(tmp_path), LeaderboardOptions(n_resamples=200, target_effect=0.3), store)
    board = _board(tables, "sports")
    sasrec, sft = _values("sports", "sasrec"), _values("sports", "sft")
    (entry,) = [e for e in board.power if (e["a"], e["b"], e["metric"]) == ("b", "c", "HR@10")]
    sd = float(np.std(sasrec - sft, ddof=1))
    assert entry["needed"] == power.t_samples_needed(sd, 0.3, 0.05 / 3)
    (section,) = [s for s in _sections(board) if s.kind == "power"]
    assert section.headers[-2:] == ("n for 0.3 NDCG@10", "n for 0.3 HR@10")
    assert section.lines[2].entries[-1].text == f"{entry['needed']:,}"


def test_t_power_deep_in_the_tail_is_a_number():
    """scipy's noncentral t cdf is nan far in the lower tail (df 7, noncentrality 8): the power is
    then the upper tail alone, and the MDE of 8 paired differences is found."""
    assert power.t_power(2.0, 0.7071067811865476, 8, 0.05 / 3) == pytest.approx(0.99989526432131, abs=1e-12)
    d = np.array([0.0, -1.0, 0.0, 0.0, 1.0, -1.0, 0.0, -1.0])  # sd 0.7071
    mde = power.t_mde(float(d.std(ddof=1)), 8, 0.05 / 3)
    assert power.t_power(mde, float(d.std(ddof=1)), 8, 0.05 / 3) == pytest.approx(power.POWER, abs=1e-9)


# ---- across datasets -----------------------------------------------------------------------------


def test_mean_ranks_across_datasets_worked_by_hand(tables):
    s = tables.across
    assert tables.keyed_by == "method" and tables.metric == "NDCG@10"
    # toys: sft .625, sasrec .5, pop .25; sports: sasrec .75, pop = sft .125 (tied: 2.5 each); cds: sasrec .625, sft .5, pop .25
    assert s.ranks == {"toys": {"pop": 3.0, "sasrec": 2.0, "sft": 1.0}, "sports": {"pop": 2.5, "sasrec": 1.0, "sft": 2.5},
                       "cds": {"pop": 3.0, "sasrec": 1.0, "sft": 2.0}}  # fmt: skip
    assert s.methods == ("sasrec", "sft", "pop")
    assert s.mean_ranks == pytest.approx({"sasrec": 4 / 3, "sft": 5.5 / 3, "pop": 8.5 / 3})
    # chi2 = 12 N / (k (k + 1)) (sum R^2 - k (k + 1)^2 / 4) = 3 (13.1667 - 12) = 3.5, over the tie
    # correction 1 - 6 / (3 * 3 * 8); with 2 degrees of freedom the p-value is exp(-chi2 / 2)
    chi2 = 3.0 * ((4 / 3) ** 2 + (5.5 / 3) ** 2 + (8.5 / 3) ** 2 - 12.0) / (1 - 6 / 72)
    assert s.friedman_chi2 == pytest.approx(chi2) and s.friedman_pvalue == pytest.approx(math.exp(-chi2 / 2))
    assert s.test == "sign" and any("no pair can differ significantly" in n for n in s.notes)
    ranks, pairs = across_sections(tables)
    assert ranks.headers == ("toys", "sports", "cds", "mean rank")
    assert [line.keys[0] for line in ranks.lines] == ["sasrec", "sft", "pop"]
    assert [e.plain for e in ranks.lines[0].entries] == ["2 (0.5000)", "1 (0.7500)", "1 (0.6250)", "1.33"]
    assert ranks.lines[0].entries[-1].bold and [e.plain for e in ranks.lines[2].entries][1] == "2.5 (0.1250)"
    # sasrec vs sft: better on sports and cds, worse on toys; exact sign test of 2 wins in 3: p = 1
    assert [e.plain for e in pairs.lines[0].entries] == ["2", "1", "0", "1.0000", "1.0000", "no"]


def test_one_dataset_says_why_there_is_no_summary(store, tmp_path):
    tables = build_experiment(_file(tmp_path, ("toys",)), LeaderboardOptions(n_resamples=200), store)
    assert not tables.across.available and across_sections(tables) == []
    assert "only 1 (toys)" in tables.across.reason and "critical-difference diagram are left out" in tables.across.reason
    assert write_across(tables, LeaderboardOptions(), tmp_path / "out") == []


def test_every_format_shows_the_same_across_cells(tables, tmp_path):
    sections = across_sections(tables)
    expected = [[[*line.keys, *(e.plain for e in line.entries)] for line in s.lines] for s in sections]
    written = {p.suffix: p for p in write_across(tables, LeaderboardOptions(), tmp_path)}
    assert sorted(written) == [".csv", ".json", ".md", ".tex"] and written[".md"].name == "paper-across.md"
    markdown = written[".md"].read_text()
    assert "Three methods on three datasets" in markdown
    from test_renderers import Cells, _latex_tables, _markdown_tables, _terminal_rows

    assert _markdown_tables(markdown) == expected
    assert _latex_tables(written[".tex"].read_text()) == expected
    for section, rows in zip(sections, expected):
        parser = Cells()
        parser.feed(section_html(section, "x"))
        assert parser.rows == rows
        assert section_md(section)[0] == f"### {section.title}"
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    for section in sections:
        print_section(console, section, {})
    assert _terminal_rows(out.getvalue(), sections) == expected


# ---- the command line ----------------------------------------------------------------------------


def test_leaderboard_with_an_experiment_file(store, tmp_path, monkeypatch):
    from test_store import cli

    _file(tmp_path)
    code, text, _ = cli(monkeypatch, ["leaderboard", "--experiment", str(tmp_path / "paper.toml")], width=80)
    assert code == 0, text
    flat = " ".join(text.split())
    assert flat.startswith("Experiment paper: Three methods on three datasets, to check the tables a paper needs.")
    for title in ("Published and reproduced", "Statistical power", "Across datasets: mean rank on NDCG@10",
                  "Across datasets: pairwise tests"):  # fmt: skip
        assert title in text
    assert text.index("toys · paper") < text.index("sports · paper") < text.index("Across datasets")
    assert max(len(line) for line in text.splitlines() if not line.startswith("wrote ")) <= 80
    written = sorted(p.name for p in (tmp_path / "results" / "leaderboard").iterdir())
    assert "toys-paper.md" in written and "paper-across.md" in written and "cds-paper.json" in written
    toys = (tmp_path / "results" / "leaderboard" / "toys-paper.md").read_text()
    assert "Three methods on three datasets" in toys and "### Published and reproduced" in toys


@pytest.mark.parametrize(
    ("command", "option"),
    [("leaderboard", ["--baseline", "pop"]), ("leaderboard", ["--metrics", "HR@10"]), ("leaderboard", ["--dataset", "toys"]),
     ("leaderboard", ["--name", "x"]), ("report", ["--select-on", "valid"]), ("report", ["--test", "t"])],
)  # fmt: skip
def test_an_option_the_file_fixes_is_refused_in_one_sentence(tmp_path, monkeypatch, command, option):
    from test_store import assert_one_sentence_error, cli

    _file(tmp_path)
    code, text, result = cli(monkeypatch, [command, "--experiment", str(tmp_path / "paper.toml"), *option])
    assert assert_one_sentence_error(code, text, result) == (
        f"{option[0]} cannot be given with --experiment, which fixes it; change the experiment file instead."
    )


def test_no_runs_of_the_experiment_is_one_sentence(tmp_path, monkeypatch):
    from test_store import assert_one_sentence_error, cli

    _file(tmp_path)
    code, text, result = cli(monkeypatch, ["leaderboard", "--experiment", str(tmp_path / "paper.toml")])
    sentence = assert_one_sentence_error(code, text, result)
    assert sentence.startswith("No stored run of experiment 'paper' on toys, sports, cds; run `bench run --experiment")


# ---- the report ----------------------------------------------------------------------------------


def test_the_report_has_the_cd_diagram_and_the_power_of_every_table(store, tmp_path):
    from bench.report import write_report
    from bench.report.experiment import experiment_report

    report = experiment_report(_file(tmp_path), LeaderboardOptions.for_report(n_resamples=200, history=False), store)
    assert [c.number for c in report.chapters] == [1, 2, 3] and report.heading.startswith("Experiment paper: Three methods")
    assert [p.kind for p in report.across.pictures] == ["cd"] and [s.kind for s in report.across.sections] == [
        "across",
        "across-pairs",
    ]
    assert all(c.power is not None and "power" not in [s.kind for s in c.sections] for c in report.chapters)
    out = tmp_path / "report"
    write_report(report, out)
    assert (out / "across-cd.png").read_bytes()[:4] == b"\x89PNG" and (out / "across-cd.svg").exists()
    note = power.power_note("t", "holm", 0.05, 3)
    for page in ((out / "index.html").read_text(), (out / "report.md").read_text()):
        assert "About the numbers" in page and "Critical-difference diagram" in page and "Published and reproduced" in page
        assert "Three methods on three datasets" in page
        plain = re.sub(r"\\(.)", r"\1", page.replace("&#x27;", "'"))
        assert note in plain
        assert plain.index("About the numbers") < plain.rindex(note)  # the power tables are in "About the numbers"


def test_chosen_on_valid_rows_are_matched_across_datasets_by_method(tmp_path):
    """sft's validation-best configuration is epochs=1 on toys and epochs=2 on sports: one sft row."""
    store = RunStore()
    test_hits = {("toys", 1): [1, 1, 1, 0], ("toys", 2): [0, 0, 0, 0], ("sports", 1): [1, 0, 0, 0], ("sports", 2): [1, 1, 0, 0]}
    best = {"toys": 1, "sports": 2}
    for (dataset, epochs), hits in test_hits.items():
        ranks = np.where(np.asarray(hits) == 1, 0, -1)
        score = 0.9 if best[dataset] == epochs else 0.1
        record = make_record(method="sft", ranks=ranks, dataset=dataset, config_key=f"sft-{epochs}", key=f"{dataset}-sft-{epochs}",
                             overrides={"epochs": epochs}, experiments=["paper"],
                             valid={"subset": None, "n": 4, "metrics": {"NDCG@10": score, "HR@10": score}})  # fmt: skip
        store.save(record, rank_arrays(ranks))
    for dataset, hits in (("toys", [1, 0, 0, 0]), ("sports", [0, 0, 0, 0])):
        ranks = np.where(np.asarray(hits) == 1, 0, -1)
        store.save(
            make_record(method="pop", ranks=ranks, dataset=dataset, key=f"{dataset}-pop", experiments=["paper"]),
            rank_arrays(ranks),
        )
    path = tmp_path / "paper.toml"
    path.write_text(FILE.replace("DATASETS", '["toys", "sports"]').split("[[references]]")[0] + 'select_on = "valid"\n')
    tables = build_experiment(experiment.load(path), LeaderboardOptions(n_resamples=200), store)
    assert [r.label for r in _board(tables, "toys").rows] == ["pop", "sft[epochs=1]"]
    assert [r.label for r in _board(tables, "sports").rows] == ["pop", "sft[epochs=2]"]
    assert tables.keyed_by == "method" and tables.values == {
        "pop": {"toys": 0.25, "sports": 0.0},
        "sft": {"toys": 0.75, "sports": 0.5},
    }
    assert tables.across.mean_ranks == {"sft": 1.0, "pop": 2.0}
