"""The leaderboard's options (one checked, immutable object shared by `bench leaderboard`,
`bench report` and the Python API), the order of experiments, and which libraries the light
commands import."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from records import make_record, rank_arrays

from bench import paths
from bench.errors import BenchError
from bench.leaderboard import LeaderboardOptions, Selection, build_leaderboards
from bench.store import RunStore

# ------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("k", [0, -1, 51, 100])
def test_beyond_outside_the_stored_lists_is_one_sentence(k):
    with pytest.raises(BenchError) as err:
        LeaderboardOptions(beyond=k)
    assert str(err.value) == (
        f"--beyond must be a list length from 1 to 50, since each run stores its top 50 items only, not {k}."
    )
    assert LeaderboardOptions(beyond=50).beyond == 50


def test_the_cli_refuses_a_bad_beyond_before_reading_the_store():
    from typer.testing import CliRunner

    from bench.cli import app

    store = RunStore()
    store.save(make_record(method="A", ranks=np.zeros(5), dataset="toys"), rank_arrays(np.zeros(5)))
    result = CliRunner().invoke(app, ["leaderboard", "--dataset", "toys", "--beyond", "0"])
    assert result.exit_code == 2 and "--beyond must be a list length from 1 to 50" in result.output
    assert not (paths.results_dir() / "leaderboard").exists()


def test_options_are_one_checked_immutable_object():
    options = LeaderboardOptions.from_options(metrics="ndcg@10, HR@10,ndcg@10", methods="sft,cft", where=["model=m"],
                                              name="exp1", formats="md,json", baseline="sft", seed=3)  # fmt: skip
    assert options.metrics == ("NDCG@10", "HR@10") and options.formats == ("md", "json")
    assert options.selection == Selection(methods=("sft", "cft"), where={"model": "m"}, name="exp1")
    assert options.file_stem("toys") == "toys-exp1" and options.seed == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.alpha = 0.1
    with pytest.raises(BenchError, match="--pairs baseline compares each row with the baseline"):
        dataclasses.replace(options, baseline=None, pairs="baseline")  # a changed copy is checked again
    report = LeaderboardOptions.for_report(baseline="sft")
    assert (report.cost, report.history, report.beyond, report.baseline) == (True, True, 10, "sft")
    for fields, message in [
        (dict(seed=-1), "--seed must be a whole number from 0, not -1."),
        (dict(n_resamples=0), "n_resamples must be a whole number of resamples from 1, not 0."),
        (dict(metrics=()), "--metrics names no metric; give at least one, e.g. --metrics NDCG@10,HR@10."),
        (dict(select_metric="NDCG@7"), "Unknown metric 'NDCG@7' to choose on; choose from NDCG@1"),
    ]:
        with pytest.raises(BenchError, match=re.escape(message)):
            LeaderboardOptions(**fields)


def test_experiments_are_in_natural_order():
    from bench.leaderboard.select import natural_key

    store = RunStore()
    for name in ("smollm2-1k", "smollm2-128", "smollm2-512"):
        record = make_record(method="A", ranks=np.zeros(5), key=f"A-{name}", config_key=f"A-{name}", experiments=[name])
        store.save(record, rank_arrays(np.zeros(5)))
    assert [b.experiment for b in build_leaderboards("toys")] == ["smollm2-128", "smollm2-512", "smollm2-1k"]
    assert sorted(["a10", "a9", "b", "a1.5k", "a2M"], key=natural_key) == ["a9", "a10", "a1.5k", "a2M", "b"]


# ------------------------------------------------------------------------------------ imports


def _modules_after(code: str) -> set[str]:
    """Top-level packages imported by `code`, run in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=dict(os.environ))
    return set(done.stdout.split("\n")[-2].split())


HEAVY = {"scipy", "torch", "matplotlib"}


@pytest.mark.parametrize("command", [["runs"], ["jobs"], ["methods"]])
def test_listing_commands_import_no_heavy_library(command):
    code = f"from bench.cli import app\ntry:\n    app({command!r})\nexcept SystemExit:\n    pass"
    assert _modules_after(code) & HEAVY == set()


def test_light_modules_import_no_statistics():
    code = (
        "import bench.labels, bench.store, bench.beyond, bench.leaderboard, bench.leaderboard.select, bench.leaderboard.options"
    )
    assert _modules_after(code) & HEAVY == set()
    done = subprocess.run([sys.executable, "-c", "import sys, bench.beyond; print(sorted(m for m in sys.modules if 'leaderboard' in m))"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"  # a metric module never reaches up into the tables
