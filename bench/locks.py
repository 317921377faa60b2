"""Locks between processes that share a data or results folder, through filelock.

    with lock_for(path):              # blocks until no other process holds it
        ...
    lock = lock_for(path); lock.acquire(timeout=0)   # or raise filelock.Timeout at once

FileLock (fcntl/flock) is released by the operating system when a process dies, so a crash leaves
no stale lock; it works on local disks and on NFS mounts that support POSIX locks (NFSv4, or v3
with lockd). On a shared filesystem without working locks set BENCH_LOCKS=soft: filelock's
SoftFileLock then uses lock files created with O_EXCL, which work everywhere but stay behind
when a process is killed (delete the `.lock` file named in the message once no process runs).
"""

from __future__ import annotations

import os
from pathlib import Path

from filelock import BaseFileLock, FileLock, SoftFileLock, Timeout

__all__ = ["Timeout", "held_elsewhere", "lock_for", "try_acquire"]


def lock_for(path: Path | str) -> BaseFileLock:
    """The inter-process lock whose file is `path` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = SoftFileLock if os.environ.get("BENCH_LOCKS", "").lower() == "soft" else FileLock
    return kind(str(path))


def try_acquire(lock: BaseFileLock) -> bool:
    """Acquire `lock` if no other process holds it; whether it was acquired (never waits)."""
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    return True


def held_elsewhere(path: Path | str) -> bool:
    """Whether another process holds the lock whose file is `path` (is working on what it guards
    now). A folder that cannot hold locks (read-only) has nobody working in it."""
    try:
        lock = lock_for(path)
        if not try_acquire(lock):
            return True
    except OSError:
        return False
    lock.release()
    return False
