"""``taskgrouper select --runs DIR``: exact selection among the networks a sweep trained."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from taskgrouper.errors import InputError
from taskgrouper.grouping.api import select_networks
from taskgrouper.grouping.candidates import compact_names, fully_trained, network_name
from taskgrouper.grouping.select import Network

__all__ = ["select_runs"]


def select_runs(runs_dir: str | Path, budgets: Iterable[float] = (1.0,), hoa: bool = False,
                constraints: Mapping[str, float] | None = None,
                weights: Mapping[str, float] | None = None, solver: str = "auto",
                baselines: bool = False, trials: int | None = None) -> dict:
    """Select among the fully trained networks of a sweep folder (``DIR/runs.sqlite``).

    Validation losses choose, test losses score (as :func:`select_table`, baselines included
    when asked); runs trained on a fraction of the data or for fewer epochs (ESA) are left
    out.

    Raises:
        ValueError: no store in the folder, or no fully trained run in it.
    """
    from taskgrouper.runs.store import STORE_FILE, RunStore

    path = Path(runs_dir) / STORE_FILE
    if not path.is_file():
        raise InputError(f"no {STORE_FILE} in '{runs_dir}'; pass the --out folder of a "
                         "'taskgrouper search' or 'taskgrouper demo'")
    with RunStore(path) as store:
        records = list(fully_trained(store.records()).values())
    if not records:
        raise InputError(f"{path} holds no fully trained run yet; run the search to the end")
    val, test = [], []
    compact = compact_names({t for r in records for t in r.tasks})
    for r in records:
        name = network_name(r.tasks, r.width, compact)
        cost = r.width  # nominal SNT, as the search selects (measured within 3%)
        val.append(Network(name, cost, r.val_losses))
        test.append(Network(name, cost, r.test_losses))
    extra = {"trials": trials} if trials is not None else {}
    return select_networks(val, test, budgets, hoa=hoa, constraints=constraints,
                           weights=weights, solver=solver, source=str(path),
                           test_source=str(path), baselines=baselines, **extra)
