"""Candidate networks: which (task subset, width) networks a search may train.

The candidate set of Standley et al. (2020), Sec. 3 ("C0"): one full-width network for every
non-empty subset of the tasks, plus a half-width single-task network per task, so that a
budget of 0.5 SNT per task can still be met. The baselines add single-task networks at widths
1/5, 1/4, 1/3, 1/2 and 1 (the "independent" solution at every budget) and the one all-task
network.

A candidate is pure data (no torch): the sweep turns it into a training run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from taskgrouper.errors import InputError

__all__ = [
    "INDEPENDENT_WIDTHS",
    "independent_widths",
    "MAX_CANDIDATES",
    "Candidate",
    "baseline_candidates",
    "compact_names",
    "fully_trained",
    "network_name",
    "paper_candidates",
    "pairs_and_singles",
    "search_candidates",
    "singles",
    "subsets",
]

#: Widths of the single-task networks of the "independent" baseline (fractions of 1 SNT).
INDEPENDENT_WIDTHS: tuple[float, ...] = (1 / 5, 1 / 4, 1 / 3, 1 / 2, 1.0)


def _width_label(width: float) -> str:
    # 1/3 -> "0.333"; 0.5 -> "0.5"
    return f"{round(width, 3):g}"


def compact_names(tasks: Iterable[str]) -> bool:
    """Whether networks over these tasks are named by concatenation (``"sd"``): only when
    every task name is one character, so a multi-task name can never equal a task's own."""
    return all(len(t) == 1 for t in tasks)


def network_name(tasks: Sequence[str], width: float = 1.0, compact: bool | None = None) -> str:
    """A network's name: its tasks, and its width when it is not 1.

    When every task of the experiment has a one-character name, the names are concatenated
    (``"sd"``, ``"s@0.5"``), as in the paper's tables; otherwise they are joined with ``+``
    (``"depth+normals@0.333"``; with tasks ``a``, ``b`` and ``ab`` the pair is ``"a+b"`` and
    ``ab``'s own network ``"ab"``). Task names cannot hold ``+`` or ``@``
    (:func:`taskgrouper.tasks.check_task_name`), so names never collide.

    Args:
        tasks: The network's tasks.
        width: Its encoder's size.
        compact: :func:`compact_names` of every task of the experiment; None: of ``tasks``
            alone (right whenever the experiment's names are all one character or all longer).
    """
    if compact is None:
        compact = compact_names(tasks)
    joined = "".join(tasks) if compact and compact_names(tasks) else "+".join(tasks)
    return joined if abs(width - 1.0) < 1e-9 else f"{joined}@{_width_label(width)}"


#: Task names written into run ids (folder names) as they are; any other name is written
#: with a hash of the task names beside a readable ASCII form.
_PLAIN_TASK = re.compile(r"[A-Za-z0-9_]+")
_MAX_PLAIN_ID = 120


def run_id_base(tasks: Sequence[str], compact: bool | None = None) -> str:
    """The network part of a run id: the network's name when every task name is plain ASCII
    (letters, digits, ``_``) and short, else ``READABLE=HASH`` (8 hex digits of the task
    names), which no plain name contains, so no two networks share a run id."""
    joined = network_name(tasks, 1.0, compact)
    if len(joined) <= _MAX_PLAIN_ID and all(_PLAIN_TASK.fullmatch(t) for t in tasks) \
            and joined[:1].isalnum():
        return joined
    digest = hashlib.sha1(json.dumps(list(tasks)).encode()).hexdigest()[:8]
    readable = re.sub(r"[^A-Za-z0-9_+]+", "_", joined).strip("_+")[:_MAX_PLAIN_ID - 9]
    return f"{readable or 'tasks'}={digest}"


