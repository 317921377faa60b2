"""Atomic writes: a file or a folder is built under a temporary name beside its final place and
renamed into place in one step, so a reader never sees half of it and a failure leaves the old
copy (if any) untouched.

    with atomic_file(path) as tmp:      # torch.save(obj, tmp), np.savez(tmp, ...), ...
        ...
    write_text(path, text)              # the common case
    with atomic_dir(folder) as tmp:     # a whole folder (a run, a prepared split, a built model)
        ...
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8, newlines as given) to `path` atomically."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return Path(path)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(folder: Path | str, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `folder`; on success it takes `folder`'s place.

    With `replace`, an existing `folder` is first renamed aside and deleted only once the new
    one is in place. Without it, an existing complete `folder` (another process finished first)
    wins and the new copy is dropped. On failure the temporary folder is removed."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a shared results folder must stay readable
    try:
        yield tmp
        if folder.exists():
            if not replace:
                return
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            try:
                os.replace(tmp, folder)
            except OSError:
                os.replace(old / folder.name, folder)  # put the old copy back
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, folder)
            except OSError:
                if not folder.exists() or replace:  # not "another process finished first"
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
