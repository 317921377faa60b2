"""The method contract. A method learns from training samples and returns ranked item ids; it never
computes a metric (the harness does, the same way for every method).

    class MyMethod(Method):
        name = "mine"
        description = "one line for `bench methods`"  # a plugin's; built-ins have theirs in bench.registry
        version = "1"                      # bump when a change alters results
        Config = MyConfig                  # a dataclass; every field can be set with --set mine.field=value

        def _fit(self, train, valid, context): ...
        def _recommend(self, samples, k) -> Recommendations: ...

A method may also implement `_save_fit(folder)` and `_load_fit(folder, train, valid, context)`:
the harness then keeps its fitted model on disk per training key (bench.fitcache), and a run that
differs from a fitted one in `decode_settings` only loads it instead of fitting again.

The public `fit` and `recommend` belong to this base class and check what every method owes
(fitted before recommending, one list per sample, at most k items, ids inside the catalogue), so a
plugin's mistake ends in one sentence naming the plugin. Methods that score the whole catalogue
subclass ScoreMethod and implement `_score` instead of `_recommend`; the harness then ranks the
target against every item with ties counted against the model.

A method never splits its work over processes: under a launched job the runner gives each process
one slice of the test samples (bench.runner).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.data.cards import DatasetCard
from bench.data.split import Catalogue, Samples
from bench.errors import BenchError

_FINAL = ("fit", "recommend", "score", "save_fit", "load_fit")
INSPECT = 3  # samples whose outputs (generations, top items) a run keeps for inspection


@dataclass
class NoConfig:
    """For methods without hyperparameters."""


@dataclass
class Context:
    """What a method may know besides its samples."""

    device: str  # "cpu", "cuda" or "cuda:N"
    seed: int
    items: Catalogue  # the catalogue: item id -> title
    card: DatasetCard  # domain noun, history length...
    work_dir: Path  # scratch folder of this run (checkpoints); removed once the run is stored
    cache_dir: Path  # shared cache (built tokenizers, tiny models)
    progress: Any = None  # a rich Progress to add tasks to, or None
    # another method fitted on the same split and seed: assistant(name, settings) -> a fitted
    # Method (bench.runner fits it once per command and records it with the run)
    assistant: Callable[[str, dict], Method] | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    def fitted_assistant(self, name: str, settings: dict) -> Method:
        if self.assistant is None:
            raise BenchError(f"No assistant can be fitted here for '{name}'; run the method through bench run.")
        return self.assistant(name, settings)


@dataclass
class Recommendations:
    """Ranked item ids per sample, best first; -1 pads lists shorter than k."""

    items: np.ndarray  # (n, <=k) int64
    invalid: np.ndarray | None = None  # (n,) outputs that named no catalogue item (generative methods)
    extra: dict = field(default_factory=dict)  # small JSON-able facts stored with the run
    ranks: np.ndarray | None = None  # (n,) the target's rank in the whole catalogue (ScoreMethod)
    examples: list = field(default_factory=list)  # JSON-able dicts for the first rows (at most INSPECT), for inspection


class MethodError(BenchError):
    """A method broke the contract: a bug in that method, named in the message."""


class Method(ABC):
    name: ClassVar[str] = ""
    # one line for `bench methods`; a built-in method's is its registry entry (bench.registry), so
    # only a plugin (whose entry point carries no description) sets it here
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = NoConfig
    # settings added after runs of this version were stored, {field: (value, keyed as)}: at that
    # value the setting computes what the method computed before, so the run key hashes it as
    # `keyed as` (None: left out) and the stored runs keep their keys (bench.plan.Planned.key_config)
    key_aliases: ClassVar[dict] = {}
    # settings that act only when recommending (decoding, grounding, an assistant's mix): the
    # configurations of a grid that differ only in them share one fit, and the runner hands the
    # fitted method each configuration in turn through reconfigure()
    decode_settings: ClassVar[frozenset[str]] = frozenset()
    # the settings that name another method to use (assistant_of): the run key holds that method's
    # resolved identity instead of their texts, so "epochs=3" and "epochs=03" are one run
    assistant_fields: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for public in _FINAL:  # whichever class supplies it (the class itself or a mixin) must be this module's
            owner = next((k for k in cls.__mro__ if public in k.__dict__), None)
            if owner is not None and owner.__module__ != __name__:
                where = "" if owner is cls else f" (through {owner.__qualname__})"
                raise TypeError(
                    f"Method class {cls.__qualname__} overrides {public}(){where}; implement _{public}() instead "
                    "(the base class's public methods check the contract)."
                )

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self._n_items: int | None = None
        # the training samples the fit learned from, when not all of them (a capped subset): the
        # run records their count and content hash, so readers can check two methods saw the same
        self.trained_samples: Samples | None = None

    # ---- what a method implements ------------------------------------------------------------
    @abstractmethod
    def _fit(self, train: Samples, valid: Samples, context: Context) -> None: ...

    @abstractmethod
    def _recommend(self, samples: Samples, k: int) -> Recommendations: ...

    def run_info(self) -> dict:
        """Facts about the fitted method stored with the run (epochs trained, model id...)."""
        return {}

    @classmethod
    def assistant_of(cls, config: Any) -> tuple[str, dict] | None:
        """The other method (name, its --set settings as texts) this configuration uses, if any;
        its identity joins the run key (bench.plan.Planned.key_config)."""
        return None

    def _reconfigure(self, config: Any) -> None:
        """Take a configuration that differs from the fitted one in decode_settings only."""
        self.config = config

    @classmethod  # noqa: B027 (an optional hook: most methods need no check)
    def preflight(cls, config: Any) -> None:
        """Checks that can fail before anything trains (a model that cannot be loaded, a missing
        package): raise BenchError with one sentence saying what to do. Called once per planned
        method, before the first run starts."""

    # ---- the contract --------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self._n_items is not None

    def _who(self) -> str:
        return f"Method '{self.name or type(self).__name__}' ({type(self).__module__}.{type(self).__qualname__})"

    def fit(self, train: Samples, valid: Samples, context: Context) -> None:
        self._n_items = None
        self._fit(train, valid, context)
        self._n_items = context.n_items

    @classmethod
    def caches_fits(cls) -> bool:
        """Whether the method can store its fitted model and load it back (bench.fitcache)."""
        return cls._save_fit is not Method._save_fit and cls._load_fit is not Method._load_fit

    def _save_fit(self, folder: Path) -> None:
        """Write what recommending needs into the new folder `folder` (optional hook)."""
        raise NotImplementedError

    def _load_fit(self, folder: Path, train: Samples, valid: Samples, context: Context) -> None:
        """Become the method `_save_fit` wrote into `folder`, for the same split and seed (optional hook)."""
        raise NotImplementedError

    def save_fit(self, folder: Path) -> None:
        if not self.fitted:
            raise MethodError(f"{self._who()} was asked to save its fit before it was fitted; call fit first.")
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._save_fit(Path(folder))

    def load_fit(self, folder: Path, train: Samples, valid: Samples, context: Context) -> None:
        self._n_items = None
        self._load_fit(Path(folder), train, valid, context)
        self._n_items = context.n_items

    def reconfigure(self, config: Any) -> None:
        """Use `config` from now on without fitting again; it may differ in decode_settings only."""
        import dataclasses

        if not self.fitted:
            raise MethodError(f"{self._who()} was reconfigured before it was fitted; call fit first.")
        old, new = dataclasses.asdict(self.config), dataclasses.asdict(config)
        changed = sorted(k for k in old if old[k] != new.get(k))
        if set(changed) - self.decode_settings:
            raise MethodError(f"{self._who()} cannot take new {', '.join(changed)} without fitting again.")
        self._reconfigure(config)

    def recommend(self, samples: Samples, k: int) -> Recommendations:
        """Top-k item ids for every sample, checked against the contract."""
        if not self.fitted:
            raise MethodError(f"{self._who()} was asked to recommend before it was fitted; call fit first.")
        recs = self._recommend(samples, k)
        return self._check(recs, len(samples), k)

    def _check(self, recs: Recommendations, n: int, k: int) -> Recommendations:
        who = self._who()
        if not isinstance(recs, Recommendations):
            raise MethodError(
                f"{who} returned {type(recs).__name__} from _recommend instead of Recommendations; this is a bug in the method."
            )
        items = np.asarray(recs.items)
        if items.ndim != 2 or items.shape[0] != n:
            raise MethodError(
                f"{who} returned lists of shape {items.shape} for {n} samples (want one list per sample); this is a bug in the method."
            )
        if items.shape[1] > k:
            raise MethodError(
                f"{who} returned {items.shape[1]} items per sample where at most k={k} were asked; this is a bug in the method."
            )
        if items.size and not np.issubdtype(items.dtype, np.integer):
            raise MethodError(f"{who} returned item ids of type {items.dtype}, not integers; this is a bug in the method.")
        items = items.astype(np.int64, copy=False)
        if items.size and (items.min() < -1 or items.max() >= self._n_items):
            raise MethodError(
                f"{who} returned item ids outside the catalogue (0..{self._n_items - 1}, -1 for padding); this is a bug in the method."
            )
        for name in ("invalid", "ranks"):
            value = getattr(recs, name)
            if value is not None and np.shape(value) != (n,):
                raise MethodError(
                    f"{who} returned {name} of shape {np.shape(value)} for {n} samples; this is a bug in the method."
                )
        if not isinstance(recs.examples, list):
            raise MethodError(
                f"{who} returned examples of type {type(recs.examples).__name__}, not a list; this is a bug in the method."
            )
        if not isinstance(recs.extra, dict):
            raise MethodError(
                f"{who} returned extra of type {type(recs.extra).__name__}, not a dict; this is a bug in the method."
            )
        recs.items = items
        return recs


class ScoreMethod(Method):
    """A method that scores every catalogue item for each sample. The harness turns the scores into
    the top-k list and the target's pessimistic rank in the whole catalogue."""

    @abstractmethod
    def _score(self, samples: Samples) -> Iterator[tuple[np.ndarray, Any]]:
        """Yield (row indices, scores) with scores an (len(rows), n_items) numpy array or torch tensor,
        covering every sample exactly once."""

    def score(self, samples: Samples) -> Iterator[tuple[np.ndarray, Any]]:
        if not self.fitted:
            raise MethodError(f"{self._who()} was asked to score before it was fitted; call fit first.")
        for rows, scores in self._score(samples):
            if tuple(scores.shape) != (len(rows), self._n_items):
                raise MethodError(
                    f"{self._who()} yielded scores of shape {tuple(scores.shape)} for {len(rows)} rows and "
                    f"{self._n_items} items; this is a bug in the method."
                )
            yield rows, scores

    def _recommend(self, samples: Samples, k: int) -> Recommendations:
        from bench.evaluate import ranks_from_scores, topk_from_scores

        items = np.full((len(samples), min(k, self._n_items)), -1, dtype=np.int64)
        ranks = np.full(len(samples), -1, dtype=np.int64)
        seen = np.zeros(len(samples), dtype=bool)
        for rows, scores in self.score(samples):
            rows = np.asarray(rows, dtype=np.int64)
            if seen[rows].any():
                raise MethodError(
                    f"{self._who()} scored sample {int(rows[seen[rows]][0])} twice; _score must cover every sample once."
                )
            items[rows] = topk_from_scores(scores, k)
            ranks[rows] = ranks_from_scores(scores, samples.targets[rows])
            seen[rows] = True
        if not seen.all():
            raise MethodError(
                f"{self._who()} scored {int(seen.sum())} of {len(samples)} samples; _score must cover every sample."
            )
        return Recommendations(items=items, ranks=ranks)
