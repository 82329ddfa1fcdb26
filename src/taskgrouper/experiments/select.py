"""``taskgrouper select --runs DIR``: exact selection among the networks a sweep trained."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from taskgrouper.errors import InputError
from taskgrouper.grouping.api import select_networks, table_baselines
from taskgrouper.grouping.candidates import (
    compact_names,
    fully_trained,
    network_name,
    search_candidates,
)
from taskgrouper.grouping.select import Network, Progress

__all__ = ["select_runs"]


def select_runs(runs_dir: str | Path, budgets: Iterable[float] = (1.0,), hoa: bool = False,
                constraints: Mapping[str, float] | None = None,
                weights: Mapping[str, float] | None = None, solver: str = "auto",
                baselines: bool = False, trials: int | None = None,
                all_networks: bool = False, time_limit: float | None = None,
                gap: float = 0.0, progress: Callable[[Progress], None] | None = None) -> dict:
    """Select among the fully trained networks of a sweep folder (``DIR/runs.sqlite``).

    Validation losses choose, test losses score (as :func:`select_table`, baselines included
    when asked); runs trained on a fraction of the data or for fewer epochs (ESA) are left
    out. In a search folder the choice is among the search's own pool, as the search chose:
    C0 (multi-task networks at full width, single-task networks at full and half width) and
    the single-task widths of its ``search.selection_widths``; ``all_networks`` chooses among
    every fully trained run instead (the baselines' narrower and wider networks too).
    ``time_limit``, ``gap`` and ``progress``: anytime selection, as in :func:`select_table`.

    Raises:
        ValueError: no store in the folder, or no fully trained run in it.
    """
    from taskgrouper.runs.store import STORE_FILE, RunStore

    budgets = list(budgets)
    path = Path(runs_dir) / STORE_FILE
    if not path.is_file():
        raise InputError(f"no {STORE_FILE} in '{runs_dir}'; pass the --out folder of a "
                         "'taskgrouper search' or 'taskgrouper demo'")
    with RunStore(path) as store:
        records = list(fully_trained(store.records()).values())
    if not records:
        raise InputError(f"{path} holds no fully trained run yet; run the search to the end")
    compact = compact_names({t for r in records for t in r.tasks})
    val, test = [], []
    for r in records:
        name = network_name(r.tasks, r.width, compact)
        cost = r.width  # nominal SNT, as the search selects (measured within 3%)
        val.append(Network(name, cost, r.val_losses))
        test.append(Network(name, cost, r.test_losses))
    searched = None if all_networks else _searched(Path(runs_dir))
    if searched is None:
        pool = list(range(len(records)))
    else:  # the search's own candidate set, by (tasks, width)
        own = {(frozenset(c.tasks), c.width) for c in search_candidates(
            sorted({t for r in records for t in r.tasks}), **searched)}
        pool = [k for k, r in enumerate(records) if (frozenset(r.tasks), r.width) in own]
    result = select_networks([val[k] for k in pool], [test[k] for k in pool], budgets, hoa=hoa,
                             constraints=constraints, weights=weights, solver=solver,
                             source=str(path), test_source=str(path), time_limit=time_limit,
                             gap=gap, progress=progress)
    # The baselines field their own networks, narrower and wider ones too (none after Ctrl-C).
    if baselines and not result.get("interrupted"):
        extra = {"trials": trials} if trials is not None else {}
        result["baselines"] = table_baselines(val, test, budgets, result["tasks"], **extra)
    return result


def _searched(folder: Path) -> dict | None:
    """What fixed a search folder's candidate set (``search.selection_widths`` and
    ``search.max_group_size``, from its ``search.json``) as arguments of
    :func:`~taskgrouper.grouping.candidates.search_candidates`; None when the folder has no
    ``search.json`` (then every fully trained run counts)."""
    import json

    path = folder / "search.json"
    if not path.is_file():
        return None
    try:
        search = json.loads(path.read_text()).get("search") or {}
        return {"widths": [float(w) for w in search.get("selection_widths") or []],
                "max_size": search.get("max_group_size")}
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise InputError(f"{path} is unreadable ({type(err).__name__}: {err}); it records "
                         f"which config the folder was searched with: restore it, or pass "
                         f"--all-networks to choose among every run") from None