@dataclass(frozen=True)
class Candidate:
    """One network a search may train.

    Attributes:
        tasks: The tasks it predicts, in the dataset's task order.
        width: Encoder size as a fraction of the full-width encoder's cost.
        fraction: Fraction of the training data it sees per epoch (ESA trains on 0.2).
        epochs: Epochs to train, when not the experiment's (ESA: one pass).
        seed: Training seed when not the experiment's (repeats for error bars; run id
            suffix ``-s<seed>``).
        affinity_every: Record task affinities every this many steps (0: not recorded; see
            :mod:`taskgrouper.train.affinity`).
    """

    tasks: tuple[str, ...]
    width: float = 1.0
    fraction: float = 1.0
    epochs: int | None = None
    affinity_every: int = 0
    #: :func:`compact_names` of the experiment's tasks (None: of this network's own).
    compact: bool | None = field(default=None, compare=False)
    #: Training seed when it is not the experiment's (a repeat of the run for error bars).
    seed: int | None = None

    @property
    def name(self) -> str:
        """Network name (same for every training fraction)."""
        return network_name(self.tasks, self.width, self.compact)

    @property
    def run_id(self) -> str:
        """Run identifier, also a folder name: ``sd``, ``s-w0.5``, ``sd-f0.2``; see
        :func:`run_id_base` for task names that are not plain ASCII."""
        joined = run_id_base(self.tasks, self.compact)
        if abs(self.width - 1.0) > 1e-9:
            joined += f"-w{_width_label(self.width)}"
        if abs(self.fraction - 1.0) > 1e-9:
            joined += f"-f{_width_label(self.fraction)}"
        if self.epochs is not None:
            joined += f"-e{self.epochs}"
        if self.affinity_every:
            joined += f"-a{self.affinity_every}"
        if self.seed is not None:
            joined += f"-s{self.seed}"
        return joined

    def full(self) -> Candidate:
        """The same network trained to convergence on all the data (with the same seed)."""
        return Candidate(self.tasks, self.width, compact=self.compact, seed=self.seed)

    def with_seed(self, seed: int | None) -> Candidate:
        """The same run with another training seed."""
        return dataclasses.replace(self, seed=seed)


def subsets(tasks: Sequence[str], sizes: Iterable[int] | None = None) -> list[tuple[str, ...]]:
    """Non-empty subsets of ``tasks`` (in task order), by size then combinations order."""
    sizes = range(1, len(tasks) + 1) if sizes is None else sizes
    return [c for k in sizes for c in itertools.combinations(tasks, k)]


#: Most full-width networks a candidate set may hold (the exact solver has been measured to
#: about 175,000: 30 tasks in groups of up to 5, bench/bench_select.py).
MAX_CANDIDATES = 300_000


def paper_candidates(tasks: Sequence[str], fraction: float = 1.0,
                     max_size: int | None = None) -> list[Candidate]:
    """C0: every non-empty subset at full width, and a half-width single-task network per task.

    Args:
        tasks: The tasks.
        fraction: Training fraction of every candidate.
        max_size: Only subsets of at most this many tasks (``search.max_group_size``); all
            subsets when None.

    Raises:
        ValueError: no tasks, a repeated task, or more than 20 tasks without ``max_size``, or
            over :data:`MAX_CANDIDATES` networks (names the fix).
    """
    _check_tasks(tasks, limit=None if max_size else 20, max_size=max_size)
    sizes = range(1, min(max_size or len(tasks), len(tasks)) + 1)
    compact = compact_names(tasks)
    out = [Candidate(s, 1.0, fraction, compact=compact) for s in subsets(tasks, sizes)]
    out += [Candidate((t,), 0.5, fraction, compact=compact) for t in tasks]
    return out


def search_candidates(tasks: Sequence[str], fraction: float = 1.0,
                      epochs: int | None = None, max_size: int | None = None,
                      widths: Sequence[float] = ()) -> list[Candidate]:
    """What a search chooses among: C0 (up to ``max_size`` tasks a network), the paper's
    pool, plus single-task networks at ``widths`` (``search.selection_widths``; C0's full and
    half widths are there already). The paper trained smaller single-task networks (1/5, 1/4,
    1/3) for its independent baseline only, "not used for network selection"."""
    compact = compact_names(tasks)
    extra = [Candidate((t,), w, fraction, epochs, compact=compact) for w in _extra(widths)
             for t in tasks]
    return [Candidate(c.tasks, c.width, fraction, epochs, compact=compact)
            for c in paper_candidates(tasks, max_size=max_size)] + extra


