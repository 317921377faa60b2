"""The data path: MovieLens-100k from RecBole's wheel; Amazon 2018 files read and processed with the
D3 recipe of protocol.md section 1.2 (window with the 10k-items rule, title filter, iterative k-core,
merging by cleaned title, sliding prefixes, global temporal split); bad input; the resumable
download; the `bench data` commands; the split's content hash.

The Amazon fixture below is small enough that its split was worked out by hand: the expected
histories, targets and splits are written out literally, not recomputed with the code under test.
"""

from __future__ import annotations

import csv
import http.server
import json
import random
import re
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from amazon_fixture import MISSING, cards_with, closed_port, meta, review, ts, write_jsonl_gz
from typer.testing import CliRunner

from bench.cli import app
from bench.data import amazon, d3, movielens
from bench.data.cards import load_card
from bench.data.prepare import load_split, prepare
from bench.errors import BenchError

NAME = "tinytoys"
CATEGORY = "Tiny_Toys"
REVIEWS = f"{CATEGORY}.json.gz"
META = f"meta_{CATEGORY}.json.gz"

# ---------------------------------------------------------------------------------------------
# The hand-built Amazon fixture. Card: window from 2017-10-01, min_items 3 (the 10k-items rule at
# toy scale), k_core 3, history_len 3.
#
# Items (ASIN: raw title -> cleaned title -> item id; ids follow the sorted cleaned titles):
#   A2 "Blue Car"                        -> 0
#   A3 ' &quot;Green Kite&quot; '        -> "Green Kite"    -> 1   A3 and A4 merge into one item
#   A4 "Green Kite"                      -> 1
#   A5 "Puzzle &amp; Game"               -> "Puzzle & Game" -> 2
#   A1 "Red Ball"                        -> 3
#   B6 "Yellow Drum": passes the title filter, removed by the k-core cascade
#   Z9: in the metadata, never reviewed
# Rejected by the title filter, each reviewed 3 times by U1, U2, U3 (a 3-core would keep them):
#   H1 HTML title, N1 no "title" key, E1 empty title, N2 absent from the metadata,
#   S1 '&quot;X&quot;' (1 character once cleaned), L1 20 words with one double space (21 parts).
# ---------------------------------------------------------------------------------------------
CORE = {  # each user reviews each of A1..A5 once; (asin, day)
    "U1": [("A1", "2016-10-01"), ("A2", "2017-01-10"), ("A3", "2017-03-01"), ("A4", "2018-01-05"), ("A5", "2018-03-01")],
    "U2": [("A5", "2016-11-01"), ("A3", "2017-02-01"), ("A4", "2017-06-01"), ("A1", "2018-02-01"), ("A2", "2018-02-01")],
    "U3": [("A2", "2016-12-01"), ("A4", "2017-01-10"), ("A1", "2017-07-01"), ("A5", "2018-04-01"), ("A3", "2018-06-01")],
    "U4": [("A3", "2017-01-01"), ("A5", "2017-03-01"), ("A2", "2017-08-01"), ("A1", "2018-06-01"), ("A4", "2018-07-01")],
    "U5": [("A4", "2017-02-01"), ("A3", "2017-04-01"), ("A5", "2017-09-30"), ("A2", "2018-09-01"), ("A1", "2018-11-01")],
}
# Pass 1 removes U9 (2 reviews); only then does B6 fall to 2 reviews (pass 2); then U7 and U8 fall
# to 2 reviews (pass 3): 2 + 2 + 4 = 8 reviews removed by the k-core, in a 4th pass nothing moves.
CASCADE = {
    "U9": [("A1", "2018-05-01"), ("B6", "2018-05-02")],
    "U7": [("B6", "2018-05-03"), ("A1", "2018-05-04"), ("A2", "2018-05-05")],
    "U8": [("B6", "2018-05-06"), ("A2", "2018-05-07"), ("A3", "2018-05-08")],
}
REJECTED = ["H1", "N1", "E1", "N2", "S1", "L1"]
OUTSIDE = [("U1", "A2", "2016-09-30"), ("U3", "A1", "2018-11-02"), ("U2", "A3", "2015-05-05")]
LONG_TITLE = " ".join(f"word{i}" for i in range(1, 20)) + "  word20"  # 20 words, 21 parts on " "

