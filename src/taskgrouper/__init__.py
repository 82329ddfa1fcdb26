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
from typing import TYPE_CHECKING

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
    "search": "taskgrouper.experiments.search",
    "select_runs": "taskgrouper.experiments.select",
    "run_demo": "taskgrouper.experiments.demo",
    "run_bench": "taskgrouper.experiments.bench",
    "transfer_relationships": "taskgrouper.experiments.relationships",
    "TaskgrouperError": "taskgrouper.errors",
    "Strategy": "taskgrouper.grouping.strategies",
    "Exhaustive": "taskgrouper.grouping.strategies",
    "ESA": "taskgrouper.grouping.strategies",
    "HOA": "taskgrouper.grouping.strategies",
    "Affinity": "taskgrouper.grouping.strategies",
    "delta_mtl": "taskgrouper.evaluate.metrics",
}

#: The public names (the keys of _API, and the version).
__all__ = [
    "Affinity",
    "ESA",
    "Exhaustive",
    "ExperimentConfig",
    "HOA",
    "InfeasibleBudget",
    "MultiTaskData",
    "Network",
    "Selection",
    "Strategy",
    "TaskSpec",
    "TaskgrouperError",
    "TrainResult",
    "TrainingDiverged",
    "build_balancer",
    "build_model",
    "delta_mtl",
    "load_config",
    "load_dataset",
    "run_bench",
    "run_demo",
    "search",
    "select",
    "select_many",
    "select_runs",
    "train",
    "transfer_relationships",
    "__version__",
]

if TYPE_CHECKING:  # editors resolve every name; at run time each loads on first use
    from taskgrouper.balancing import build_balancer
    from taskgrouper.config import ExperimentConfig, load_config
    from taskgrouper.data import MultiTaskData, load_dataset
    from taskgrouper.errors import TaskgrouperError
    from taskgrouper.evaluate.metrics import delta_mtl
    from taskgrouper.experiments.bench import run_bench
    from taskgrouper.experiments.demo import run_demo
    from taskgrouper.experiments.relationships import transfer_relationships
    from taskgrouper.experiments.search import search
    from taskgrouper.experiments.select import select_runs
    from taskgrouper.grouping.select import (
        InfeasibleBudget,
        Network,
        Selection,
        select,
        select_many,
    )
    from taskgrouper.grouping.strategies import ESA, HOA, Affinity, Exhaustive, Strategy
    from taskgrouper.models import build_model
    from taskgrouper.tasks import TaskSpec
    from taskgrouper.train import TrainingDiverged, TrainResult, train


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'taskgrouper' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
