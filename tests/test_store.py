"""The run store and prepared data under concurrency, damage and failure: several processes
preparing one dataset or computing one run key, many writers replacing one key while it is read,
saves that fail half way, damaged stored runs (reported, recomputed, pruned), a read-only results
folder, odd labels and names printed literally, and option values refused in one sentence."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from conftest import make_split, prepare_ml100k
from rich.console import Console
from typer.testing import CliRunner

import bench.cli
from bench import paths, registry
from bench.errors import BenchError
from bench.plan import plan_methods
from bench.record import RunRecord
from bench.request import Evaluation, RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore, array_file, check_run
from bench.subsets import SampleChoice

ML100K_HASH = "ee9944b31294ccae"  # the known content hash of the prepared ml-100k split


# --- helpers ------------------------------------------------------------------------------------


def squeeze(text: str) -> str:
    """`text` without any whitespace: rich may wrap a long sentence (and fold a long path) anywhere."""
    return re.sub(r"\s+", "", text)


def quiet_console(width: int = 1000) -> tuple[Console, StringIO]:
    buf = StringIO()
    return Console(file=buf, width=width, color_system=None), buf


def cli(monkeypatch, args: list[str], width: int = 1000):
    """Invoke `bench ARGS` in-process with bench.cli.console writing to a string; (exit code, text, result)."""
    console, buf = quiet_console(width)
    monkeypatch.setattr(bench.cli, "console", console)
    result = CliRunner().invoke(bench.cli.app, args)
    return result.exit_code, buf.getvalue() + result.output, result


def assert_one_sentence_error(code: int, text: str, result) -> str:
    """Exit 2, no traceback, and exactly one `error:` line holding one sentence; returns that sentence."""
    assert code == 2, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in text and "MarkupError" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    sentence = errors[0][len("error:") :].strip()
    assert sentence.endswith("."), sentence
    return sentence


def bench_process(args: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m bench.cli ARGS` in a fresh process with the test's environment (BENCH_* folders)."""
    env = dict(os.environ, COLUMNS="200", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[int, str]]:
    out = []
    for proc in procs:
        text, _ = proc.communicate(timeout=timeout)
        out.append((proc.returncode, text))
    return out


def run_quietly(methods, seeds, store, split=None, **request) -> tuple[list, str]:
    console, buf = quiet_console()
    records = run_benchmark(
        RunRequest(methods, "tiny", seeds, device="cpu", **request),
        split=split or make_split(),
        store=store,
        console=console,
        show_progress=False,
    )
    return records, buf.getvalue()


def pop_key(split, seed: int = 0) -> str:
    return Evaluation().key(plan_methods(["pop"])[0], split.hash, seed)


def run_folders(store: RunStore, dataset: str, method: str) -> list[Path]:
    base = store.root / "runs" / dataset / method
    return sorted(base.iterdir()) if base.is_dir() else []


@pytest.fixture(scope="module")
def ml100k_dir(tmp_path_factory) -> Path:
    """A data folder with ml-100k prepared once for the module (read only by the tests using it)."""
    return prepare_ml100k(tmp_path_factory, "ml100k-data")


# --- 1. several processes prepare one dataset ---------------------------------------------------


def test_concurrent_prepare_processes_all_succeed_and_leave_one_verified_split(tmp_path):
    from bench.data.prepare import load_split

    work = tmp_path / "cwd"
    work.mkdir()
    procs = [bench_process(["data", "prepare", "ml-100k"], work) for _ in range(3)]
    for code, text in finish(procs):
        assert code == 0, text
        assert "Traceback" not in text
    split = load_split("ml-100k")  # re-hashes the four tables against the manifest
    assert split.hash == ML100K_HASH
    data = paths.data_dir()
    assert sorted(p.name for p in data.iterdir()) == [".ml-100k.lock", "ml-100k"]
    assert sorted(p.name for p in (data / "ml-100k").iterdir()) == [
        "items.tsv", "manifest.json", "test.tsv", "train.tsv", "valid.tsv"
    ]  # fmt: skip


# --- 2. an edited split is refused, and --force repairs it ----------------------------------------


