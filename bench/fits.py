"""Fitted methods a command keeps between its runs, so that nothing is fitted twice:

- the last fitted configuration: the next configuration of the same method and seed that differs
  from it only in decode-time settings (`Method.decode_settings`: decoding, grounding, an
  assistant's mix) takes the fitted model through `reconfigure()` instead of a new fit, so a grid
  over those settings costs one fit;
- the fit cache on disk (bench.fitcache), for methods that can save their fit: a configuration
  whose training key another command or job fitted loads that fit; one that is fitted here is
  stored there for the next;
- assistants: a method that uses another method's fitted model (`Context.fitted_assistant`, e.g.
  D3's text-free assistant SASRec) gets it fitted once per (assistant configuration, split, seed),
  seeded with the run's seed and without disturbing the outer fit's random stream.

Only the last fitted configuration is kept (a model on the GPU is large); the runner orders a
grid so that configurations sharing a fit come one after the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import is_storage_error, storage_sentence
from bench.fitcache import FitCache
from bench.method import Context, Method
from bench.plan import Planned, plan_methods
from bench.request import Evaluation
from bench.seeding import seeded_aside


@dataclass
class Fitted:
    method: Method
    fit_key: str
    run_key: str  # the run whose fit this is
    seconds: float


@dataclass
class AssistantUse:
    """What a run records of an assistant it used (bench.record.RunRecord.assistants)."""

    method: str
    label: str
    key: str
    fit_s: float  # what fitting it cost (0 when an earlier run of the command fitted it)

    def as_record(self) -> dict:
        return dataclasses.asdict(self)


class FitBusy(Exception):
    """Another process is fitting this training key and the command skips busy runs."""


@dataclass
class Fits:
    evaluation: Evaluation
    split_hash: str
    work_root: Path  # assistants' scratch folders, removed by close()
    cache: FitCache | None = None  # None: fits are kept in memory only
    busy: str = "wait"  # another process fitting the same key: wait for it, or "skip" the run
    force: bool = False  # fit again (and replace the cached fit) instead of loading one (--force)
    say: object = None  # say(markup): where a wait or a damaged cache entry is reported
    last: Fitted | None = None
    assistants: dict[str, Fitted] = field(default_factory=dict)
    uses: list[AssistantUse] = field(default_factory=list)  # of the run being computed
    loaded_from_cache: bool = False  # whether the run being computed loaded its fit from the cache

    def fit_key(self, p: Planned, seed: int) -> str:
        return training_key(p, self.split_hash, seed)

    def method_for(self, p: Planned, seed: int, run_key: str, train, valid, context: Context) -> tuple[Method, float, str | None]:
        """(the method fitted for `p`, seconds spent fitting or loading it now, the run whose fit
        it reuses or None when fitted now)."""
        self.uses = []
        self.loaded_from_cache = False
        context.assistant = lambda name, settings: self.assistant(name, settings, seed, train, valid, context)
        key = self.fit_key(p, seed)
        if self.last is not None and self.last.fit_key == key:
            self.last.method.reconfigure(p.config)
            return self.last.method, 0.0, self.last.run_key
        self.last = None  # free the previous model before fitting the next
        method, seconds, fitted_by = self._fit_or_load(p.name, p.cls, p.config, key, run_key, train, valid, context)
        self.loaded_from_cache = fitted_by is not None
        self.last = Fitted(method, key, fitted_by or run_key, seconds)
        return method, seconds, fitted_by

    def _fit_or_load(self, name: str, cls, config, key: str, run_key: str, train, valid, context: Context):
        """(method, seconds, the run that fitted it when loaded from the cache, else None)."""
        cache = self.cache if self.cache is not None and cls.caches_fits() and self.cache.enabled else None
        if cache is None:
            method, seconds = _timed_fit(cls(config), train, valid, context)
            return method, seconds, None
        with self._claim(cache, key, name):
            entry = None if self.force else _agreed(cache.find(name, key))
            if entry is not None and entry.manifest is not None:
                method = cls(config)
                started = time.perf_counter()
                try:
                    cache.load(method, entry, train, valid, context)
                    return method, time.perf_counter() - started, entry.fitted_by
                except Exception as exc:  # noqa: BLE001 (any failure to load: fit again)
                    entry.problem = f"{type(exc).__name__}: {exc}"
            if entry is not None:
                from rich.markup import escape

                self._say(
                    f"[yellow]the cached fit {escape(str(entry.folder))} cannot be used ({escape(entry.problem)}); fitting again[/]"
                )
                cache.remove(entry)
            method, seconds = _timed_fit(cls(config), train, valid, context)
            self._store(cache, method, name, key, run_key, seconds)
            return method, seconds, None

    def _store(self, cache: FitCache, method: Method, name: str, key: str, run_key: str, seconds: float) -> None:
        from bench import distributed

        if not distributed.is_main_process():
            return
        try:
            cache.save(method, name, key, run_key, seconds)
        except OSError as exc:
            if not is_storage_error(exc):
                raise
            self._say(f"[yellow]the fit was not kept in the fit cache: {storage_sentence(exc)}[/]")

    @contextlib.contextmanager
    def _claim(self, cache: FitCache, key: str, name: str):
        """Hold the training key's lock for the block (one process fits a key at a time); nothing
        to hold in a launched job, or in a results folder that cannot hold locks."""
        from bench import distributed
        from bench.locks import try_acquire

        if distributed.launched_processes() > 1:
            yield
            return
        try:
            lock = cache.lock(key)
            acquired = try_acquire(lock)
        except OSError:
            yield  # a results folder that cannot hold locks: fit here
            return
        if not acquired:
            if self.busy == "skip":
                raise FitBusy(key)
            self._say(f"[dim]{name}: another process is fitting the same model ({key[:8]}); waiting to load it[/]")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _say(self, markup: str) -> None:
        if self.say is not None:
            self.say(markup)

    def assistant(self, name: str, settings: dict, seed: int, train, valid, context: Context) -> Method:
        """`name` with `settings` fitted on this split with `seed` (once per command, or loaded
        from the fit cache)."""
        (q,) = plan_methods([name], {name: {k: str(v) for k, v in settings.items()}})
        key = self.evaluation.key(q, self.split_hash, seed)
        fitted = self.assistants.get(key)
        fit_s = 0.0
        if fitted is None:
            sub = dataclasses.replace(context, work_dir=self.work_root / f"assistant-{key}", assistant=None)
            sub.work_dir.mkdir(parents=True, exist_ok=True)
            with seeded_aside(seed):
                method, fit_s, _ = self._fit_or_load(q.name, q.cls, q.config, self.fit_key(q, seed), key, train, valid, sub)
            fitted = self.assistants[key] = Fitted(method, key, key, fit_s)
        if not any(u.key == key for u in self.uses):
            self.uses.append(AssistantUse(q.name, q.label, key, fit_s))
        return fitted.method

    def close(self) -> None:
        import shutil

        self.last = None
        for key in self.assistants:
            shutil.rmtree(self.work_root / f"assistant-{key}", ignore_errors=True)
        self.assistants.clear()


def training_key(p: Planned, split_hash: str, seed: int) -> str:
    """What fitting `p` with `seed` on the split depends on: the run key without the decode-time
    settings and the test subset. Configurations with one training key share one fit."""
    from bench.store import run_key

    return run_key(p.name, p.cls.version, p.fit_key_config, split_hash, seed, None, None)


def _timed_fit(method: Method, train, valid, context: Context) -> tuple[Method, float]:
    started = time.perf_counter()
    method.fit(train, valid, context)
    return method, time.perf_counter() - started


def _agreed(entry):
    """The cache entry every process of a launched job sees (none unless all see a complete one)."""
    from bench import distributed

    if distributed.launched_processes() <= 1:
        return entry
    seen = distributed.gather(entry is not None and entry.manifest is not None)
    return entry if all(seen) else None
