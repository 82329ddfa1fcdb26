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

#: Data kinds read from a dataset folder in its published layout: kind -> module under
#: ``taskgrouper.data`` whose ``load(cfg, tasks)`` returns a :class:`MultiTaskData`.
REAL_DATASETS = {
    "taskonomy": "taskonomy",
    "nyud": "nyud",
    "pascal_context": "pascal_context",
    "cityscapes": "cityscapes",
}


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
    if cfg.kind == "synthetic":
        from taskgrouper.data import synthetic

        known = synthetic.TASKS
        names = list(tasks) if tasks else list(synthetic.PAPER_TASKS)
        _check_names(names, known, "synthetic scenes")
        try:
            scene = synthetic.SceneConfig(resolution=cfg.resolution,
                                          texture_strength=cfg.texture_strength,
                                          class_follows_shape=cfg.class_follows_shape)
        except ValueError as err:
            raise DataError(f"data: {err}") from None
        return synthetic.load_synthetic(
            n_train=cfg.n_train, n_val=cfg.n_val, n_test=cfg.n_test, seed=cfg.seed,
            config=scene, tasks=tuple(names),
            cache_dir=cache_dir() / "synthetic" if cfg.cache else None)
    if cfg.kind == "arrays":
        from taskgrouper.data.arrays import load_arrays

        if not cfg.path:
            raise DataError("data.path is required for kind 'arrays': set it to the dataset "
                            "folder")
        return load_arrays(cfg.path, tasks)
    if cfg.kind in REAL_DATASETS:
        import importlib

        if not cfg.path:
            raise DataError(f"data.path is required for kind '{cfg.kind}': set it to the folder "
                            f"holding the dataset (see README, 'Real datasets')")
        if not Path(cfg.path).is_dir():
            raise DataError(f"data.path '{cfg.path}' is not a folder; point it at the "
                            f"{cfg.kind} dataset root (see README, 'Real datasets')")
        module = importlib.import_module(f"taskgrouper.data.{REAL_DATASETS[cfg.kind]}")
        return module.load(cfg, list(tasks) if tasks else None)
    raise DataError(f"data kind '{cfg.kind}' has no loader")


def _check_names(names, known, what: str) -> None:
    from taskgrouper.tasks import closest

    for name in names:
        if name not in known:
            raise DataError(f"unknown task '{name}' for the {what}; {closest(name, known)}")
    if len(set(names)) != len(names):
        raise DataError(f"tasks {names} name a task twice; list each task once")
