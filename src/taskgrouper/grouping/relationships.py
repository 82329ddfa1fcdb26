"""Task relationships measured from trained candidate networks (Standley et al. 2020, Sec. 5).

- :func:`pair_table` (Table 1): how much task ``t`` gains from sharing a full-width network
  with task ``u``, relative to ``t``'s half-width single-task network (same total cost).
- :func:`affinity_table` (Table 2): the mean of Table 1 and its transpose.
- :func:`order_relative` (Figure 2): how ``k``-task full-width networks compare with ``k``
  single-task networks of width ``1/k`` (same total cost), for ``k = 2..T``.
- :func:`transfer_table` and :func:`transfer_tables` (Table 3): how much task ``j`` gains
  from task ``i``'s frozen encoder (a transfer readout) over its own full-width network, and
  the mean of that table and its transpose ("averaged forward and backward").
- :func:`affinity_correlation` (Figure 3): Pearson's r and Spearman's rho, with two-sided
  p-values, between multi-task affinity (Table 2) and transfer affinity (Table 3) over the
  unordered task pairs.

Relative performance is ``(L_single - L_shared) / |L_single|``: positive when sharing helps
(losses: lower is better). Pure python (scipy for the p-values); candidates are the dicts of
``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["WIDTH_TOL", "affinity_correlation", "affinity_table", "order_relative",
           "pair_table", "relationships", "relative_gain", "transfer_table", "transfer_tables"]

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


Table = Mapping[str, Mapping[str, float | None]]


def transfer_table(own: Mapping[str, float | None],
                   transfer: Mapping[tuple[str, str], float | None],
                   tasks: Sequence[str] | None = None) -> dict[str, dict[str, float | None]]:
    """The transfer relationships: ``table[j][i]``, task ``j``'s relative gain from task
    ``i``'s frozen encoder.

    ``(L_j,own - L_j,from i) / |L_j,own|``, where ``L_j,own`` is ``j``'s loss in its own
    (full-width, single-task) network and ``L_j,from i`` its loss when only a readout for
    ``j`` is trained on the frozen encoder of ``i``'s network: positive when ``i``'s encoder
    serves ``j`` better than ``j``'s own does (the sign of :func:`relative_gain`). Laid out
    like :func:`pair_table` (``table[t][u]``: performance on ``t`` with help from ``u``), so
    :func:`affinity_table` of it is the paper's Table 3.

    Args:
        own: Task -> its loss in its own network.
        transfer: ``(source, target)`` -> the target's loss on the source's frozen encoder.
        tasks: Row and column order (default: the order of ``own``).

    Returns:
        ``{target: {source: gain or None}}``; None on the diagonal and where a loss is
        missing, not finite, or the own loss is 0.
    """
    order = list(own) if tasks is None else list(tasks)
    return {j: {i: None if i == j else relative_gain(own.get(j), transfer.get((i, j)))
                for i in order}
            for j in order}


def transfer_tables(own: Mapping[str, float | None],
                    transfer: Mapping[tuple[str, str], float | None],
                    tasks: Sequence[str] | None = None) -> dict[str, dict]:
    """``{"pair": transfer_table(...), "affinity": its mean with its transpose}``: the
    ordered table and the symmetric "averaged forward and backward" one (Table 3)."""
    pair = transfer_table(own, transfer, tasks)
    return {"pair": pair, "affinity": affinity_table(pair)}


def _pair_value(table: Table, t: str, u: str) -> float | None:
    """An unordered pair's value: the mean of the finite ones of ``table[t][u]`` and
    ``table[u][t]`` (one value for a symmetric table)."""
    values = []
    for a, b in ((t, u), (u, t)):
        v = (table.get(a) or {}).get(b)
        if v is not None and math.isfinite(float(v)):
            values.append(float(v))
    return math.fsum(values) / len(values) if values else None


def affinity_correlation(multi_task_affinity: Table, transfer_affinity: Table,
                         tasks: Sequence[str] | None = None,
                         exclude: Iterable[Sequence[str]] = ()) -> dict[str, Any]:
    """Figure 3: does multi-task affinity follow transfer affinity?

    One point per unordered task pair ``{t, u}`` that both tables hold: ``x`` its transfer
    affinity, ``y`` its multi-task affinity. Pearson's r (two-sided p-value from the exact
    distribution of r under independence, as :func:`scipy.stats.pearsonr`) and Spearman's
    rho (two-sided p-value from the t approximation with ``n - 2`` degrees of freedom, as
    :func:`scipy.stats.spearmanr`). Standley et al. (2020) report r = -0.54, p = 0.13 over
    their five tasks with one outlier pair removed.

    Args:
        multi_task_affinity: ``{t: {u: value}}`` (Table 2), symmetric; an asymmetric table
            counts the mean of ``[t][u]`` and ``[u][t]``.
        transfer_affinity: The same for transfer (Table 3).
        tasks: Which tasks, in order (default: the rows of ``multi_task_affinity``).
        exclude: Pairs to leave out (outliers), in either order.

    Returns:
        ``pairs`` (``[t, u]`` in task order), ``transfer`` and ``multi_task`` (the points),
        ``n``, ``excluded``, ``pearson_r``, ``pearson_p``, ``spearman_rho``, ``spearman_p``.
        The statistics are None with fewer than 3 points or when either side is constant.
    """
    order = list(multi_task_affinity) if tasks is None else list(tasks)
    dropped = {frozenset(p) for p in exclude}
    pairs, xs, ys, excluded = [], [], [], []
    for a, t in enumerate(order):
        for u in order[a + 1:]:
            x = _pair_value(transfer_affinity, t, u)
            y = _pair_value(multi_task_affinity, t, u)
            if x is None or y is None:
                continue
            if frozenset((t, u)) in dropped:
                excluded.append([t, u])
                continue
            pairs.append([t, u])
            xs.append(x)
            ys.append(y)
    out: dict[str, Any] = {"pairs": pairs, "transfer": xs, "multi_task": ys, "n": len(pairs),
                           "excluded": excluded, "pearson_r": None, "pearson_p": None,
                           "spearman_rho": None, "spearman_p": None}
    if len(pairs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return out
    import warnings

    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a perfect fit: r = 1, p = 0
        pearson = stats.pearsonr(xs, ys)
        spearman = stats.spearmanr(xs, ys)
    for key, value in (("pearson_r", pearson[0]), ("pearson_p", pearson[1]),
                       ("spearman_rho", spearman[0]), ("spearman_p", spearman[1])):
        value = float(value)
        out[key] = value if math.isfinite(value) else None
    return out
