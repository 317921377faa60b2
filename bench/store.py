"""The run store. A run is a pure function of (method, version, resolved config, split hash, seed,
test limit); its key is a hash of those, and a stored key is never recomputed.

    <results>/runs/<dataset>/<method>/<key>/run.json              the run record (bench/record.py)
                                            per_sample.npz        sample_index, rank, topk (50), invalid
                                            valid_per_sample.npz  the same on the validation split, when scored

A run is written into a temporary folder beside its final place and renamed in one step, so a
half-written run is never read as done. `experiments` in run.json lists the names (`bench run
--name`) under which the run was asked for; they group runs into tables and are not part of the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import paths
from bench.atomic import atomic_dir, atomic_file, write_text
from bench.errors import BenchError
from bench.record import RecordError, RunRecord

ARRAY_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)  # a damaged .npz
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


_EXPERIMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_experiment_name(name: str) -> str:
    """An experiment name is also part of file names: letters, digits, '.', '_' and '-'."""
    if not _EXPERIMENT_NAME.fullmatch(name):
        raise BenchError(
            f"Experiment name '{name}' cannot be used; give 1 to 64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit, e.g. --name smollm2-1k."
        )
    return name


def _dump(record: RunRecord) -> str:
    return json.dumps(record.to_json(), indent=2, sort_keys=True, default=str)


@dataclass
class StoredRun:
    folder: Path
    record: RunRecord

    @property
    def key(self) -> str:
        return self.record.key

    def arrays(self, part: str = "test") -> dict[str, np.ndarray]:
        """Per-sample arrays of the test set, or of the validation set (`part="valid"`) when scored."""
        for _ in range(REREADS):
            try:
                return _load_arrays(self.folder / array_file(self.record, part))
            except FileNotFoundError:
                # another process replaced this run since its record was read: read the new one
                fresh, _ = _check_once(self.folder)
                if fresh is None or array_file(fresh, part) == array_file(self.record, part):
                    raise  # not a replacement: the file is really gone
                self.record = fresh
        return _load_arrays(self.folder / array_file(self.record, part))

    @property
    def has_valid(self) -> bool:
        return self.record.valid is not None and (self.folder / array_file(self.record, "valid")).is_file()

    def has_part(self, part: str) -> bool:
        """Whether the run holds the per-sample arrays of `part` ("valid", "history_none", ...)."""
        return (self.folder / array_file(self.record, part)).is_file()


def array_file(record: RunRecord | None, part: str) -> str:
    """The file holding a run's per-sample arrays: named in run.json once the run was replaced in
    place, the part's usual name otherwise (and for a record not stored yet: None)."""
    usual = ARRAY_FILES.get(part, f"{part}.npz")
    return record.arrays.get(part, usual) if record is not None else usual


def _load_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except ARRAY_ERRORS as exc:
        raise BenchError(DamagedRun(path.parent, f"{path.name} cannot be read: {type(exc).__name__}").sentence()) from None


REREADS = 50  # a run replaced this many times while one reader reads it is not a realistic case
REPAIR = "run the same `bench run` command again to recompute it, or `bench runs --prune` to remove it"


@dataclass
class DamagedRun:
    folder: Path
    reason: str

    def sentence(self) -> str:
        return f"Stored run {self.folder} is damaged ({self.reason}); {REPAIR}."


def check_run(folder: Path) -> tuple[RunRecord | None, str | None]:
    """(record, None) for a complete run; (record or None, what is wrong) otherwise."""
    record, problem = _check_once(folder)
    for _ in range(REREADS):  # replaced in place between reading run.json and its arrays: read again
        if problem is None or record is None or "missing" not in problem:
            break
        again, problem = _check_once(folder)
        if again == record:
            break  # the same record names a missing file: really damaged
        record = again
    return record, problem


def _check_once(folder: Path) -> tuple[RunRecord | None, str | None]:
    try:
        data = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "run.json is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"run.json cannot be read: {type(exc).__name__}"
    try:
        record = RunRecord.from_json(data)
    except RecordError as exc:
        return None, f"run.json {exc}"
    name = array_file(record, "test")
    try:
        with np.load(folder / name) as arrays:
            lengths = {field: len(arrays[field]) for field in ("sample_index", "rank")}
    except FileNotFoundError:
        return record, f"{name} is missing"
    except ARRAY_ERRORS as exc:
        return record, f"{name} cannot be read: {type(exc).__name__}"
    if set(lengths.values()) != {record.n_test}:
        return record, f"{name} holds {lengths['rank']} samples where run.json says {record.n_test}"
    return record, None


class RunStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else paths.results_dir()

    def run_dir(self, dataset: str, method: str, key: str) -> Path:
        return self.root / "runs" / dataset / method / key

    def find(self, dataset: str, method: str, key: str) -> tuple[StoredRun | None, DamagedRun | None]:
        """The stored run of a key, or what is wrong with its folder; (None, None) when absent."""
        folder = self.run_dir(dataset, method, key)
        if not folder.exists():
            return None, None
        record, problem = check_run(folder)
        if problem is not None:
            return None, DamagedRun(folder, problem)
        return StoredRun(folder, record), None

    def lock(self, key: str):
        """The inter-process lock of a run key: one process computes a key at a time."""
        from bench.locks import lock_for

        return lock_for(self._lock_path(key))

    def _lock_path(self, key: str) -> Path:
        return self.root / ".locks" / f"{key}.lock"

    def save(
        self,
        record: RunRecord,
        arrays: dict[str, np.ndarray],
        valid_arrays: dict[str, np.ndarray] | None = None,
        extra_parts: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> Path:
        """Store a run. The store never lacks a complete copy of the key, also while several
        processes save it at once: a new key's folder is built aside and renamed into place; an
        existing one (--force, a damaged copy) gets its new arrays under fresh names first, then
        run.json, which names them, is replaced in one step, and only then the old arrays go."""
        from bench.locks import lock_for

        final = self.run_dir(record.dataset, record.method, record.key)
        parts = {"test": arrays} | ({"valid": valid_arrays} if valid_arrays is not None else {}) | (extra_parts or {})
        with lock_for(self.root / ".locks" / f"{record.key}.save.lock"):
            if not final.exists():
                with atomic_dir(final) as tmp:
                    for part, values in parts.items():
                        np.savez_compressed(tmp / array_file(None, part), **values)
                    (tmp / "run.json").write_text(_dump(dataclasses.replace(record, arrays={})))
                return final
            token = uuid.uuid4().hex[:12]
            names = {part: f"{Path(array_file(None, part)).stem}.{token}.npz" for part in parts}
            try:
                for part, values in parts.items():
                    with atomic_file(final / names[part]) as tmp:
                        with open(tmp, "wb") as f:
                            np.savez_compressed(f, **values)
                write_text(final / "run.json", _dump(dataclasses.replace(record, arrays=names)))
            except BaseException:  # the old copy stays complete; the new arrays go with the failure
                for name in names.values():
                    (final / name).unlink(missing_ok=True)
                raise
            for stale in final.glob("*.npz"):
                if stale.name not in names.values():
                    stale.unlink(missing_ok=True)
        return final

    def add_experiment(self, run: StoredRun, name: str) -> StoredRun:
        """Name `run` as part of experiment `name` too (names are not part of the key)."""
        from bench.locks import lock_for

        if name in run.record.experiments:
            return run
        with lock_for(self.root / ".locks" / f"{run.key}.save.lock"):  # never over a newer save
            record, problem = check_run(run.folder)
            if problem is not None:
                raise BenchError(DamagedRun(run.folder, problem).sentence())
            record = record.with_experiment(name)
            write_text(run.folder / "run.json", _dump(record))
        return StoredRun(run.folder, record)

    def load(self, dataset: str, method: str, key: str) -> StoredRun:
        run, damaged = self.find(dataset, method, key)
        if run is None:
            raise BenchError(damaged.sentence() if damaged else f"No stored run {self.run_dir(dataset, method, key)}.")
        return run

    def scan(self, dataset: str | None = None) -> tuple[list[StoredRun], list[DamagedRun]]:
        """Every run folder (optionally of one dataset), checked: complete runs and damaged ones.
        Temporary folders (a save in progress) are neither."""
        base = self.root / "runs"
        pattern = f"{dataset}/*/*" if dataset else "*/*/*"
        runs, damaged = [], []
        for folder in sorted(base.glob(pattern)):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            record, problem = check_run(folder)
            if problem is None:
                runs.append(StoredRun(folder, record))
            else:
                damaged.append(DamagedRun(folder, problem))
        return runs, damaged

    def runs(self, dataset: str | None = None) -> list[StoredRun]:
        """Every complete run (optionally of one dataset); see scan() for the damaged ones."""
        return self.scan(dataset)[0]

    def leftovers(self) -> list[Path]:
        """What no complete run needs, of keys no process is computing or saving now: work
        folders, temporary or set-aside copies of interrupted saves, and inside a run's folder
        the temporary files and arrays its run.json does not name (a save killed half-way)."""
        candidates = [(f, f.name) for f in sorted((self.root / ".work").glob("*")) if f.is_dir()]
        for folder in sorted((self.root / "runs").glob("*/*/.*")):
            for marker in (".tmp-", ".old-"):
                if folder.is_dir() and marker in folder.name:
                    candidates.append((folder, folder.name[1:].split(marker)[0]))
        for folder in sorted((self.root / "runs").glob("*/*/*")):
            if folder.is_dir() and not folder.name.startswith("."):
                candidates += [(f, folder.name) for f in _orphans(folder)]
        return [path for path, key in candidates if not self.busy(key) and not self.busy(f"{key}.save")]

    def busy(self, key: str) -> bool:
        """Whether another process holds the key's lock (is computing it now). A store that cannot
        hold locks (a read-only folder) has nobody computing in it."""
        from bench.locks import held_elsewhere

        return held_elsewhere(self._lock_path(key))


def _orphans(folder: Path) -> list[Path]:
    """Files in a complete run's folder that its run.json does not name."""
    record, problem = check_run(folder)
    if record is None or problem is not None:
        return []  # a damaged run is reported (and pruned) whole
    parts = ["test", "valid", *(f"history_{c}" for c in record.history), *record.arrays]
    named = {"run.json", *(array_file(record, part) for part in parts)}
    return [f for f in sorted(folder.iterdir()) if f.is_file() and f.name not in named]
