"""Autograd's anomaly detection stays as the user set it. RecBole 1.2.1's sine.py switches it on at
import time, and its sequential models package imports sine.py; the adapter's shims restore the
previous state (methods/recbole/shims.py: import_models), so neither a RecBole method nor an LLM
method run after one trains with a stack recorded and a NaN check made at every autograd op."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("recbole")

from conftest import make_split  # noqa: E402

from bench import registry  # noqa: E402
from bench.method import Context  # noqa: E402
from methods.recbole import shims  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent

# A fresh interpreter: RecBole's modules run their import-time code only once per process.
IMPORTS = """
import sys, torch
torch.autograd.set_detect_anomaly({enabled}, check_nan={check_nan})
from bench import registry
for name in ("sasrec", "gru4rec", "caser", "bert4rec"):
    registry.load_class(name)
from methods.recbole import method, settings, shims
shims.install_shims()
settings.model_class("SASRec")
settings.model_class("SINE")
import recbole.model.sequential_recommender
from recbole.utils import get_model
get_model("GRU4Rec")
assert "recbole.model.sequential_recommender.sine" in sys.modules
print(torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled())
"""


@pytest.mark.parametrize(("enabled", "check_nan"), [(False, True), (True, False)])
def test_importing_recbole_leaves_anomaly_mode_as_it_was(enabled, check_nan):
    """Off by default stays off; a user's own set_detect_anomaly(True), with or without the NaN
    check, stays as they set it."""
    code = IMPORTS.format(enabled=enabled, check_nan=check_nan)
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(enabled), str(check_nan)]


def test_kept_anomaly_mode_restores_both_flags():
    before = (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled())
    try:
        torch.autograd.set_detect_anomaly(True, check_nan=False)
        with shims.kept_anomaly_mode():
            torch.autograd.set_detect_anomaly(False)
        assert (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()) == (True, False)
        with pytest.raises(RuntimeError), shims.kept_anomaly_mode():
            torch.autograd.set_detect_anomaly(False, check_nan=True)
            raise RuntimeError
        assert (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()) == (True, False)
    finally:
        torch.autograd.set_detect_anomaly(*before)


def context_for(split, work_dir: Path) -> Context:
    return Context(
        device="cpu",
        seed=0,
        items=split.items,
        card=split.card,
        work_dir=work_dir,
        cache_dir=work_dir / "cache",
    )


def make_method(name: str, **settings):
    cls = registry.load_class(name)
    return cls(registry.build_config(cls, {k: str(v) for k, v in settings.items()}))


@pytest.mark.slow
def test_an_llm_method_after_a_recbole_method_trains_without_anomaly_mode(monkeypatch, tmp_path):
    """sasrec, then cft in the same process: every CFT training step runs with anomaly mode off."""
    import methods.llm.loss as loss

    assert not torch.is_anomaly_enabled()
    split = make_split()
    sasrec = make_method("sasrec", epochs=1, hidden_size=8, n_heads=1)
    sasrec.fit(split.train, split.valid, context_for(split, tmp_path / "sasrec"))
    assert "recbole.model.sequential_recommender.sine" in sys.modules
    assert not torch.is_anomaly_enabled()

    seen = []
    real = loss.cft_loss

    def recording_cft_loss(*args, **kwargs):
        seen.append(torch.is_anomaly_enabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(loss, "cft_loss", recording_cft_loss)
    cft = make_method(
        "cft",
        model="tiny",
        epochs=1,
        max_train_samples=16,
        max_valid_samples=4,
        micro_batch=8,
        grad_accum=1,
        warmup_steps=1,
        max_new_tokens=8,
    )
    cft.fit(split.train, split.valid, context_for(split, tmp_path / "cft"))
    assert seen and not any(seen)
