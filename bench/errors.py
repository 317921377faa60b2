"""The one exception type a user can cause, and the sentences for what the file system refuses;
the CLI prints either as a single sentence."""

from __future__ import annotations

import errno

# what the file system can refuse whatever the command: a folder's permissions, a read-only
# mount, a full disk or quota, a file where a folder is needed (or the other way round)
STORAGE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}
_CHOOSE = "choose another with --results-dir, --data-dir, --cache-dir (or --out-dir)"


class BenchError(Exception):
    """A failure with a message that tells the user what to do. Printed without a traceback."""


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


def storage_sentence(exc: OSError) -> str:
    """One sentence for a storage failure: what could not be written, why, and what to do."""
    where = exc.filename or "a file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        why, todo = "permission denied", f"make the folder writable or {_CHOOSE}"
    elif exc.errno == errno.EROFS:
        why, todo = "the file system is read-only", f"{_CHOOSE} on a writable file system"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        why, todo = "the disk or quota is full", f"free some space or {_CHOOSE}, then run the same command again"
    elif exc.errno in (errno.EEXIST, errno.ENOTDIR):
        why, todo = "a file is in the way where a folder is needed", f"move that file or {_CHOOSE}"
    else:
        why, todo = "a folder is in the way where a file is needed", f"move that folder or {_CHOOSE}"
    return f"cannot write {where} ({why}); {todo}. Nothing stored was lost."