# Window 2017-10-01..2018-11-01 (the card's start): only the last two reviews of each core user are
# inside. Pass 1 starts with 6 items (A1..A5, B6) and keeps U7's three and U8's B6, A2; pass 2
# starts with 3 items (A1, A2, B6) and removes everything; pass 3 starts with 0 < 3 items: the
# rule triggers (at the third pass, not the first) and the window moves back to 2016-10-01.
# Window 2016-10-01..2018-11-01: 2016-10-01 and 2018-11-01 are inside, 2016-09-30, 2018-11-02 and
# 2015-05-05 outside. All 25 core reviews survive.
#
# Users U1..U5 are 0..4. Sequences in item ids (ties: U2's A1 and A2 on 2018-02-01 go by ASIN,
# A1 first, though the file lists A2 first and A2's item id is smaller):
#   U1: 3 0 1 1 2    U2: 2 1 1 3 0    U3: 0 1 3 2 1    U4: 1 2 0 3 1    U5: 1 1 2 0 3
# 20 samples (25 interactions - 5 users), cut at int(0.8*20) = 16 and int(0.9*20) = 18.
# Same-day targets go by user (2017-01-10: U1 then U3; 2017-03-01: U1 then U4; 2018-06-01: U3
# then U4, across the train/valid cut, though U4's is the earlier position) and then by position
# (2018-02-01: U2's positions 3 and 4).
TRAIN = [  # (user, history, target, day)
    (0, (3,), 0, "2017-01-10"),
    (2, (0,), 1, "2017-01-10"),
    (1, (2,), 1, "2017-02-01"),
    (0, (3, 0), 1, "2017-03-01"),
    (3, (1,), 2, "2017-03-01"),
    (4, (1,), 1, "2017-04-01"),
    (1, (2, 1), 1, "2017-06-01"),
    (2, (0, 1), 3, "2017-07-01"),
    (3, (1, 2), 0, "2017-08-01"),
    (4, (1, 1), 2, "2017-09-30"),
    (0, (3, 0, 1), 1, "2018-01-05"),
    (1, (2, 1, 1), 3, "2018-02-01"),
    (1, (1, 1, 3), 0, "2018-02-01"),  # 4 previous items, the last 3 kept
    (0, (0, 1, 1), 2, "2018-03-01"),
    (2, (0, 1, 3), 2, "2018-04-01"),
    (2, (1, 3, 2), 1, "2018-06-01"),
]
VALID = [
    (3, (1, 2, 0), 3, "2018-06-01"),
    (3, (2, 0, 3), 1, "2018-07-01"),
]
TEST = [
    (4, (1, 1, 2), 0, "2018-09-01"),
    (4, (1, 2, 0), 3, "2018-11-01"),  # the window's last day is inside
]
TITLES = ["Blue Car", "Green Kite", "Puzzle & Game", "Red Ball"]
SOURCES = [["A2"], ["A3", "A4"], ["A5"], ["A1"]]
COUNTS = {
    "users": 5,
    "items": 4,
    "raw_items": 5,
    "merged_raw_items": 1,
    "interactions": 25,
    "samples": 20,
    "reviews_read": 25 + 8 + 18 + 3,  # every well-formed review line
    "meta_read": 12,  # A1..A5, B6, Z9, H1, N1, E1, S1, L1
}
DROPPED = {
    "items_html_title": 1,
    "items_no_metadata": 1,
    "items_no_title": 2,
    "items_title_too_long": 1,
    "items_title_too_short": 1,
    "malformed_meta_lines": 1,
    "malformed_review_lines": 2,
    "meta_missing_asin": 1,
    "reviews_missing_fields": 1,
    "reviews_of_rejected_items": 18,
    "reviews_outside_window": 3,
    "reviews_removed_by_k_core": 8,
}


def review_lines() -> list:
    lines: list = []
    for groups in (CORE, CASCADE):
        for user, seq in groups.items():
            lines += [review(user, asin, day) for asin, day in seq]
    lines += [review(user, asin, "2018-04-15") for asin in REJECTED for user in ("U1", "U2", "U3")]
    lines += [review(user, asin, day) for user, asin, day in OUTSIDE]
    lines.reverse()  # file order is not time order: every same-day tie above is listed the other way round
    no_time = review("U4", "A2", "2018-01-01")
    del no_time["unixReviewTime"]
    return (
        lines[:10]
        + ['{"overall": 5.0, "verified": true, "reviewerID": "U1", "asin": "A1", "unixReviewTime": 15']
        + lines[10:30]
        + ["[1, 2, 3]", no_time]
        + lines[30:]
    )


