"""The fit cache (bench.fitcache): a configuration whose training key an earlier command fitted loads
that fit and only decodes, with the same lists as a fresh fit (toy methods, the tiny LLM, RecBole's
SASRec); --force fits again; one process fits a key at a time (the others wait, or skip with
--busy skip); the least recently used entries go beyond BENCH_FIT_CACHE_GB; a damaged entry is
fitted again; `bench runs --prune` empties it."""

from __future__ import annotations

import contextlib
import json
import os
import threading

import fits_methods
import numpy as np
import pytest
from conftest import make_split
from test_store import cli, quiet_console

from bench import registry
from bench.errors import BenchError
from bench.fitcache import ENV, FitCache, budget_bytes
from bench.request import RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore


@pytest.fixture
def toys():
    registry.register("bumped", "fits_methods:Bumped", "test method")
    registry.register("helper", "fits_methods:Helper", "test assistant")
    fits_methods.FITS.clear()
    fits_methods.LOADS.clear()
    yield
    fits_methods.FIT_DELAY[0] = 0.0
    registry.BUILTIN.pop("bumped", None)
    registry.BUILTIN.pop("helper", None)


def run(store, grid=(), sets=(), force=False, busy="wait"):
    request = RunRequest.from_options(
        "bumped", seeds="0", grid=list(grid), sets=list(sets), device="cpu", valid=False, force=force, busy=busy
    )
    console, out = quiet_console()
    records = run_benchmark(request, split=make_split(n_items=12, n_train=80), store=store, console=console, show_progress=False)
    return records, out.getvalue()


def ranks(store, record) -> list[int]:
    return store.load("tiny", record.method, record.key).arrays()["rank"].tolist()


def test_a_later_command_loads_the_fit_and_decodes_only(toys, tmp_path):
    store = RunStore(tmp_path)
    (first,), _ = run(store)
    assert fits_methods.FITS == ["bumped seed 0"] and first.reused_fit_of is None
    (entry,) = FitCache(tmp_path).entries()
    assert entry.manifest["fitted_by"] == first.key and entry.folder.parent.name == "bumped"

    records, out = run(store, grid=["bumped.bonus=0,1.5,4"])  # bonus 0 is stored; the others decode
    assert fits_methods.FITS == ["bumped seed 0"] and fits_methods.LOADS == ["bumped seed 0"]  # loaded once
    assert [r.reused_fit_of for r in records] == [None, first.key, first.key]
    assert "loaded from the fit cache" in out
    # the same lists as fresh fits in a store without the cache entry
    fresh_store = RunStore(tmp_path / "fresh")
    fresh, _ = run(fresh_store, grid=["bumped.bonus=0,1.5,4"])
    assert [ranks(store, r) for r in records] == [ranks(fresh_store, r) for r in fresh]
    assert [r.key for r in records] == [r.key for r in fresh]

    # a setting that changes the fit fits again; --force fits again and replaces the entry
    run(store, sets=["bumped.shift=1"])
    assert fits_methods.FITS == ["bumped seed 0"] * 3  # the fresh store's and shift=1's
    run(store, sets=["bumped.bonus=4"], force=True)
    assert fits_methods.FITS == ["bumped seed 0"] * 4 and len(FitCache(tmp_path).entries()) == 2


def test_an_assistant_is_loaded_from_the_cache_in_a_later_command(toys, tmp_path):
    store = RunStore(tmp_path)
    helper = ["bumped.helper=helper", "bumped.helper_set=level=2"]
    run(store, sets=helper)
    assert fits_methods.FITS == ["bumped seed 0", "helper seed 0"]
    (record,), _ = run(store, sets=[*helper, "bumped.bonus=1"])
    assert fits_methods.FITS == ["bumped seed 0", "helper seed 0"]
    assert sorted(fits_methods.LOADS) == ["bumped seed 0", "helper seed 0"]
    assert record.assistants[0]["method"] == "helper" and record.reused_fit_of is not None


def test_one_process_fits_a_key_the_other_waits_and_loads_it(toys, tmp_path):
    store = RunStore(tmp_path)
    fits_methods.FIT_DELAY[0] = 1.0
    results = {}

    def command(bonus):
        results[bonus] = run(store, sets=[f"bumped.bonus={bonus}"])

    threads = [threading.Thread(target=command, args=(b,)) for b in (0, 2)]
    threads[0].start()
    while not fits_methods.FITS:  # the first holds the training key's lock while it fits
        threading.Event().wait(0.01)
    threads[1].start()
    for t in threads:
        t.join()
    assert fits_methods.FITS == ["bumped seed 0"] and fits_methods.LOADS == ["bumped seed 0"]
    (a,), _ = results[0]
    (b,), out = results[2]
    assert a.reused_fit_of is None and b.reused_fit_of == a.key
    assert "another process is fitting the same model" in out


