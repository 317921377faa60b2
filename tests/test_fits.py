"""Nothing is fitted twice in one command: configurations that differ only in decode-time settings
share one fit, and an assistant method is fitted once per configuration, split and seed."""

from __future__ import annotations

import fits_methods
import numpy as np
import pytest
from conftest import make_split
from test_store import quiet_console

from bench import registry
from bench.errors import BenchError
from bench.plan import plan_methods
from bench.request import RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore


@pytest.fixture
def toys():
    registry.register("bumped", "fits_methods:Bumped", "test method")
    registry.register("helper", "fits_methods:Helper", "test assistant")
    fits_methods.FITS.clear()
    yield
    registry.BUILTIN.pop("bumped", None)
    registry.BUILTIN.pop("helper", None)


def run(store, grid=(), sets=(), seeds="0"):
    request = RunRequest.from_options("bumped", seeds=seeds, grid=list(grid), sets=list(sets), device="cpu", valid=False)
    console, out = quiet_console()
    records = run_benchmark(request, split=make_split(n_items=12, n_train=80), store=store, console=console, show_progress=False)
    return records, out.getvalue()


def expected_ranks(split, bonus: float, helper_level: int = 0) -> list[int]:
    counts = np.bincount(split.train.targets, minlength=12).astype(float)
    scores = counts + bonus * (np.arange(12) % 2) + helper_level * counts
    return [int((scores >= scores[t]).sum()) - 1 for t in split.test.targets]


def test_a_grid_over_decode_settings_fits_once_per_seed(toys, tmp_path):
    store = RunStore(tmp_path)
    records, out = run(store, grid=["bumped.bonus=0,1.5,4"], seeds="0,1")
    assert fits_methods.FITS == ["bumped seed 0", "bumped seed 1"]
    # seeds inner, configurations sharing a fit one after the other
    assert [(r.overrides.get("bonus"), r.seed) for r in records] == [(None, 0), (1.5, 0), (4.0, 0), (None, 1), (1.5, 1), (4.0, 1)]
    first = {r.seed: r.key for r in records if not r.overrides}
    assert [r.reused_fit_of for r in records] == [None, first[0], first[0], None, first[1], first[1]]
    assert [r.timing.fit_s == 0 for r in records] == [False, True, True, False, True, True]
    assert len({r.key for r in records}) == 6 and "reused" in out
    split = make_split(n_items=12, n_train=80)
    for r in records:  # each decoded with its own bonus, as a fresh fit would
        ranks = store.load("tiny", "bumped", r.key).arrays()["rank"].tolist()
        assert ranks == expected_ranks(split, r.overrides.get("bonus", 0.0))


def test_a_setting_that_changes_the_fit_fits_again(toys, tmp_path):
    records, _ = run(RunStore(tmp_path), grid=["bumped.shift=0,1"])
    assert fits_methods.FITS == ["bumped seed 0", "bumped seed 0"] and [r.reused_fit_of for r in records] == [None, None]


def test_an_assistant_is_fitted_once_recorded_and_keyed(toys, tmp_path):
    store = RunStore(tmp_path)
    records, _ = run(store, grid=["bumped.bonus=0,2"], sets=["bumped.helper=helper", "bumped.helper_set=level=2"])
    assert fits_methods.FITS == ["bumped seed 0", "helper seed 0"]  # one fit of each
    (helper,) = plan_methods(["helper"], {"helper": {"level": "2"}})
    uses = [r.assistants for r in records]
    assert [u[0]["method"] for u in uses] == ["helper", "helper"] and uses[0][0]["key"] == uses[1][0]["key"]
    assert uses[0][0]["label"] == "helper[level=2]" and uses[0][0]["fit_s"] > 0 and uses[1][0]["fit_s"] == 0
    split = make_split(n_items=12, n_train=80)
    for r in records:
        assert store.load("tiny", "bumped", r.key).arrays()["rank"].tolist() == expected_ranks(
            split, r.overrides.get("bonus", 0.0), 2
        )
    # the assistant's resolved identity is part of the run key: level 3 is another run, "2" and "02" are one
    (p2,) = plan_methods(["bumped"], {"bumped": {"helper": "helper", "helper_set": "level=2"}})
    (p2b,) = plan_methods(["bumped"], {"bumped": {"helper": "helper", "helper_set": "level=02"}})
    (p3,) = plan_methods(["bumped"], {"bumped": {"helper": "helper", "helper_set": "level=3"}})
    assert p2.key_config["assistant_key"] == {"method": "helper", "version": "1", "config": helper.key_config}
    assert p2.fit_key_config == p3.fit_key_config and p2.key_config != p3.key_config
    assert p2.key_config == p2b.key_config and "helper_set" not in p2.key_config  # keyed by what it resolves to
    with pytest.raises(BenchError, match=r"^The assistant of 'bumped' cannot be planned: Method 'helper' has no setting 'levl'"):
        _ = plan_methods(["bumped"], {"bumped": {"helper": "helper", "helper_set": "levl=2"}})[0].key_config


def test_fitting_an_assistant_leaves_the_fit_s_random_stream_alone(toys, tmp_path):
    from bench.fits import Fits
    from bench.method import Context
    from bench.request import Evaluation
    from bench.seeding import seed_everything

    split = make_split(n_items=12, n_train=80)
    draws = []
    for helper in ("", "helper"):
        (p,) = plan_methods(["bumped"], {"bumped": {"helper": helper}})
        seed_everything(7)
        fits = Fits(Evaluation(), split.hash, tmp_path / ".work")
        context = Context("cpu", 7, split.items, split.card, tmp_path / "w", tmp_path / "c")
        method, _, _ = fits.method_for(p, 7, "k", split.train, split.valid, context)
        draws.append(method.draw)
        if helper:
            assert fits.assistants[next(iter(fits.assistants))].method.noise == pytest.approx(_first_draw(7))
    assert draws[0] == draws[1]


def _first_draw(seed: int) -> float:
    from bench.seeding import seed_everything

    seed_everything(seed)
    return float(np.random.rand())
