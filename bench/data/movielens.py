"""MovieLens-100k as shipped inside RecBole's wheel (recbole/dataset_example/ml-100k): no download.

The files are located through the installed package's folder without importing recbole (its
import pulls in torch and more)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

from bench.errors import BenchError


def ml100k_folder() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("MovieLens-100k ships inside RecBole's wheel, which is not installed; run `pip install recbole==1.2.1`.")
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise BenchError(f"RecBole's copy of MovieLens-100k is missing from {folder}; reinstall recbole==1.2.1.")
    return folder


def read_ml100k(folder: Path | None = None, with_year: bool = True) -> tuple[pd.DataFrame, dict[str, str]]:
    """(reviews with user, item, time) and item -> title ("Toy Story (1995)" with `with_year`)."""
    given = folder is not None
    folder = folder if given else ml100k_folder()
    for name in ("ml-100k.inter", "ml-100k.item"):
        if not (folder / name).is_file():
            if not given:
                raise BenchError(f"RecBole's copy of MovieLens-100k lacks {folder / name}; reinstall recbole==1.2.1.")
            raise BenchError(
                f"{folder / name} does not exist; pass a --raw-dir holding RecBole's atomic files "
                "ml-100k.inter and ml-100k.item, or leave --raw-dir out to use the copy inside RecBole's wheel."
            )
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t", dtype=str)
    reviews = pd.DataFrame(
        {
            "user": inter["user_id:token"],
            "item": inter["item_id:token"],
            "time": inter["timestamp:float"].astype(float).astype("int64"),
        }
    )
    meta = pd.read_csv(folder / "ml-100k.item", sep="\t", dtype=str, keep_default_na=False)
    titles = {}
    for item, title, year in zip(meta["item_id:token"], meta["movie_title:token_seq"], meta["release_year:token"]):
        titles[item] = f"{title} ({year})" if with_year and year else title
    return reviews, titles