def test_with_busy_skip_a_run_whose_model_is_being_fitted_is_skipped(toys, tmp_path):
    store = RunStore(tmp_path)
    with held_elsewhere(FitCache(tmp_path).lock(fit_key_of(store))):
        records, out = run(store, busy="skip")
    assert records == [] and fits_methods.FITS == []
    assert "another process is fitting its model; skipped" in out and "run the same command again later" in out


@contextlib.contextmanager
def held_elsewhere(lock):
    """`lock` held by another thread (a file lock: as another process would hold it) for the block."""
    held, done = threading.Event(), threading.Event()

    def hold():
        with lock:
            held.set()
            done.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        yield
    finally:
        done.set()
        holder.join()


def fit_key_of(store, sets=()) -> str:
    from bench.fits import Fits
    from bench.request import Evaluation

    request = RunRequest.from_options("bumped", seeds="0", sets=list(sets), device="cpu", valid=False)
    (p,) = request.plan()
    return Fits(Evaluation(), make_split(n_items=12, n_train=80).hash, store.root / ".work").fit_key(p, 0)


def test_a_damaged_entry_is_fitted_again_with_a_warning(toys, tmp_path):
    store = RunStore(tmp_path)
    run(store)
    (entry,) = FitCache(tmp_path).entries()
    (entry.folder / "model" / "fit.json").write_text("{not json")
    (record,), out = run(store, sets=["bumped.bonus=1"])
    assert fits_methods.FITS == ["bumped seed 0", "bumped seed 0"] and record.reused_fit_of is None
    assert "cannot be used (JSONDecodeError" in out and "fitting again" in out
    (entry,) = FitCache(tmp_path).entries()  # replaced by the new fit
    assert entry.manifest["fitted_by"] == record.key
    (entry.folder / "fit.json").unlink()  # the manifest gone: damaged too
    assert FitCache(tmp_path).entries()[0].problem == "fit.json is missing"
    run(store, sets=["bumped.bonus=2"])
    assert len(fits_methods.FITS) == 3


def test_the_least_recently_used_fits_go_beyond_the_limit(tmp_path, monkeypatch):
    cache = FitCache(tmp_path)

    class Blob:
        def __init__(self, n):
            self.n = n

        def save_fit(self, folder):
            folder.mkdir(parents=True)
            (folder / "blob").write_bytes(b"x" * self.n)

    monkeypatch.setenv(ENV, str(2600 / 1e9))  # 2,600 bytes: two entries of about 1,200
    for i, key in enumerate(["a" * 16, "b" * 16]):
        cache.save(Blob(1000), "m", key, f"run{i}", 1.0)
        os.utime(cache.folder("m", key) / "fit.json", (1000 + i, 1000 + i))
    assert [e.key for e in cache.entries()] == ["a" * 16, "b" * 16]
    os.utime(cache.folder("m", "a" * 16) / "fit.json", (2000, 2000))  # a was used after b
    cache.save(Blob(1000), "m", "c" * 16, "run2", 1.0)
    assert sorted(e.key for e in cache.entries()) == ["a" * 16, "c" * 16]  # b, least recently used, went
    # an entry in use stays; the new one stays even when it alone is over the limit
    with held_elsewhere(cache.lock("a" * 16)):
        cache.save(Blob(3000), "m", "d" * 16, "run3", 1.0)
    assert sorted(e.key for e in cache.entries()) == ["a" * 16, "d" * 16]
    assert budget_bytes() == 2600


