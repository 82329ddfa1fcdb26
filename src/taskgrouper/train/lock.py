"""One training process per run folder: an exclusive ``flock`` on ``DIR/.train.lock``.

The operating system releases the lock when its process exits, however it exits (a killed
process included), so a lock file left behind never blocks a later run; the file itself stays
(removing it could let two processes lock two different files).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from taskgrouper.errors import SetupError

__all__ = ["LOCK_NAME", "RunFolderBusy", "hold_run_folder"]

LOCK_NAME = ".train.lock"


class RunFolderBusy(SetupError):
    """Another process is training in the run folder."""


@contextlib.contextmanager
def hold_run_folder(folder: str | Path) -> Iterator[None]:
    """Hold the run folder's lock for the ``with`` block, or fail at once.

    Raises:
        RunFolderBusy: another process holds it (names the folder and that process's id).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    path = Path(folder) / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise RunFolderBusy(
                f"run folder '{folder}' is in use: {who} is training there (it holds "
                f"'{path}'); wait for it to finish, or pass another --out") from None
        except OSError:  # a file system without flock (some network mounts): train unlocked
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
