"""Atomic writes and JSON-safe output: the bottom floor of the package (no torch).

A file written here is written to a temporary file in the same folder, flushed to disk and
renamed over the target, so a crash leaves the previous file or the new one, never half of one.
A full disk (or quota) raises :class:`DiskFullError`, which names the file and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from taskgrouper.errors import TaskgrouperError

__all__ = ["DiskFullError", "hold_lock", "json_safe", "replace_atomic", "temp_files",
           "write_json_atomic", "write_text_atomic"]

#: errno values that mean the disk (or the user's quota) is full.
_FULL = {errno.ENOSPC, errno.EDQUOT}


class DiskFullError(TaskgrouperError, OSError):
    """A write failed because the disk or quota is full; names the file and the fix."""

    def __init__(self, path: Path):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        # (the OSError fields, set here since the error base comes first in the MRO)
        self.errno, self.strerror, self.filename = errno.ENOSPC, os.strerror(errno.ENOSPC), \
            str(path)
        self.message = (f"cannot write '{path}': no space left on device (the disk or your "
                        f"quota is full); the file is as it was before. Free some space on that "
                        f"disk and run the same command again: it resumes where it stopped "
                        f"(training from the last saved epoch)")

    def __str__(self) -> str:
        return self.message


def disk_full(err: BaseException | None) -> bool:
    """True when ``err`` or an error it was raised from (torch's writer wraps the OSError of a
    failed write in a RuntimeError, "enforce fail at inline_container.cc") is a full disk."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in _FULL:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def replace_atomic(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(handle)`` on a temporary binary file next to ``path``, fsync it, and rename
    it over ``path``. On any failure the temporary file is removed and ``path`` is untouched.

    Raises:
        DiskFullError: the disk or quota is full.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if disk_full(err):
            raise DiskFullError(path) from None
        raise


def temp_files(folder: str | Path, names: list[str]) -> list[Path]:
    """Temporary files that :func:`replace_atomic` (and so every writer built on it) leaves
    when its process is killed mid-write (``.NAME.*.tmp``)."""
    return [p for name in names for p in Path(folder).glob(f".{name}.*.tmp")]


def write_text_atomic(content: str | bytes, path: str | Path) -> None:
    """Write ``content`` (text as UTF-8, or bytes as they are) atomically."""
    data = content.encode() if isinstance(content, str) else bytes(content)
    replace_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write JSON (indented, keys in insertion order) atomically.

    NaN and infinities are written as JSON's non-standard ``NaN``/``Infinity``; pass the object
    through :func:`json_safe` first for strict JSON.
    """
    write_text_atomic(json.dumps(obj, indent=2, allow_nan=True), path)


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN and infinity (an undefined statistic) made ``None``, recursively.

    Mappings become dicts with string keys and tuples become lists, so the result is strict
    JSON and equals what reading it back gives.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


@contextlib.contextmanager
def hold_lock(path: str | Path, busy: Callable[[str], Exception]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` for the ``with`` block, or fail at once with
    ``busy(holder)`` (``holder``: the process id written by the holder, or "").

    The operating system releases the lock when its process exits, however it exits, so a
    lock file left behind never blocks; the file stays (removing it could let two processes
    lock two different files). Without ``fcntl``, or on a file system without ``flock``,
    the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise busy(handle.read().strip()) from None
        except OSError:  # e.g. a network mount without flock
            pass
        try:  # who holds it, for the message of a second process; the lock is what counts
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except OSError:  # e.g. a full disk: the next write names the file and the cause
            pass
        yield
    finally:
        handle.close()  # releases the lock
