"""Probes of the store and the command line that once ended in tracebacks, replayed: a read-only
results or data folder (a read-only bind mount, as a shared cluster volume), a full disk (a small
tmpfs), damaged arrays, hand-edited run records, leftovers of killed saves and bad options. Each
ends in exit 0 or in one sentence with exit code 2, and loses nothing stored."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import prepare_ml100k
from test_store import assert_one_sentence_error, cli

from bench import paths
from bench.store import RunStore

POP = ["run", "--methods", "pop", "--dataset", "ml-100k", "--limit-test", "20", "--device", "cpu"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """ml-100k prepared once for the module; each test copies it."""
    return prepare_ml100k(tmp_path_factory, "reliability-data")


@pytest.fixture
def stored(prepared, monkeypatch) -> RunStore:
    """A results folder holding one pop run of ml-100k (20 test samples), and its data."""
    shutil.copytree(prepared, paths.data_dir(), dirs_exist_ok=True)
    code, text, _ = cli(monkeypatch, POP)
    assert code == 0, text
    return RunStore()


def run_folder(store: RunStore) -> Path:
    (run,) = store.runs("ml-100k")
    return run.folder


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this machine cannot mount here (mount {' '.join(args)}: {done.stderr.strip()})")


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` bind-mounted read-only onto itself for the block."""
    mount("--bind", str(folder), str(folder))
    try:
        mount("-o", "remount,bind,ro", str(folder))
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def assert_sentence_or_success(code: int, text: str, result) -> None:
    if code != 0:
        assert_one_sentence_error(code, text, result)
    assert "Traceback" not in text, text


# ---- a read-only results or data folder ---------------------------------------------------------------


def test_a_read_only_results_folder_is_read_and_refused_in_one_sentence(stored, monkeypatch, tmp_path):
    results = paths.results_dir()
    leftover = results / ".work" / "0123456789abcdef"
    leftover.mkdir(parents=True)
    before = sorted(p.relative_to(results) for p in results.rglob("*"))
    with read_only(results):
        # reading commands work, writing elsewhere works
        for args in (["runs"], ["jobs", "-d", "ml-100k"], ["leaderboard", "--out-dir", str(tmp_path / "board")],
                     ["report", "--out-dir", str(tmp_path / "page")], ["data", "list"]):  # fmt: skip
            code, text, _ = cli(monkeypatch, args)
            assert code == 0 and "Traceback" not in text, (args, text)
        assert (tmp_path / "board" / "ml-100k.md").is_file()
        # writing into it: one sentence naming the read-only file system
        for args in (["leaderboard"], POP + ["--seeds", "1"], POP + ["--force"]):
            code, text, result = cli(monkeypatch, args)
            sentence = assert_one_sentence_error(code, text, result)
            assert "read-only" in sentence and "Nothing stored was lost" in sentence, sentence
        # prune says what it could not remove, and claims nothing it did not do
        code, text, result = cli(monkeypatch, ["runs", "--prune"])
        sentence = assert_one_sentence_error(code, text, result)
        assert "could not be removed" in sentence and str(leftover) in sentence and "removed:" not in text
    assert sorted(p.relative_to(results) for p in results.rglob("*")) == before  # nothing lost, nothing half-written
    assert RunStore().runs("ml-100k")[0].arrays()["rank"].shape == (20,)


def test_a_read_only_data_folder_is_read_and_refused_in_one_sentence(stored, monkeypatch):
    with read_only(paths.data_dir()):
        code, text, _ = cli(monkeypatch, POP + ["--seeds", "2"])  # reading a prepared split is enough
        assert code == 0 and "Traceback" not in text, text
        code, text, result = cli(monkeypatch, ["data", "prepare", "ml-100k", "--force"])
        assert "read-only" in assert_one_sentence_error(code, text, result)
    code, text, _ = cli(monkeypatch, ["data", "stats", "ml-100k"])
    assert code == 0, text


# ---- a full disk ------------------------------------------------------------------------------------------


def test_a_full_disk_is_one_sentence_and_keeps_what_is_stored(stored, monkeypatch, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small))
    try:
        shutil.copytree(paths.results_dir(), small / "results")
        monkeypatch.setenv("BENCH_RESULTS_DIR", str(small / "results"))
        filler = small / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 4096)
        for args in (POP + ["--seeds", "3"], ["leaderboard"]):
            code, text, result = cli(monkeypatch, args)
            sentence = assert_one_sentence_error(code, text, result)
            assert "full" in sentence and "Nothing stored was lost" in sentence, sentence
        (run,) = RunStore(small / "results").runs("ml-100k")
        assert run.arrays()["rank"].shape == (20,)
        filler.unlink()
        code, text, _ = cli(monkeypatch, POP + ["--seeds", "3"])  # space again: the same command finishes
        assert code == 0, text
        assert len(RunStore(small / "results").runs("ml-100k")) == 2
        assert not list((small / "results" / "runs").rglob("*.tmp*"))  # the failed save left nothing behind
    finally:
        subprocess.run(["umount", str(small)], check=True)


# ---- damaged arrays and hand-edited records ---------------------------------------------------------


def _test_arrays(folder: Path) -> Path:
    """The test arrays run.json names (per_sample.npz until the run is replaced in place)."""
    return folder / json.loads((folder / "run.json").read_text()).get("arrays", {}).get("test", "per_sample.npz")


def _truncate(folder: Path) -> None:
    npz = _test_arrays(folder)
    npz.write_bytes(npz.read_bytes()[:200])


