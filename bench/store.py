"""The run store. A run is a pure function of (method, version, resolved config, split hash, seed,
test limit); its key is a hash of those, and a stored key is never recomputed.

    <results>/runs/<dataset>/<method>/<key>/run.json        metrics, config, provenance, timing
                                            per_sample.npz  sample_index, rank, topk (50), invalid

A run is written into a temporary folder beside its final place and renamed in one step, so a
half-written run is never read as done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import paths

SCHEMA_VERSION = 1
TOP_N = 50


def run_key(method: str, version: str, config: dict, split_hash: str, seed: int, limit_test: int | None) -> str:
    payload = json.dumps(
        {"method": method, "version": version, "config": config, "split": split_hash, "seed": seed, "limit_test": limit_test},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_label(method: str, overrides: dict) -> str:
    """How a run is named in tables: the method, then its --set overrides, `sft[epochs=1,lr=0.001]`."""
    if not overrides:
        return method
    return f"{method}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"


def wrappable_label(label: str) -> str:
    """A label a terminal table may break after each override: `sft[epochs=1, lr=0.001]`."""
    return label.replace(",", ", ") if "[" in label else label


@dataclass
class StoredRun:
    folder: Path
    record: dict

    @property
    def key(self) -> str:
        return self.record["key"]

    def arrays(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "per_sample.npz") as data:
            return {name: data[name] for name in data.files}


class RunStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    def run_dir(self, dataset: str, method: str, key: str) -> Path:
        return self.root / "runs" / dataset / method / key

    def has(self, dataset: str, method: str, key: str) -> bool:
        return (self.run_dir(dataset, method, key) / "run.json").is_file()

    def save(self, record: dict, arrays: dict[str, np.ndarray]) -> Path:
        final = self.run_dir(record["dataset"], record["method"], record["key"])
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{record['key']}.tmp-", dir=final.parent))
        try:
            np.savez_compressed(tmp / "per_sample.npz", **arrays)
            (tmp / "run.json").write_text(json.dumps(dict(record, schema=SCHEMA_VERSION), indent=2, sort_keys=True, default=str))
            if final.exists():  # an older copy of the same key: replace it whole
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

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
