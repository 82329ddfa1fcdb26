"""Executors: run independent jobs (training runs) and hand back each one as it finishes.

An :class:`Executor` has one method, :meth:`Executor.submit_all`. The sweep driver gives it a
function, the items (run specs) and optionally one *shared* object every call needs (the
dataset), and stores each result as the iterator yields it. Implementations:

- :class:`InlineExecutor`: in this process, one item after another (debugging, tiny sweeps,
  per-epoch progress bars).
- :class:`LocalExecutor`: a pool of forked worker processes on this machine; each worker gets
  ``cores // workers`` torch threads so N concurrent runs do not oversubscribe the cores.
- :class:`taskgrouper.runs.ray_executor.RayExecutor`: one Ray task per item on a cluster
  (``ray.put(shared)`` once, ``ray.wait`` to yield them as they finish, dead workers retried).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from taskgrouper.errors import InputError, SetupError
from taskgrouper.runs.executor_base import Executor, available_cores

__all__ = ["EXECUTORS", "Executor", "InlineExecutor", "LocalExecutor", "available_cores",
           "build_executor"]

class InlineExecutor(Executor):
    """Runs every item in this process, one after another, in the given order."""

    in_process = True

    def submit_all(self, fn, items, shared=None):
        for item in items:
            try:
                outcome = fn(item) if shared is None else fn(item, shared)
            except Exception as err:  # reported to the caller, the next item still runs
                outcome = err
            yield item, outcome

    def __repr__(self) -> str:
        return "InlineExecutor()"


# Objects handed to forked workers without pickling: set in the parent before the pool forks,
# read by the children from their copy of this module. Keyed by a token so two pools in one
# process never see each other's object.
_SHARED: dict[int, Any] = {}
_TOKENS = itertools.count()


def _call(fn: Callable[..., Any], item: Any, token: int | None) -> Any:
    """Runs in the worker: ``fn(item)`` or ``fn(item, <the inherited shared object>)``."""
    if token is None:
        return fn(item)
    return fn(item, _SHARED[token])


def _init_worker(threads: int, parent_pid: int) -> None:
    """Worker start-up: die with the parent, and use ``threads`` torch threads."""
    _die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the parent dies, so a killed sweep leaves no
    orphan still training (and writing checkpoints) in a run folder."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - exotic libc
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class LocalExecutor(Executor):
    """A pool of forked worker processes on this machine.

    Each worker sets ``torch.set_num_threads(max(1, cores // workers))`` (cores: this process's
    CPU affinity), so ``workers`` concurrent runs share the cores instead of each spawning a
    thread per core. Workers are forked, so the ``shared`` object (a loaded dataset) is
    inherited copy-on-write, never pickled. Workers are forked from a thread that has never run
    torch code (GNU OpenMP is not fork-safe otherwise), and die with the parent (Linux).

    Args:
        workers: Number of worker processes (default: one per core).
        threads_per_worker: Torch threads in each worker (default: cores // workers, at
            least 1).

    Raises:
        RuntimeError: (on use) the platform cannot fork, or CUDA is already initialised in
            this process (forked children cannot use it).
    """

    in_process = False

    def __init__(self, workers: int | None = None, *, threads_per_worker: int | None = None):
        cores = available_cores()
        if workers is not None and workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        if threads_per_worker is not None and threads_per_worker < 1:
            raise InputError(f"threads_per_worker must be at least 1, got {threads_per_worker}")
        self.workers = workers or cores
        self.threads_per_worker = threads_per_worker or max(1, cores // self.workers)

    def __repr__(self) -> str:
        return (f"LocalExecutor(workers={self.workers}, "
                f"threads_per_worker={self.threads_per_worker})")

    def submit_all(self, fn, items, shared=None):
        items = list(items)
        if not items:
            return
        _check_can_fork()
        token = None
        if shared is not None:
            token = next(_TOKENS)
            _SHARED[token] = shared  # before the pool forks its workers
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(items)),
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker, initargs=(self.threads_per_worker, os.getpid()))
        finished = False
        forker = None
        try:
            forker = _ForkingThread(pool, fn, items, token)
            pending = forker.pending
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    item = pending.pop(future)
                    err = future.exception()
                    if err is not None and not isinstance(err, Exception):
                        raise err  # KeyboardInterrupt / SystemExit in a worker
                    yield item, (err if err is not None else future.result())
            finished = True
        finally:
            if not finished:
                _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            if forker is not None:
                forker.release()
            if token is not None:
                del _SHARED[token]


class _ForkingThread:
    """Submits every item from a new thread, so the pool forks its workers there.

    GNU OpenMP (libgomp, PyTorch's CPU threading on Linux) keeps its thread pool per thread
    and is not fork-safe: a child forked from a thread that has run a parallel region (any
    multi-threaded torch op) hangs in its first parallel region with more than one thread.
    Measured here: conv2d with 2 threads in the parent, fork, conv2d with 2 threads in the
    child -> hang; the same fork from a thread that never ran torch -> fine.

    The thread then stays alive until :meth:`release`: Linux sends the parent-death signal
    when the *thread* that forked a worker ends, not the process.
    """

    def __init__(self, pool: ProcessPoolExecutor, fn, items: list, token: int | None):
        self.pending: dict = {}
        self._failure: list[BaseException] = []
        self._submitted = threading.Event()
        self._release = threading.Event()

        def run() -> None:
            try:
                for item in items:
                    self.pending[pool.submit(_call, fn, item, token)] = item
            except BaseException as err:  # re-raised in the caller's thread
                self._failure.append(err)
            self._submitted.set()
            self._release.wait()

        self._thread = threading.Thread(target=run, name="taskgrouper-fork", daemon=True)
        self._thread.start()
        self._submitted.wait()
        if self._failure:
            self.release()
            raise self._failure[0]

    def release(self) -> None:
        self._release.set()
        self._thread.join()


def _check_can_fork() -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        raise SetupError("LocalExecutor needs the 'fork' start method, which this platform "
                           "lacks; use InlineExecutor (workers=1)")
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise SetupError("CUDA is already initialised in this process, and forked workers "
                           "cannot use it; start the sweep before anything touches the GPU "
                           "(e.g. from a fresh process), or use InlineExecutor")


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel queued items and terminate running ones (they resume from their checkpoints)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


def _ray(workers: int, **ray) -> Executor:
    from taskgrouper.runs.ray_executor import RayExecutor  # ray itself is imported on use

    return RayExecutor(ray.pop("address", None), local_cpus=workers, **ray)


#: Executor names accepted by :func:`build_executor`.
EXECUTORS: dict[str, Callable[..., Executor]] = {
    "inline": lambda workers: InlineExecutor(),
    "local": lambda workers: LocalExecutor(workers),
    "ray": _ray,
}

#: Options of the ``ray`` executor (see :class:`~taskgrouper.runs.ray_executor.RayExecutor`).
RAY_OPTIONS = ("address", "num_cpus", "num_gpus", "max_retries")


def build_executor(executor: str | Executor | None = None, workers: int | None = 1,
                   **ray: Any) -> Executor:
    """An executor from a name (``inline``, ``local``, ``ray``: a local Ray instance with
    ``workers`` CPUs, or the cluster at ``address``) or an instance.

    None picks :class:`InlineExecutor` for ``workers == 1`` and ``LocalExecutor(workers)``
    above.

    Args:
        executor: A name or an instance.
        workers: Parallel runs on this machine (local pool; a local Ray instance's CPUs).
        ray: With ``ray``: ``address``, ``num_cpus``, ``num_gpus``, ``max_retries`` (None
            values keep the defaults).

    Raises:
        ValueError: an unknown name (suggests the closest), or Ray options for another
            executor.
    """
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = "inline" if workers == 1 else "local"
    if executor not in EXECUTORS:
        from taskgrouper.tasks import closest

        raise InputError(f"unknown executor '{executor}'; {closest(executor, list(EXECUTORS))}")
    ray = {k: v for k, v in ray.items() if v is not None}
    unknown = [k for k in ray if k not in RAY_OPTIONS]
    if unknown:
        raise InputError(f"unknown executor option '{unknown[0]}'; choices: "
                         f"{', '.join(RAY_OPTIONS)}")
    if ray and executor != "ray":
        raise InputError(f"{', '.join(ray)}: options of the ray executor; use executor 'ray'")
    return EXECUTORS[executor](workers, **ray) if executor == "ray" else \
        EXECUTORS[executor](workers)
