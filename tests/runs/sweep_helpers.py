"""Shared pieces of the tests/runs tests; also run as a script by the kill-and-resume test.

As a script: ``python sweep_helpers.py OUT_DIR KILL_ID KILL_EPOCH`` runs the three-spec sweep
inline and SIGKILLs itself right after run KILL_ID has written its epoch-KILL_EPOCH checkpoint.
"""

from __future__ import annotations

import numpy as np

from taskgrouper.data.base import MultiTaskData, Split
from taskgrouper.runs import Executor, InlineExecutor, RunSpec
from taskgrouper.tasks import TaskSpec


def tabular(seed: int = 0, n=(96, 32, 32)) -> MultiTaskData:
    """Two learnable tasks over 8 features: y = x0 + 2 x1 (regression) and c = [x2 > 0]."""
    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.normal(size=(size, 8)).astype(np.float32)
        y = (x[:, 0] + 2 * x[:, 1]).astype(np.float32)
        y[::7] = np.nan
        c = (x[:, 2] > 0).astype(np.int64)
        return Split(x, {"y": y, "c": c})

    tasks = {"y": TaskSpec("y", "regression"), "c": TaskSpec("c", "classification", 2)}
    return MultiTaskData(tasks, split(n[0]), split(n[1]), split(n[2]), name="tabular")


def tabular_spec(tasks, width: float = 0.5, group: str = "candidate", **train) -> RunSpec:
    """A run on :func:`tabular` data (passed to the sweep): a small MLP, 3 epochs, 1 thread."""
    settings = {"epochs": 3, "batch_size": 32, "lr": 3e-3, "device": "cpu", "patience": 10,
                "threads": 1}  # one thread: identical numbers in any process
    settings.update(train)
    config = {"data": {"kind": "arrays", "path": "unused"}, "tasks": list(tasks),
              "model": {"backbone": "mlp", "width": width}, "train": settings}
    return RunSpec.create(group, config, tags={"tasks": list(tasks), "width": width})


def three_specs() -> list[RunSpec]:
    return [tabular_spec(["y", "c"]), tabular_spec(["y"], width=0.25), tabular_spec(["c"])]


class CountingExecutor(Executor):
    """Inline, and remembers which items it was given."""

    in_process = True

    def __init__(self):
        self.items: list = []

    def submit_all(self, fn, items, shared=None):
        items = list(items)
        self.items.extend(items)
        yield from InlineExecutor().submit_all(fn, items, shared)


def _kill_after_checkpoint(out_dir: str, kill_id: str, kill_epoch: int) -> None:
    import os
    import signal
    from pathlib import Path

    from taskgrouper.runs import run_sweep
    from taskgrouper.train import trainer

    original = trainer.save_checkpoint
    target = Path(out_dir) / "runs" / kill_id / "last.pt"

    def save_then_die(state, path):
        original(state, path)
        if Path(path) == target and state.get("epoch") == kill_epoch:
            os.kill(os.getpid(), signal.SIGKILL)

    trainer.save_checkpoint = save_then_die
    run_sweep(three_specs(), out_dir, data=tabular(), progress=False, log=lambda m: None)


if __name__ == "__main__":
    import sys

    _kill_after_checkpoint(sys.argv[1], sys.argv[2], int(sys.argv[3]))