def test_edited_split_is_refused_in_one_sentence_and_force_repairs_it(tmp_path, monkeypatch, ml100k_dir):
    import shutil

    from bench.data.prepare import load_split

    shutil.copytree(ml100k_dir / "ml-100k", paths.data_dir() / "ml-100k")
    folder = paths.data_dir() / "ml-100k"
    train = folder / "train.tsv"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-1]))  # drop the last training sample

    with pytest.raises(BenchError) as info:
        load_split("ml-100k")
    msg = str(info.value)
    assert "\n" not in msg and msg.endswith(".")
    assert str(folder) in msg and "bench data prepare ml-100k --force" in msg

    # without --force, prepare refuses the same way (it does not silently use or rebuild it)
    code, text, result = cli(monkeypatch, ["data", "prepare", "ml-100k"])
    sentence = assert_one_sentence_error(code, text, result)
    assert str(folder) in sentence and "--force" in sentence

    code, text, result = cli(monkeypatch, ["data", "prepare", "ml-100k", "--force"])
    assert code == 0, text
    assert load_split("ml-100k").hash == ML100K_HASH
    assert sorted(p.name for p in paths.data_dir().iterdir()) == [".ml-100k.lock", "ml-100k"]


# --- 3. two identical `bench run` processes -----------------------------------------------------


def test_two_identical_run_processes_store_exactly_one_complete_run(tmp_path, monkeypatch, ml100k_dir):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    work = tmp_path / "cwd"
    work.mkdir()
    args = ["run", "--methods", "pop", "--dataset", "ml-100k", "--limit-test", "50", "--device", "cpu"]
    procs = [bench_process(args, work) for _ in range(2)]
    outcomes = []
    for code, text in finish(procs):
        assert code == 0, text
        assert "Traceback" not in text
        outcomes.append("stored already" if "pop seed 0: stored already" in text else "computed")
    assert sorted(outcomes) == ["computed", "stored already"], outcomes  # computed once, never twice
    store = RunStore()
    folders = run_folders(store, "ml-100k", "pop")
    assert len(folders) == 1 and not folders[0].name.startswith("."), folders
    record, problem = check_run(folders[0])
    assert problem is None and record.n_test == 50
    leftovers = [p for p in (store.root / "runs").rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert leftovers == []
    assert store.leftovers() == []
    assert not any((store.root / ".work").iterdir())


# --- 4. the key lock, in process ------------------------------------------------------------------


def test_key_lock_held_elsewhere_skip_skips_and_wait_waits_then_stores(tmp_path):
    split = make_split()
    store = RunStore(tmp_path / "res")
    key = pop_key(split)
    lock = store.lock(key)
    lock.acquire()
    try:
        records, out = run_quietly(["pop"], [0], store, split=split, busy="skip")
        assert records == []
        assert "run pop seed 0 is being computed by another process; skipped" in out
        assert "1 run(s) were being computed by other processes and were skipped" in out
        assert store.find("tiny", "pop", key) == (None, None)
        assert store.busy(key)

        console, buf = quiet_console()
        done: dict = {}

        def wait_for_it():
            try:
                done["records"] = run_benchmark(
                    RunRequest(["pop"], "tiny", [0], device="cpu", busy="wait"),
                    split=split,
                    store=store,
                    console=console,
                    show_progress=False,
                )
            except BaseException as exc:  # reported to the test below
                done["error"] = exc

        thread = threading.Thread(target=wait_for_it)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), done  # still waiting for the lock
        assert store.find("tiny", "pop", key) == (None, None)
        assert "run pop seed 0 is being computed by another process; waiting for it" in buf.getvalue()
    finally:
        lock.release()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in done, done.get("error")
    assert [r.key for r in done["records"]] == [key]
    run, damaged = store.find("tiny", "pop", key)
    assert damaged is None and run is not None and len(run.arrays()["rank"]) == len(split.test)
    assert not store.busy(key)


# --- 5. many writers on one key -------------------------------------------------------------------

