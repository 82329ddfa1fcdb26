"""Task relationships measured from trained candidate networks (Standley et al. 2020, Sec. 5).

- :func:`pair_table` (Table 1): how much task ``t`` gains from sharing a full-width network
  with task ``u``, relative to ``t``'s half-width single-task network (same total cost).
- :func:`affinity_table` (Table 2): the mean of Table 1 and its transpose.
- :func:`order_relative` (Figure 2): how ``k``-task full-width networks compare with ``k``
  single-task networks of width ``1/k`` (same total cost), for ``k = 2..T``.

Relative performance is ``(L_single - L_shared) / |L_single|``: positive when sharing helps
(losses: lower is better). Pure python; candidates are the dicts of ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["WIDTH_TOL", "affinity_table", "order_relative", "pair_table", "relationships",
           "relative_gain"]

#: Tolerance when matching a candidate's width (``0.333`` matches ``1/3``).
WIDTH_TOL = 1e-3

Candidate = Mapping[str, Any]


def relative_gain(single: float | None, shared: float | None) -> float | None:
    """``(single - shared) / |single|``: the gain of the shared network (None if undefined)."""
    if single is None or shared is None:
        return None
    single, shared = float(single), float(shared)
    if not (math.isfinite(single) and math.isfinite(shared)) or single == 0.0:
        return None
    return (single - shared) / abs(single)


def _loss(candidates: Sequence[Candidate], tasks: frozenset[str], width: float, task: str,
          split: str) -> float | None:
    """``task``'s loss on ``split`` in the first candidate with exactly ``tasks`` at ``width``."""
    for c in candidates:
        if frozenset(c["tasks"]) == tasks and abs(float(c["width"]) - width) <= WIDTH_TOL:
            value = (c.get(split) or {}).get(task)
            return None if value is None else float(value)
    return None


def pair_table(candidates: Sequence[Candidate], tasks: Sequence[str],
               split: str = "test") -> dict[str, dict[str, float | None]]:
    """Table 1: ``table[t][u]``, the relative performance of ``t`` trained with ``u``.

    ``(L_t(t alone, width 0.5) - L_t({t, u}, width 1)) / L_t(t alone, width 0.5)``; positive
    means the pair helps ``t``. The paper prints it with rows "trained with" (``u``) and
    columns "performance on" (``t``): its 4.17% for SemSeg trained with Depth is
    ``table["s"]["d"]``.

    Args:
        candidates: ``{"tasks", "width", "val", "test", ...}`` dicts; when several match a
            (tasks, width), the first one is used.
        tasks: Row and column order.
        split: ``"test"`` or ``"val"``: which losses to compare.

    Returns:
        ``{t: {u: value or None}}``; None on the diagonal and where a network or loss is
        missing.
    """
    table: dict[str, dict[str, float | None]] = {}
    for t in tasks:
        single = _loss(candidates, frozenset([t]), 0.5, t, split)
        table[t] = {
            u: None if u == t else relative_gain(
                single, _loss(candidates, frozenset([t, u]), 1.0, t, split))
            for u in tasks}
    return table


def affinity_table(pair: Mapping[str, Mapping[str, float | None]]
                   ) -> dict[str, dict[str, float | None]]:
    """Table 2: ``(pair[t][u] + pair[u][t]) / 2`` (None if either is None; diagonal None)."""
    out: dict[str, dict[str, float | None]] = {}
    for t, row in pair.items():
        out[t] = {}
        for u in row:
            a = row.get(u)
            b = pair.get(u, {}).get(t)
            out[t][u] = None if t == u or a is None or b is None else (a + b) / 2.0
    return out


def order_relative(candidates: Sequence[Candidate], tasks: Sequence[str],
                   split: str = "test") -> dict[int, dict[str, float | int]]:
    """Figure 2: full-width ``k``-task networks against ``k`` single-task networks at ``1/k``.

    For each ``k = 2..T``: the mean, over the full-width networks ``N`` with ``k`` of the
    tasks and over the tasks ``t`` of ``N``, of
    ``(L_t(t alone, width 1/k) - L_t(N)) / L_t(t alone, width 1/k)``. A network counts only
    when all its tasks have the single-task loss at ``1/k`` and its own loss.

    Returns:
        ``{k: {"mean": value, "count": networks counted}}``, without the ``k`` where no
        network could be counted (typically: no single-task networks of width ``1/k``).
    """
    task_set = set(tasks)
    out: dict[int, dict[str, float | int]] = {}
    for k in range(2, len(tasks) + 1):
        singles = {t: _loss(candidates, frozenset([t]), 1.0 / k, t, split) for t in tasks}
        gains: list[float] = []
        count = 0
        seen: set[frozenset[str]] = set()
        for c in candidates:
            members = frozenset(c["tasks"])
            if (len(members) != k or not members <= task_set or members in seen
                    or abs(float(c["width"]) - 1.0) > WIDTH_TOL):
                continue
            seen.add(members)  # the first of duplicate networks, as in _loss
            losses = c.get(split) or {}
            terms = [relative_gain(singles[t], losses.get(t)) for t in members]
            if any(g is None for g in terms):
                continue
            gains.extend(terms)  # type: ignore[arg-type]
            count += 1
        if count:
            out[k] = {"mean": math.fsum(gains) / len(gains), "count": count}
    return out


def relationships(candidates, tasks: Sequence[str], split: str = "test") -> dict:
    """The three tables of a search's ``relationships`` section: ``pair`` (Table 1),
    ``affinity`` (Table 2) and ``order`` (Figure 2, keyed by the order as text), from the
    candidates' losses on ``split``."""
    pair = pair_table(candidates, tasks, split)
    return {"pair": pair, "affinity": affinity_table(pair),
            "order": {str(k): v for k, v in order_relative(candidates, tasks, split).items()}}
