"""One training process per run folder: an exclusive ``flock`` on ``DIR/.train.lock``
(:func:`taskgrouper.io.hold_lock`: released by the operating system when its process exits,
however it exits)."""

from __future__ import annotations

from pathlib import Path

from taskgrouper.errors import SetupError
from taskgrouper.io import hold_lock

__all__ = ["LOCK_NAME", "RunFolderBusy", "hold_run_folder"]

LOCK_NAME = ".train.lock"


class RunFolderBusy(SetupError):
    """Another process is training in the run folder."""


def hold_run_folder(folder: str | Path):
    """Hold the run folder's lock for a ``with`` block, or fail at once.

    Raises:
        RunFolderBusy: another process holds it (names the folder and that process's id).
    """
    path = Path(folder) / LOCK_NAME

    def busy(holder: str) -> RunFolderBusy:
        who = f"process {holder}" if holder.isdigit() else "another process"
        return RunFolderBusy(f"run folder '{folder}' is in use: {who} is training there (it "
                             f"holds '{path}'); wait for it to finish, or pass another --out")

    return hold_lock(path, busy)
