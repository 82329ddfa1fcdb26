"""The executor interface: what the sweep driver asks of a local pool or a Ray cluster.

Implementations live in :mod:`taskgrouper.runs.executors` (inline, local pool) and
:mod:`taskgrouper.runs.ray_executor` (Ray); both import this module, and neither imports the
other.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["Executor", "available_cores"]

T = TypeVar("T")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under taskset or cgroups)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Executor(ABC):
    """Runs ``fn`` on every item, in any order, yielding ``(item, outcome)`` as each finishes.

    Contract every implementation keeps (tests/runs/test_executors.py checks it):

    - ``outcome`` is what ``fn`` returned, or the :class:`Exception` it raised: a failing item
      never stops the others, and is never raised out of the iterator. A worker that dies
      (killed, out of memory) yields an exception for the items it took down.
    - With ``shared`` given, ``fn`` is called as ``fn(item, shared)``, else ``fn(item)``.
      ``shared`` reaches the workers once, not once per item, and need not be picklable for
      :class:`LocalExecutor` (forked children inherit it).
    - ``fn`` and the items must be picklable for executors that run them out of process
      (module-level functions, :func:`functools.partial` of them, dataclasses).
    - One call's resources (a pool) live as long as the iterator: they are released when it is
      exhausted or closed; closing it early (an exception in the consumer, Ctrl-C) cancels the
      items not yet started and stops the running ones.

    Attributes:
        in_process: ``fn`` runs in the calling process (so it may draw progress bars and use
            the caller's monkeypatches and globals).
    """

    in_process: bool = False

    @abstractmethod
    def submit_all(self, fn: Callable[..., Any], items: Iterable[T],
                   shared: Any = None) -> Iterator[tuple[T, Any]]:
        """Run ``fn`` over ``items``; yield ``(item, result or exception)`` as each finishes."""
