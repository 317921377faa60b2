"""benchmarks/gpu_campaign.sh --dry-run: the GPU campaign's every step on a CPU with the tiny model
and tiny caps, so that the one command a GPU machine gets has run before it gets there."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_the_campaign_runs_every_step_and_writes_its_summary(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_campaign.sh"), str(out), "--dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.md", "logs.tar.gz", "runs.tar.gz", "summary.json", "summary.md"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dry_run"] is True
    steps = {s["step"]: s["status"] for s in summary["steps"]}
    expected = ["setup", "tests", "prepare", "bench_train", "bench_decode", "classic", "sft", "bigrec", "cft", "board"]
    assert list(steps) == expected and set(steps.values()) == {"ok"}, summary["steps"]
    assert summary["tests"]["failures"] == summary["tests"]["errors"] == 0  # the CUDA tests skip on a CPU
    assert {"training, tiny shape", "decoding"} <= set(summary["benchmarks"])
    board = (out / "leaderboard.md").read_text()
    for method in ("sasrec", "gru4rec", "sft", "bigrec", "cft"):
        assert method in board
    with tarfile.open(out / "runs.tar.gz") as runs:
        stored = [m.name for m in runs.getmembers() if m.name.endswith("run.json")]
    assert len(stored) == 5
    assert "| cft | ok |" in (out / "summary.md").read_text()
    assert not list(tmp_path.glob("gpu-campaign.*"))  # the work folder is removed


def test_the_campaign_refuses_an_unknown_option(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_campaign.sh"), str(tmp_path), "--fast"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage: bash benchmarks/gpu_campaign.sh OUT [--dry-run]" in done.stderr