def test_the_limit_is_a_size_and_zero_keeps_nothing(toys, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(BenchError, match=rf"^{ENV}='lots' is not a size; give the fit cache's limit in gigabytes"):
        budget_bytes()
    monkeypatch.setenv(ENV, "0")
    store = RunStore(tmp_path)
    run(store)
    run(store, sets=["bumped.bonus=1"])
    assert fits_methods.FITS == ["bumped seed 0"] * 2 and not (tmp_path / "fits").exists()


def test_bench_runs_shows_the_cache_and_prune_empties_it(toys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_RESULTS_DIR", str(tmp_path))
    store = RunStore(tmp_path)
    run(store)
    run(store, sets=["bumped.shift=1"])
    leftover = tmp_path / "fits" / "bumped" / ".0123456789abcdef.tmp-x"
    leftover.mkdir()
    code, text, _ = cli(monkeypatch, ["runs"])
    assert code == 0 and f"2 cached fit(s), 0.0 MB in {tmp_path / 'fits'}" in text and f"leftover: {leftover}" in text
    in_use = FitCache(tmp_path).entries()[0]
    with held_elsewhere(FitCache(tmp_path).lock(in_use.key)):  # a process loading it now: kept
        code, text, _ = cli(monkeypatch, ["runs", "--prune"])
    assert code == 0 and "removed: 1 cached fit(s)" in text and FitCache(tmp_path).entries() == [in_use]
    assert not leftover.exists() and len(store.runs()) == 2  # stored runs untouched
    code, text, _ = cli(monkeypatch, ["runs", "--prune"])
    assert code == 0 and "removed: 1 cached fit(s)" in text and FitCache(tmp_path).entries() == []


# --- real methods: a loaded fit decodes as the fitted one ----------------------------------------


def tiny_bigrec(store, sets: list[str], device: str = "cpu", grid=()):
    """The records of bigrec runs on the tiny model and the backbone tests' split (8 test samples)."""
    from test_backbones import FAST, backbone_split

    settings = [f"bigrec.{k}={v}" for k, v in FAST.items()]
    request = RunRequest.from_options("bigrec", sets=settings + sets, grid=list(grid), device=device, valid=False, limit_test=8)
    console, _ = quiet_console()
    return run_benchmark(request, split=backbone_split(), store=store, console=console, show_progress=False)


def loaded_and_fresh(tmp_path, device: str = "cpu"):
    """A fit stored by one command, loaded by a second one with other decode settings, and the
    second's configuration fitted afresh elsewhere: (first, loaded, fresh) records and their stores."""
    cached, elsewhere = RunStore(tmp_path / "a"), RunStore(tmp_path / "b")
    (first,) = tiny_bigrec(cached, [], device)
    (loaded,) = tiny_bigrec(cached, ["bigrec.num_beams=3"], device)  # grounded decoding with 3 beams
    (fresh,) = tiny_bigrec(elsewhere, ["bigrec.num_beams=3"], device)
    assert loaded.reused_fit_of == first.key and fresh.reused_fit_of is None and loaded.key == fresh.key
    return (first, loaded, fresh), (cached, elsewhere)


def test_the_tiny_llm_loaded_from_the_cache_decodes_as_a_fresh_fit(tmp_path):
    import torch

    torch.set_num_threads(1)
    (first, loaded, fresh), (cached, elsewhere) = loaded_and_fresh(tmp_path)
    for part in ("topk", "rank", "invalid"):
        assert np.array_equal(cached.load("tiny", "bigrec", loaded.key).arrays()[part],
                              elsewhere.load("tiny", "bigrec", fresh.key).arrays()[part])  # fmt: skip
    # the fit's facts are the fitted run's (its losses, epochs), not made up
    assert loaded.info == first.info
    assert [e["train_loss"] for e in loaded.info["history"]] == [e["train_loss"] for e in fresh.info["history"]]
    assert loaded.train_samples == fresh.train_samples


@pytest.mark.slow
def test_sasrec_loaded_from_the_cache_scores_as_the_fitted_model(tmp_path):
    import dataclasses

    from bench.method import Context
    from bench.registry import load_class

    split = make_split(n_items=40, n_train=300)
    cls = load_class("sasrec")
    config = dataclasses.replace(cls.Config(), epochs=2)
    context = Context("cpu", 0, split.items, split.card, tmp_path / "w", tmp_path / "c")
    fitted = cls(config)
    fitted.fit(split.train, split.valid, context)
    fitted.save_fit(tmp_path / "fit")
    loaded = cls(config)
    loaded.load_fit(tmp_path / "fit", split.train, split.valid, dataclasses.replace(context, work_dir=tmp_path / "w2"))
    (_, a), (_, b) = next(fitted.score(split.test)), next(loaded.score(split.test))
    assert a.shape == (len(split.test), 40) and np.array_equal(np.asarray(a), np.asarray(b))
    assert loaded.run_info() == fitted.run_info()
    assert json.loads((tmp_path / "fit" / "info.json").read_text())["epochs_trained"] == 2
