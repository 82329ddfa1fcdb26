"""A Ray executor: every training run is one Ray task on a cluster (or a local Ray instance).

The driver (the process that runs ``search``, ``bench`` or ``demo``) keeps the one role it has
with the local pool: it alone writes the store, as results arrive. What changes is where runs
train:

- ``shared`` (the loaded dataset) goes to the object store once (``ray.put``); every task gets
  the reference and reads it zero-copy on its node.
- Each task asks for ``num_cpus`` CPUs and ``num_gpus`` GPUs; Ray places it on a node that has
  them, and the task uses as many torch threads as CPUs it asked for.
- A worker that dies (killed, out of memory, its node lost) has its task retried up to
  ``max_retries`` times; the run resumes from its last checkpoint (``last.pt`` in its run
  folder), so the sweep folder must be at the same path on every node (a shared file system),
  as Ray's own storage must be. An exception raised by the training itself is not retried: it
  is reported like any failed run, and the next ``search`` call trains it again.

``ray`` is an optional dependency (``pip install taskgrouper[ray]``), imported only when this
executor is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from taskgrouper.errors import InputError, SetupError
from taskgrouper.runs.executor_base import Executor

__all__ = ["RayExecutor"]

#: Environment of every Ray worker: glibc malloc settings that sped CPU training by 30-40% on
#: the 2-core development machine (the Makefile sets them for local runs).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def _import_ray():
    try:
        import ray
    except ImportError as err:
        raise SetupError("--executor ray needs Ray, which is not installed; install it with "
                           "`pip install 'taskgrouper[ray]'` (or `pip install ray`), or use "
                           "--executor local") from err
    return ray


def _ray_call(fn: Callable[..., Any], item: Any, shared: Any, threads: int) -> Any:
    """Runs in a Ray worker: one item, with the torch threads of the CPUs the task holds."""
    import torch

    torch.set_num_threads(max(1, threads))
    return fn(item) if shared is None else fn(item, shared)


class RayExecutor(Executor):
    """Runs every item as a Ray task.

    Args:
        address: The cluster to join: ``auto`` (the one ``ray start`` runs on this node),
            ``HOST:PORT``, ``ray://HOST:PORT``; None starts a Ray instance on this machine
            with ``local_cpus`` CPUs (when Ray is not already initialised in this process).
        num_cpus: CPUs each run holds (its torch threads).
        num_gpus: GPUs each run holds (0 on CPU clusters; e.g. 1 or 0.5 with GPUs).
        max_retries: Times a run whose worker died is started again (then it fails).
        local_cpus: CPUs of a local instance (None: every core).

    Raises:
        RuntimeError: (on use) Ray is not installed, or the cluster cannot be reached.
    """

    in_process = False

    def __init__(self, address: str | None = None, *, num_cpus: float = 1,
                 num_gpus: float = 0, max_retries: int = 3, local_cpus: int | None = None):
        if num_cpus <= 0:
            raise InputError(f"CPUs per run must be positive, got {num_cpus}")
        if num_gpus < 0:
            raise InputError(f"GPUs per run must be 0 or more, got {num_gpus}")
        if max_retries < 0:
            raise InputError(f"max_retries must be 0 or more, got {max_retries}")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.local_cpus = local_cpus

    def __repr__(self) -> str:
        return (f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus}, "
                f"num_gpus={self.num_gpus}, max_retries={self.max_retries})")

    def _connect(self):
        ray = _import_ray()
        if ray.is_initialized():
            return ray
        env = {"env_vars": {k: os.environ.get(k, v) for k, v in WORKER_ENV.items()}}
        kwargs: dict[str, Any] = dict(runtime_env=env, log_to_driver=False,
                                      ignore_reinit_error=True)
        if self.address is None:
            kwargs.update(num_cpus=self.local_cpus, include_dashboard=False)
        else:
            kwargs["address"] = self.address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = self.address or "a local instance"
            raise SetupError(f"cannot start or reach the Ray cluster at {where} ({err}); "
                               f"start it with `ray start --head` and pass --address auto "
                               f"(or HOST:PORT of the head node)") from err
        return ray

    def submit_all(self, fn, items, shared=None):
        items = list(items)
        if not items:
            return
        ray = self._connect()
        shared_ref = ray.put(shared) if shared is not None else None
        task = ray.remote(_ray_call).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_retries=self.max_retries,
            retry_exceptions=False)
        threads = max(1, int(self.num_cpus))
        pending = {task.remote(fn, item, shared_ref, threads): item for item in items}
        finished = False
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:  # raised by fn itself
                        cause = getattr(err, "cause", None)  # the exception fn raised
                        outcome = cause if isinstance(cause, Exception) else err
                    except ray.exceptions.RayError as err:  # the worker died, retries spent
                        outcome = RuntimeError(
                            f"the Ray worker died {self.max_retries + 1} times running this "
                            f"item ({type(err).__name__}: {str(err).strip().splitlines()[0]})")
                    yield item, outcome
            finished = True
        finally:
            if not finished:
                for ref in pending:
                    ray.cancel(ref, force=True)
