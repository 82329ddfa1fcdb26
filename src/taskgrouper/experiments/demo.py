"""``taskgrouper demo``: the whole framework on the embedded synthetic scenes, no config needed.

Exhaustive search, the early-stopping and higher-order approximations and every baseline on
the five tasks of the paper (``--quick``: three tasks, fewer scenes), sized for a two-core CPU.
``configs/search_synthetic.yaml`` is the same search at 64x64, to copy and edit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from taskgrouper.config import ExperimentConfig
from taskgrouper.errors import InputError

__all__ = ["DEMO", "QUICK", "demo_config", "run_demo"]

#: The full demo: five tasks at 32x32, C0 + baselines (51 networks) + 36 ESA runs. ESA makes
#: one pass through all the training scenes (1/5 of a full run's samples): a pass through
#: 20% of 400 scenes is 5 steps, which leaves every network at its initial loss.
DEMO: dict = {
    "data": {"kind": "synthetic", "n_train": 400, "n_val": 120, "n_test": 200,
             "resolution": 32, "seed": 0},
    "tasks": ["s", "d", "n", "k", "e"],
    "model": {"backbone": "xception", "width": 1.0, "architecture": "hard_sharing"},
    "balancer": {"name": "uniform"},
    "train": {"epochs": 5, "batch_size": 16, "optimizer": "adam", "lr": 0.002,
              "schedule": "plateau", "patience": 3, "seed": 0},
    "search": {"strategy": "exhaustive,esa,hoa", "budgets": "1:5:0.5", "esa_fraction": 1.0,
               "esa_epochs": 1, "random_trials": 1000},
}

#: ``--quick``: three tasks and fewer scenes, for a first look and for tests.
QUICK: dict = {
    **DEMO,
    "data": {**DEMO["data"], "n_train": 240, "n_val": 80, "n_test": 100},
    "tasks": ["s", "d", "n"],
    "search": {**DEMO["search"], "budgets": "1:3:0.5"},
}


def demo_config(quick: bool = False) -> ExperimentConfig:
    """The demo's experiment."""
    return ExperimentConfig.model_validate(QUICK if quick else DEMO)


def default_workers() -> int:
    """One training process per core (each with one thread)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_demo(out_dir: str | Path = "taskgrouper-demo", *, quick: bool = False,
             workers: int | None = None, executor=None, progress: bool = True,
             log: Callable[[str], None] = print) -> dict:
    """Run the demo search into ``out_dir`` (resumable) and return its results.

    Raises:
        ValueError: ``workers`` below 1.
    """
    from taskgrouper.experiments.search import search

    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}; leave it out for one "
                         f"per core")
    return search(demo_config(quick), out_dir, workers=workers or default_workers(),
                  executor=executor, progress=progress, log=log)
