"""RecBole benchmark ("atomic") files written from our samples: one row per sample, so RecBole
neither splits nor augments anything itself, and the whole catalogue as the item file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.split import Samples
from bench.errors import BenchError

DATASET = "bench"  # RecBole dataset name; no properties/dataset/bench.yaml exists
SPLIT_FILES = ("train", "valid", "test")
USER, ITEM, ITEM_LIST, ITEM_LENGTH = "user_id", "item_id", "item_id_list", "item_length"
INTER_HEADER = f"{USER}:token\t{ITEM_LIST}:token_seq\t{ITEM}:token\n"


def write_atomic_files(folder: Path, parts: dict[str, Samples], n_items: int, max_history: int) -> dict[str, Path]:
    """Write RecBole benchmark files `bench.<part>.inter` (one row per sample, the newest
    `max_history` items of its history, oldest first) and `bench.item` listing every catalogue item,
    so that items never seen in a sample still get a RecBole id. Tokens are our integer ids."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for part, samples in parts.items():
        _check_samples(samples, n_items, part)
        path = folder / f"{DATASET}.{part}.inter"
        lines = [INTER_HEADER]
        for user, hist, target in zip(samples.users.tolist(), samples.histories, samples.targets.tolist()):
            lines.append(f"{user}\t{' '.join(map(str, hist[-max_history:]))}\t{target}\n")
        path.write_text("".join(lines))
        written[part] = path
    item_path = folder / f"{DATASET}.item"
    item_path.write_text(f"{ITEM}:token\n" + "".join(f"{i}\n" for i in range(n_items)))
    written["item"] = item_path
    return written


def _check_samples(samples: Samples, n_items: int, part: str) -> None:
    if len(samples) == 0:
        raise BenchError(f"The {part} set is empty; RecBole models need train and valid samples, re-prepare the dataset.")
    empty = sum(1 for h in samples.histories if not h)
    if empty:
        raise BenchError(
            f"{empty} {part} sample(s) have an empty history, which RecBole's sequential models cannot read; "
            "re-prepare the dataset (every sample has at least one history item)."
        )
    ids = np.concatenate([np.asarray(h, dtype=np.int64) for h in samples.histories] + [samples.targets.astype(np.int64)])
    if ids.min() < 0 or ids.max() >= n_items:
        raise BenchError(f"The {part} set names item ids outside the catalogue (0..{n_items - 1}); re-prepare the dataset.")
