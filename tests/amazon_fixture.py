"""Raw files in the exact Amazon Review Data 2018 format (gzipped JSON lines, the real field names),
and dataset cards pointing at them, for the data-path tests."""

from __future__ import annotations

import gzip
import json
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

from bench.paths import PROJECT_ROOT

MISSING = object()  # a metadata line without a "title" key


def ts(day: str) -> int:
    """'2017-10-01' -> unix seconds at UTC midnight, as unixReviewTime holds it."""
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp())


def review(user: str, asin: str, day: str, rating: float = 5.0) -> dict:
    """One review line as in `<Category>.json.gz`."""
    when = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    return {
        "overall": rating,
        "vote": "2",
        "verified": True,
        "reviewTime": f"{when.month:02d} {when.day}, {when.year}",  # "10 1, 2017"
        "reviewerID": user,
        "asin": asin,
        "style": {"Format:": " Paperback"},
        "reviewerName": f"Reviewer {user}",
        "reviewText": f"Review of {asin} by {user}. Works as described.",
        "summary": "Five Stars",
        "unixReviewTime": ts(day),
    }


def meta(asin: str, title=MISSING) -> dict:
    """One metadata line as in `meta_<Category>.json.gz`; title=MISSING leaves the key out."""
    obj = {
        "category": ["Toys & Games", "Games & Accessories"],
        "tech1": "",
        "description": [f"Description of {asin}."],
        "fit": "",
        "also_buy": ["B000000001"],
        "tech2": "",
        "brand": "Acme",
        "feature": ["Durable"],
        "rank": "123,456 in Toys & Games (",
        "also_view": [],
        "main_cat": "Toys & Games",
        "similar_item": "",
        "date": "",
        "price": "$9.99",
        "asin": asin,
        "imageURL": [],
        "imageURLHighRes": [],
    }
    if title is not MISSING:
        obj["title"] = title
    return obj


def write_jsonl_gz(path: Path, lines) -> Path:
    """Write dicts as JSON lines, gzipped; a str is written verbatim (a malformed line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for line in lines:
            out.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cards_with(folder: Path, name: str, **fields) -> Path:
    """A cards folder holding the project's cards plus one Amazon card `name`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for card in (PROJECT_ROOT / "datasets").glob("*.toml"):
        shutil.copy(card, folder / card.name)
    body = {"name": name, "source": "amazon2018", **fields}
    text = "\n".join(f"{key} = {json.dumps(value)}" for key, value in body.items())  # JSON scalars are TOML scalars
    (folder / f"{name}.toml").write_text(text + "\n")
    return folder
