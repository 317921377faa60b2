"""Methods across datasets (bench.across) on tables worked by hand, and the critical-difference
diagram drawn from them (bench.cd_diagram)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from bench.across import caption, cliques, friedman, rank_rows, sign_test, summarize_across
from bench.cd_diagram import cd_figure

# 4 methods x 5 datasets, given by their ranks (1 = best); the values are 10 - rank
RANKS_5 = {"A": [1, 1, 2, 1, 1], "B": [2, 3, 1, 2, 2], "C": [3, 2, 3, 4, 3], "D": [4, 4, 4, 3, 4]}
TABLE_5 = {m: {f"d{i}": 10.0 - r for i, r in enumerate(ranks)} for m, ranks in RANKS_5.items()}


def _ten_datasets() -> dict[str, dict[str, float]]:
    """A best everywhere, D worst everywhere, B and C alternating second and third; values are
    sums of powers of two, so every difference is exact: those of a pair differ in size, except
    B - C, which is +-0.125 alternately."""
    table = {m: {} for m in "ABCD"}
    for i in range(10):
        second, third = (0.25, 0.125) if i % 2 == 0 else (0.125, 0.25)
        table["A"][f"d{i}"] = 0.5 + i / 64
        table["B"][f"d{i}"] = second + i / 128
        table["C"][f"d{i}"] = third + i / 128
        table["D"][f"d{i}"] = 0.0625 + i / 256
    return table


def test_ranks_and_friedman_by_hand():
    summary = summarize_across(TABLE_5)
    for i in range(5):
        assert summary.ranks[f"d{i}"] == {m: float(r[i]) for m, r in RANKS_5.items()}
    # rank sums 6, 10, 15, 19 over N = 5 datasets
    assert summary.mean_ranks == pytest.approx({"A": 1.2, "B": 2.0, "C": 3.0, "D": 3.8})
    assert summary.methods == ("A", "B", "C", "D")
    # chi2_F = 12 * 5 / (4 * 5) * (1.44 + 4 + 9 + 14.44 - 4 * 25 / 4) = 3 * 3.88 = 11.64
    assert summary.friedman_chi2 == pytest.approx(11.64)
    assert summary.friedman_pvalue == pytest.approx(scipy_stats.chi2.sf(11.64, 3))
    # F_F = (5 - 1) * 11.64 / (5 * 3 - 11.64) = 46.56 / 3.36
    assert summary.iman_davenport_f == pytest.approx(46.56 / 3.36)
    assert summary.iman_davenport_pvalue == pytest.approx(scipy_stats.f.sf(46.56 / 3.36, 3, 12))
    independent = scipy_stats.friedmanchisquare(*[np.array(r, dtype=float) for r in RANKS_5.values()])
    assert summary.friedman_chi2 == pytest.approx(independent.statistic)


def test_five_datasets_use_the_sign_test_and_say_no_pair_can_differ():
    summary = summarize_across(TABLE_5)
    assert summary.test == "sign"
    a_d = next(p for p in summary.pairs if (p.better, p.worse) == ("A", "D"))
    assert (a_d.wins, a_d.losses, a_d.ties) == (5, 0, 0)
    assert a_d.pvalue == pytest.approx(2 * 0.5**5)  # 0.0625
    assert not any(p.significant for p in summary.pairs)
    assert summary.cliques == (("A", "B", "C", "D"),)
    assert any("below 0.0625" in n and "no pair can differ significantly" in n for n in summary.notes)


def test_ten_datasets_wilcoxon_with_holm_by_hand():
    summary = summarize_across(_ten_datasets())
    assert summary.test == "wilcoxon"
    assert summary.mean_ranks == pytest.approx({"A": 1.0, "B": 2.5, "C": 2.5, "D": 4.0})
    # chi2_F = 12 * 10 / 20 * (1 + 6.25 + 6.25 + 16 - 25) = 6 * 4.5 = 27; F_F = 9 * 27 / (30 - 27) = 81
    assert summary.friedman_chi2 == pytest.approx(27.0) and summary.iman_davenport_f == pytest.approx(81.0)
    pairs = {(p.better, p.worse): p for p in summary.pairs}
    assert list(pairs) == [("A", "B"), ("A", "C"), ("A", "D"), ("B", "C"), ("B", "D"), ("C", "D")]
    for key in [("A", "B"), ("A", "C"), ("A", "D"), ("B", "D"), ("C", "D")]:
        # ten differences of one sign and distinct sizes: exact two-sided p = 2 / 2^10; Holm over 6
        assert pairs[key].pvalue == pytest.approx(2 / 1024)
        assert pairs[key].adjusted == pytest.approx(6 * 2 / 1024) and pairs[key].significant
    assert (pairs["B", "C"].wins, pairs["B", "C"].losses) == (5, 5) and pairs["B", "C"].pvalue == pytest.approx(1.0)
    assert not pairs["B", "C"].significant
    assert summary.cliques == (("B", "C"),)
    assert summary.notes == ()


def test_the_sign_test_on_ten_datasets():
    summary = summarize_across(_ten_datasets(), test="sign")
    pairs = {(p.better, p.worse): p for p in summary.pairs}
    assert pairs["A", "D"].pvalue == pytest.approx(2 / 1024) and pairs["B", "C"].pvalue == pytest.approx(1.0)
    assert sign_test([3, 2, 1, 5], [1, 2, 3, 4]) == pytest.approx(1.0)  # 2 wins, 1 loss, 1 tie: binomial(3, 0.5)


def test_ties_are_averaged_and_corrected_for():
    ranks = rank_rows(np.array([[0.5, 0.5, 0.3], [0.2, 0.4, 0.4]]))
    assert ranks.tolist() == [[1.5, 1.5, 3.0], [3.0, 1.5, 1.5]]
    assert rank_rows(np.array([[0.5, 0.5, 0.3]]), higher_is_better=False).tolist() == [[2.5, 2.5, 1.0]]
    values = np.array([[0.5, 0.5, 0.3, 0.1], [0.4, 0.2, 0.2, 0.1], [0.3, 0.1, 0.2, 0.2], [0.6, 0.5, 0.4, 0.4]])
    chi2, p, _, _ = friedman(rank_rows(values))
    independent = scipy_stats.friedmanchisquare(*values.T)  # scipy corrects for ties too
    assert chi2 == pytest.approx(independent.statistic) and p == pytest.approx(independent.pvalue)


def test_lower_is_better_reverses_the_ranks():
    summary = summarize_across(TABLE_5, higher_is_better=False)
    assert summary.mean_ranks == pytest.approx({"D": 1.2, "C": 2.0, "B": 3.0, "A": 3.8})


def test_one_dataset_gives_a_reason_instead_of_a_summary():
    summary = summarize_across({"sasrec": {"ml-100k": 0.05}, "cft": {"ml-100k": 0.04}})
    assert not summary.available and summary.methods == () and summary.pairs == ()
    assert summary.reason.startswith("The summary across datasets needs at least two datasets")
    assert "only 1 (ml-100k)" in summary.reason and "left out" in summary.reason
    assert caption(summary) == summary.reason


def test_a_dataset_missing_a_value_is_left_out_with_a_note():
    table = _ten_datasets()
    del table["C"]["d3"]
    table["D"]["d4"] = float("nan")
    summary = summarize_across(table)
    assert len(summary.datasets) == 8 and "d3" not in summary.datasets and "d4" not in summary.datasets
    assert summary.notes[:2] == ("d3 is left out: C has no value there.", "d4 is left out: D has no value there.")
    lonely = summarize_across({"A": {"x": 1.0, "y": 2.0}, "B": {"x": 1.0}})
    assert not lonely.available and "only 1 (x)" in lonely.reason


def test_cliques_are_maximal_runs_without_a_significant_pair():
    order = ["a", "b", "c", "d", "e"]
    different = {frozenset(p) for p in [("a", "d"), ("a", "e"), ("b", "e"), ("a", "c")]}
    # a-b together; b-c-d together (a-c differ); c-d-e together (b-e differ)
    assert cliques(order, different) == (("a", "b"), ("b", "c", "d"), ("c", "d", "e"))
    assert cliques(order, set()) == (tuple(order),)
    assert cliques(["a", "b"], {frozenset(("a", "b"))}) == ()


def test_caption_names_the_tests():
    text = caption(summarize_across(_ten_datasets()))
    assert "Friedman chi2 = 27.000" in text and "Wilcoxon signed-rank tests" in text and "Holm-corrected over 6 pairs" in text
    assert "not the Nemenyi test" in text


def test_cd_figure_draws_every_method_and_group(tmp_path):
    summary = summarize_across(_ten_datasets())
    fig = cd_figure(summary.mean_ranks, summary.cliques, title="NDCG@10 across 10 datasets", note=caption(summary))
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for label in ("A (1.00)", "B (2.50)", "C (2.50)", "D (4.00)", "1", "4", "mean rank (1 = best)"):
        assert label in texts
    thick = [line for line in fig.axes[0].lines if line.get_linewidth() > 3]
    assert len(thick) == 1 and tuple(thick[0].get_xdata()) == pytest.approx((2.5 - 0.04, 2.5 + 0.04))
    fig.savefig(tmp_path / "cd.png", dpi=100)
    assert (tmp_path / "cd.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="at least two methods"):
        cd_figure({"A": 1.0})
