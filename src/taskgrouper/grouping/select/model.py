"""The selection problem: its inputs, its answer, and the compiled arrays every solver shares.

Public types: :class:`Network` (a candidate), :class:`Selection` (an answer),
:class:`InfeasibleBudget`, :class:`Objective` (the ``BETTER()`` of Algorithm 1) and
:func:`score`. Below them: validation and compilation of the candidates into a
:class:`_Problem` (:func:`_compile`), dominance pruning (:func:`_undominated`), and the
canonical key every solver compares selections by, ties included (:func:`_key`,
:func:`_better`, see the package doc).

The bottom of the package: it imports no other part of it, only numpy and the standard
library.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from taskgrouper.errors import InputError, TaskgrouperError

__all__ = [
    "COST_TOL",
    "REL_TOL",
    "InfeasibleBudget",
    "Network",
    "Objective",
    "Selection",
    "score",
]

#: Tolerance on costs: a selection fits the budget when ``cost <= budget + COST_TOL``.
COST_TOL = 1e-9
#: Relative tolerance under which two objective values count as a tie.
REL_TOL = 1e-12


@dataclass(frozen=True)
class Network:
    """A trained candidate network: its name, inference cost and per-task losses.

    Attributes:
        name: Unique name, e.g. ``"sd"`` or ``"s|half"``.
        cost: Inference cost (e.g. in SNT); finite and non-negative.
        losses: Task -> loss (lower is better). Tasks absent here are not predicted.
    """

    name: str
    cost: float
    losses: Mapping[str, float]

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks this network predicts, in the order of ``losses``."""
        return tuple(self.losses)


@dataclass(frozen=True)
class Selection:
    """The chosen networks for one budget and the task -> network assignment.

    Attributes:
        budget: The budget this selection was made for.
        networks: Names of the chosen networks, sorted.
        cost: Total cost of the chosen networks.
        total: Sum over tasks of the assigned network's loss (unweighted).
        assignment: Task -> name of the chosen network serving it.
        objective: The minimised value (equals ``total`` without weights).
        gap: 0 when the selection is proved optimal; else how far its objective may lie above
            the optimum, relative to it: ``(objective - bound) / |bound|`` with the best lower
            bound proved (``inf`` when none was; package doc).
        stopped: None when the selection is proved optimal; else why the proof stopped:
            ``"gap"`` (within the requested gap), ``"time limit"``, ``"memory"`` or
            ``"interrupted"`` (Ctrl-C).
    """

    budget: float
    networks: tuple[str, ...]
    cost: float
    total: float
    assignment: dict[str, str]
    objective: float = field(default=math.nan, compare=False)
    gap: float = field(default=0.0, compare=False)
    stopped: str | None = field(default=None, compare=False)


class InfeasibleBudget(TaskgrouperError):
    """No selection covering every task fits the budget.

    Attributes:
        budget: The budget asked for.
        cheapest: Cost of the cheapest selection that covers every task.
    """

    def __init__(self, budget: float, cheapest: float):
        self.budget = float(budget)
        self.cheapest = float(cheapest)
        super().__init__(
            f"budget {self.budget:g} is below the cheapest cover of every task "
            f"(cost {self.cheapest:g}); raise the budget to at least {self.cheapest:g}"
        )

    def __reduce__(self):
        return (InfeasibleBudget, (self.budget, self.cheapest))


