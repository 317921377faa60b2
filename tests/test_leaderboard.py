"""Leaderboards built from hand-made stored runs whose numbers are known in advance."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from records import make_record, rank_arrays
from rich.console import Console
from scipy import stats as scipy_stats

from bench import paths, stats
from bench.errors import BenchError
from bench.leaderboard import LeaderboardOptions, Selection, build_leaderboards, leaderboard_command, load_leaderboards
from bench.store import RunStore

N = 50
NEW, OLD = "split-new", "split-old"
STD_A = math.sqrt(2 * 0.1**2)  # seeds at 1.0 and 0.8: sample std (ddof=1) 0.141421...
LOG3 = 1.0 / math.log2(3.0)  # NDCG of a target at rank 1


def save_run(store, dataset, method, ranks, seed=0, label=None, config_key=None, split_hash=NEW, limit_test=None,
             created_at="2025-01-02T00:00:00+00:00", sample_index=None, overrides=None, config=None):  # fmt: skip
    config_key = config_key or f"cfg{method}"
    record = make_record(
        key=f"{config_key}-{split_hash}-{limit_test}-s{seed}-{created_at[:10]}",
        config_key=config_key,
        method=method,
        ranks=ranks,
        label=label or method,
        config=config or {},
        overrides=overrides or {},
        dataset=dataset,
        split_hash=split_hash,
        seed=seed,
        limit_test=limit_test,
        created_at=created_at,
    )
    store.save(record, rank_arrays(ranks, sample_index))


@pytest.fixture
def store():
    return RunStore()  # under the temporary BENCH_RESULTS_DIR


@pytest.fixture
def toys(store):
    """A: perfect on seed 0, 10 misses on seed 1 (stored in reverse order); B: never hits;
    C: always at rank 1. Plus a run of an older split that must not appear."""
    save_run(store, "toys", "A", np.zeros(N), seed=0)
    seed1 = np.r_[np.zeros(40), np.full(10, -1)]
    save_run(store, "toys", "A", seed1[::-1], seed=1, sample_index=np.arange(N)[::-1])
    for seed in (0, 1):
        save_run(store, "toys", "B", np.full(N, -1), seed=seed)
        save_run(store, "toys", "C", np.ones(N), seed=seed)
    save_run(store, "toys", "Z", np.zeros(N), split_hash=OLD, created_at="2024-06-01T00:00:00+00:00")
    return store


# per-sample values of A averaged over its two seeds, in sample order
A_NDCG = np.r_[np.ones(40), np.full(10, 0.5)]
A_HR = A_NDCG


def test_means_std_letters_and_bold(toys):
    (board,) = build_leaderboards("toys")
    assert [(r.letter, r.label) for r in board.rows] == [("a", "A"), ("b", "B"), ("c", "C")]
    assert board.split_hash == NEW and board.n_samples == N and board.limit_test is None
    a, b, c = board.rows
    assert a.seeds == [0, 1] and len(a.run_keys) == 2
    assert a.cells["NDCG@10"].mean == pytest.approx(0.9)
    assert a.cells["NDCG@10"].std == pytest.approx(STD_A)
    assert b.cells["NDCG@10"].mean == 0.0 and b.cells["NDCG@10"].std == 0.0
    assert c.cells["NDCG@10"].mean == pytest.approx(LOG3) and c.cells["HR@10"].mean == 1.0
    for metric in ("NDCG@10", "NDCG@20"):
        assert a.cells[metric].wins == ["b", "c"] and a.cells[metric].best
        assert c.cells[metric].wins == ["b"] and not c.cells[metric].best
        assert b.cells[metric].wins == []
    for metric in ("HR@10", "HR@20"):
        # C hits every sample; A misses half the time on 10 samples: C beats A here
        assert c.cells[metric].wins == ["a", "b"] and c.cells[metric].best
        assert a.cells[metric].wins == ["b"] and not a.cells[metric].best


def test_pvalues_are_paired_tests_on_seed_averaged_values_with_holm(toys):
    (board,) = build_leaderboards("toys")
    hr = [cmp for cmp in board.comparisons if cmp.metric == "HR@10"]
    assert [(cmp.a, cmp.b) for cmp in hr] == [("a", "b"), ("a", "c"), ("b", "c")]
    raw = [
        stats.paired_pvalue(A_HR, np.zeros(N)),
        stats.paired_pvalue(A_HR, np.ones(N)),
        stats.paired_pvalue(np.zeros(N), np.ones(N)),
    ]
    # a vs c by hand: d has 10 values -0.5 and 40 zeros
    d = A_HR - 1.0
    t = d.mean() / (d.std(ddof=1) / math.sqrt(N))
    assert raw[1] == pytest.approx(2 * scipy_stats.t.sf(abs(t), N - 1))
    assert [cmp.p for cmp in hr] == pytest.approx(raw)
    assert [cmp.p_adjusted for cmp in hr] == pytest.approx(stats.holm(raw))
    assert [cmp.winner for cmp in hr] == ["a", "c", "c"]


def test_no_letter_without_a_significant_difference(store):
    save_run(store, "cds", "A", np.zeros(N))
    save_run(store, "cds", "E", np.r_[-1, np.zeros(N - 1)])  # one miss: t = 1, p = 0.32
    (board,) = build_leaderboards("cds")
    a, e = board.rows
    assert a.cells["NDCG@10"].std is None and e.cells["NDCG@10"].mean == pytest.approx(0.98)
    assert a.cells["NDCG@10"].wins == [] and e.cells["NDCG@10"].wins == []
    assert a.cells["NDCG@10"].best and not e.cells["NDCG@10"].best
    cmp = board.comparisons[0]
    assert cmp.p == pytest.approx(2 * scipy_stats.t.sf(1.0, N - 1)) and cmp.winner is None
    assert "one seed per row" in board.caption


def test_files_contain_the_numbers(toys):
    console = Console(file=io.StringIO(), width=250)
    written = leaderboard_command("toys", console=console)
    out = paths.results_dir() / "leaderboard"
    assert written == [out / "toys.md", out / "toys.tex", out / "toys.csv", out / "toys.json"]
    assert all(p.is_file() for p in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    caption = (
        "Superscript letters mark significant wins (paired t-test, Holm correction, p < 0.05) over the row "
        "with that letter; mean ± std over 2 seeds; 50 test samples."
    )
    printed = console.file.getvalue()
    assert "toys: 50 test samples" in printed and "0.9000 ± 0.1414" in printed
    assert " ".join(caption.split()) in " ".join(printed.replace("│", " ").split())

    md = written[0].read_text()
    a_line = next(line for line in md.splitlines() if line.startswith("| a "))
    assert [cell.strip() for cell in a_line.split("|")[1:-1]] == [
        "a", "A", "**0.9000 ± 0.1414**<sup>bc</sup>", "0.9000 ± 0.1414<sup>b</sup>",
        "**0.9000 ± 0.1414**<sup>bc</sup>", "0.9000 ± 0.1414<sup>b</sup>",
    ]  # fmt: skip
    assert "0.6309 ± 0.0000<sup>b</sup>" in md and "**1.0000 ± 0.0000**<sup>ab</sup>" in md
    assert caption in md

    tex = written[1].read_text()
    for piece in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{0.9000 $\pm$ 0.1414}$^{bc}$",
                  r"\caption{Superscript letters mark significant wins (paired t-test, Holm correction, p \textless{} 0.05)",
                  r"mean $\pm$ std over 2 seeds; 50 test samples.}"):  # fmt: skip
        assert piece in tex

    rows = list(csv.DictReader(io.StringIO(written[2].read_text())))
    assert len(rows) == 3 * 4
    a_ndcg = next(r for r in rows if r["label"] == "A" and r["metric"] == "NDCG@10")
    assert float(a_ndcg["mean"]) == pytest.approx(0.9) and float(a_ndcg["std"]) == pytest.approx(STD_A)
    assert (a_ndcg["n_seeds"], a_ndcg["n_samples"], a_ndcg["wins"], a_ndcg["best"]) == ("2", "50", "bc", "1")
    assert "ci_low" not in rows[0]

    payload = json.loads(written[3].read_text())
    table = payload["tables"][0]
    assert (table["test"], table["correction"], table["alpha"], table["seed"]) == ("t", "holm", 0.05, 0)
    assert table["caption"] == caption
    assert len(table["rows"][0]["run_keys"]) == 2
    assert load_leaderboards(written[3]) == build_leaderboards("toys")


def test_baseline_intervals_match_the_bootstrap(toys, tmp_path):
    boards = build_leaderboards("toys", LeaderboardOptions(baseline="B"))
    a, b, c = boards[0].rows
    assert all(cell.vs_baseline is None for cell in b.cells.values())
    diff, low, high = stats.paired_bootstrap_ci(A_NDCG, np.zeros(N), seed=0)
    iv = a.cells["NDCG@10"].vs_baseline
    assert (iv.diff, iv.low, iv.high) == (diff, low, high)
    assert diff == pytest.approx(0.9) and low < 0.9 < high
    assert c.cells["NDCG@10"].vs_baseline.low == pytest.approx(LOG3)  # a constant difference

    written = leaderboard_command(
        "toys",
        LeaderboardOptions(baseline="B", out_dir=tmp_path / "lb", formats=("md", "csv")),
        console=Console(file=io.StringIO()),
    )
    assert written == [tmp_path / "lb" / "toys.md", tmp_path / "lb" / "toys.csv"]
    md = written[0].read_text()
    assert "### Difference from B" in md and f"+0.9000 [{low:+.4f}, {high:+.4f}]" in md
    rows = list(csv.DictReader(io.StringIO(written[1].read_text())))
    a_ndcg = next(r for r in rows if r["label"] == "A" and r["metric"] == "NDCG@10")
    assert float(a_ndcg["ci_low"]) == low and float(a_ndcg["ci_high"]) == high and a_ndcg["baseline"] == "B"
    assert next(r for r in rows if r["label"] == "B")["ci_low"] == ""


def test_two_evaluation_sets_give_two_tables(store, tmp_path):
    for method, rank in (("A", 0), ("B", -1)):
        save_run(store, "games", method, np.full(N, rank))
        save_run(store, "games", method, np.full(20, rank), limit_test=20)
    boards = build_leaderboards("games")
    assert [(b.limit_test, b.n_samples) for b in boards] == [(None, 50), (20, 20)]
    assert boards[1].rows[0].cells["HR@10"].wins == ["b"]
    assert boards[1].caption.endswith("20 test samples.")
    md, tex = leaderboard_command(
        "games", LeaderboardOptions(out_dir=tmp_path / "lb", formats=("md", "tex")), console=Console(file=io.StringIO())
    )
    assert "## games: 50 test samples" in md.read_text() and "## games: the first 20 test samples" in md.read_text()
    assert tex.read_text().count(r"\begin{table}") == 2
    assert sorted(p.name for p in (tmp_path / "lb").iterdir()) == ["games.md", "games.tex"]


def test_older_split_is_ignored_unless_asked_for(toys):
    (board,) = build_leaderboards("toys")
    assert "Z" not in [r.label for r in board.rows]
    (old,) = build_leaderboards("toys", LeaderboardOptions(selection=Selection(split_hash=OLD)))
    assert [r.label for r in old.rows] == ["Z"] and old.comparisons == []
    with pytest.raises(BenchError, match="stored splits: split-new, split-old"):
        build_leaderboards("toys", LeaderboardOptions(selection=Selection(split_hash="nope")))


def test_shared_labels_are_told_apart_and_escaped(store):
    save_run(store, "books", "cft", np.zeros(N), label="cft_x", config_key="1111aaaa2222")
    save_run(store, "books", "cft", np.full(N, -1), label="cft_x", config_key="3333bbbb4444")
    (board,) = build_leaderboards("books")
    assert [r.label for r in board.rows] == ["cft_x (1111aaaa)", "cft_x (3333bbbb)"]
    (tex,) = leaderboard_command("books", LeaderboardOptions(formats=("tex",)), console=Console(file=io.StringIO()))
    assert r"cft\_x (1111aaaa)" in tex.read_text()


def test_a_seed_stored_twice_uses_the_newest_run(store):
    save_run(store, "sports", "A", np.full(N, -1), created_at="2025-01-01T00:00:00+00:00")
    save_run(store, "sports", "A", np.zeros(N), created_at="2025-01-05T00:00:00+00:00")
    (board,) = build_leaderboards("sports")
    assert board.rows[0].seeds == [0] and board.rows[0].cells["HR@10"].mean == 1.0


@pytest.mark.parametrize(
    ("test", "name"), [("wilcoxon", "Wilcoxon signed-rank test"), ("randomization", "paired randomisation test")]
)
def test_other_tests_and_corrections(toys, test, name):
    (board,) = build_leaderboards(
        "toys", LeaderboardOptions(test=test, correction="bonferroni", alpha=0.01, seed=3, n_resamples=2_000)
    )
    assert f"({name}, Bonferroni correction, p < 0.01)" in board.caption
    a_vs_c = next(c for c in board.comparisons if c.metric == "HR@10" and (c.a, c.b) == ("a", "c"))
    p = stats.paired_pvalue(A_HR, np.ones(N), test, seed=3, n_resamples=2_000)
    assert a_vs_c.p == pytest.approx(p) and a_vs_c.p_adjusted == pytest.approx(min(1.0, 3 * p))
    assert board.rows[0].cells["NDCG@10"].wins == ["b", "c"]


def test_no_runs_is_a_clear_error():
    with pytest.raises(BenchError) as err:
        build_leaderboards("toys")
    assert str(err.value) == "No stored runs for dataset 'toys'; run `bench run --dataset toys --methods ...` first."


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(metrics=["NDCG@7"]), "Unknown metric 'NDCG@7'; choose from NDCG@1, NDCG@3"),
        (dict(test="ttest"), "Unknown test 'ttest'; choose one of t, wilcoxon, randomization."),
        (dict(correction="fdr"), "Unknown correction 'fdr'; choose one of holm, bonferroni, none."),
        (dict(alpha=1.5), "alpha must lie strictly between 0 and 1"),
        (dict(baseline="nope"), "Baseline 'nope' is not a row of the 'toys' leaderboard; choose one of A, B, C."),
        (dict(formats=("pdf",)), "Unknown output format 'pdf'; choose from md, tex, csv, json."),
        (
            dict(target_effect=0.0),
            "--target-effect is a difference of metric means, strictly between 0 and 1 (e.g. 0.01), not 0.0.",
        ),
        (
            dict(references=("sft",)),
            "Published values come from an experiment file's [[references]]; give them with --experiment.",
        ),
    ],
)
def test_bad_options_are_clear_errors(toys, kwargs, message):
    with pytest.raises(BenchError) as err:
        leaderboard_command("toys", LeaderboardOptions(**kwargs), console=Console(file=io.StringIO()))
    assert message in str(err.value)


def test_metric_names_are_case_insensitive(toys):
    (board,) = build_leaderboards("toys", LeaderboardOptions(metrics=["hr@5", "NDCG@50"]))
    assert board.metrics == ["HR@5", "NDCG@50"]


def test_settings_every_row_shares_leave_the_labels(store, tmp_path):
    same = {"model": "smollm2-135m", "epochs": 1}
    save_run(store, "toys", "sft", np.zeros(N), overrides=same, label="sft[epochs=1,model=smollm2-135m]")
    save_run(
        store, "toys", "cft", np.ones(N), overrides=dict(same, alpha=0.2), label="cft[alpha=0.2,epochs=1,model=smollm2-135m]"
    )
    (board,) = build_leaderboards(
        "toys", LeaderboardOptions(baseline="sft[epochs=1,model=smollm2-135m]")
    )  # the full label names it
    assert [r.label for r in board.rows] == ["cft[alpha=0.2]", "sft"]
    assert board.shared == {"epochs": 1, "model": "smollm2-135m"}
    assert board.caption.endswith("Every row with these settings: epochs=1, model=smollm2-135m.")
    assert board.baseline_label == "sft"
    assert board.rows[0].cells["NDCG@10"].vs_baseline.diff == pytest.approx(LOG3 - 1.0)
    (short,) = build_leaderboards("toys", LeaderboardOptions(baseline="sft"))  # and so does the short one
    assert short.rows[0].cells["NDCG@10"].vs_baseline.diff == pytest.approx(LOG3 - 1.0)
    written = leaderboard_command(
        "toys",
        LeaderboardOptions(baseline="sft", out_dir=tmp_path / "lb", formats=("md", "json")),
        console=Console(file=io.StringIO()),
    )
    md = (tmp_path / "lb" / "toys.md").read_text()
    assert "| a  | cft[alpha=0.2] |" in md and "### Difference from sft" in md
    assert load_leaderboards(tmp_path / "lb" / "toys.json")[0].shared == board.shared
    assert len(written) == 2

    save_run(store, "toys", "pop", np.full(N, -1))  # a row without these settings changes nothing
    (board,) = build_leaderboards("toys")
    assert board.shared == {"epochs": 1, "model": "smollm2-135m"}
    assert [r.label for r in board.rows] == ["cft[alpha=0.2]", "pop", "sft"]

    # a sasrec row with epochs=3: epochs is no longer shared, model still is
    save_run(store, "toys", "sasrec", np.ones(N), overrides={"epochs": 3})
    (board,) = build_leaderboards("toys")
    assert board.shared == {"model": "smollm2-135m"}
    assert [r.label for r in board.rows] == ["cft[alpha=0.2,epochs=1]", "pop", "sasrec[epochs=3]", "sft[epochs=1]"]


def test_a_default_value_keeps_an_override_in_the_label(store):
    """sasrec's resolved config has epochs=200 (its default, no override): the LLM rows'
    epochs=1 is not shared by every row that has the setting."""
    save_run(store, "toys", "sft", np.zeros(N), overrides={"epochs": 1, "max_new_tokens": 32})
    save_run(store, "toys", "cft", np.zeros(N), overrides={"epochs": 1, "max_new_tokens": 32})
    save_run(store, "toys", "sasrec", np.ones(N), config={"epochs": 200, "hidden_size": 64})
    (board,) = build_leaderboards("toys")
    assert board.shared == {"max_new_tokens": 32}
    assert [r.label for r in board.rows] == ["cft[epochs=1]", "sasrec", "sft[epochs=1]"]


def test_each_table_is_compared_with_its_own_baseline_row(store):
    # the full-test table shares model=m, so its sft row is shown as "sft"; the 10-sample table
    # has a plain sft, also shown as "sft": each table's intervals are against its own "sft"
    save_run(store, "toys", "sft", np.zeros(N), overrides={"model": "m"}, config_key="sft-m")
    save_run(store, "toys", "cft", np.ones(N), overrides={"model": "m"}, config_key="cft-m")
    save_run(store, "toys", "sft", np.ones(10), limit_test=10, config_key="sft-plain")
    save_run(store, "toys", "pop", np.full(10, -1), limit_test=10)
    full, ten = build_leaderboards("toys", LeaderboardOptions(baseline="sft"))
    assert [r.label for r in full.rows] == ["cft", "sft"] and full.shared == {"model": "m"}
    assert full.rows[0].cells["NDCG@10"].vs_baseline.diff == pytest.approx(LOG3 - 1.0)
    assert [r.label for r in ten.rows] == ["pop", "sft"] and ten.shared == {}
    assert ten.rows[0].cells["NDCG@10"].vs_baseline.diff == pytest.approx(-LOG3)
    full, ten = build_leaderboards("toys", LeaderboardOptions(baseline="sft[model=m]"))  # the full label: one table only
    assert full.has_intervals() and not ten.has_intervals()


def test_a_baseline_naming_two_rows_of_a_table_is_an_error(store):
    save_run(store, "toys", "sft", np.zeros(N), config_key="aaaa1111")  # same label, another method version
    save_run(store, "toys", "sft", np.ones(N), config_key="bbbb2222")
    (board,) = build_leaderboards("toys")
    assert [r.label for r in board.rows] == ["sft (aaaa1111)", "sft (bbbb2222)"]
    with pytest.raises(
        BenchError,
        match=r"Baseline 'sft' names 2 rows of the table 'toys: 50 test samples' "
        r"\(sft \(aaaa1111\); sft \(bbbb2222\)\); give the label as the table shows it.",
    ):
        build_leaderboards("toys", LeaderboardOptions(baseline="sft"))
    (board,) = build_leaderboards("toys", LeaderboardOptions(baseline="sft (bbbb2222)"))
    assert board.row("sft (aaaa1111)").cells["NDCG@10"].vs_baseline.diff == pytest.approx(1.0 - LOG3)


def test_version_1_json_without_shared_settings_loads(toys, tmp_path):
    leaderboard_command("toys", LeaderboardOptions(out_dir=tmp_path, formats=("json",)), console=Console(file=io.StringIO()))
    payload = json.loads((tmp_path / "toys.json").read_text())
    assert payload["schema"] == 3
    for table in payload["tables"]:
        del table["shared"], table["experiment"]
    (tmp_path / "old.json").write_text(json.dumps(dict(payload, schema=1)))
    (board,) = load_leaderboards(tmp_path / "old.json")
    assert board.shared == {} and [r.label for r in board.rows] == ["A", "B", "C"]


def test_terminal_table_never_cuts_numbers_or_labels(store):
    from bench.labels import run_label
    from bench.leaderboard import print_leaderboard

    long = {f"setting_number_{k}": k for k in range(8)}
    save_run(store, "toys", "sft", np.zeros(N), overrides=long, label=run_label("sft", long))
    save_run(store, "toys", "pop", np.full(N, -1))
    save_run(store, "toys", "sasrec", np.ones(N))
    (board,) = build_leaderboards("toys")
    for width in (60, 80, 200):
        out = io.StringIO()
        print_leaderboard(Console(file=out, width=width, color_system=None), board)
        text = out.getvalue()
        lines = text.splitlines()
        legend = [line for line in lines if line.startswith("c = ")]
        # the long label is spelt out whole on one legend line; every other line fits the width
        assert legend == ["c = " + run_label("sft", long)]
        assert max(len(line) for line in lines if line not in legend) <= width
        # rows a pop, b sasrec (rank 1), c sft (rank 0): sft's NDCG beats both, sasrec's beats pop
        assert "1.0000ᵃᵇ" in text and "0.6309ᵃ" in text
        table_rows = [line.split() for line in lines if line.split()[:1] in (["a"], ["b"], ["c"]) and "=" not in line]
        assert [r[:2] for r in table_rows][:3] == [["a", "pop"], ["b", "sasrec"], ["c", "sft[…]"]]
        for k in range(8):
            assert f"setting_number_{k}={k}" in legend[0]


def test_power_covers_the_family_the_correction_covers(toys, monkeypatch):
    """--pairs baseline with B as the baseline: 2 tests (a vs b, b vs c), each at 0.05/2 under Holm."""
    from test_store import cli

    from bench import power

    (board,) = build_leaderboards("toys", LeaderboardOptions(baseline="B", pairs="baseline", power=True, n_resamples=200))
    ndcg = [e for e in board.power if e["metric"] == "NDCG@10"]
    assert [(e["a"], e["b"]) for e in ndcg] == [("a", "b"), ("b", "c")]
    assert ndcg[0]["mde"] == pytest.approx(power.t_mde(float(A_NDCG.std(ddof=1)), N, 0.05 / 2))
    assert ndcg[1]["mde"] == pytest.approx(0.0, abs=1e-12)  # B - C is -1/log2(3) on every sample: any effect shows
    assert board.power_note == power.power_note("t", "holm", 0.05, 2)
    code, text, _ = cli(monkeypatch, ["leaderboard", "--dataset", "toys", "--baseline", "B", "--pairs", "baseline", "--power"])
    assert code == 0, text
    assert "Statistical power" in text and f"{ndcg[0]['mde']:.4f}" in text
    code, text, _ = cli(monkeypatch, ["leaderboard", "--dataset", "toys"])
    assert "Statistical power" not in text  # shown on request only