def _extra(widths: Sequence[float]) -> list[float]:
    """``widths`` without C0's own (1 and 1/2), ascending, once each."""
    return sorted({float(w) for w in widths} - {0.5, 1.0})


def singles(tasks: Sequence[str], widths: Sequence[float] = ()) -> list[Candidate]:
    """The single-task networks selection may choose (full and half width, and ``widths``):
    what every strategy must measure."""
    _check_tasks(tasks)
    return [Candidate((t,), w) for w in [1.0, 0.5, *_extra(widths)[::-1]] for t in tasks]


def pairs_and_singles(tasks: Sequence[str], widths: Sequence[float] = ()) -> list[Candidate]:
    """What the higher-order approximation trains: all singles and pairs at full width, plus
    the other single-task networks selection may choose (half width, and ``widths``)."""
    _check_tasks(tasks)
    compact = compact_names(tasks)
    out = [Candidate(s, 1.0, compact=compact) for s in subsets(tasks, (1, 2))]
    out += [Candidate((t,), w, compact=compact) for w in [0.5, *_extra(widths)] for t in tasks]
    return out


def independent_widths(n_tasks: int) -> tuple[float, ...]:
    """Widths of the independent baseline's single-task networks: 1/k for k = 1..min(T, 5)
    (T tasks; with five, the paper's 1/5, 1/4, 1/3, 1/2 and 1). T networks of width 1/T fit
    budget 1; narrower ones than 1/5 are not trained (beyond five tasks the baseline starts at
    budget T/5)."""
    return INDEPENDENT_WIDTHS[-max(1, min(n_tasks, len(INDEPENDENT_WIDTHS))):]


def baseline_candidates(tasks: Sequence[str], widths: Sequence[float] = INDEPENDENT_WIDTHS,
                        all_task_widths: Sequence[float] = (1.0,)) -> list[Candidate]:
    """The baselines' networks: single-task networks at ``widths`` and the all-task network at
    ``all_task_widths``."""
    _check_tasks(tasks)
    # one task or every task: the names need no context (compact_names of their own tasks)
    out = [Candidate((t,), w) for w in widths for t in tasks]
    out += [Candidate(tuple(tasks), w) for w in all_task_widths]
    return out


def _check_tasks(tasks: Sequence[str], limit: int | None = None,
                 max_size: int | None = None) -> None:
    if not tasks:
        raise InputError("no tasks given; a search needs at least one task")
    if len(set(tasks)) != len(tasks):
        raise InputError(f"tasks repeat: {', '.join(tasks)}")
    if limit is not None and len(tasks) > limit:
        raise InputError(f"{len(tasks)} tasks give {2 ** len(tasks) - 1} candidate networks; "
                         f"candidate sets of every subset stop at {limit} tasks. Set "
                         f"search.max_group_size (e.g. 4 or 5) and use a strategy that trains "
                         f"few networks (hoa, lookahead, gradcos)")
    if max_size is not None:
        if max_size < 1:
            raise InputError(f"search.max_group_size must be at least 1, got {max_size}")
        count = sum(math.comb(len(tasks), k) for k in range(1, min(max_size, len(tasks)) + 1))
        if count > MAX_CANDIDATES:
            raise InputError(f"{len(tasks)} tasks in groups of up to {max_size} give {count} "
                             f"candidate networks, over the {MAX_CANDIDATES} selection takes; "
                             f"lower search.max_group_size")


def fully_trained(records) -> dict:
    """Network name -> its fully trained run (all the data, the experiment's epochs).

    A run is fully trained when its id is the one :meth:`Candidate.full` gives its network:
    an ESA run over all of the data but for one epoch (``s-e1``) has the same fraction and
    network as ``s`` and must never stand in for it.
    """
    records = list(records)
    compact = compact_names({t for r in records for t in r.tasks})
    out = {}
    for r in records:
        c = Candidate(tuple(r.tasks), r.width, compact=compact)
        if r.id == c.run_id:
            out[c.name] = r
    return out
