"""The other method an LLM method's decoding may use (its `assistant` setting): a score method fitted
on the same split and seed by the harness (bench.method.Context.fitted_assistant: once per command,
assistant configuration, split and seed), asked for its score rows of the samples being decoded.

    assistant_scale < 1, decoding=constrained    D3's text-free assistant (methods.llm.tfa): the
                                                 rows of each batch of prompts
    grounding_adjust=collaborative, grounded     BIGRec's CI (methods.llm.adjust): the rows of each
                                                 chunk of grounded samples

Rows are asked for as they are needed, so no more than a batch's or a chunk's rows exist at once
(a test set times a large catalogue would not fit in memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bench.data.split import Samples
from bench.errors import BenchError
from bench.method import Context, Method, ScoreMethod


def _not_a_score_method(name: str, who: str) -> BenchError:
    return BenchError(
        f"The assistant '{name}' of {who} does not score every catalogue item, so decoding cannot use it; "
        "name a score method such as sasrec or pop."
    )


def check_assistant(name: str, settings: dict[str, str], who: str) -> None:
    """Before anything trains: the assistant is a registered score method whose settings are its
    own and whose own checks (its preflight) pass; BenchError with one sentence otherwise."""
    from bench.plan import plan_methods

    (planned,) = plan_methods([name], {name: dict(settings)})
    if not issubclass(planned.cls, ScoreMethod):
        raise _not_a_score_method(name, who)
    planned.cls.preflight(planned.config)


def fitted_assistant(context: Context, name: str, settings: dict[str, str], who: str) -> ScoreMethod:
    """The assistant fitted on the run's split and seed (the harness fits it once and records it)."""
    method: Method = context.fitted_assistant(name, settings)
    if not isinstance(method, ScoreMethod):
        raise _not_a_score_method(name, who)
    return method


class AssistantScores:
    """The assistant's scores of chosen samples of one decoded set: `scores(rows)` with `rows`
    positions in `samples` (a list in any order, or a slice) is a (len(rows), n_items) float32
    tensor on the CPU, in the order asked."""

    def __init__(self, method: ScoreMethod, samples: Samples, n_items: int):
        self.method, self.samples, self.n_items = method, samples, n_items

    def __call__(self, rows: Sequence[int] | slice):
        import torch

        index = np.arange(len(self.samples))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
        out = torch.empty((len(index), self.n_items), dtype=torch.float32)
        for part, scores in self.method.score(self.samples.subset(index)):
            if isinstance(scores, torch.Tensor):
                scores = scores.detach().to(device="cpu", dtype=torch.float32)
            else:  # numpy, possibly a read-only broadcast view: copied as float32
                scores = torch.from_numpy(np.array(scores, dtype=np.float32))
            out[torch.as_tensor(np.asarray(part, dtype=np.int64))] = scores
        return out