N_WRITERS, N_SAVES, N_TEST = 3, 60, 200
KEY = "k" * 16

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from bench.record import RunRecord
    from bench.store import RunStore

    root, writer, n_saves, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store = RunStore(root)
    for i in range(n_saves):
        tag = writer * 1000 + i
        record = RunRecord(key="k" * 16, method="pop", dataset="tiny", split_hash="0" * 16, seed=0, n_test=n,
                           metrics={"NDCG@10": 0.0}, label="pop", info={"tag": tag})
        arrays = dict(sample_index=np.arange(n, dtype=np.int64), rank=np.full(n, tag, dtype=np.int64),
                      topk=np.full((n, 50), -1, dtype=np.int32), invalid=np.zeros(n, dtype=np.int32))
        store.save(record, arrays)
    print("done", writer)
    """
)


def test_many_writers_on_one_key_keep_one_complete_run_found_and_end_clean(tmp_path):
    root = tmp_path / "res"
    store = RunStore(root)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(w), str(N_SAVES), str(N_TEST)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for w in range(1, N_WRITERS + 1)
    ]
    reads, problems, landed = 0, [], False
    deadline = time.monotonic() + 120
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        run, damaged = store.find("tiny", "pop", KEY)
        if run is None and damaged is None:
            if landed:
                problems.append("the run vanished")
            continue
        landed = True
        reads += 1
        if damaged is not None:
            problems.append(damaged.reason)  # a healthy run reported damaged while being replaced
            continue
        assert run.record.n_test == N_TEST
        try:
            arrays = run.arrays()
        except FileNotFoundError as exc:
            problems.append(f"arrays lost while being replaced: {exc}")
            continue
        ranks = arrays["rank"]
        if len(ranks) != N_TEST or len(arrays["sample_index"]) != N_TEST or len(set(ranks.tolist())) != 1:
            problems.append(f"incomplete or mixed arrays: {len(ranks)} ranks, values {sorted(set(ranks.tolist()))[:3]}")
    for w in writers:
        text, _ = w.communicate(timeout=60)
        assert w.returncode == 0, text
        assert "Traceback" not in text
    assert reads > 0, "the test never saw the run while it was being written"
    assert problems == [], f"{len(problems)} of {reads} reads failed, first: {problems[:3]}"

    folder = store.run_dir("tiny", "pop", KEY)
    record, problem = check_run(folder)
    assert problem is None
    assert sorted(p.name for p in folder.iterdir()) == sorted(["run.json", array_file(record, "test")])
    ranks = RunStore(root).load("tiny", "pop", KEY).arrays()["rank"]
    assert ranks[0] % 1000 == N_SAVES - 1 and ranks[0] == record.info["tag"]  # the last save of some writer
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def _save_tagged(store: RunStore, tag: int, n: int = N_TEST) -> None:
    """What WRITER saves: a run of KEY whose every rank is `tag`."""
    record = RunRecord(key=KEY, method="pop", dataset="tiny", split_hash="0" * 16, seed=0, n_test=n, metrics={"NDCG@10": 0.0},
                       label="pop", info={"tag": tag})  # fmt: skip
    arrays = dict(sample_index=np.arange(n, dtype=np.int64), rank=np.full(n, tag, dtype=np.int64),
                  topk=np.full((n, 50), -1, dtype=np.int32), invalid=np.zeros(n, dtype=np.int32))  # fmt: skip
    store.save(record, arrays)


def _np_load_with_saves(monkeypatch, store: RunStore, before: dict[int, int], after: dict[int, int]) -> None:
    """Patch numpy.load (as bench.store uses it) so that another save of KEY lands right before or
    right after the n-th load: {n: tag}. Each save happens once, so a reader that tries again wins."""
    import bench.store

    real = np.load
    calls = []

    def load(*args, **kwargs):
        calls.append(1)
        n = len(calls)
        if n in before:
            _save_tagged(store, before.pop(n))
        result = real(*args, **kwargs)
        if n in after:
            _save_tagged(store, after.pop(n))
        return result

    monkeypatch.setattr(bench.store.np, "load", load)


def test_arrays_of_a_run_replaced_twice_while_read_are_found(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "res")
    _save_tagged(store, 1)
    _save_tagged(store, 2)  # replaced in place: run.json names its arrays
    run, _ = store.find("tiny", "pop", KEY)
    _save_tagged(store, 3)  # the arrays run.record names are gone
    # arrays(): load #1 fails (gone); check_run reads run.json and loads #2 (save 3's arrays),
    # then save 4 lands before arrays() loads them again
    _np_load_with_saves(monkeypatch, store, before={}, after={2: 4})
    ranks = run.arrays()["rank"]
    assert len(ranks) == N_TEST and set(ranks.tolist()) <= {3, 4}


def test_find_of_a_run_replaced_twice_during_the_check_is_complete(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "res")
    _save_tagged(store, 1)
    _save_tagged(store, 2)
    _np_load_with_saves(monkeypatch, store, before={1: 3, 2: 4}, after={})
    run, damaged = store.find("tiny", "pop", KEY)
    assert damaged is None, damaged.reason
    assert run.arrays()["rank"].tolist() == [4] * N_TEST


# --- 6. a save that fails half way loses nothing ------------------------------------------------


def _stored_pop(tmp_path, valid: bool = True):
    store = RunStore(tmp_path / "res")
    split = make_split()
    kwargs = {"evaluation": Evaluation(valid=SampleChoice())} if valid else {}
    records, _ = run_quietly(["pop"], [0], store, split=split, **kwargs)
    run = store.load("tiny", "pop", records[0].key)
    return store, run.folder, run.record, run.arrays()


@pytest.mark.parametrize("where", ["second-array", "run.json"])
def test_force_save_failing_half_way_keeps_the_old_run_complete_and_unchanged(tmp_path, monkeypatch, where):
    import bench.store

    store, folder, record, arrays = _stored_pop(tmp_path)
    before = (folder / "run.json").read_text()
    new_arrays = dict(arrays, rank=arrays["rank"] + 1)
    new_valid = dict(store.load("tiny", "pop", record.key).arrays("valid"))
    new_record = dataclasses.replace(record, created_at="2099-01-01T00:00:00+00:00")

    if where == "second-array":
        real = np.savez_compressed
        calls = []

        def fail_after_first(*args, **kwargs):
            calls.append(1)
            if len(calls) > 1:
                raise OSError(28, "No space left on device")
            return real(*args, **kwargs)

        monkeypatch.setattr(bench.store.np, "savez_compressed", fail_after_first)
    else:

        def fail(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(bench.store, "write_text", fail)

    with pytest.raises(OSError, match="No space left"):
        store.save(new_record, new_arrays, new_valid)

    assert (folder / "run.json").read_text() == before
    run, damaged = store.find("tiny", "pop", record.key)
    assert damaged is None and run is not None
    assert run.record.created_at == record.created_at
    assert run.arrays()["rank"].tolist() == arrays["rank"].tolist()
    assert check_run(folder) == (run.record, None)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no half-written file


def test_run_force_failing_while_saving_keeps_the_old_run(tmp_path, monkeypatch):
    import bench.store

    store, folder, record, arrays = _stored_pop(tmp_path, valid=False)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bench.store, "write_text", fail)
    with pytest.raises(OSError, match="No space left on device"):  # the command says it in one sentence
        run_quietly(["pop"], [0], store, force=True)
    run, damaged = store.find("tiny", "pop", record.key)
    assert damaged is None and run.record == record
    assert run.arrays()["rank"].tolist() == arrays["rank"].tolist()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the new arrays went with the failure


def test_first_save_failing_leaves_no_folder_and_no_temporary_folder(tmp_path, monkeypatch):
    import bench.store

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    store = RunStore(tmp_path / "res")
    monkeypatch.setattr(bench.store.np, "savez_compressed", fail)
    with pytest.raises(OSError, match="No space left on device"):  # the command says it in one sentence
        run_quietly(["pop"], [0], store)
    assert run_folders(store, "tiny", "pop") == []
    assert store.scan() == ([], [])
    key = pop_key(make_split())
    assert store.leftovers() == [store.root / ".work" / key]  # the run's scratch folder only, for --prune


# --- 7. damaged runs: reported, recomputed, pruned ------------------------------------------------

DAMAGES = {
    "truncated-json": "run.json cannot be read: JSONDecodeError",
    "empty-object": "run.json lacks key, method, dataset, split_hash, seed, n_test, metrics",
    "binary-garbage": "run.json cannot be read: UnicodeDecodeError",
    "npz-missing": "per_sample.npz is missing",
    "short-npz": "per_sample.npz holds 7 samples where run.json says 10",
}


def damage(folder: Path, how: str) -> None:
    npz = folder / array_file(RunRecord.from_json(json.loads((folder / "run.json").read_text())), "test")
    if how == "truncated-json":
        text = (folder / "run.json").read_text()
        (folder / "run.json").write_text(text[: len(text) // 2])
    elif how == "empty-object":
        (folder / "run.json").write_text("{}")
    elif how == "binary-garbage":
        (folder / "run.json").write_bytes(b"\xff\xfe\x00\x9c garbage \x80\x81\xc3")
    elif how == "npz-missing":
        npz.unlink()
    elif how == "short-npz":
        with np.load(npz) as data:
            arrays = {name: data[name][:7] for name in data.files}
        np.savez_compressed(npz, **arrays)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", list(DAMAGES))
def test_damaged_run_is_reported_left_out_recomputed_and_pruned(tmp_path, monkeypatch, how):
    reason = DAMAGES[how]
    store = RunStore()
    split = make_split()
    records, _ = run_quietly(["pop"], [0, 1], store, split=split)
    key = records[0].key
    folder = store.run_dir("tiny", "pop", key)
    good_ranks = store.load("tiny", "pop", key).arrays()["rank"].tolist()
    damage(folder, how)
    sentence = f"Stored run {folder} is damaged ({reason})"

    # the store reports it with its reason
    runs, damaged = store.scan("tiny")
    assert [r.record.seed for r in runs] == [1]
    assert [(d.folder, d.reason) for d in damaged] == [(folder, reason)]
    assert store.find("tiny", "pop", key)[0] is None

    # the leaderboard warns, naming the folder, and builds the table of the good run
    code, text, result = cli(monkeypatch, ["leaderboard", "--dataset", "tiny"], width=200)
    assert code == 0, text
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert squeeze(f"warning: left out of the tables: {sentence}") in squeeze(text)

    # `bench runs` lists it as damaged
    code, text, result = cli(monkeypatch, ["runs", "--dataset", "tiny"])
    assert code == 0, text
    assert f"damaged: {sentence}" in text and "1 stored run(s) of tiny" in text

    # running the same command again recomputes it, says why, and leaves a clean copy
    again, out = run_quietly(["pop"], [0, 1], store, split=split)
    assert f"pop seed 0: the stored copy in {folder} is damaged ({reason}); computing it again" in out
    assert "pop seed 1: stored already" in out
    record, problem = check_run(folder)
    assert problem is None and record.key == key
    assert store.load("tiny", "pop", key).arrays()["rank"].tolist() == good_ranks
    assert sorted(p.name for p in folder.iterdir()) == sorted(["run.json", array_file(record, "test")])
    assert store.scan("tiny")[1] == []

    # damaged again: --prune removes it, an orphan work folder and an interrupted save's folder,
    # but not the work folder of a key another process is computing now
    damage(folder, how)
    again_damaged = store.find("tiny", "pop", key)[1]
    assert again_damaged is not None  # (the arrays now have a replaced-in-place name)
    sentence = again_damaged.sentence().split(";")[0]
    orphan = store.root / ".work" / ("a" * 16)
    computing_key = "b" * 16
    computing = store.root / ".work" / computing_key
    interrupted = folder.parent / f".{'c' * 16}.tmp-x1y2"
    for made in (orphan, computing, interrupted):
        made.mkdir(parents=True)
        (made / "partial.bin").write_bytes(b"x")
    lock = store.lock(computing_key)
    lock.acquire()
    try:
        code, text, result = cli(monkeypatch, ["runs", "--dataset", "tiny"])
        assert code == 0 and f"leftover: {orphan}" in text and f"leftover: {interrupted}" in text, text
        assert str(computing) not in text
        code, text, result = cli(monkeypatch, ["runs", "--prune"])
        assert code == 0, text
        assert f"removed: {sentence}" in text
        assert not folder.exists() and not orphan.exists() and not interrupted.exists()
        assert (computing / "partial.bin").is_file()
        assert [r.record.seed for r in store.runs("tiny")] == [1]
    finally:
        lock.release()
    code, text, result = cli(monkeypatch, ["runs"])
    assert code == 0 and f"leftover: {computing}" in text


def _only_damaged(tmp_path):
    store = RunStore()
    records, _ = run_quietly(["pop"], [0], store)
    folder = store.run_dir("tiny", "pop", records[0].key)
    damage(folder, "empty-object")
    return folder


def test_leaderboard_with_only_damaged_runs_is_one_sentence_exit_2(tmp_path, monkeypatch):
    _only_damaged(tmp_path)
    code, text, result = cli(monkeypatch, ["leaderboard", "--dataset", "tiny"])
    sentence = assert_one_sentence_error(code, text, result)
    assert "tiny" in sentence


def test_leaderboard_with_only_damaged_runs_still_names_them(tmp_path, monkeypatch):
    folder = _only_damaged(tmp_path)
    code, text, result = cli(monkeypatch, ["leaderboard", "--dataset", "tiny"])
    assert code == 2
    assert str(folder) in squeeze(text)


# --- 8. a read-only results folder --------------------------------------------------------------

RUN_ML = ["run", "--methods", "pop", "--dataset", "ml-100k", "--limit-test", "50", "--device", "cpu"]
DENIED = "cannot write /x/y (permission denied)"


def _denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied", "/x/y")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores file modes")
def test_read_only_results_folder_is_one_sentence_and_loses_nothing(tmp_path, monkeypatch, ml100k_dir):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    code, text, _ = cli(monkeypatch, RUN_ML)
    assert code == 0, text
    store = RunStore()
    (folder,) = run_folders(store, "ml-100k", "pop")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    made = [p for p in [store.root, *store.root.rglob("*")] if p.is_dir()]
    for d in made:
        d.chmod(0o555)
    try:
        for args in (RUN_ML[:-4] + ["--seeds", "1"] + RUN_ML[-4:], ["leaderboard", "--dataset", "ml-100k"]):
            code, text, result = cli(monkeypatch, args)
            sentence = assert_one_sentence_error(code, text, result)
            assert "(permission denied)" in sentence and "Nothing stored was lost" in sentence
    finally:
        for d in made:
            d.chmod(0o755)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_permission_denied_on_the_key_lock_is_one_sentence(tmp_path, monkeypatch, ml100k_dir):
    import bench.locks

    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    monkeypatch.setattr(bench.locks, "lock_for", _denied)
    code, text, result = cli(monkeypatch, RUN_ML)
    sentence = assert_one_sentence_error(code, text, result)
    assert sentence.startswith(DENIED) and "Nothing stored was lost" in sentence


@pytest.mark.parametrize("target", ["bench.store.RunStore.save", "bench.store.atomic_dir"])
def test_permission_denied_while_saving_a_run_is_one_sentence(tmp_path, monkeypatch, ml100k_dir, target):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    monkeypatch.setattr(target, _denied)
    code, text, result = cli(monkeypatch, RUN_ML)
    sentence = assert_one_sentence_error(code, text, result)
    assert sentence.startswith(DENIED)


def test_permission_denied_writing_the_leaderboard_is_one_sentence(tmp_path, monkeypatch):
    import bench.atomic
    import bench.leaderboard.command

    run_quietly(["pop"], [0], RunStore())
    # the command imported write_text by name: patch the module's own too, or nothing is patched
    monkeypatch.setattr(bench.atomic, "write_text", _denied)
    monkeypatch.setattr(bench.leaderboard.command, "write_text", _denied)
    code, text, result = cli(monkeypatch, ["leaderboard", "--dataset", "tiny"])
    sentence = assert_one_sentence_error(code, text, result)
    assert sentence.startswith(DENIED) and "Nothing stored was lost" in sentence
    assert len(RunStore().runs("tiny")) == 1


# --- 9. labels and names are printed literally ----------------------------------------------------


@pytest.fixture
def bracket_method(tmp_path, monkeypatch):
    """A test plugin `x` (pop with settings epochs and tag), registered for the test only."""
    module = f"bench_test_store_plugin_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from methods.pop import Pop

            @dataclass
            class XConfig:
                epochs: int = 1
                tag: str = ""

            class X(Pop):
                name = "x"
                Config = XConfig
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.register("x", f"{module}:X", "a test plugin")
    yield "x"
    registry.BUILTIN.pop("x", None)
    sys.modules.pop(module, None)


def test_label_with_brackets_is_printed_literally(tmp_path, bracket_method):
    store = RunStore(tmp_path / "res")
    records, out = run_quietly(["x"], [0], store, overrides={"x": {"epochs": "2"}})
    assert records[0].label == "x[epochs=2]"
    assert "x[epochs=2] seed 0" in out
    odd = "[bold]y[/]"
    records, out = run_quietly(["x"], [0], store, overrides={"x": {"epochs": "2", "tag": odd}})
    assert records[0].label == f"x[epochs=2,tag={odd}]"
    assert f"x[epochs=2,tag={odd}] seed 0" in out


def test_odd_labels_in_cli_tables_are_printed_literally(tmp_path, monkeypatch, ml100k_dir, bracket_method):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    odd = "[bold]y[/]"
    args = ["run", "--methods", "x", "--dataset", "ml-100k", "--limit-test", "20", "--device", "cpu"]
    code, text, result = cli(monkeypatch, args + ["--set", "x.epochs=2", "--set", f"x.tag={odd}"])
    assert code == 0 and result.exception is None, text
    assert f"x[epochs=2,tag={odd}]" in text
    code, text, result = cli(monkeypatch, ["runs"])
    assert code == 0 and f"x[epochs=2,tag={odd}]" in text


def test_dataset_name_with_markup_is_an_unknown_dataset_sentence(tmp_path, monkeypatch):
    code, text, result = cli(monkeypatch, ["run", "--methods", "pop", "--dataset", "ml[/x]", "--device", "cpu"])
    sentence = assert_one_sentence_error(code, text, result)
    assert "Unknown dataset 'ml[/x]'" in sentence
    assert not (paths.data_dir() / "ml[").exists()


# --- 10. empty lists and bad devices -------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--seeds", ",", "--seeds names no seed"),
        ("--methods", ",", "--methods names no method"),
    ],
)
def test_empty_lists_are_one_sentence_and_prepare_nothing(tmp_path, monkeypatch, option, value, expected):
    args = {"--methods": "pop", "--seeds": "0"} | {option: value}
    code, text, result = cli(
        monkeypatch, ["run", "--dataset", "ml-100k", "--device", "cpu", *(x for kv in args.items() for x in kv)]
    )
    sentence = assert_one_sentence_error(code, text, result)
    assert expected in sentence
    assert not (paths.data_dir() / "ml-100k").exists()


BAD_DEVICES = ["cuda:x", "cuda:-1", "gpu", "cuda:", "CPU"]


@pytest.mark.parametrize("device", BAD_DEVICES)
def test_bad_device_is_one_sentence_exit_2(tmp_path, monkeypatch, ml100k_dir, device):
    monkeypatch.setenv("BENCH_DATA_DIR", str(ml100k_dir))
    code, text, result = cli(monkeypatch, ["run", "--methods", "pop", "--dataset", "ml-100k", "--device", device])
    sentence = assert_one_sentence_error(code, text, result)
    assert sentence.startswith(f"Unknown device '{device}'")
    assert run_folders(RunStore(), "ml-100k", "pop") == []


def test_bad_device_is_refused_before_the_dataset_is_prepared(tmp_path, monkeypatch):
    code, text, result = cli(monkeypatch, ["run", "--methods", "pop", "--dataset", "ml-100k", "--device", "gpu"])
    assert code == 2
    assert not (paths.data_dir() / "ml-100k").exists()
