"""`bench report` on hand-made stores: curve values worked by hand, the Pareto front of known
points, a page that parses and links only files that exist, the heatmap only for a two-setting
grid with validation scores, and beyond-accuracy metrics on the prepared ml-100k split."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from records import make_record
from typer.testing import CliRunner

from bench import beyond, paths
from bench.evaluate import summarize
from bench.labels import run_label
from bench.leaderboard import LeaderboardOptions, Selection
from bench.report import build_report, curves, pareto_front, report_command, write_report
from bench.report.compute import row_curves
from bench.store import RunStore

N = 40
PROVENANCE = {
    "git_commit": "0123456789abcdef0123456789abcdef01234567",
    "git_dirty": True,
    "packages": {"bench": "0.1.0", "numpy": "2.0.0"},
    "python": "3.11.9",
    "platform": "Linux-x86_64",
    "device": "cpu (x86_64)",
}


def save_run(store, dataset, method, ranks, seed=0, label=None, config_key=None, overrides=None, config=None,
             timing=None, valid=None, history=None, topk=None, split_hash="split-new", sample_index=None):  # fmt: skip
    ranks = np.asarray(ranks, dtype=np.int64)
    n = len(ranks)
    config_key = config_key or f"cfg{method}"
    record = make_record(
        key=f"{config_key}-s{seed}",
        config_key=config_key,
        method=method,
        ranks=ranks,
        label=label or run_label(method, overrides or {}),
        config=config or {},
        overrides=overrides or {},
        dataset=dataset,
        split_hash=split_hash,
        seed=seed,
        valid=None if valid is None else {"subset": None, "n": 10, "metrics": {"NDCG@10": valid, "HR@10": valid}},
        timing=timing or {},
        provenance=dict(PROVENANCE, seed=seed, split_hash=split_hash),
        created_at="2025-01-02T00:00:00+00:00",
    )
    index = np.arange(n, dtype=np.int64) if sample_index is None else np.asarray(sample_index, dtype=np.int64)

    def arrays(r):
        top = np.full((n, 50), -1, dtype=np.int32) if topk is None else np.asarray(topk, dtype=np.int32)
        return dict(sample_index=index, rank=np.asarray(r, dtype=np.int64), topk=top, invalid=np.zeros(n, dtype=np.int32))

    extra = {f"history_{c}": arrays(r) for c, r in (history or {}).items()}
    store.save(record, arrays(ranks), extra_parts=extra)


@pytest.fixture
def store():
    return RunStore()


# ---------------------------------------------------------------------------------------- curves

RANKS = np.array([0, 3, 9, 10, 49, 50, -1, 120])


def test_curves_at_1_10_50_equal_hand_computed_values():
    c = curves(RANKS)
    assert len(c["HR"]) == len(c["NDCG"]) == 50
    # hits at K: 0 <= r < K
    assert c["HR"][0] == pytest.approx(1 / 8)  # K = 1: rank 0 only
    assert c["HR"][9] == pytest.approx(3 / 8)  # K = 10: ranks 0, 3, 9
    assert c["HR"][49] == pytest.approx(5 / 8)  # K = 50: ranks 0, 3, 9, 10, 49 (50, -1 and 120 are misses)
    assert c["NDCG"][0] == pytest.approx(1 / 8)
    assert c["NDCG"][9] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(11)) / 8)
    assert c["NDCG"][49] == pytest.approx((1 + 1 / math.log2(5) + 1 / math.log2(11) + 1 / math.log2(12) + 1 / math.log2(51)) / 8)
    summary = summarize(RANKS)  # the harness's own metrics agree at its Ks
    for k in (1, 3, 5, 10, 20, 50):
        assert c["HR"][k - 1] == pytest.approx(summary[f"HR@{k}"])
        assert c["NDCG"][k - 1] == pytest.approx(summary[f"NDCG@{k}"])


def test_curves_are_averaged_over_seeds(store):
    save_run(store, "toys", "A", np.zeros(N), seed=0)
    save_run(store, "toys", "A", np.r_[np.zeros(N // 2), np.full(N // 2, -1)], seed=1)
    runs = sorted(store.runs("toys"), key=lambda r: r.record.seed)
    c = row_curves(runs)
    assert c["HR"][0] == pytest.approx(0.75) and c["HR"][49] == pytest.approx(0.75)
    assert c["NDCG"][9] == pytest.approx(0.75)


# ---------------------------------------------------------------------------------- pareto front


def test_pareto_front_of_hand_made_points():
    #              f     a     b     c     d     e     g     h (no quality)
    costs = [0.5, 1.0, 2.0, 3.0, 10.0, 10.0, 2.0, 0.1]
    quality = [0.05, 0.1, 0.3, 0.2, 0.5, 0.4, 0.3, float("nan")]
    # c is beaten by b (cheaper, better), e by d (as costly, worse); b and g tie and are both on the front
    assert pareto_front(costs, quality) == [0, 1, 2, 6, 4]
    assert pareto_front([1.0], [0.0]) == [0]
    assert pareto_front([], []) == []
    assert pareto_front([1.0, 1.0], [0.2, 0.1]) == [0]  # same cost, better quality dominates


# ------------------------------------------------------------------------------------ the page


class Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs, self.text, self.ids, self.tags = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.refs.append(attrs["src"])
        if tag == "a" and "href" in attrs:
            self.refs.append(attrs["href"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> Links:
    parser = Links()
    parser.feed(page)
    parser.close()
    return parser


def _file_refs(refs: list[str]) -> list[str]:
    return [r for r in refs if not r.startswith(("data:", "#", "http://", "https://"))]


@pytest.fixture
def toys(store):
    """B is the baseline; A beats it, 'x<y>&$z' (a label to escape) is worse; timing, provenance and
    a stored 'none' history condition on every row; the toys split is not prepared."""
    rng = np.random.default_rng(0)
    a_ranks = np.where(rng.random(N) < 0.7, rng.integers(0, 5, N), -1)
    b_ranks = np.where(rng.random(N) < 0.3, rng.integers(0, 30, N), -1)
    for seed in (0, 1):
        save_run(store, "toys", "A", a_ranks, seed=seed, timing={"fit_s": 100.0, "recommend_s": 20.0},
                 history={"none": np.full(N, -1)})  # fmt: skip
    save_run(store, "toys", "B", b_ranks, timing={"fit_s": 0.01, "recommend_s": 0.5}, history={"none": b_ranks})
    save_run(store, "toys", "x", np.full(N, 40), label="x<y>&$z", timing={"fit_s": 500.0, "recommend_s": 80.0},
             history={"none": np.full(N, 45)})  # fmt: skip
    return store


def test_page_parses_links_existing_files_and_names_every_row(toys):
    written = report_command("toys", LeaderboardOptions.for_report(baseline="B", n_resamples=500))
    out = paths.results_dir() / "report" / "toys"
    assert written == [out / "index.html", out / "report.md"]
    page = (out / "index.html").read_text(encoding="utf-8")
    parsed = _parse(page)
    text = " ".join(parsed.text)
    assert {"html", "head", "style", "body", "table", "nav", "details", "summary", "img"} <= set(parsed.tags)
    for label in ("A", "B", "x<y>&$z"):
        assert label in text
    assert "x<y>&$z" not in page and "x&lt;y&gt;&amp;$z" in page  # escaped in the source, shown as written
    files = _file_refs(parsed.refs)
    assert files, "the page links the picture files"
    for ref in files:
        assert (out / ref).is_file(), ref
    for ref in (r for r in parsed.refs if r.startswith("#")):  # the table of contents points at real anchors
        assert ref[1:] in parsed.ids, ref
    # the pictures are embedded (no file needed) and also written beside the page
    embedded = [r for r in parsed.refs if r.startswith("data:image/svg+xml;base64,")]
    kinds = {p.split("-", 1)[1].rsplit(".", 1)[0] for p in files}
    assert kinds == {"curves", "forest", "cost", "history"}
    assert len(embedded) == 4
    for kind in kinds:
        assert (out / f"t1-{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"t1-{kind}.svg").read_bytes()[:2000]
    # header, provenance, the missing split said instead of failing
    assert "split-new" in text and "0123456789ab" in page and "uncommitted changes" in text
    assert "cfgA-s0" in text and "cfgA-s1" in text and "numpy 2.0.0" in text
    assert "not prepared" in text
    # B: 0.51 s, A: 120 s and better, x: 580 s and worse than both: the Pareto front is b, a
    assert "front (no other row is both faster and better) is b, a" in text
    # the Markdown links only files that exist
    markdown = (out / "report.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", markdown)
    assert any(link.endswith(".png") for link in links)
    for link in _file_refs(links):
        assert (out / link).is_file(), link
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', markdown))
    for link in (link for link in links if link.startswith("#")):
        assert link[1:] in anchors, link
    assert "x\\<y\\>&$z" in markdown


def test_report_cli_writes_under_the_experiment_folder(store):
    from bench.cli import app

    save_run(store, "toys", "A", np.zeros(N))
    save_run(store, "toys", "B", np.ones(N))
    record_path = next((paths.results_dir() / "runs" / "toys").glob("*/*/run.json"))
    record = json.loads(record_path.read_text())
    record["experiments"] = ["exp1"]
    record_path.write_text(json.dumps(record))
    result = CliRunner().invoke(app, ["report", "--dataset", "toys", "--name", "exp1"])
    assert result.exit_code == 0, result.output
    out = paths.results_dir() / "report" / "toys-exp1"
    assert (out / "index.html").is_file() and (out / "report.md").is_file()
    result = CliRunner().invoke(app, ["report", "--dataset", "nothing-here"])
    assert result.exit_code == 2 and "No stored runs" in result.output


# --------------------------------------------------------------------------------------- heatmap


def _grid(store, with_valid: bool, settings=("alpha", "beta")):
    for alpha in (0.1, 0.2):
        for beta in (0.25, 0.5, 1.0):
            x, y = settings
            overrides = {x: alpha, y: beta} if y else {x: alpha + beta}
            ranks = np.full(N, int(alpha * 10 + beta * 4))
            score = 0.1 + alpha + beta / 10
            save_run(store, "toys", "cft", ranks, config_key=f"cft-{alpha}-{beta}", overrides=overrides,
                     config={"alpha": 0.1, "beta": 0.25, "epochs": 1} | overrides, valid=score if with_valid else None)  # fmt: skip
    save_run(store, "toys", "pop", np.full(N, 20), valid=0.05 if with_valid else None)


def test_heatmap_appears_for_a_two_setting_grid_with_validation_scores(store, tmp_path):
    _grid(store, with_valid=True)
    report = build_report("toys", LeaderboardOptions.for_report(n_resamples=200), store)
    write_report(report, tmp_path / "r")
    (section,) = report.chapters
    grids = [p for p in section.pictures if p.kind == "grid"]
    assert [p.title for p in grids] == ["cft: alpha × beta"]
    assert (tmp_path / "r" / "t1-grid-cft.png").is_file()
    from bench.report.compute import find_grids

    runs = {r.key: r for r in store.runs("toys")}
    (grid,) = find_grids(section.board, runs)
    assert grid.x_values == [0.1, 0.2] and grid.y_values == [0.25, 0.5, 1.0]
    assert grid.valid[2, 1] == pytest.approx(0.1 + 0.2 + 0.1) and grid.best == (2, 1)
    assert grid.test[0, 0] == pytest.approx(summarize(np.full(N, 2))["NDCG@10"])
    # a new report into the same folder removes the pictures it no longer draws, and nothing else
    keep = tmp_path / "r" / "notes.txt"
    keep.write_text("mine")
    options = LeaderboardOptions.for_report(n_resamples=200, selection=Selection(methods=["pop"]))
    write_report(build_report("toys", options, store), tmp_path / "r")
    assert not (tmp_path / "r" / "t1-grid-cft.png").exists() and keep.is_file()


def test_no_heatmap_without_validation_scores(store, tmp_path):
    _grid(store, with_valid=False)
    report = build_report("toys", LeaderboardOptions.for_report(n_resamples=200), store)
    write_report(report, tmp_path / "r")
    assert not [p for p in report.chapters[0].pictures if p.kind == "grid"]
    assert not list((tmp_path / "r").glob("*grid*"))


def test_no_grid_when_configurations_differ_in_one_setting(store):
    from bench.leaderboard import build_leaderboards
    from bench.report.compute import find_grids

    _grid(store, with_valid=True, settings=("alpha", None))
    (board,) = build_leaderboards("toys", LeaderboardOptions(n_resamples=200))
    assert len(board.rows) == 7  # six cft configurations differing in alpha only, and pop
    assert find_grids(board, {r.key: r for r in store.runs("toys")}) == []


# ------------------------------------------------------------------------------ beyond accuracy


def test_beyond_metrics_on_the_prepared_split(store, tmp_path):
    from bench.data.prepare import load_split, prepare

    prepare("ml-100k")
    split = load_split("ml-100k")
    n_items, n = len(split.items), 60
    rng = np.random.default_rng(1)
    popular = np.argsort(-beyond.item_popularity(split.train.targets, n_items))[:50]
    index = np.arange(n) * 3
    lists = {"pop": np.tile(popular, (n, 1)), "rand": rng.integers(0, n_items, size=(n, 50))}
    for seed in (0, 1):
        save_run(store, "ml-100k", "rand", rng.integers(-1, 50, n), seed=seed, topk=rng.integers(0, n_items, size=(n, 50)),
                 split_hash=split.hash, sample_index=index)  # fmt: skip
    save_run(store, "ml-100k", "pop", rng.integers(-1, 50, n), topk=lists["pop"], split_hash=split.hash, sample_index=index)
    report = build_report("ml-100k", LeaderboardOptions.for_report(n_resamples=200, beyond_resamples=200), store)
    rows = {row["label"]: SimpleNamespace(**row) for row in report.chapters[0].board.beyond}
    popularity = beyond.item_popularity(split.train.targets, n_items)
    expected = beyond.beyond_metrics(
        dict(topk=lists["pop"], sample_index=index), popularity, beyond.long_tail_mask(popularity), n_items,
        len(split.train.targets), split.test.targets, 10,
    ).summary()  # fmt: skip
    for name, value in expected.items():
        assert rows["pop"].values[name] == pytest.approx(value), name
    assert rows["pop"].values["coverage@10"] == pytest.approx(10 / n_items)  # the same ten items in every list
    assert rows["pop"].values["pop_ratio@10"] > rows["rand"].values["pop_ratio@10"]
    # coverage has no interval: a resample repeats samples, so it only loses distinct items; nor has
    # rand's gini: 60 random lists over the catalogue, a resample repeating some of them always
    # concentrates the exposure, so every resample lies above the value
    assert set(rows["pop"].intervals) == {"gini@10", "pop_ratio@10"} and set(rows["rand"].intervals) == {"pop_ratio@10"}
    for row in rows.values():
        for name, (low, high) in row.intervals.items():
            assert low <= row.values[name] <= high  # a bias-corrected interval holds its value
    rand_top = next(r for r in store.runs("ml-100k") if r.record.method == "rand").arrays()["topk"]
    assert beyond.bootstrap_interval(lambda t: beyond.coverage(t, n_items, 10), rand_top, n_resamples=200) is None
    (section,) = [s for s in report.chapters[0].sections if s.kind == "beyond"]
    assert "coverage has none, as a resample repeats samples" in section.caption_text
    assert report.beyond_note == ""


def test_report_of_a_split_prepared_again_says_why_beyond_metrics_are_missing(store, tmp_path):
    save_run(store, "ml-100k", "pop", np.zeros(N), split_hash="an-older-split")
    from bench.data.prepare import prepare

    prepare("ml-100k")
    report = build_report("ml-100k", LeaderboardOptions.for_report(n_resamples=200), store)
    write_report(report, tmp_path / "r")
    assert report.chapters[0].board.beyond == [] and "an-older-split" in report.beyond_note
    assert Path(tmp_path / "r").is_dir()


# ------------------------------------------------------------------------------ one source


def test_the_report_scans_the_store_once_and_writes_only_when_asked(toys, monkeypatch):
    scans = []
    real = RunStore.scan
    monkeypatch.setattr(RunStore, "scan", lambda self, dataset=None: scans.append(dataset) or real(self, dataset))
    report = build_report("toys", LeaderboardOptions.for_report(baseline="B", n_resamples=200), RunStore())
    assert scans == ["toys"]
    assert not (paths.results_dir() / "report").exists()  # built in memory; write_report writes
    (chapter,) = report.chapters
    # the report's tables are the leaderboard's: the same sections, built from the same board
    from bench.leaderboard import board_sections, build_leaderboards

    # (toys is not prepared: the report leaves beyond accuracy out, the leaderboard is not asked for it)
    (board,) = build_leaderboards("toys", LeaderboardOptions.for_report(baseline="B", n_resamples=200, beyond=None))
    sections = board_sections(board)
    assert chapter.board == board and chapter.sections == [s for s in sections if s.kind != "power"]
    assert [s.kind for s in chapter.sections] == ["board", "intervals", "history", "cost"]
    assert chapter.power == sections[2] and sections[2].kind == "power"  # shown in "About the numbers"
    # provenance: the same twelve fields for every run, in the page and in the Markdown
    (a, *_) = chapter.provenance
    assert [line.keys[0] for line in a.lines] == [
        "run key", "created", "commit", "device", "split hash", "method version", "python", "platform", "processes",
        "fit / total", "packages", "stored in",
    ]  # fmt: skip
    assert a.headers == ("seed 0", "seed 1") and a.lines[2].entries[0].text == PROVENANCE["git_commit"] + " (uncommitted changes)"
    out = paths.results_dir() / "r"
    write_report(report, out)
    markdown = (out / "report.md").read_text()
    assert markdown.count("| fit / total ") == 3 and markdown.count("| stored in ") == 3  # one table per row
    assert (out / "index.html").read_text().count('<td class="label">fit / total</td>') == 3
