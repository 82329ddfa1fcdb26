"""Sweeps of training runs: the result store, executors, and the resumable sweep driver.

Importing this package does not import torch; training does, when a sweep runs.
"""

from taskgrouper.runs.executors import (
    Executor,
    InlineExecutor,
    LocalExecutor,
    available_cores,
    build_executor,
)
from taskgrouper.runs.store import (
    SCHEMA_VERSION,
    RunRecord,
    RunSpec,
    RunStore,
    StoreError,
    make_run_id,
)
from taskgrouper.runs.sweep import SweepError, run_sweep

__all__ = [
    "SCHEMA_VERSION",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "RunRecord",
    "RunSpec",
    "RunStore",
    "StoreError",
    "SweepError",
    "available_cores",
    "build_executor",
    "make_run_id",
    "run_sweep",
]
