"""Anytime exact selection: time limits, gaps, progress reports, Ctrl-C; and the solvers
against brute force on hundreds of small instances full of ties."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from taskgrouper.cli import main
from taskgrouper.grouping import select as sel_mod
from taskgrouper.grouping.select import Network, Progress, select_many
from taskgrouper.grouping.select import reduce as reduce_mod
from taskgrouper.grouping.select.control import _Control


def _tied_instance(rng: np.random.Generator) -> tuple[list[str], list[Network]]:
    """3-5 tasks, 6-14 networks, losses on a grid of quarters (many equal totals), costs in
    {0.5, 1}, a duplicate network under another name, and a network that ties a single."""
    tasks = [f"t{j}" for j in range(int(rng.integers(3, 6)))]
    nets = [Network(f"{t}|s", 0.5, {t: float(rng.integers(2, 5)) / 4}) for t in tasks]
    for i in range(int(rng.integers(3, 14 - len(tasks)))):
        chosen = rng.choice(tasks, size=int(rng.integers(1, len(tasks) + 1)), replace=False)
        nets.append(Network(f"n{i:02d}", float(rng.choice([0.5, 1.0])),
                            {str(t): float(rng.integers(1, 5)) / 4 for t in chosen}))
    src = nets[int(rng.integers(len(nets)))]
    nets.append(Network(src.name + "_dup", src.cost, dict(src.losses)))
    t = tasks[0]
    nets.append(Network("tie_" + t, 0.5, {t: nets[0].losses[t]}))
    return tasks, nets


@pytest.mark.parametrize("reduced", [False, True])
def test_every_solver_returns_brute_forces_selection_on_300_tied_instances(
        reduced: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # 300 instances x 3 budgets (from infeasible to generous); on the reduced path (LP bound,
    # fixing, core MILP of 3 networks, MILP, settling of ties) as well as on the plain one.
    # The selection must be brute force's exactly: same networks (the canonical tie-break:
    # lower cost, then fewer networks, then names), same assignment, same objective.
    if reduced:
        monkeypatch.setattr(sel_mod, "REDUCE_MIN", 0)
        monkeypatch.setattr(reduce_mod, "CORE_SIZE", 3)
    rng = np.random.default_rng(2100 + reduced)
    checked = ties = 0
    for _ in range(300):
        _, nets = _tied_instance(rng)
        budgets = sorted(float(b) for b in rng.choice(np.arange(0.5, 4.01, 0.5), 3, False))
        ref = select_many(nets, budgets, solver="brute")
        for solver in ("bnb", "milp", "auto"):
            got = select_many(nets, budgets, solver=solver)
            for r, g in zip(ref, got, strict=True):
                if isinstance(r, sel_mod.InfeasibleBudget):
                    assert isinstance(g, sel_mod.InfeasibleBudget)
                    continue
                assert (g.networks, g.assignment) == (r.networks, r.assignment), (solver, nets)
                assert g.objective == pytest.approx(r.objective, abs=1e-12)
                assert g.gap == 0.0 and g.stopped is None
                checked += 1
        # How often the optimum is tied (another selection within the budget, same total):
        ties += any(isinstance(r, sel_mod.Selection) and _tied(nets, r) for r in ref)
    assert checked > 1500
    assert ties > 100  # the instances do exercise the tie-break


def _tied(nets: list[Network], sel: sel_mod.Selection) -> bool:
    """Does a second selection reach the same total within the budget (one swap away)?"""
    names = set(sel.networks)
    by_name = {n.name: n for n in nets}
    tasks = list(sel.assignment)
    for out in names:
        for new in by_name:
            if new in names:
                continue
            trial = (names - {out}) | {new}
            cost = sum(by_name[n].cost for n in trial)
            if cost > sel.budget + 1e-9:
                continue
            best = [min((by_name[n].losses[t] for n in trial if t in by_name[n].losses),
                        default=math.inf) for t in tasks]
            if math.isclose(sum(best), sel.total, abs_tol=1e-12):
                return True
    return False


def _uniform(n_tasks: int, n_multi: int, seed: int) -> list[Network]:
    """The hard family: single-task networks (cost 1, and 0.5 at 1.1x the loss), then random
    2-4-task networks of cost 1 at the single-task loss times a uniform factor in
    [0.85, 1.15] (near-ties everywhere)."""
    rng = np.random.default_rng(seed)
    tasks = [f"t{j:02d}" for j in range(n_tasks)]
    single = rng.uniform(0.5, 1.5, n_tasks)
    nets = [Network(t, 1.0, {t: float(single[j])}) for j, t in enumerate(tasks)]
    nets += [Network(t + "|half", 0.5, {t: float(1.1 * single[j])}) for j, t in enumerate(tasks)]
    seen: set[tuple[int, ...]] = set()
    while len(seen) < n_multi:
        group = tuple(sorted(rng.choice(n_tasks, size=int(rng.integers(2, 5)), replace=False)))
        if group not in seen:
            seen.add(group)
            nets.append(Network("+".join(tasks[j] for j in group), 1.0,
                                {tasks[j]: float(single[j] * rng.uniform(0.85, 1.15))
                                 for j in group}))
    return nets


def _valid(sel: sel_mod.Selection, nets: list[Network], n_tasks: int) -> None:
    by_name = {n.name: n for n in nets}
    assert sel.cost <= sel.budget + 1e-9
    assert sum(by_name[n].cost for n in sel.networks) == pytest.approx(sel.cost)
    assert set(sel.assignment) == {f"t{j:02d}" for j in range(n_tasks)}
    for task, name in sel.assignment.items():
        assert name in sel.networks and task in by_name[name].losses
    assert sel.total == pytest.approx(sum(by_name[n].losses[t] for t, n in sel.assignment.items()))


def test_anytime_selections_are_valid_and_their_gap_bounds_the_true_one() -> None:
    # 12 instances of the uniform-factor family (12 tasks, 400 candidates), three budgets
    # each, solved exactly, then (a) with a time limit that strikes before the proof
    # (1 ms: after the first incumbent) and (b) with a requested gap of 2%. Every answer is a
    # valid selection; its objective is never below the optimum; its reported gap bounds the
    # true one: (obj - opt) / opt <= (obj - lower) / lower = gap, since lower <= opt.
    struck = 0
    for seed in range(12):
        nets = _uniform(12, 400, seed)
        budgets = [5.0, 6.5, 8.0]
        exact = select_many(nets, budgets)
        assert all(s.gap == 0.0 and s.stopped is None for s in exact)
        for opts in ({"time_limit": 1e-3}, {"gap": 0.02}):
            for sel, best in zip(select_many(nets, budgets, **opts), exact, strict=True):
                _valid(sel, nets, 12)
                assert sel.objective >= best.objective - 1e-12
                true_gap = (sel.objective - best.objective) / best.objective
                assert true_gap <= sel.gap + 1e-12
                if "gap" in opts:
                    assert sel.gap <= 0.02 + 1e-12
                assert (sel.stopped is None) == (sel.gap == 0.0)
                if sel.stopped == "time limit":
                    struck += 1
    assert struck >= 12  # the limit did strike


def test_progress_reports_each_step_and_a_heartbeat() -> None:
    reports: list[Progress] = []
    nets = _uniform(12, 400, 0)
    select_many(nets, [5.0, 6.0], progress=reports.append)
    stages = [(r.budget, r.stage) for r in reports]
    for budget in (5.0, 6.0):
        assert (budget, "incumbent") in stages and (budget, "lp bound") in stages
        assert (budget, "done") in stages
    done = [r for r in reports if r.stage == "done"]
    assert all(r.gap == 0.0 for r in done)
    assert "budget 5: done, incumbent" in done[0].line() and "gap 0%" in done[0].line()
    # The heartbeat: every `interval` seconds while a budget is open, then silent.
    beats: list[Progress] = []
    ctl = _Control(progress=beats.append, interval=0.02)
    ctl.begin(3.0)
    ctl.found([0], 2.5, "incumbent")
    ctl.bound(2.0, "lp bound")
    time.sleep(0.3)
    ctl.end()
    after = len(beats)
    time.sleep(0.1)
    assert len(beats) == after
    assert sum(b.stage == "lp bound" for b in beats) >= 5  # heartbeats repeat the stage
    assert beats[-1].gap == pytest.approx(0.25)  # (2.5 - 2.0) / 2.0


def test_ctrl_c_returns_what_was_found_marked_not_proved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C arrives while the second budget is being proved (right after its LP bound):
    # the first budget keeps its proved optimum, the second its incumbent with the LP's gap,
    # the third (not started) the best selection found that fits it, with an unknown gap.
    nets = _uniform(12, 400, 3)
    budgets = [7.0, 5.0, 6.0]  # solved in increasing order: 5, 6, 7
    exact = select_many(nets, budgets)

    def interrupt(report: Progress) -> None:
        if report.budget == 6.0 and report.stage == "lp bound":
            raise KeyboardInterrupt

    got = select_many(nets, budgets, progress=interrupt)
    assert got[1] == exact[1] and got[1].stopped is None
    for sel in (got[2], got[0]):
        _valid(sel, nets, 12)
        assert sel.stopped == "interrupted"
        assert sel.objective >= exact[budgets.index(sel.budget)].objective - 1e-12
    assert got[2].gap >= (got[2].objective - exact[2].objective) / exact[2].objective
    assert math.isfinite(got[2].gap) and got[0].gap == math.inf
    # Ctrl-C between two budgets (right after budget 5 is done): budget 5 stays proved; the
    # later budgets get its selection with no bound (budget 5's optimum bounds nothing about
    # a larger budget's).

    def between(report: Progress) -> None:
        if report.budget == 5.0 and report.stage == "done":
            raise KeyboardInterrupt

    got = select_many(nets, budgets, progress=between)
    assert got[1] == exact[1] and got[1].stopped is None
    assert got[2].networks == got[0].networks == exact[1].networks
    assert got[2].stopped == got[0].stopped == "interrupted"
    assert got[2].gap == got[0].gap == math.inf
    # Ctrl-C before any selection was found (during the first greedy incumbent): the
    # interrupt is the caller's.

    def greedy(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(reduce_mod, "_greedy", greedy)
    with pytest.raises(KeyboardInterrupt):
        select_many(nets, [5.0])


def test_bad_anytime_options_are_refused() -> None:
    nets = _uniform(6, 40, 0)
    for gap in (-0.1, 1.0, math.nan, "1%"):
        with pytest.raises(ValueError, match="gap must be a relative gap"):
            select_many(nets, [3.0], gap=gap)
    with pytest.raises(ValueError, match="apply to the 'milp' and 'auto' solvers"):
        select_many(nets, [3.0], solver="bnb", time_limit=5)


def _write_table(path: Path, nets: list[Network]) -> None:
    tasks = sorted({t for n in nets for t in n.losses})
    rows = ["network,cost," + ",".join(tasks)]
    rows += [f"{n.name},{n.cost}," + ",".join(str(n.losses.get(t, "")) for t in tasks)
             for n in nets]
    path.write_text("\n".join(rows) + "\n")


def test_select_cli_time_limit_gap_and_progress(tmp_path: Path, capsys) -> None:
    table = tmp_path / "table.csv"
    nets = _uniform(12, 400, 1)
    _write_table(table, nets)
    assert main(["select", "--table", str(table), "--budgets", "5:6:1", "--gap", "0.02",
                 "--progress", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    for sel in result["selections"]:
        assert sel["gap"] <= 0.02 and (sel["stopped"] is None) == (sel["gap"] == 0.0)
    assert "budget 5: lp bound, incumbent" in err and "budget 6: done" in err
    assert main(["select", "--table", str(table), "--budget", "5", "--time-limit",
                 "0.001"]) == 0
    out, _ = capsys.readouterr()
    assert "budget 5: not proved optimal (time limit); within" in out
    for flags, what in ((["--time-limit", "0"], "--time-limit: 0: give a number of seconds"),
                        (["--time-limit", "soon"], "'soon' is not a number"),
                        (["--gap", "1.5"], "--gap 1.5: give a relative gap in [0, 1)")):
        with pytest.raises(SystemExit) as exc:
            code = main(["select", "--table", str(table), "--budget", "5", *flags])
            raise SystemExit(code)
        assert exc.value.code == 2
        assert what in capsys.readouterr().err


def test_select_cli_ctrl_c_prints_what_was_found(tmp_path: Path) -> None:
    # A sweep of 300 budgets over 2,000 candidates takes about 6 s; SIGINT once the third
    # budget is done: the command prints every budget (the unfinished ones marked) and exits
    # 130.
    table = tmp_path / "table.csv"
    _write_table(table, _uniform(30, 1970, 2))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a shell without job control starts background commands with SIGINT ignored, and a
    # Python started so keeps ignoring it: give the command the default disposition, as a
    # terminal would
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskgrouper.cli", "select", "--table", str(table),
         "--budgets", "15:164.5:0.5", "--progress", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("budget 16: done"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    result = json.loads(out)
    assert result["interrupted"] is True
    sels = result["selections"]
    assert len(sels) == 300
    assert sels[0]["stopped"] is None and sels[-1]["stopped"] == "interrupted"
    assert all(s["cost"] <= s["budget"] + 1e-9 for s in sels)
    assert "interrupted: printed the selections found so far" in err


def test_baselines_and_searches_do_not_take_an_interrupted_selection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # select_many hands back what it found on Ctrl-C; the independent baseline must stop
    # instead of scoring a partial answer (the search checks its selections the same way).
    from taskgrouper.grouping import baselines as bl

    nets = [Network("a", 1.0, {"a": 1.0}), Network("b", 1.0, {"b": 2.0})]
    partial = sel_mod.Selection(2.0, ("a", "b"), 2.0, 3.0, {"a": "a", "b": "b"}, 3.0, math.inf,
                                "interrupted")
    monkeypatch.setattr(bl, "select_many", lambda *a, **k: [partial])
    with pytest.raises(KeyboardInterrupt):
        bl.independent(nets, None, [2.0], ["a", "b"])