def meta_lines() -> list:
    no_asin = meta("ZZ", "Orphan Title")
    del no_asin["asin"]
    return [
        meta("A1", "Red Ball"),
        meta("A2", "Blue Car"),
        meta("A3", " &quot;Green Kite&quot; "),
        meta("A4", "Green Kite"),
        meta("A5", "Puzzle &amp; Game"),
        meta("B6", "Yellow Drum"),
        meta("Z9", "Unreviewed Widget"),
        meta("H1", 'Doll House <span id="parentalGuidance">Ages 3+</span>'),
        '{"asin": "A9", "title": "Broken',
        meta("N1", MISSING),
        meta("E1", ""),
        meta("S1", "&quot;X&quot;"),
        meta("L1", LONG_TITLE),
        no_asin,
    ]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """Cards folder (project cards + the fixture card) and a raw folder with both files."""
    port = closed_port()
    cards = cards_with(
        tmp_path / "cards",
        NAME,
        description="hand-built Amazon 2018 fixture",
        category=CATEGORY,
        base_url=f"http://127.0.0.1:{port}/amazon_v2",
        reviews="full",
        noun="toy",
        noun_plural="toys",
        verb="bought",
        window_start_year=2017,
        window_end="2018-11-01",
        min_items=3,
        k_core=3,
        history_len=3,
    )
    monkeypatch.setenv("BENCH_CARDS_DIR", str(cards))
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    raw = tmp_path / "amazon_raw"
    write_jsonl_gz(raw / REVIEWS, review_lines())
    write_jsonl_gz(raw / META, meta_lines())
    return raw


def set_card(field: str, value) -> None:
    """Change one field of the fixture card (in the BENCH_CARDS_DIR folder)."""
    path = load_card(NAME).path
    text = re.sub(rf"(?m)^{field} = .*$", f"{field} = {json.dumps(value)}", path.read_text())
    path.write_text(text)


def rows(samples) -> list[tuple]:
    return [
        (int(u), tuple(h), int(t), int(time))
        for u, h, t, time in zip(samples.users, samples.histories, samples.targets, samples.times)
    ]


def literal(expected) -> list[tuple]:
    return [(u, h, t, ts(day)) for u, h, t, day in expected]


def assert_hand_split(split) -> None:
    assert split.items.titles == TITLES
    assert split.items.sources == SOURCES
    assert rows(split.train) == literal(TRAIN)
    assert rows(split.valid) == literal(VALID)
    assert rows(split.test) == literal(TEST)
    # no valid/test target is earlier than any train target (the tie at the cut is allowed)
    assert min(split.valid.times) >= max(split.train.times)
    assert min(split.test.times) >= max(split.valid.times) >= max(split.train.times)


def assert_hand_manifest(manifest: dict) -> None:
    assert manifest["dataset"] == NAME
    assert manifest["window_start_year"] == 2016
    assert manifest["window"] == "2016-10-01..2018-11-01"
    assert manifest["counts"] == COUNTS
    assert manifest["samples"] == {"train": 16, "valid": 2, "test": 2}
    assert manifest["dropped"] == DROPPED
    assert manifest["reviews_file"] == REVIEWS
    assert re.fullmatch(r"[0-9a-f]{16}", manifest["split_hash"])


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, " ".join(result.output.split())


def assert_clean_error(result, text: str, *needles: str) -> None:
    """Exit code 2, one 'error:' sentence, no traceback."""
    assert result.exit_code == 2, text
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "error:" in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, text


def bench_command() -> list[str]:
    exe = Path(sys.executable).with_name("bench")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bench.cli"]


# ---------------------------------------------------------------------------------------------
# Amazon: the hand-worked split
# ---------------------------------------------------------------------------------------------
def test_amazon_fixture_gives_the_hand_worked_split(tiny):
    manifest = prepare(NAME, raw_dir=tiny)
    assert_hand_manifest(manifest)
    split = load_split(NAME)
    assert split.hash == manifest["split_hash"]
    assert_hand_split(split)
    assert all(len(h) <= 3 for part in (split.train, split.valid, split.test) for h in part.histories)


