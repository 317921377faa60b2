"""Fitted models kept on disk, one per training key, so that a run whose configuration differs from
an earlier one in decode-time settings only (`Method.decode_settings`) loads that fit instead of
training again: across commands, processes and Slurm jobs that share the results folder.

    <results>/fits/<method>/<fit key>/fit.json     what the entry is (method, key, the run that fitted it, size)
                                      model/       the method's own files (Method.save_fit)

- Only methods that implement `_save_fit`/`_load_fit` are kept (the LLM methods and RecBole's);
  the others fit every time.
- One process fits a training key at a time: the others wait for it (or, with `--busy skip`,
  skip the run) and then load what it stored. An entry is written beside its place and renamed
  in, so it is complete or absent.
- Eviction: the cache holds at most BENCH_FIT_CACHE_GB gigabytes (default 20; 0 keeps nothing
  and reads nothing). After a fit is stored, the least recently used entries (by when a run last
  loaded or stored them) are removed until the rest fits, never the new one and never one a
  process is loading or fitting now. A single entry larger than the limit stays until the next.
- `bench runs --prune` removes every entry no process is using, damaged ones and interrupted
  writes included. Stored runs never depend on the cache.
- An entry that cannot be loaded (damaged, or written by an incompatible version) is removed and
  the method is fitted again, with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.atomic import atomic_dir
from bench.errors import BenchError

ENV = "BENCH_FIT_CACHE_GB"
DEFAULT_GB = 20.0
MANIFEST = "fit.json"
MODEL = "model"


def budget_bytes() -> int:
    """The cache's size limit in bytes (BENCH_FIT_CACHE_GB; 0: no cache)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return int(DEFAULT_GB * 1e9)
    try:
        gb = float(text)
    except ValueError:
        gb = -1.0
    if not gb >= 0 or gb == float("inf"):
        raise BenchError(
            f"{ENV}={text!r} is not a size; give the fit cache's limit in gigabytes, e.g. {ENV}=20, or 0 to keep no fits."
        )
    return int(gb * 1e9)


@dataclass
class Entry:
    folder: Path
    manifest: dict | None  # None: damaged (the reason in `problem`)
    problem: str | None = None

    @property
    def key(self) -> str:
        return self.folder.name

    @property
    def fitted_by(self) -> str:
        return (self.manifest or {}).get("fitted_by", "")

    def size(self) -> int:
        """Bytes on disk (0 for what another process removed meanwhile)."""
        return _size(self.folder)

    def last_used(self) -> float:
        try:
            return (self.folder / MANIFEST).stat().st_mtime
        except OSError:
            return 0.0


class FitCache:
    def __init__(self, results_root: Path):
        self.results_root = Path(results_root)
        self.root = self.results_root / "fits"

    @property
    def enabled(self) -> bool:
        return budget_bytes() > 0

    def folder(self, method: str, key: str) -> Path:
        return self.root / method / key

    def lock(self, key: str):
        from bench.locks import lock_for

        return lock_for(self._lock_path(key))

    def _lock_path(self, key: str) -> Path:
        return self.results_root / ".locks" / f"fit-{key}.lock"

    def find(self, method: str, key: str) -> Entry | None:
        folder = self.folder(method, key)
        return _read(folder) if folder.is_dir() else None

    def load(self, method_obj, entry: Entry, train, valid, context) -> None:
        """Rebuild `method_obj` from `entry` and mark the entry used now."""
        method_obj.load_fit(entry.folder / MODEL, train, valid, context)
        try:
            os.utime(entry.folder / MANIFEST)
        except OSError:
            pass  # a read-only results folder: the entry stays as old as it was

    def save(self, method_obj, method: str, key: str, fitted_by: str, fit_s: float) -> Path:
        """Store a fitted method under its training key, then evict beyond the size limit."""
        folder = self.folder(method, key)
        with atomic_dir(folder) as tmp:
            method_obj.save_fit(tmp / MODEL)
            manifest = {
                "method": method,
                "key": key,
                "fitted_by": fitted_by,
                "fit_s": round(fit_s, 3),
                "bytes": _size(tmp / MODEL),
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        self.evict(keep=key)
        return folder

    def remove(self, entry: Entry) -> None:
        """Remove an entry whose training key's lock the caller holds."""
        shutil.rmtree(entry.folder, ignore_errors=True)

    def entries(self) -> list[Entry]:
        """Every entry (complete or damaged), oldest use first."""
        found = [_read(f) for f in sorted(self.root.glob("*/*")) if f.is_dir() and not f.name.startswith(".")]
        return sorted(found, key=Entry.last_used)

    def leftovers(self) -> list[Path]:
        """Folders of writes that were interrupted (no process is writing them now)."""
        out = []
        for folder in sorted(self.root.glob("*/.*")):
            key = folder.name[1:].split(".tmp-")[0].split(".old-")[0]
            if folder.is_dir() and not self.busy(key):
                out.append(folder)
        return out

    def evict(self, keep: str) -> list[Entry]:
        """Remove the least recently used entries until the cache fits its limit (bench.fitcache)."""
        budget = budget_bytes()
        entries = self.entries()
        sizes = {e.folder: e.size() for e in entries}
        total = sum(sizes.values())
        removed = []
        for entry in entries:
            if total <= budget:
                break
            if entry.key != keep and self.remove_unused(entry, shutil.rmtree)[0]:
                total -= sizes[entry.folder]
                removed.append(entry)
        return removed

    def remove_unused(self, entry: Entry, remove) -> tuple[bool, object]:
        """`remove(entry.folder)` unless a process is fitting or loading the entry now (it holds the
        training key's lock, which is held here while removing): (whether it was called, what it returned)."""
        from bench.locks import try_acquire

        lock = self.lock(entry.key)
        if not try_acquire(lock):
            return False, None
        try:
            return True, remove(entry.folder)
        finally:
            lock.release()

    def busy(self, key: str) -> bool:
        """Whether a process is fitting, loading or removing the entry of `key` now."""
        from bench.locks import held_elsewhere

        return held_elsewhere(self._lock_path(key))

    def summary(self) -> str:
        entries = self.entries()
        size = sum(e.size() for e in entries)
        limit = budget_bytes()
        where = f"{len(entries)} cached fit(s), {_gb(size)} in {self.root}"
        if limit == 0:
            return f"{where}; the fit cache is off ({ENV}=0)."
        return f"{where} (at most {_gb(limit)}, least recently used removed first; {ENV} sets it)."


def _size(folder: Path) -> int:
    total = 0
    try:
        for f in folder.rglob("*"):
            if f.is_file():
                total += f.stat().st_size
    except FileNotFoundError:
        pass  # removed while it was measured
    return total


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.1f} MB"


def _read(folder: Path) -> Entry:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Entry(folder, None, f"{MANIFEST} is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Entry(folder, None, f"{MANIFEST} cannot be read: {type(exc).__name__}")
    if not isinstance(manifest, dict) or manifest.get("key") != folder.name or not (folder / MODEL).is_dir():
        return Entry(folder, None, "it does not hold what its fit.json names")
    return Entry(folder, manifest)
