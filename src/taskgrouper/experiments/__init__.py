"""The drivers: ``search``, ``bench``, ``demo`` and ``relationships`` on one skeleton
(:mod:`.base`).

They stand above everything else (data, models, training, the sweep and its store, selection,
the report) and below the command line. Importing this package imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["format_bench", "format_search", "run_bench", "run_demo", "search", "select_runs",
           "transfer_relationships"]

_HOME = {"format_bench": "bench", "run_bench": "bench", "run_demo": "demo",
         "format_search": "summary", "search": "search", "select_runs": "select",
         "transfer_relationships": "relationships"}

if TYPE_CHECKING:  # editors resolve the names; at run time they load on first use
    from taskgrouper.experiments.bench import format_bench, run_bench
    from taskgrouper.experiments.demo import run_demo
    from taskgrouper.experiments.relationships import transfer_relationships
    from taskgrouper.experiments.search import search
    from taskgrouper.experiments.select import select_runs
    from taskgrouper.experiments.summary import format_search


def __getattr__(name: str):
    if name in _HOME:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
