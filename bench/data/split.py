"""The prepared split: a catalogue of items and three sample sets, shared by every method.

    user's interactions, oldest first:   i0  i1  i2  i3  ...  iN
    one sample per position p >= 1:      history = i[max(0, p-L) : p]   target = i[p]
    all samples sorted by (target time, user, position), then cut 80 / 10 / 10:

        |<------------- train ------------->|<- valid ->|<- test ->|
        0                               int(.8n)    int(.9n)       n

On disk a prepared split is a folder: items.tsv, train.tsv, valid.tsv, test.tsv and manifest.json.
The content hash covers the four tables, so every run can say exactly which split it saw.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bench.atomic import write_text
from bench.data.cards import DatasetCard
from bench.errors import BenchError

SPLITS = ("train", "valid", "test")
TABLES = ("items.tsv", "train.tsv", "valid.tsv", "test.tsv")


@dataclass
class Catalogue:
    """Items by id (0..n-1). An item is a unique cleaned title; `sources` lists the raw ids merged into it."""

    titles: list[str]
    sources: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.titles)


@dataclass
class Samples:
    """Next-item samples. `histories[i]` are item ids oldest first; `targets[i]` the item to predict."""

    users: np.ndarray
    histories: list[tuple[int, ...]]
    targets: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, index) -> Samples:
        index = np.asarray(index, dtype=np.int64)
        return Samples(
            users=self.users[index],
            histories=[self.histories[i] for i in index],
            targets=self.targets[index],
            times=self.times[index],
        )

    def content_hash(self) -> str:
        """A hash of the samples in their order (user, history, target, time each): two runs with
        the same hash learned from the same samples."""
        import hashlib

        digest = hashlib.sha256()
        digest.update("\x1f".join(map(str, self.users.tolist())).encode())
        digest.update(";".join(",".join(map(str, h)) for h in self.histories).encode())
        digest.update(np.asarray(self.targets, dtype=np.int64).tobytes())
        digest.update(np.asarray(self.times, dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]

    def head(self, n: int | None) -> Samples:
        if n is None or n >= len(self):
            return self
        return self.subset(np.arange(n))

    def history_matrix(self, length: int, pad: int = -1, align: str = "right") -> np.ndarray:
        """Histories as an (n, length) array, padded with `pad`; `align="right"` keeps the newest item last."""
        out = np.full((len(self), length), pad, dtype=np.int64)
        for row, hist in enumerate(self.histories):
            hist = hist[-length:]
            if not hist:
                continue
            if align == "right":
                out[row, length - len(hist) :] = hist
            else:
                out[row, : len(hist)] = hist
        return out

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user": self.users,
                "history": [" ".join(map(str, h)) for h in self.histories],
                "target": self.targets,
                "time": self.times,
            }
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Samples:
        histories = [tuple(int(x) for x in str(h).split()) if isinstance(h, str) and h else () for h in frame["history"]]
        return cls(
            users=frame["user"].to_numpy(np.int64),
            histories=histories,
            targets=frame["target"].to_numpy(np.int64),
            times=frame["time"].to_numpy(np.int64),
        )


@dataclass
class Split:
    name: str
    card: DatasetCard
    items: Catalogue
    train: Samples
    valid: Samples
    test: Samples
    hash: str
    manifest: dict

    @property
    def n_items(self) -> int:
        return len(self.items)


def write_split(folder: Path, items: Catalogue, parts: dict[str, Samples], manifest: dict) -> str:
    """Write the tables, hash them, then write the manifest last: a folder without a manifest is not
    a prepared split. Returns the content hash."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").unlink(missing_ok=True)
    item_frame = pd.DataFrame(
        {"item": np.arange(len(items)), "title": items.titles, "sources": ["|".join(s) for s in items.sources]}
    )
    item_frame.to_csv(folder / "items.tsv", sep="\t", index=False)
    for split in SPLITS:
        parts[split].to_frame().to_csv(folder / f"{split}.tsv", sep="\t", index=False)
    digest = content_hash(folder)
    manifest = dict(manifest, split_hash=digest)
    write_text(folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
    return digest


def content_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for name in TABLES:
        h.update(name.encode())
        h.update((folder / name).read_bytes())
    return h.hexdigest()[:16]


def read_split(folder: Path, card: DatasetCard) -> Split:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise BenchError(
            f"Dataset '{card.name}' is not prepared (no {manifest_path}); run `bench data prepare {card.name}` first."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        digest = content_hash(folder)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchError(
            f"Prepared data in {folder} is damaged ({exc}); run `bench data prepare {card.name} --force` to rebuild it."
        ) from exc
    reviews = manifest.get("card", {}).get("reviews")
    if reviews and reviews != card.reviews:  # prepared with --reviews: the split's card says which file
        card = replace(card, reviews=reviews)
    try:
        item_frame = pd.read_csv(folder / "items.tsv", sep="\t", keep_default_na=False, dtype={"title": str, "sources": str})
        parts = {
            s: Samples.from_frame(pd.read_csv(folder / f"{s}.tsv", sep="\t", keep_default_na=False, dtype={"history": str}))
            for s in SPLITS
        }
    except (OSError, pd.errors.ParserError, KeyError) as exc:
        raise BenchError(
            f"Prepared data in {folder} is damaged ({exc}); run `bench data prepare {card.name} --force` to rebuild it."
        ) from exc
    if not isinstance(manifest, dict) or digest != manifest.get("split_hash"):
        raise BenchError(
            f"Prepared data in {folder} does not match its manifest (content hash {digest}, manifest "
            f"{manifest.get('split_hash') if isinstance(manifest, dict) else 'unreadable'}); run `bench data prepare {card.name} --force` to rebuild it."
        )
    items = Catalogue(
        titles=item_frame["title"].tolist(),
        sources=[s.split("|") if s else [] for s in item_frame["sources"]],
    )
    return Split(card.name, card, items, parts["train"], parts["valid"], parts["test"], manifest["split_hash"], manifest)
