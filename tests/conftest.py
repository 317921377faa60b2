"""Shared fixtures. Every test writes under its own temporary folders, never into the source tree."""

from __future__ import annotations

import numpy as np
import pytest

from bench.data.cards import DatasetCard
from bench.data.split import Catalogue, Samples, Split

# Files whose tests train models, prepare datasets or start processes: `make test` runs them,
# `make test-fast` (the inner loop, under a minute) leaves them out with the tests marked slow.
END_TO_END = {
    "test_analyses.py", "test_data.py", "test_distributed.py", "test_jobs.py", "test_llm_defaults.py",
    "test_llm_engine.py", "test_recbole.py", "test_report.py", "test_store.py", "test_slurm.py", "test_reliability.py",
}  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in END_TO_END:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Redirect every place the harness writes; the dataset cards stay the project's own."""
    for var, sub in [
        ("BENCH_DATA_DIR", "prepared"),
        ("BENCH_RAW_DIR", "raw"),
        ("BENCH_RESULTS_DIR", "results"),
    ]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    # built tokenizers/tiny models are deterministic and reusable: share them across the session
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path.parent.parent / "bench-cache"))
    return tmp_path


def prepare_ml100k(tmp_path_factory, name: str = "prepared"):
    """A fresh data folder holding ml-100k prepared (from RecBole's wheel, a few seconds), for a
    module-scoped fixture: the project's own cards, whatever the test environment points at."""
    from bench.data.prepare import prepare

    folder = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCH_DATA_DIR", str(folder))
        mp.delenv("BENCH_CARDS_DIR", raising=False)
        prepare("ml-100k")
    return folder


def make_split(n_items: int = 30, n_train: int = 60, n_valid: int = 10, n_test: int = 10, seed: int = 0) -> Split:
    """A small synthetic split with readable titles, for unit tests of methods."""
    rng = np.random.default_rng(seed)
    titles = [f"Item number {i} deluxe" for i in range(n_items)]
    card = DatasetCard(name="tiny", source="movielens", noun="movie", noun_plural="movies", verb="watched")

    def samples(n: int, t0: int) -> Samples:
        histories = [tuple(int(x) for x in rng.integers(0, n_items, size=rng.integers(1, 6))) for _ in range(n)]
        return Samples(
            users=np.arange(n, dtype=np.int64),
            histories=histories,
            targets=rng.integers(0, n_items, size=n).astype(np.int64),
            times=np.arange(t0, t0 + n, dtype=np.int64),
        )

    return Split(
        name="tiny",
        card=card,
        items=Catalogue(titles=titles, sources=[[str(i)] for i in range(n_items)]),
        train=samples(n_train, 0),
        valid=samples(n_valid, 10_000),
        test=samples(n_test, 20_000),
        hash="0" * 16,
        manifest={},
    )


@pytest.fixture
def tiny_split() -> Split:
    return make_split()