def _corrupt_deflate(folder: Path) -> None:
    """Flip bytes inside a compressed member: the zip directory reads, inflating fails (zlib)."""
    npz = _test_arrays(folder)
    data = bytearray(npz.read_bytes())
    with zipfile.ZipFile(npz) as z:
        info = z.getinfo("rank.npy")
    name_len, extra_len = (
        int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
        int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
    )  # the local header's own lengths (its extra field may differ from the central directory's)
    start = info.header_offset + 30 + name_len + extra_len
    data[start : start + info.compress_size] = b"\xff" * info.compress_size
    npz.write_bytes(bytes(data))


def _edit(field, value):
    def edit(folder: Path) -> None:
        record = json.loads((folder / "run.json").read_text())
        record[field] = value
        (folder / "run.json").write_text(json.dumps(record))

    return edit


@pytest.mark.parametrize(
    "damage, reason",
    [
        (_truncate, "per_sample.npz cannot be read: BadZipFile"),
        (_corrupt_deflate, "per_sample.npz cannot be read: error"),
        (_edit("n_test", "abc"), "run.json field n_test is 'abc', not a whole number"),
        (_edit("seed", "x"), "run.json field seed is 'x', not a whole number"),
        (_edit("metrics", None), "run.json field metrics is None, not a mapping of metric values"),
    ],
    ids=["truncated-npz", "corrupt-deflate", "n_test-text", "seed-text", "metrics-null"],
)
def test_a_damaged_run_is_named_by_every_command_then_pruned_and_recomputed(stored, monkeypatch, tmp_path, damage, reason):
    folder = run_folder(stored)
    damage(folder)
    for args in (["runs"], ["leaderboard", "--out-dir", str(tmp_path / "b")], ["report", "--out-dir", str(tmp_path / "r")]):
        code, text, result = cli(monkeypatch, args)
        assert_sentence_or_success(code, text, result)
        assert reason in text.replace("\n", " "), (args, text)
    code, text, result = cli(monkeypatch, POP)  # the same command recomputes it in place
    assert code == 0 and "damaged" in text and "Traceback" not in text, text
    assert stored.runs("ml-100k")[0].folder == folder
    damage(folder)
    code, text, _ = cli(monkeypatch, ["runs", "--prune"])
    assert code == 0 and f"removed: Stored run {folder} is damaged" in text.replace("\n", ""), text
    assert not folder.exists() and stored.scan("ml-100k") == ([], [])


# ---- leftovers of killed saves and preparations -----------------------------------------------------


def test_leftover_files_of_a_killed_save_are_listed_and_pruned(stored, monkeypatch):
    folder = run_folder(stored)
    tmp_file = folder / ".per_sample.npz.k1ll3d.tmp"  # atomic_file's temporary name
    orphan = folder / "per_sample.0123456789ab.npz"  # arrays of a --force save killed before run.json
    half_prepared = paths.data_dir() / ".ml-100k.tmp-x1y2z3"  # atomic_dir's temporary folder
    for path in (tmp_file, orphan):
        path.write_bytes(b"partial")
    half_prepared.mkdir()
    code, text, _ = cli(monkeypatch, ["runs"])
    assert code == 0, text
    for path in (tmp_file, orphan, half_prepared):
        assert f"leftover: {path}" in text.replace("\n", ""), text
    code, text, _ = cli(monkeypatch, ["runs", "--prune"])
    assert code == 0 and not tmp_file.exists() and not orphan.exists() and not half_prepared.exists(), text
    assert stored.runs("ml-100k")[0].arrays()["rank"].shape == (20,)  # the run itself is untouched
    code, text, _ = cli(monkeypatch, ["runs"])
    assert "No damaged run and no leftover file or folder." in text


# ---- bad options and bad inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, expected",
    [
        (POP + ["--seeds", "-1"], "--seeds holds -1; seeds are whole numbers from 0"),
        (POP + ["--subset-seed", "-1"], "A subset seed is a whole number from 0, not -1"),
        (POP + ["--history", ""], "--history names no condition"),
        (["run", "--methods", "sasrec", "--set", "sasrec.n_heads=0"], "Method 'sasrec': n_heads must be at least 1, not 0"),
        (
            ["run", "--methods", "sasrec", "--set", "sasrec.extra=n_layer=3"],
            "which RecBole does not know (did you mean n_layers?)",
        ),
    ],
)
def test_bad_options_are_one_sentence(monkeypatch, args, expected):
    code, text, result = cli(monkeypatch, args)
    assert expected in assert_one_sentence_error(code, text, result)


@pytest.mark.parametrize("option", ["--data-dir", "--results-dir", "--out-dir"])
def test_a_folder_option_naming_a_file_is_one_sentence(stored, monkeypatch, tmp_path, option):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    if option == "--out-dir":
        args = ["leaderboard", "--out-dir", str(a_file)]
    else:
        args = [option, str(a_file), *POP, "--seeds", "4"]
        monkeypatch.delenv("BENCH_DATA_DIR" if option == "--data-dir" else "BENCH_RESULTS_DIR")
    code, text, result = cli(monkeypatch, args)
    sentence = assert_one_sentence_error(code, text, result)
    assert str(a_file) in sentence and "a file is in the way" in sentence, sentence


def test_review_times_json_allows_but_no_clock_reads_are_skipped_and_counted(tmp_path):
    from amazon_fixture import review, write_jsonl_gz

    from bench.data.amazon import read_reviews

    lines = [review("u1", "a1", "2019-01-01"), review("u2", "a2", "2019-01-02")]
    odd = [dict(lines[0], unixReviewTime=v) for v in (float("inf"), float("-inf"), float("nan"), 10**30, "1546300800")]
    path = write_jsonl_gz(tmp_path / "Toys.json.gz", lines + odd)
    frame, counts = read_reviews(path)
    assert frame["user"].tolist() == ["u1", "u2"] and counts["reviews_missing_fields"] == 5
