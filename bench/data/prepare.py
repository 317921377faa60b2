"""Prepare a dataset once: read the raw files, run the D3 recipe, write the split and its manifest."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import bench
from bench import paths
from bench.atomic import atomic_dir
from bench.data import amazon, d3, movielens
from bench.data.cards import DatasetCard, load_card
from bench.data.split import Split, read_split, write_split
from bench.errors import BenchError
from bench.locks import lock_for


def prepared_dir(name: str) -> Path:
    return paths.data_dir() / name


def is_prepared(name: str) -> bool:
    return (prepared_dir(name) / "manifest.json").is_file()


def leftovers() -> list[Path]:
    """Temporary or set-aside copies of splits left by a killed `bench data prepare`, of datasets
    no process is preparing now."""
    from bench.locks import held_elsewhere

    found = []
    for folder in sorted(paths.data_dir().glob(".*")):
        name, marker, _ = folder.name[1:].rpartition(".tmp-") if ".tmp-" in folder.name else folder.name[1:].rpartition(".old-")
        if not (folder.is_dir() and marker):
            continue
        if not held_elsewhere(folder.with_name(f".{name}.lock")):  # else: being prepared now
            found.append(folder)
    return found


def prepare(name: str, raw_dir: Path | None = None, force: bool = False, progress=None, reviews: str | None = None) -> dict:
    """Prepare dataset `name` (no-op when already prepared, unless `force`). Returns the manifest."""
    card = load_card(name)
    if reviews:
        if card.source != "amazon2018":
            raise BenchError(f"--reviews applies to Amazon datasets only; '{name}' is {card.source}.")
        card = DatasetCard(**{**card.__dict__, "reviews": reviews})
    folder = prepared_dir(name)
    # one process prepares a dataset at a time; the others wait and then find it prepared
    with lock_for(folder.with_name(f".{name}.lock")):
        return _prepare_locked(name, card, folder, raw_dir, force, progress)


def _prepare_locked(name: str, card: DatasetCard, folder: Path, raw_dir, force: bool, progress) -> dict:
    if is_prepared(name) and not force:
        existing = load_split(name)
        if existing.manifest.get("reviews_file", "") == _reviews_label(card):
            used = _raw_folder(existing.manifest)
            if raw_dir is not None and used is not None and used != Path(raw_dir).resolve():
                raise BenchError(f"Dataset '{name}' is already prepared from {used}; add --force to rebuild it from {raw_dir}.")
            return existing.manifest

    source_counts: Counter = Counter()
    if card.source == "movielens":
        folder_raw = Path(raw_dir) if raw_dir is not None else movielens.ml100k_folder()
        frame, titles = movielens.read_ml100k(folder_raw, with_year=card.title_with_year)
        raw_files = {"interactions": str(folder_raw / "ml-100k.inter"), "items": str(folder_raw / "ml-100k.item")}
    else:
        folder_raw = raw_dir if raw_dir is not None else paths.raw_dir() / name
        review_path, meta_path = amazon.ensure_raw(card, Path(folder_raw), progress)
        task = progress.add_task(f"read {review_path.name}", total=None) if progress else None
        frame, review_counts = amazon.read_reviews(review_path)
        titles, meta_counts = amazon.read_titles(meta_path)
        if task is not None:
            progress.update(task, total=1, completed=1)
        source_counts.update(review_counts)
        source_counts.update(meta_counts)
        raw_files = {"reviews": str(review_path), "metadata": str(meta_path)}

    processed = d3.process(frame, titles, card)
    dropped = Counter(processed.dropped)
    dropped.update({k: v for k, v in source_counts.items() if not k.endswith("_read")})
    manifest = {
        "dataset": name,
        "source": card.source,
        "card": {k: v for k, v in card.__dict__.items() if k != "reference"},
        "reviews_file": _reviews_label(card),
        "raw_files": raw_files,
        "window_start_year": processed.window_start_year,
        "window": _window_text(card, processed.window_start_year),
        "counts": processed.counts | {k: v for k, v in source_counts.items() if k.endswith("_read")},
        "samples": {s: len(p) for s, p in processed.parts.items()},
        "avg_history": {s: _avg_history(p.histories) for s, p in processed.parts.items()},
        "dropped": dict(sorted(dropped.items())),
        "bench_version": bench.__version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(folder) as tmp:  # a folder of its own, renamed into place whole
        write_split(tmp, processed.items, processed.parts, manifest)
    return load_split(name).manifest


def load_split(name: str) -> Split:
    card = load_card(name)
    return read_split(prepared_dir(name), card)


def _raw_folder(manifest: dict) -> Path | None:
    """The folder the prepared split was read from."""
    files = list((manifest.get("raw_files") or {}).values())
    return Path(files[0]).resolve().parent if files else None


def _reviews_label(card: DatasetCard) -> str:
    return "ml-100k.inter" if card.source == "movielens" else amazon.review_filename(card)


def _window_text(card: DatasetCard, start_year: int | None) -> str:
    if start_year is None:
        return "none"
    return f"{start_year}-10-01..{card.window_end}"


def _avg_history(histories) -> float:
    return float(np.mean([len(h) for h in histories])) if histories else 0.0
