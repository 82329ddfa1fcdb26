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

#: The full demo: the five tasks of the paper on 32x32 scenes, C0 (36 networks) and the
#: baselines' networks (single-task networks at 1/5-1/3 width, the all-task network at width 2,
#: MGDA-UB at widths 1 and 2), 36 ESA runs, three seeds of every scored network, and the 20
#: transfer readouts of Table 3. ``--quick`` leaves out the wider baselines, MGDA-UB and the
#: readouts, to stay a first look of a few minutes. The SNT network is the 8-layer
#: ``shallow`` encoder at 0.4 of its channels (12-104, 0.19 M parameters, 3.8 M multiply-adds
#: at 32x32; each light decoder, narrowed alike to 17 hidden channels, adds 20% of that, as the
#: paper's decoders add 11% to its encoder), which trains to convergence in seconds on one
#: CPU thread; every run ends by early stopping or by the
#: plateau schedule (the learning rate halved three times), not by the 60-epoch cap. The
#: scenes are sized so that the networks learn and the tasks' relationships show: a narrow
#: field of view and 2-4 objects make objects large at 32x32; weak textures keep image edges
#: mostly geometry edges (see the README's demo section for the structure this gives).
DEMO: dict = {
    "data": {"kind": "synthetic", "n_train": 600, "n_val": 200, "n_test": 400,
             "resolution": 32, "seed": 0, "fov_deg": 35.0, "min_objects": 2,
             "max_objects": 4, "texture_strength": 0.3, "class_follows_shape": 1.0},
    "tasks": ["s", "d", "n", "k", "e"],
    "model": {"backbone": "shallow", "scale": 0.4, "width": 1.0,
              "architecture": "hard_sharing"},
    "balancer": {"name": "uniform"},
    "train": {"epochs": 60, "batch_size": 32, "optimizer": "adam", "lr": 0.004,
              "schedule": "plateau", "patience": 4, "min_lr": 0.0005, "seed": 0},
    "search": {"strategy": "exhaustive,esa,hoa", "budgets": "1:5:0.5", "esa_fraction": 1.0,
               "esa_epochs": 4, "random_trials": 1000, "seeds": 3,
               "baseline_widths": [1.0, 2.0], "transfer": True},
}

#: ``--quick``: three tasks and 400 training scenes, for a first look and for tests. Depth,
#: normals and edges: the full demo's edges help depth and normals while sharing with them
#: costs edges (README, demo section), and their seed-to-seed noise is a third of
#: segmentation's, so three seeds can tell a grouping from the baselines.
QUICK: dict = {
    **DEMO,
    "data": {**DEMO["data"], "n_train": 400},
    "tasks": ["d", "n", "e"],
    "search": {**DEMO["search"], "budgets": "1:3:0.5", "baseline_widths": [1.0],
               "transfer": False, "mgda_baseline": False},
}


def demo_config(quick: bool = False, seeds: int | None = None) -> ExperimentConfig:
    """The demo's experiment; ``seeds`` replaces its ``search.seeds`` (3)."""
    base = QUICK if quick else DEMO
    if seeds is not None:
        base = {**base, "search": {**base["search"], "seeds": seeds}}
    return ExperimentConfig.model_validate(base)


def default_workers() -> int:
    """One training process per core (each with one thread)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def run_demo(out_dir: str | Path = "taskgrouper-demo", *, quick: bool = False,
             workers: int | None = None, seeds: int | None = None, executor=None,
             progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Run the demo search into ``out_dir`` (resumable) and return its results.

    ``seeds`` trains every scored network with that many seeds instead of 3: with 3 the full
    demo's grouping is better than the independent networks only within noise, with 8 at every
    budget from 1.5 (the README's demo section says why). On a finished demo folder only the
    new seeds train.

    Raises:
        InputError: ``workers`` below 1, or ``seeds`` outside 1-100.
    """
    from taskgrouper.experiments.search import search

    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}; leave it out for one "
                         f"per core")
    if seeds is not None and not 1 <= seeds <= 100:
        raise InputError(f"seeds must be between 1 and 100, got {seeds}; leave it out for the "
                         f"demo's 3")
    return search(demo_config(quick, seeds), out_dir, workers=workers or default_workers(),
                  executor=executor, progress=progress, log=log)
