"""The skeleton every driver (search, bench, demo) stands on.

1. :func:`load_data`: the dataset loaded once for every run of the driver (a lazy one decoded
   into memory when it fits), what the loader left out listed once;
2. :class:`Session`: the sweep folder's store open for the driver's lifetime, and phases of
   runs trained through one executor (each run is recorded as soon as it finishes, so a
   second call trains only what is missing);
3. :func:`write_results`: the driver's results, strict JSON (undefined numbers ``null``),
   versioned, written atomically;
4. the report, written by the driver from those results (:mod:`taskgrouper.report`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskgrouper.config import ExperimentConfig
from taskgrouper.io import json_safe, write_json_atomic

__all__ = ["Session", "load_data", "open_session", "run_config", "write_results"]


def load_data(config: ExperimentConfig, log: Callable[[str], None] = print, *,
              data=None):
    """The experiment's dataset, ready for every run: loaded (unless ``data``, already loaded,
    is given), a lazy dataset decoded into memory when it fits, and what the loader left out
    listed here once (not in every run)."""
    from taskgrouper.data import load_dataset
    from taskgrouper.train.feeding import prepare_data

    if data is None:
        data = load_dataset(config.data, config.tasks)
    return dataclasses.replace(prepare_data(data, config.data, log), skipped=[])


def run_config(base: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, Any]:
    """The experiment (its JSON form) as one run's config: the driver sections dropped, these
    tasks, and the balancer weights of these tasks only."""
    cfg = json.loads(json.dumps(dict(base)))
    cfg.pop("search", None)
    cfg.pop("bench", None)
    cfg["tasks"] = list(tasks)
    weights = (cfg.get("balancer") or {}).get("weights")
    if weights:
        cfg["balancer"]["weights"] = {t: w for t, w in weights.items() if t in tasks} or None
    return cfg


@dataclass
class Session:
    """A driver's sweep folder: its store, and how its runs are trained.

    Attributes:
        out: The folder (store, run folders, results, report).
        store: The open :class:`~taskgrouper.runs.store.RunStore`.
        sweep: Keyword arguments of :func:`~taskgrouper.runs.sweep.run_sweep` (executor,
            workers, the shared dataset, progress, log).
    """

    out: Path
    store: Any
    sweep: dict[str, Any]

    def todo(self, specs: Sequence[Any]) -> int:
        """How many of ``specs`` are not stored yet."""
        return len({s.id for s in specs} - self.store.done_ids())

    def run(self, specs: Sequence[Any]) -> None:
        """Train every spec not yet stored (raises SweepError after the others finished)."""
        from taskgrouper.runs.sweep import run_sweep

        if specs:
            run_sweep(longest_first(specs), self.out, **self.sweep)

    def records(self) -> dict[str, Any]:
        """Run id -> record of every stored run."""
        return {r.id: r for r in self.store.records()}


def expected_cost(spec: Any) -> float:
    """A run's rough training time, for ordering only: one encoder plus a decoder per task,
    times the epochs it may run (full runs end by early stopping; 20 stands for them), the
    fraction of the data, and twice that for a balancer that needs per-task gradients."""
    from taskgrouper.balancing import balancer_info

    cfg = spec.config
    train = cfg.get("train") or {}
    name = (cfg.get("balancer") or {}).get("name", "uniform")
    try:
        info = balancer_info(name)
        grads = 2.0 if info.needs_task_grads or info.rep_only else 1.0
    except ValueError:
        grads = 1.0
    return ((len(cfg.get("tasks") or ()) + 1) * min(float(train.get("epochs", 20)), 20.0)
            * float(train.get("train_fraction", 1.0)) * grads)


def longest_first(specs: Sequence[Any]) -> list[Any]:
    """``specs`` by :func:`expected_cost`, longest first (ties keep their order), so that a
    pool of workers does not end on one long run while the others wait."""
    return sorted(specs, key=expected_cost, reverse=True)


@contextmanager
def open_session(out: Path, data, *, workers: int = 1, executor=None, progress: bool = True,
                 log: Callable[[str], None] = print) -> Iterator[Session]:
    """The store of ``out`` open, runs trained on ``data`` through ``executor``."""
    from taskgrouper.runs.store import STORE_FILE, RunStore

    out.mkdir(parents=True, exist_ok=True)
    with RunStore(out / STORE_FILE) as store:
        yield Session(out, store, dict(store=store, workers=workers, executor=executor,
                                       data=data, progress=progress, log=log))


def write_results(results: Mapping[str, Any], path: Path, *, version: int,
                  required: Sequence[str]) -> dict[str, Any]:
    """Write a driver's results: the keys ``required`` checked, ``version`` first, numbers
    that are not finite as ``null`` (strict JSON that reloads equal), atomically.

    Returns:
        The object as written.
    """
    missing = [k for k in required if k not in results]
    if missing:  # a driver bug, not the user's: say which keys
        raise KeyError(f"results for {path} lack {', '.join(missing)}")
    safe = json_safe({"version": version, **results})
    write_json_atomic(safe, path)
    return safe
