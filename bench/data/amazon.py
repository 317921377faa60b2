"""Amazon Review Data 2018 ("amazon_v2", Ni & McAuley): download and read.

Per category two gzipped JSON-lines files: reviews `<Category>.json.gz` (or the official 5-core
`<Category>_5.json.gz`) and metadata `meta_<Category>.json.gz`. The real files hold occasional
malformed lines and items without titles: those are skipped and counted, never fatal. A file
that cannot be read at all (empty, truncated, not gzip) is an error that says what to do.
"""

from __future__ import annotations

import gzip
import http.client
import json
import math
import urllib.error
import urllib.request
import zlib
from collections import Counter
from pathlib import Path

import pandas as pd

from bench.data.cards import DatasetCard
from bench.data.d3 import title_problem
from bench.errors import BenchError


def review_filename(card: DatasetCard) -> str:
    if card.reviews not in ("full", "5core"):
        raise BenchError(f"Dataset card '{card.name}' has reviews = '{card.reviews}'; use 'full' or '5core'.")
    return f"{card.category}_5.json.gz" if card.reviews == "5core" else f"{card.category}.json.gz"


def meta_filename(card: DatasetCard) -> str:
    return f"meta_{card.category}.json.gz"


def urls(card: DatasetCard) -> dict[str, str]:
    """Download addresses. The full review files live in categoryFiles/, the official 5-core files
    in categoryFilesSmall/, the metadata in metaFiles2/."""
    base = card.base_url.rstrip("/")
    review_folder = "categoryFilesSmall" if card.reviews == "5core" else "categoryFiles"
    return {
        review_filename(card): f"{base}/{review_folder}/{review_filename(card)}",
        meta_filename(card): f"{base}/metaFiles2/{meta_filename(card)}",
    }


def find_raw(folder: Path, filename: str) -> Path | None:
    """The file in `folder`, gzipped or not."""
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def download(url: str, dest: Path, progress=None, chunk: int = 1 << 20, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming a partial `<dest>.part` with an HTTP Range request. The
    final name appears only once the whole file is there."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "bench", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except ValueError as exc:  # not a URL at all, e.g. a card without base_url
        raise BenchError(
            f"Cannot download '{url}' ({exc}); fix the card's base_url, or download the file yourself and pass its folder with --raw-dir."
        ) from exc
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            part.replace(dest)
            return dest
        raise BenchError(
            f"Downloading {url} failed (HTTP {exc.code}); download it yourself and pass its folder with --raw-dir."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise BenchError(
            f"Cannot reach {url} ({exc}); check the connection, or download the file yourself and pass its folder with --raw-dir."
        ) from exc
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        task = progress.add_task(f"download {dest.name}", total=total, completed=have) if progress else None
        with open(part, "ab" if resumed else "wb") as out:
            while True:
                try:
                    block = response.read(chunk)
                except (OSError, http.client.HTTPException) as exc:
                    raise BenchError(
                        f"Download of {url} was interrupted ({exc}); run the same command again to resume it."
                    ) from exc
                if not block:
                    break
                out.write(block)
                if task is not None:
                    progress.advance(task, len(block))
    if total is not None and part.stat().st_size < total:
        raise BenchError(f"Download of {url} stopped early; run the same command again to resume it.")
    part.replace(dest)
    return dest


def ensure_raw(card: DatasetCard, folder: Path, progress=None) -> tuple[Path, Path]:
    """Paths of the review and metadata files in `folder`, downloading whichever is missing."""
    found = []
    for filename, url in urls(card).items():
        path = find_raw(folder, filename)
        if path is None:
            if not card.base_url:
                raise BenchError(
                    f"{folder / filename} is missing and dataset card '{card.name}' has no base_url to download it from; "
                    "put the file in a folder and pass it with --raw-dir."
                )
            path = download(url, folder / filename, progress)
        found.append(path)
    return found[0], found[1]


def iter_json_lines(path: Path, counts: Counter):
    """Yield parsed JSON objects; count malformed lines instead of failing on them."""
    if not path.is_file():
        raise BenchError(f"Raw file {path} does not exist; run `bench data prepare` without --raw-dir to download it.")
    if path.stat().st_size == 0:
        raise BenchError(f"Raw file {path} is empty; delete it and run `bench data prepare` again to download it.")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    counts["malformed_lines"] += 1
                    continue
                if not isinstance(obj, dict):
                    counts["malformed_lines"] += 1
                    continue
                yield obj
    except EOFError as exc:
        raise BenchError(
            f"Raw file {path} is truncated (an interrupted download?); delete it and run `bench data prepare` again."
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BenchError(f"Raw file {path} is not a valid gzip file ({exc}); delete it and download it again.") from exc


def read_reviews(path: Path) -> tuple[pd.DataFrame, Counter]:
    """(user, item, time) per review; lines without reviewerID, asin or an integer unixReviewTime are counted and skipped."""
    counts: Counter = Counter()
    users, items, times = [], [], []
    for obj in iter_json_lines(path, counts):
        user, asin, time = obj.get("reviewerID"), obj.get("asin"), obj.get("unixReviewTime")
        if not user or not asin or not _is_time(time):
            counts["reviews_missing_fields"] += 1
            continue
        users.append(str(user))
        items.append(str(asin))
        times.append(int(time))
    _name_malformed(counts, "review")
    if not users:
        raise BenchError(f"Raw file {path} holds no usable review; check that it is an Amazon 2018 review file.")
    counts["reviews_read"] = len(users)
    return pd.DataFrame({"user": users, "item": items, "time": pd.array(times, dtype="int64")}), counts


def _is_time(value) -> bool:
    """A Unix time a review can carry: a finite number of seconds that fits in int64 (JSON allows
    Infinity and NaN, and arbitrarily large integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and -(2**62) < value < 2**62


def read_titles(path: Path) -> tuple[dict[str, str], Counter]:
    """asin -> raw title from a metadata file. Entries without asin are counted; a missing title is
    kept as "" so the title filter can count it. The real files repeat some ASINs: as in D3, an ASIN
    is rejected when any of its lines has an unusable title, otherwise its last line's title is kept."""
    counts: Counter = Counter()
    titles: dict[str, str] = {}
    for obj in iter_json_lines(path, counts):
        asin = obj.get("asin")
        if not asin:
            counts["meta_missing_asin"] += 1
            continue
        asin = str(asin)
        if asin in titles and title_problem(titles[asin]) is not None:
            continue  # an earlier line of this ASIN was unusable: the item stays rejected
        title = obj.get("title")
        titles[asin] = title if isinstance(title, str) else ""
    _name_malformed(counts, "meta")
    if not titles:
        raise BenchError(f"Raw file {path} holds no usable metadata; check that it is an Amazon 2018 metadata file.")
    counts["meta_read"] = len(titles)
    return titles, counts


def _name_malformed(counts: Counter, kind: str) -> None:
    """Say which file the malformed lines came from: `malformed_review_lines`, `malformed_meta_lines`."""
    n = counts.pop("malformed_lines", 0)
    if n:
        counts[f"malformed_{kind}_lines"] = n
