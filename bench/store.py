"""The run store. A run is a pure function of (method, version, resolved config, split hash, seed,
test limit); its key is a hash of those, and a stored key is never recomputed.

    <results>/runs/<dataset>/<method>/<key>/run.json              metrics, config, provenance, timing
                                            per_sample.npz        sample_index, rank, topk (50), invalid
                                            valid_per_sample.npz  the same on the validation split, when scored

A run is written into a temporary folder beside its final place and renamed in one step, so a
half-written run is never read as done. `experiments` in run.json lists the names (`bench run
--name`) under which the run was asked for; they group runs into tables and are not part of the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import paths
from bench.atomic import atomic_dir, write_text
from bench.errors import BenchError

SCHEMA_VERSION = 1
TOP_N = 50
ARRAY_FILES = {"test": "per_sample.npz", "valid": "valid_per_sample.npz"}


def run_key(
    method: str, version: str, config: dict, split_hash: str, seed: int, limit_test: int | None, test_subset: str | None = None
) -> str:
    """`test_subset` ("random:<seed>") joins the hashed payload only when set, so the keys of runs
    on the whole test set or its first n samples are what they always were."""
    fields = {"method": method, "version": version, "config": config, "split": split_hash, "seed": seed, "limit_test": limit_test}
    if test_subset is not None:
        fields["test_subset"] = test_subset
    payload = json.dumps(fields, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_label(method: str, overrides: dict) -> str:
    """How a run is named in tables: the method, then its --set overrides, `sft[epochs=1,lr=0.001]`."""
    if not overrides:
        return method
    return f"{method}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"


_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_experiment_name(name: str) -> str:
    """An experiment name is also part of file names: letters, digits, '.', '_' and '-'."""
    if not _EXPERIMENT_NAME.fullmatch(name):
        raise BenchError(
            f"Experiment name '{name}' cannot be used; give 1 to 64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit, e.g. --name smollm2-1k."
        )
    return name


def experiments(record: dict) -> list[str]:
    """The experiment names a stored run belongs to (`bench run --name`)."""
    return list(record.get("experiments") or [])


def _dump(record: dict) -> str:
    return json.dumps(dict(record, schema=SCHEMA_VERSION), indent=2, sort_keys=True, default=str)


@dataclass
class StoredRun:
    folder: Path
    record: dict

    @property
    def key(self) -> str:
        return self.record["key"]

    def arrays(self, part: str = "test") -> dict[str, np.ndarray]:
        """Per-sample arrays of the test set, or of the validation set (`part="valid"`) when scored."""
        with np.load(self.folder / ARRAY_FILES[part]) as data:
            return {name: data[name] for name in data.files}

    @property
    def has_valid(self) -> bool:
        return bool(self.record.get("valid")) and (self.folder / ARRAY_FILES["valid"]).is_file()


class RunStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    def run_dir(self, dataset: str, method: str, key: str) -> Path:
        return self.root / "runs" / dataset / method / key

    def has(self, dataset: str, method: str, key: str) -> bool:
        return (self.run_dir(dataset, method, key) / "run.json").is_file()

    def save(self, record: dict, arrays: dict[str, np.ndarray], valid_arrays: dict[str, np.ndarray] | None = None) -> Path:
        final = self.run_dir(record["dataset"], record["method"], record["key"])
        with atomic_dir(final) as tmp:  # an older copy of the same key is replaced whole
            np.savez_compressed(tmp / ARRAY_FILES["test"], **arrays)
            if valid_arrays is not None:
                np.savez_compressed(tmp / ARRAY_FILES["valid"], **valid_arrays)
            (tmp / "run.json").write_text(_dump(record))
        return final

    def add_experiment(self, run: StoredRun, name: str) -> StoredRun:
        """Name `run` as part of experiment `name` too (names are not part of the key)."""
        names = experiments(run.record)
        if name in names:
            return run
        record = dict(run.record, experiments=sorted(names + [name]))
        write_text(run.folder / "run.json", _dump(record))
        return StoredRun(run.folder, record)

    def load(self, dataset: str, method: str, key: str) -> StoredRun:
        folder = self.run_dir(dataset, method, key)
        return StoredRun(folder, json.loads((folder / "run.json").read_text()))

    def runs(self, dataset: str | None = None) -> list[StoredRun]:
        """Every complete run (optionally of one dataset); temporary folders are ignored."""
        base = self.root / "runs"
        pattern = f"{dataset}/*/*/run.json" if dataset else "*/*/*/run.json"
        out = []
        for path in sorted(base.glob(pattern)):
            if path.parent.name.startswith("."):
                continue
            try:
                out.append(StoredRun(path.parent, json.loads(path.read_text())))
            except json.JSONDecodeError:
                continue  # cannot happen through save(); a hand-edited file is skipped, not fatal
        return out
