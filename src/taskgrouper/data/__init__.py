"""Datasets: the embedded synthetic scenes, array folders, and the real benchmarks on disk.

:func:`load_dataset` maps the ``data`` section of an experiment config to a
:class:`MultiTaskData`.
"""

from __future__ import annotations

import os
from pathlib import Path

from taskgrouper.data.base import SPLITS, DataError, LazySplit, MultiTaskData, Split

__all__ = ["DataError", "LazySplit", "MultiTaskData", "REAL_DATASETS", "SPLITS", "Split",
           "cache_dir", "load_dataset"]

#: Data kinds read from a dataset folder in its published layout (``data.path`` must be one).
REAL_DATASETS = ("taskonomy", "nyud", "pascal_context", "cityscapes")


def cache_dir() -> Path:
    """Where generated data is cached: $TASKGROUPER_CACHE, else $XDG_CACHE_HOME/taskgrouper."""
    if os.environ.get("TASKGROUPER_CACHE"):
        return Path(os.environ["TASKGROUPER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "taskgrouper"


def load_dataset(cfg, tasks=None) -> MultiTaskData:
    """Load the dataset a :class:`~taskgrouper.config.DataConfig` describes.

    Args:
        cfg: The ``data`` section.
        tasks: Task names (default: the dataset's default tasks).

    Raises:
        DataError: a missing path, an unknown task (with the closest name), a bad file.
    """
    import importlib

    from taskgrouper.config import DATASETS

    if cfg.kind not in DATASETS:
        raise DataError(f"data kind '{cfg.kind}' has no loader")
    if cfg.kind in REAL_DATASETS:
        if not cfg.path:
            raise DataError(f"data.path is required for kind '{cfg.kind}': set it to the folder "
                            f"holding the dataset (see README, 'Real datasets')")
        if not Path(cfg.path).is_dir():
            raise DataError(f"data.path '{cfg.path}' is not a folder; point it at the "
                            f"{cfg.kind} dataset root (see README, 'Real datasets')")
    module = importlib.import_module(f"taskgrouper.data.{DATASETS[cfg.kind]}")
    return module.load(cfg, list(tasks) if tasks else None)
