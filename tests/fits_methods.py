"""Two small methods for the tests of fit reuse and assistants (tests/test_fits.py): `helper` counts
training targets (scaled by `level`), `bumped` adds `bonus` times an item's id parity to its own
counts (a decode-time setting) and, with `helper` set, mixes in the helper's scores. Both can store
their fit in the fit cache (tests/test_fitcache.py); FIT_DELAY slows every fit down."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from bench.method import ScoreMethod

FITS: list[str] = []  # "<name> seed <seed>" per fit, in order
LOADS: list[str] = []  # "<name> seed <seed>" per fit loaded from the cache
FIT_DELAY = [0.0]  # seconds every fit takes longer


def save(folder, **values) -> None:
    (folder / "fit.json").write_text(json.dumps({k: np.asarray(v).tolist() for k, v in values.items()}))


def load(folder) -> dict:
    return {k: np.asarray(v) for k, v in json.loads((folder / "fit.json").read_text()).items()}


@dataclass
class HelperConfig:
    level: int = 1


class Helper(ScoreMethod):
    name = "helper"
    Config = HelperConfig

    def _fit(self, train, valid, context):
        FITS.append(f"helper seed {context.seed}")
        self.scores = self.config.level * np.bincount(train.targets, minlength=context.n_items).astype(np.float64)
        self.noise = np.random.rand()  # drawn from the seeded stream the harness gives it

    def _save_fit(self, folder):
        save(folder, scores=self.scores, noise=self.noise)

    def _load_fit(self, folder, train, valid, context):
        LOADS.append(f"helper seed {context.seed}")
        saved = load(folder)
        self.scores, self.noise = saved["scores"], float(saved["noise"])

    def _score(self, samples):
        yield np.arange(len(samples)), np.broadcast_to(self.scores, (len(samples), len(self.scores)))


@dataclass
class BumpedConfig:
    shift: float = 0.0  # changes the fit
    bonus: float = 0.0  # decode time: added to odd item ids
    helper: str = ""  # decode time: a method whose scores are added
    helper_set: str = ""  # decode time: its settings, "level=2"


class Bumped(ScoreMethod):
    name = "bumped"
    Config = BumpedConfig
    decode_settings = frozenset({"bonus", "helper", "helper_set"})
    assistant_fields = frozenset({"helper", "helper_set"})

    @classmethod
    def assistant_of(cls, config):
        if not config.helper:
            return None
        return config.helper, dict(pair.split("=") for pair in config.helper_set.split(";") if pair)

    def _fit(self, train, valid, context):
        FITS.append(f"bumped seed {context.seed}")
        time.sleep(FIT_DELAY[0])
        self.context = context
        self.counts = np.bincount(train.targets, minlength=context.n_items).astype(np.float64) + self.config.shift
        wanted = type(self).assistant_of(self.config)
        if wanted is not None:
            context.fitted_assistant(*wanted)  # fitted aside: the draw below is the same without it
        self.draw = np.random.rand()

    def _save_fit(self, folder):
        save(folder, counts=self.counts, draw=self.draw)

    def _load_fit(self, folder, train, valid, context):
        LOADS.append(f"bumped seed {context.seed}")
        saved = load(folder)
        self.context, self.counts, self.draw = context, saved["counts"], float(saved["draw"])

    def _score(self, samples):
        scores = self.counts + self.config.bonus * (np.arange(len(self.counts)) % 2)
        wanted = type(self).assistant_of(self.config)
        if wanted is not None:
            scores = scores + next(iter(self.context.fitted_assistant(*wanted).score(samples)))[1][0]
        yield np.arange(len(samples)), np.broadcast_to(scores, (len(samples), len(scores)))
