"""Fitted methods a command keeps between its runs, so that nothing is fitted twice:

- the last fitted configuration: the next configuration of the same method and seed that differs
  from it only in decode-time settings (`Method.decode_settings`: decoding, grounding, an
  assistant's mix) takes the fitted model through `reconfigure()` instead of a new fit, so a grid
  over those settings costs one fit;
- assistants: a method that uses another method's fitted model (`Context.fitted_assistant`, e.g.
  D3's text-free assistant SASRec) gets it fitted once per (assistant configuration, split, seed),
  seeded with the run's seed and without disturbing the outer fit's random stream.

Only the last fitted configuration is kept (a model on the GPU is large); the runner orders a
grid so that configurations sharing a fit come one after the other.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Fits:
    evaluation: Evaluation
    split_hash: str
    work_root: Path  # assistants' scratch folders, removed by close()
    last: Fitted | None = None
    assistants: dict[str, Fitted] = field(default_factory=dict)
    uses: list[AssistantUse] = field(default_factory=list)  # of the run being computed

    def fit_key(self, p: Planned, seed: int) -> str:
        from bench.store import run_key

        return run_key(p.name, p.cls.version, p.fit_key_config, self.split_hash, seed, None, None)

    def method_for(self, p: Planned, seed: int, run_key: str, train, valid, context: Context) -> tuple[Method, float, str | None]:
        """(the method fitted for `p`, seconds spent fitting it now, the run whose fit it reuses or None)."""
        self.uses = []
        context.assistant = lambda name, settings: self.assistant(name, settings, seed, train, valid, context)
        key = self.fit_key(p, seed)
        if self.last is not None and self.last.fit_key == key:
            self.last.method.reconfigure(p.config)
            return self.last.method, 0.0, self.last.run_key
        self.last = None  # free the previous model before fitting the next
        method = p.cls(p.config)
        started = time.perf_counter()
        method.fit(train, valid, context)
        seconds = time.perf_counter() - started
        self.last = Fitted(method, key, run_key, seconds)
        return method, seconds, None

    def assistant(self, name: str, settings: dict, seed: int, train, valid, context: Context) -> Method:
        """`name` with `settings` fitted on this split with `seed` (once per command)."""
        (q,) = plan_methods([name], {name: {k: str(v) for k, v in settings.items()}})
        key = self.evaluation.key(q, self.split_hash, seed)
        fitted = self.assistants.get(key)
        fit_s = 0.0
        if fitted is None:
            sub = dataclasses.replace(context, work_dir=self.work_root / f"assistant-{key}", assistant=None)
            sub.work_dir.mkdir(parents=True, exist_ok=True)
            method = q.cls(q.config)
            started = time.perf_counter()
            with seeded_aside(seed):
                method.fit(train, valid, sub)
            fit_s = time.perf_counter() - started
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


def share_fits(planned: list[Planned], fit_key) -> list[Planned]:
    """The planned configurations with those sharing a fit next to each other (stable)."""
    order: dict[str, int] = {}
    for p in planned:
        order.setdefault(fit_key(p), len(order))
    return sorted(planned, key=lambda p: order[fit_key(p)])
