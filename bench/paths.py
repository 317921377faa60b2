"""Where the harness reads and writes. Every location can be moved by an environment variable
(and by a CLI option that sets it), so tests and users never write into the source tree by accident.

    BENCH_CARDS_DIR    dataset cards                     default: <project>/datasets
    BENCH_DATA_DIR     prepared splits                   default: <project>/datasets/prepared
    BENCH_RAW_DIR      downloaded raw files              default: <project>/datasets/raw
    BENCH_RESULTS_DIR  stored runs and leaderboards      default: <project>/results
    BENCH_CACHE_DIR    built tokenizers, tiny models...  default: <project>/.cache
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _dir(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser() if value else default


def cards_dir() -> Path:
    return _dir("BENCH_CARDS_DIR", PROJECT_ROOT / "datasets")


def data_dir() -> Path:
    return _dir("BENCH_DATA_DIR", PROJECT_ROOT / "datasets" / "prepared")


def raw_dir() -> Path:
    return _dir("BENCH_RAW_DIR", PROJECT_ROOT / "datasets" / "raw")


def results_dir() -> Path:
    return _dir("BENCH_RESULTS_DIR", PROJECT_ROOT / "results")


def cache_dir() -> Path:
    return _dir("BENCH_CACHE_DIR", PROJECT_ROOT / ".cache")