@dataclass(frozen=True)
class Objective:
    """What "better" means (the ``BETTER()`` of Algorithm 1): minimise sum_t w_t * loss_t.

    A network whose loss on a constrained task exceeds the bound cannot serve that task, which
    is exactly "the chosen set must reach loss <= bound on the task" since each task is served
    by its best chosen network. Subclasses may override :meth:`effective_losses` with any
    per-(network, task) transformation; every solver minimises the sum over tasks of the
    lowest effective loss among the chosen networks (``inf`` = cannot serve).

    Attributes:
        weights: Task -> non-negative weight (missing tasks weigh 1).
        constraints: Task -> maximum admissible loss.
    """

    weights: Mapping[str, float] | None = None
    constraints: Mapping[str, float] | None = None

    def validate(self, tasks: Sequence[str]) -> None:
        """Raise ValueError for an unknown task or a bad weight or bound."""
        for label, table in (("weight", self.weights), ("constraint", self.constraints)):
            for task, value in (table or {}).items():
                if task not in tasks:
                    raise InputError(
                        f"{label} names unknown task {task!r}; known tasks: {', '.join(tasks)}"
                    )
                if not _is_real(value) or math.isnan(float(value)):
                    raise InputError(f"{label} for task {task!r} must be a number, got {value!r}")
                if label == "weight" and not (0.0 <= float(value) < math.inf):
                    raise InputError(
                        f"weight for task {task!r} must be finite and >= 0, got {value!r}"
                    )

    def effective_losses(self, raw: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        """Map raw losses (networks x tasks, ``inf`` = not predicted) to minimised values."""
        eff = raw.copy()
        for j, task in enumerate(tasks):
            if self.constraints and task in self.constraints:
                eff[raw[:, j] > float(self.constraints[task]), j] = math.inf
            if self.weights and task in self.weights:
                col = eff[:, j]
                finite = np.isfinite(col)
                col[finite] = col[finite] * float(self.weights[task])
        return eff


# --------------------------------------------------------------------------- problem set-up


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite_cover(p: _Problem, idx: Sequence[int] | None, budget: float) -> bool:
    """True when ``idx`` is a non-empty selection that fits ``budget``."""
    return bool(idx) and math.fsum(p.cost[list(idx)].tolist()) <= budget + COST_TOL


@dataclass
class _Problem:
    """Validated arrays: networks sorted by name, ``inf`` where a network cannot serve."""

    tasks: tuple[str, ...]
    names: list[str]
    cost: np.ndarray  # (M,)
    raw: np.ndarray  # (M, T) raw losses, inf = not predicted
    eff: np.ndarray  # (M, T) effective losses, inf = cannot serve
    _cover: tuple[float, list[int]] | None = None  # cheapest cover: cost, indices

    @property
    def size(self) -> int:
        return len(self.names)


def _compile(
    networks: Iterable[Network],
    tasks: Sequence[str] | None,
    objective: Objective,
) -> _Problem:
    nets = list(networks)
    if not nets:
        raise InputError("no candidate networks given")
    seen: set[str] = set()
    for net in nets:
        if not isinstance(net, Network):
            raise InputError(f"expected Network objects, got {type(net).__name__}")
        if net.name in seen:
            raise InputError(f"duplicate network name {net.name!r}")
        seen.add(net.name)
        if not _is_real(net.cost) or not math.isfinite(float(net.cost)) or net.cost < 0:
            raise InputError(
                f"network {net.name!r}: cost must be a finite number >= 0, got {net.cost!r}"
            )
        for task, loss in net.losses.items():
            if type(loss) is not float and not _is_real(loss):  # (fast path for floats)
                raise InputError(
                    f"network {net.name!r}, task {task!r}: loss must be a number, got {loss!r}"
                )
            if math.isnan(float(loss)) or float(loss) == -math.inf:
                raise InputError(
                    f"network {net.name!r}, task {task!r}: loss is {loss!r}; "
                    "give a finite loss or leave the task out"
                )
    if tasks is None:
        order: dict[str, None] = {}
        for net in nets:
            order.update(dict.fromkeys(net.losses))
        task_list = tuple(order)
    else:
        task_list = tuple(tasks)
        if len(set(task_list)) != len(task_list):
            raise InputError(f"duplicate task in {list(task_list)}")
    if not task_list:
        raise InputError("no tasks to cover")
    objective.validate(task_list)
    nets.sort(key=lambda n: n.name)
    column = {task: j for j, task in enumerate(task_list)}
    raw = np.full((len(nets), len(task_list)), math.inf)
    for i, net in enumerate(nets):
        for task, loss in net.losses.items():
            j = column.get(task)
            if j is not None:
                raw[i, j] = float(loss)
    eff = objective.effective_losses(raw, task_list)
    for j, task in enumerate(task_list):
        if not np.isfinite(raw[:, j]).any():
            raise InputError(f"no network predicts task {task!r}; add a network that does")
        if not np.isfinite(eff[:, j]).any():
            bound = (objective.constraints or {}).get(task)
            raise InputError(
                f"no network reaches loss <= {bound} on task {task!r}; relax the constraint"
            )
    useful = np.isfinite(eff).any(axis=1)
    keep = np.flatnonzero(useful)
    return _Problem(
        tasks=task_list,
        names=[nets[i].name for i in keep],
        cost=np.array([float(nets[i].cost) for i in keep]),
        raw=raw[keep],
        eff=eff[keep],
    )


def _prune_dominated(p: _Problem) -> _Problem:
    """Drop networks that can never be in the canonical optimum (see :func:`_undominated`)."""
    keep = _undominated(p)
    return p if keep.all() else _take(p, keep)


def _take(p: _Problem, keep: np.ndarray) -> _Problem:
    """The problem on the networks where the boolean mask ``keep`` is set."""
    return _Problem(p.tasks, [p.names[i] for i in np.flatnonzero(keep)], p.cost[keep],
                    p.raw[keep], p.eff[keep])


def _undominated(p: _Problem) -> np.ndarray:
    """Mask of the networks that no other network dominates.

    Network b dominates a when b serves every task a serves at an effective loss no higher,
    and b is cheaper by more than ``COST_TOL``, or no dearer and earlier by name. Swapping a
    for b in any selection keeps it within budget, does not raise the objective, and improves
    (or keeps) the tie-break key, so a is never needed. The order is strict and acyclic, so
    removing every dominated network at once is safe.
    """
    m = p.size
    keep = np.ones(m, dtype=bool)
    if m == 0:
        return keep
    finite = np.isfinite(p.eff)
    # Per task, the networks serving it sorted by effective loss: the networks no worse than
    # a on task c are a prefix of that order. Each a is checked against the shortest such
    # prefix over its tasks, then filtered on its other tasks.
    order, counts = [], np.full(p.eff.shape, m + 1, dtype=np.intp)
    for c in range(p.eff.shape[1]):
        rows = np.flatnonzero(finite[:, c])
        rows = rows[np.argsort(p.eff[rows, c], kind="stable")]
        order.append(rows)
        counts[rows, c] = np.searchsorted(p.eff[rows, c], p.eff[rows, c], side="right")
    first = counts.argmin(axis=1)
    for a in range(m):
        c0 = first[a]
        idx = order[c0][: counts[a, c0]]
        for c in np.flatnonzero(finite[a]):
            if idx.size <= 1:
                break
            if c != c0:
                idx = idx[p.eff[idx, c] <= p.eff[a, c]]
        ca, cb = p.cost[a], p.cost[idx]
        dom = (cb < ca - COST_TOL) | ((cb <= ca) & (idx < a))  # names sorted: index = order
        if dom.any():
            keep[a] = False
    return keep


# --------------------------------------------------------------------------- evaluation

_Key = tuple  # (objective, cost, count, names)


def _key(p: _Problem, idx: Sequence[int]) -> _Key | None:
    """Canonical (objective, cost, count, names) of a set of indices; None if not a cover."""
    idx = sorted(set(int(i) for i in idx))
    if not idx:
        return None
    mins = p.eff[idx].min(axis=0)
    if not np.isfinite(mins).all():
        return None
    # fsum is correctly rounded, so equal per-task minima give bit-identical objectives.
    return (
        math.fsum(mins.tolist()),
        math.fsum(p.cost[idx].tolist()),
        len(idx),
        tuple(p.names[i] for i in idx),
    )


def _better(a: _Key | None, b: _Key | None) -> bool:
    """True when key ``a`` is strictly preferred to key ``b`` (None = no solution)."""
    if a is None:
        return False
    if b is None:
        return True
    tol = REL_TOL * max(abs(a[0]), abs(b[0]))
    if a[0] < b[0] - tol:
        return True
    if a[0] > b[0] + tol:
        return False
    if a[1] < b[1] - COST_TOL:
        return True
    if a[1] > b[1] + COST_TOL:
        return False
    return (a[2], a[3]) < (b[2], b[3])


def _to_selection(p: _Problem, budget: float, idx: Sequence[int],
                  lower: float | None = None, stopped: str | None = None) -> Selection:
    idx = sorted(set(int(i) for i in idx))
    key = _key(p, idx)
    assert key is not None
    assignment: dict[str, str] = {}
    total = []
    for j, task in enumerate(p.tasks):
        best = min(
            (i for i in idx if math.isfinite(p.eff[i, j])),
            key=lambda i, j=j: (p.eff[i, j], p.raw[i, j], p.names[i]),
        )
        assignment[task] = p.names[best]
        total.append(float(p.raw[best, j]))
    gap = (0.0 if lower is None else math.inf if not math.isfinite(lower)
           else max(0.0, key[0] - lower) / max(abs(lower), 1e-12))
    return Selection(
        budget=float(budget),
        networks=key[3],
        cost=key[1],
        total=math.fsum(total),
        assignment=assignment,
        objective=key[0],
        gap=gap,
        stopped=stopped if gap > 0 else None,  # a bound at the objective proves it
    )


def score(
    selection: Selection,
    networks: Mapping[str, Network] | Iterable[Network],
    *,
    mode: str = "min",
) -> float:
    """Total loss of a selection on another table (e.g. the test losses).

    Args:
        selection: A selection made on the validation table.
        networks: The networks of the other table, by name or as an iterable.
        mode: ``"min"`` (default, the paper's protocol): each task contributes the lowest loss
            in ``networks`` among the chosen networks that predict it; this reproduces Table 4
            of Standley et al. (2020) exactly, ESA row included. ``"assignment"``: each task
            keeps the network assigned to it on validation and contributes that network's
            loss in ``networks`` (what a deployed system would report; the ESA row then reads
            0.470 instead of 0.467 at budget 2).

    Returns:
        The sum over the selection's tasks.

    Raises:
        ValueError: A chosen network or one of its tasks is missing from ``networks``.
    """
    by_name = dict(networks) if isinstance(networks, Mapping) else {n.name: n for n in networks}
    for name in selection.networks:
        if name not in by_name:
            raise InputError(f"network {name!r} of the selection is missing from the score table")
    parts = []
    for task, name in selection.assignment.items():
        if mode == "assignment":
            losses = by_name[name].losses
            if task not in losses:
                raise InputError(f"network {name!r} has no loss for task {task!r} in score table")
            parts.append(float(losses[task]))
        elif mode == "min":
            vals = [
                float(by_name[n].losses[task])
                for n in selection.networks
                if task in by_name[n].losses
            ]
            if not vals:
                raise InputError(f"no chosen network has a loss for task {task!r} in score table")
            parts.append(min(vals))
        else:
            raise InputError(f"mode must be 'assignment' or 'min', got {mode!r}")
    return math.fsum(parts)
