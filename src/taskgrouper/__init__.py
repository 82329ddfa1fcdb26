"""taskgrouper: which tasks should share a network, and how to train them.

The public API, in one table. Names load on first use, so ``import taskgrouper`` stays light
and selection (pure combinatorics) works without importing torch::

    import taskgrouper as tg
    config = tg.load_config("configs/synthetic.yaml")
    result = tg.train(config, "run")                       # one multi-task network
    results = tg.search(config, "sweep")                   # which tasks to train together
    sel = tg.select([tg.Network("sd", 1.0, {"s": 0.1, "d": 0.2})], budget=1.0)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API: dict[str, str] = {
    "ExperimentConfig": "taskgrouper.config",
    "load_config": "taskgrouper.config",
    "TaskSpec": "taskgrouper.tasks",
    "MultiTaskData": "taskgrouper.data",
    "load_dataset": "taskgrouper.data",
    "build_model": "taskgrouper.models",
    "build_balancer": "taskgrouper.balancing",
    "train": "taskgrouper.train",
    "TrainResult": "taskgrouper.train",
    "TrainingDiverged": "taskgrouper.train",
    "Network": "taskgrouper.grouping.select",
    "Selection": "taskgrouper.grouping.select",
    "InfeasibleBudget": "taskgrouper.grouping.select",
    "select": "taskgrouper.grouping.select",
    "select_many": "taskgrouper.grouping.select",
    "search": "taskgrouper.grouping.search",
    "run_demo": "taskgrouper.demo",
    "run_bench": "taskgrouper.bench",
    "delta_mtl": "taskgrouper.evaluate.metrics",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taskgrouper' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