def test_amazon_prepare_through_the_cli(tiny):
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert result.exit_code == 0, text
    assert "Traceback" not in text
    assert_hand_split(load_split(NAME))

    result = CliRunner().invoke(app, ["data", "stats", NAME, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert_hand_manifest(stats)
    assert stats == load_split(NAME).manifest

    result, text = invoke("data", "list")
    assert result.exit_code == 0, text
    for name in ("ml-100k", "toys", "sports", "cds", "games", "books", NAME):
        assert name in text


def test_amazon_prepare_through_the_installed_command(tiny, tmp_path):
    run = subprocess.run(
        [*bench_command(), "data", "prepare", NAME, "--raw-dir", str(tiny)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    stats = subprocess.run([*bench_command(), "data", "stats", NAME, "--json"], capture_output=True, text=True, timeout=120)
    assert stats.returncode == 0, stats.stderr
    assert_hand_manifest(json.loads(stats.stdout))
    assert_hand_split(load_split(NAME))

    # a truncated file, through the real process: exit 2, one sentence, no traceback
    data = (tiny / REVIEWS).read_bytes()
    (tiny / REVIEWS).write_bytes(data[: len(data) // 2])
    bad = subprocess.run(
        [*bench_command(), "data", "prepare", NAME, "--raw-dir", str(tiny), "--force"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = bad.stdout + bad.stderr
    assert bad.returncode == 2, out
    assert "error:" in out and "truncated" in out and "Traceback" not in out


def test_window_rule_not_needed_when_the_window_starts_early_enough(tiny):
    first = prepare(NAME, raw_dir=tiny)
    set_card("window_start_year", 2016)
    again = prepare(NAME, raw_dir=tiny, force=True)
    assert again["window_start_year"] == 2016
    assert again["split_hash"] == first["split_hash"]


def test_without_the_items_rule_the_late_window_is_kept_and_empties(tiny):
    set_card("min_items", 0)  # rule off: the 2017 window is accepted and nothing survives its 3-core
    with pytest.raises(BenchError, match="survive"):
        prepare(NAME, raw_dir=tiny)
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert_clean_error(result, text, "survive")


def test_items_rule_stops_moving_the_window_at_1996(tiny):
    # 5 ASINs survive every window: with min_items 6 the start moves back year by year to 1996,
    # where D3 accepts whatever survives. Then 2016-09-30 and 2015-05-05 are inside too.
    set_card("min_items", 6)
    manifest = prepare(NAME, raw_dir=tiny)
    assert manifest["window_start_year"] == 1996
    assert manifest["window"] == "1996-10-01..2018-11-01"
    assert manifest["dropped"]["reviews_outside_window"] == 1
    assert manifest["counts"]["interactions"] == 27
    assert manifest["counts"]["samples"] == 22
    assert manifest["samples"] == {"train": 17, "valid": 2, "test": 3}  # int(17.6), int(19.8)
    u1 = [(h, t) for u, h, t, _ in rows(load_split(NAME).train) if u == 0]
    assert u1[:2] == [((0,), 3), ((0, 3), 0)]  # U1 now starts A2 (2016-09-30), A1, A2


def test_five_core_review_file_option(tiny):
    (tiny / REVIEWS).rename(tiny / f"{CATEGORY}_5.json.gz")
    manifest = prepare(NAME, raw_dir=tiny, reviews="5core")
    assert manifest["reviews_file"] == f"{CATEGORY}_5.json.gz"
    assert manifest["counts"] == COUNTS
    assert load_split(NAME).card.reviews == "5core"  # the split remembers which file it came from
    card = load_card(NAME)
    assert card.reviews == "full"
    five = type(card)(**{**card.__dict__, "reviews": "5core"})
    # the official 5-core files live in categoryFilesSmall/, the full ones in categoryFiles/
    assert amazon.urls(five) == {
        f"{CATEGORY}_5.json.gz": f"{card.base_url}/categoryFilesSmall/{CATEGORY}_5.json.gz",
        META: f"{card.base_url}/metaFiles2/{META}",
    }
    assert amazon.urls(card)[REVIEWS] == f"{card.base_url}/categoryFiles/{REVIEWS}"


# ---------------------------------------------------------------------------------------------
# The recipe's pieces
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, problem",
    [
        (None, "no_metadata"),
        ("", "no_title"),
        ('Kite <span id="x">new</span>', "html_title"),
        ("&quot;X&quot;", "title_too_short"),
        ("   ", "title_too_short"),
        ('" "', "title_too_short"),
        ("Go", None),
        (" ".join(["w"] * 20), None),
        (" ".join(["w"] * 21), "title_too_long"),
        ("a  b " + " ".join(["w"] * 17), None),  # 20 parts on " "
        ("a  b " + " ".join(["w"] * 18), "title_too_long"),  # 21 parts: D3 splits on single spaces
        ("&quot;Toy&quot; &amp; More", None),
    ],
)
def test_title_filter(raw, problem):
    assert d3.title_problem(raw) == problem


@pytest.mark.parametrize(
    "raw, cleaned",
    [
        ("&quot;Green Kite&quot;", "Green Kite"),
        (" &quot;Green Kite&quot; ", "Green Kite"),
        ("Puzzle &amp; Game", "Puzzle & Game"),
        ("12&quot; Doll", '12" Doll'),
        ("  Red Ball  ", "Red Ball"),
        ('"Quoted" Title', 'Quoted" Title'),
    ],
)
def test_clean_title(raw, cleaned):
    assert d3.clean_title(raw) == cleaned


def test_k_core_needs_more_than_one_pass():
    import pandas as pd

    # k = 2. Pass 1 removes user w (1 review); item b then has 1 review, pass 2 removes it; user x
    # then has 1 review, pass 3 removes x; item a then has 2 reviews and stays.
    frame = pd.DataFrame(
        [("w", "b"), ("x", "b"), ("x", "a"), ("u", "a"), ("u", "c"), ("v", "a"), ("v", "c")],
        columns=["user", "item"],
    ).assign(time=0)
    out, ok = d3.k_core(frame, 2)
    assert ok
    assert sorted(map(tuple, out[["user", "item"]].to_numpy().tolist())) == [("u", "a"), ("u", "c"), ("v", "a"), ("v", "c")]
    # the items rule counts items at the start of every pass: 3 at the first, 2 at the last
    assert d3.k_core(frame, 2, min_items=3)[1] is False
    assert d3.k_core(frame, 2, min_items=2)[1] is True


def test_window_bounds_are_utc_and_inclusive():
    assert d3.window_bounds(2017, "2018-11-01") == (ts("2017-10-01"), ts("2018-11-01"))
    assert d3.window_bounds(2017, "2018-11-01") == (1506816000, 1541030400)


def test_repeated_metadata_lines_follow_d3(tmp_path):
    """The real metadata repeats ASINs: an ASIN with any unusable title line is rejected (as D3's
    remove set does); otherwise its last title wins."""
    path = write_jsonl_gz(
        tmp_path / "meta.json.gz",
        [
            meta("P1", "Good First"),
            meta("P1", MISSING),  # good then missing: rejected
            meta("P2", MISSING),
            meta("P2", "Good Later"),  # missing then good: rejected
            meta("P3", "Old Name"),
            meta("P3", "New Name"),  # both good: the last wins
            meta("P4", "<span id='a'>x</span>"),
            meta("P4", "Fine"),  # html then good: rejected
        ],
    )
    titles, counts = amazon.read_titles(path)
    assert counts["meta_read"] == 4
    assert d3.title_problem(titles["P1"]) == "no_title"
    assert d3.title_problem(titles["P2"]) == "no_title"
    assert titles["P3"] == "New Name"
    assert d3.title_problem(titles["P4"]) == "html_title"


# ---------------------------------------------------------------------------------------------
# The split hash
# ---------------------------------------------------------------------------------------------
def test_split_hash_is_stable_and_follows_the_content(tiny):
    first = prepare(NAME, raw_dir=tiny)["split_hash"]
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny), "--force")
    assert result.exit_code == 0, text
    assert load_split(NAME).hash == first

    # the line order of the raw file does not matter: every ordering rule is total
    lines = review_lines()
    random.Random(5).shuffle(lines)
    write_jsonl_gz(tiny / REVIEWS, lines)
    assert prepare(NAME, raw_dir=tiny, force=True)["split_hash"] == first

    # one review one day earlier (U5's last, 2018-11-01 -> 2018-10-31) changes it
    changed = [
        dict(line, unixReviewTime=ts("2018-10-31"))
        if isinstance(line, dict) and line.get("unixReviewTime") == ts("2018-11-01")
        else line
        for line in review_lines()
    ]
    assert changed != review_lines()
    write_jsonl_gz(tiny / REVIEWS, changed)
    manifest = prepare(NAME, raw_dir=tiny, force=True)
    assert manifest["split_hash"] != first
    assert manifest["counts"] == COUNTS


def test_prepared_split_is_reused_without_force(tiny):
    first = prepare(NAME, raw_dir=tiny)
    (tiny / REVIEWS).unlink()  # not read again
    assert prepare(NAME, raw_dir=tiny) == first


# ---------------------------------------------------------------------------------------------
# Bad input: one clear sentence, exit code 2, never a traceback
# ---------------------------------------------------------------------------------------------
def test_truncated_gzip(tiny):
    data = (tiny / REVIEWS).read_bytes()
    (tiny / REVIEWS).write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match="truncated"):
        prepare(NAME, raw_dir=tiny)
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert_clean_error(result, text, "truncated", REVIEWS)


def test_empty_file(tiny):
    (tiny / META).write_bytes(b"")
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert_clean_error(result, text, "empty", META)


def test_not_a_gzip_file(tiny):
    (tiny / REVIEWS).write_text("this is not gzip\n")
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert_clean_error(result, text, "not a valid gzip file")


def test_file_without_a_usable_line(tiny):
    write_jsonl_gz(tiny / REVIEWS, ["{broken", '{"asin": "A1"}'])
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert_clean_error(result, text, "no usable review")


def test_malformed_lines_and_missing_titles_are_skipped_and_counted(tiny):
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tiny))
    assert result.exit_code == 0, text
    dropped = load_split(NAME).manifest["dropped"]
    assert dropped["malformed_review_lines"] == 2
    assert dropped["malformed_meta_lines"] == 1
    assert dropped["items_no_title"] == 2


def test_unknown_dataset_suggests_close_names(tiny):
    with pytest.raises(BenchError, match="Did you mean toys"):
        prepare("toyz")
    result, text = invoke("data", "prepare", "toyz")
    assert_clean_error(result, text, "Unknown dataset 'toyz'", "Did you mean toys")
    result, text = invoke("data", "stats", "tinytoy")
    assert_clean_error(result, text, f"Did you mean {NAME}")


def test_stats_of_an_unprepared_dataset(tiny):
    result, text = invoke("data", "stats", NAME, "--json")
    assert_clean_error(result, text, f"bench data prepare {NAME}")


def test_missing_raw_files_without_network(tiny, tmp_path):
    empty = tmp_path / "nothing_here"
    with pytest.raises(BenchError, match="--raw-dir"):
        prepare(NAME, raw_dir=empty)
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(empty))
    assert_clean_error(result, text, "Cannot reach", "--raw-dir")
    assert not list(empty.glob("*.json.gz"))


def test_card_without_base_url(tiny, tmp_path):
    set_card("base_url", "")
    result, text = invoke("data", "prepare", NAME, "--raw-dir", str(tmp_path / "nothing_here"))
    assert_clean_error(result, text, "base_url", "--raw-dir")


# ---------------------------------------------------------------------------------------------
# Download: resume with Range, restart when Range is ignored, refused connections
# ---------------------------------------------------------------------------------------------
PAYLOAD = random.Random(0).randbytes(300_001)


@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1 serving PAYLOAD at /file.json.gz, honouring `Range: bytes=N-`.
    mode "ignore-range" answers 200 with the whole file; "cut" sends half the body and hangs up."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    state = {"mode": "range", "ranges": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            rng = self.headers.get("Range")
            state["ranges"].append(rng)
            if self.path != "/file.json.gz":
                self.send_error(404)
                return
            start = 0
            if rng and state["mode"] != "ignore-range":
                start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
                if start >= len(PAYLOAD):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            else:
                self.send_response(200)
            body = PAYLOAD[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if state["mode"] == "cut" else body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_download_resumes_a_partial_file(server, tmp_path):
    dest = tmp_path / "raw" / "file.json.gz"
    dest.parent.mkdir()
    half = len(PAYLOAD) // 2
    dest.with_name("file.json.gz.part").write_bytes(PAYLOAD[:half])
    assert amazon.download(f"{server['url']}/file.json.gz", dest, chunk=4096) == dest
    assert dest.read_bytes() == PAYLOAD
    assert server["ranges"] == [f"bytes={half}-"]
    assert not dest.with_name("file.json.gz.part").exists()


def test_download_interrupted_then_resumed(server, tmp_path):
    dest = tmp_path / "file.json.gz"
    server["mode"] = "cut"
    with pytest.raises(BenchError, match="run the same command again"):
        amazon.download(f"{server['url']}/file.json.gz", dest)
    part = dest.with_name("file.json.gz.part")
    assert not dest.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    have = part.stat().st_size
    server["mode"] = "range"
    amazon.download(f"{server['url']}/file.json.gz", dest)
    assert dest.read_bytes() == PAYLOAD
    assert server["ranges"] == [None, f"bytes={have}-"]


def test_download_starts_over_when_the_server_ignores_range(server, tmp_path):
    dest = tmp_path / "file.json.gz"
    dest.with_name("file.json.gz.part").write_bytes(b"stale bytes")
    server["mode"] = "ignore-range"
    amazon.download(f"{server['url']}/file.json.gz", dest)
    assert dest.read_bytes() == PAYLOAD
    assert server["ranges"] == ["bytes=11-"]


def test_download_of_a_complete_part_file(server, tmp_path):
    dest = tmp_path / "file.json.gz"
    dest.with_name("file.json.gz.part").write_bytes(PAYLOAD)
    amazon.download(f"{server['url']}/file.json.gz", dest)
    assert dest.read_bytes() == PAYLOAD
    assert server["ranges"] == [f"bytes={len(PAYLOAD)}-"]


def test_download_errors_point_to_raw_dir(server, tmp_path):
    with pytest.raises(BenchError, match="HTTP 404.*--raw-dir"):
        amazon.download(f"{server['url']}/missing.json.gz", tmp_path / "missing.json.gz")
    with pytest.raises(BenchError, match="Cannot reach.*--raw-dir"):
        amazon.download(f"http://127.0.0.1:{closed_port()}/file.json.gz", tmp_path / "file.json.gz")
    assert not (tmp_path / "file.json.gz").exists()


def test_prepare_downloads_missing_files_into_raw_dir(tiny, tmp_path):
    """With base_url pointing at a local server, the two files are fetched into --raw-dir."""
    files = {f"/categoryFiles/{REVIEWS}": (tiny / REVIEWS).read_bytes(), f"/metaFiles2/{META}": (tiny / META).read_bytes()}
    served = []

    class Files(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        set_card("base_url", f"http://127.0.0.1:{httpd.server_address[1]}/")
        raw = tmp_path / "fresh_raw"
        manifest = prepare(NAME, raw_dir=raw)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert sorted(served) == sorted(files)
    assert (raw / REVIEWS).read_bytes() == files[f"/categoryFiles/{REVIEWS}"]
    assert_hand_manifest(manifest)


# ---------------------------------------------------------------------------------------------
# MovieLens-100k from RecBole's wheel
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(tmp_path_factory.mktemp("ml100k")))
        mp.delenv("BENCH_CARDS_DIR", raising=False)
        manifest = prepare("ml-100k")
        split = load_split("ml-100k")
    return manifest, split


def ml100k_by_hand():
    """An independent reading of RecBole's files: iterative 5-core, titles "Name (year)", users and
    items ordered as protocol.md says. Returns (kept interactions per user, title per raw item)."""
    folder = movielens.ml100k_folder()
    with open(folder / "ml-100k.inter", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        assert header[:4] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
        inter = [(u, i, int(float(t))) for u, i, _, t in reader]
    with open(folder / "ml-100k.item", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        titles = {i: f"{name} ({year})" for i, name, year, *_ in reader}
    while True:
        users, items = Counter(u for u, _, _ in inter), Counter(i for _, i, _ in inter)
        kept = [r for r in inter if users[r[0]] >= 5 and items[r[1]] >= 5]
        if len(kept) == len(inter):
            break
        inter = kept
    per_user = defaultdict(list)
    for u, i, t in inter:
        per_user[u].append((t, i))
    return {u: sorted(seq) for u, seq in per_user.items()}, titles


def test_ml100k_counts(ml100k):
    manifest, split = ml100k
    per_user, titles = ml100k_by_hand()
    raw_items = {i for seq in per_user.values() for _, i in seq}
    n_interactions = sum(len(seq) for seq in per_user.values())
    n = n_interactions - len(per_user)
    assert len(per_user) == 943
    assert len(raw_items) == 1349 and len({titles[i] for i in raw_items}) == 1340  # 9 ids share a title with another
    assert manifest["counts"] == {
        "users": 943,
        "items": 1340,
        "raw_items": 1349,
        "merged_raw_items": 9,
        "interactions": n_interactions,
        "samples": n,
    }
    assert n == 98344 and n_interactions == 99287
    assert manifest["samples"] == {"train": int(0.8 * n), "valid": int(0.9 * n) - int(0.8 * n), "test": n - int(0.9 * n)}
    assert manifest["samples"] == {"train": 78675, "valid": 9834, "test": 9835}
    assert manifest["window"] == "none" and manifest["window_start_year"] is None
    assert split.n_items == 1340 and split.items.titles == sorted({titles[i] for i in raw_items})
    assert "Toy Story (1995)" in split.items.titles


def test_ml100k_samples_are_prefixes_in_time_order(ml100k):
    _, split = ml100k
    per_user, titles = ml100k_by_hand()
    item_id = {t: k for k, t in enumerate(split.items.titles)}
    user_id = {u: k for k, u in enumerate(sorted(per_user))}
    expected = []
    for u, seq in per_user.items():  # seq sorted by (time, raw item id)
        ids = [item_id[titles[i]] for _, i in seq]
        for p in range(1, len(seq)):
            expected.append((seq[p][0], user_id[u], p, tuple(ids[max(0, p - 10) : p]), ids[p]))
    expected.sort()
    got = rows(split.train) + rows(split.valid) + rows(split.test)
    assert got == [(u, h, t, time) for time, u, _, h, t in expected]
    assert max(len(h) for _, h, _, _ in got) == 10
    assert min(len(h) for _, h, _, _ in got) == 1
    # no valid or test target is earlier than any train target
    assert split.valid.times.min() >= split.train.times.max()
    assert split.test.times.min() >= split.valid.times.max()
    # sources: every raw item maps to the item of its title
    for k, sources in enumerate(split.items.sources):
        assert sources and all(titles[s] == split.items.titles[k] for s in sources)


def test_ml100k_through_the_cli(tmp_path):
    result, text = invoke("data", "prepare", "ml-100k")
    assert result.exit_code == 0, text
    result = CliRunner().invoke(app, ["data", "stats", "ml-100k", "--json"])
    manifest = json.loads(result.stdout)
    assert manifest["counts"]["users"] == 943 and manifest["counts"]["items"] == 1340
    assert set(manifest) >= {"counts", "window", "dropped", "split_hash", "samples"}
    result, text = invoke("data", "list")
    assert result.exit_code == 0 and "ml-100k" in text and "yes" in text


def test_ml100k_from_a_raw_dir(tmp_path):
    """--raw-dir replaces the wheel's copy: 6 users x 5 movies, all rated at distinct times."""
    raw = tmp_path / "ml"
    raw.mkdir()
    movies = {
        "10": ("Heat", "1995"),
        "11": ("Alien", "1979"),
        "12": ("Fargo", "1996"),
        "13": ("Brazil", "1985"),
        "14": ("Ran", "1985"),
    }
    (raw / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{i}\t{t}\t{y}\tDrama\n" for i, (t, y) in movies.items())
    )
    lines = [f"{u}\t{i}\t4\t{1000 * u + k}\n" for u in range(1, 7) for k, i in enumerate(movies)]
    (raw / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(lines))
    result, text = invoke("data", "prepare", "ml-100k", "--raw-dir", str(raw))
    assert result.exit_code == 0, text
    manifest = load_split("ml-100k").manifest
    assert manifest["counts"]["users"] == 6 and manifest["counts"]["items"] == 5
    assert manifest["samples"] == {"train": 19, "valid": 2, "test": 3}  # 24 samples: int(19.2), int(21.6)
    assert manifest["raw_files"]["interactions"] == str(raw / "ml-100k.inter")
    assert load_split("ml-100k").items.titles == ["Alien (1979)", "Brazil (1985)", "Fargo (1996)", "Heat (1995)", "Ran (1985)"]

    other = tmp_path / "elsewhere"
    other.mkdir()
    result, text = invoke("data", "prepare", "ml-100k", "--raw-dir", str(other))  # prepared from raw already
    assert_clean_error(result, text, "already prepared from", "add --force to rebuild it from")
    result, text = invoke("data", "prepare", "ml-100k", "--raw-dir", str(raw))  # the same folder: nothing to do
    assert result.exit_code == 0, text

    (raw / "ml-100k.item").unlink()
    result, text = invoke("data", "prepare", "ml-100k", "--raw-dir", str(raw), "--force")
    assert_clean_error(result, text, "ml-100k.item does not exist", "--raw-dir")
    assert load_split("ml-100k").manifest["counts"]["users"] == 6  # the prepared split is untouched


def test_split_tables_round_trip_awkward_titles(tmp_path):
    import numpy as np

    from bench.data.cards import DatasetCard
    from bench.data.split import Catalogue, Samples, read_split, write_split

    titles = ['12" Doll', "a\tb", "line\nbreak", "NA", "null", "#hash", "  lead", "trail  ", '"q"x', "1e5", "007", "back\\slash"]
    items = Catalogue(titles=titles, sources=[[f"B{i:09d}"] for i in range(len(titles))])
    part = Samples(users=np.array([0, 1]), histories=[(1, 2), (11,)], targets=np.array([3, 0]), times=np.array([5, 6]))
    digest = write_split(tmp_path / "x", items, {"train": part, "valid": part, "test": part}, {"dataset": "x"})
    split = read_split(tmp_path / "x", DatasetCard(name="x", source="amazon2018"))
    assert split.items.titles == titles and split.items.sources == items.sources
    assert rows(split.test) == [(0, (1, 2), 3, 5), (1, (11,), 0, 6)]
    assert split.hash == digest
