"""Solver ``"brute"``: enumeration of every subset, the reference the exact solvers are
tested against (at most ``BRUTE_MAX`` candidates; never reduced or pruned).
"""

from __future__ import annotations

import itertools

import numpy as np

from taskgrouper.errors import InputError
from taskgrouper.grouping.select.model import COST_TOL, _better, _Key, _key, _Problem

#: Brute force refuses more candidates than this.
BRUTE_MAX = 22


def _solve_brute(p: _Problem, budget: float) -> list[int] | None:
    m = p.size
    if m > BRUTE_MAX:
        raise InputError(f"brute force refuses {m} candidates (at most {BRUTE_MAX})")
    best: _Key | None = None
    best_idx: list[int] | None = None
    for r in range(1, m + 1):
        combos = np.array(list(itertools.combinations(range(m), r)), dtype=np.intp)
        costs = p.cost[combos].sum(axis=1)
        combos = combos[costs <= budget + COST_TOL + 1e-12]
        if not len(combos):
            continue
        mins = p.eff[combos].min(axis=1)  # (C, T)
        ok = np.isfinite(mins).all(axis=1)
        if not ok.any():
            continue
        combos, vals = combos[ok], mins[ok].sum(axis=1)
        # Approximate sums pre-filter; exact keys decide among the near-best.
        near = combos[vals <= vals.min() + 1e-9 * max(1.0, abs(vals.min()))]
        for c in near:
            key = _key(p, c)
            if _better(key, best):
                best, best_idx = key, list(c)
    if best_idx is not None and best[1] > budget + COST_TOL:  # fsum vs numpy sum edge
        return None
    return best_idx
