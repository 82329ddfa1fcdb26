"""``search`` end to end on a tiny two-task problem: strategies, baselines, resume, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskgrouper.cli import main
from taskgrouper.config import ExperimentConfig
from taskgrouper.experiments.search import search
from taskgrouper.grouping.select import Network, select

TINY = {
    "data": {"kind": "synthetic", "n_train": 24, "n_val": 12, "n_test": 12, "resolution": 32,
             "cache": False},
    "tasks": ["s", "d"],
    "model": {"backbone": "xception"},
    "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "threads": 1},
    "search": {"strategy": "exhaustive,esa,hoa", "budgets": "0.5:2:0.5", "esa_fraction": 1.0,
               "esa_epochs": 1, "random_trials": 50},  # ESA runs see all the data, for 1 epoch
}


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    results = search(ExperimentConfig.model_validate(TINY), out, progress=False,
                     log=lambda *_: None)
    return out, results


@pytest.mark.slow
def test_search_writes_everything_and_selects_exactly(tiny_search):
    out, results = tiny_search
    for name in ("runs.sqlite", "results.json", "report.md", "report.html", "search.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(results))
    assert results["tasks"] == ["s", "d"] and results["budgets"] == [0.5, 1.0, 1.5, 2.0]
    cands = {c["id"]: c for c in results["candidates"]}
    # Candidates are the fully trained runs, never ESA's one-epoch runs of the same network.
    assert all("-e" not in c["run_id"] for c in cands.values())
    # C0 of two tasks (s, d, sd, s@0.5, d@0.5); the independent baseline's widths for two
    # tasks are 1/2 and 1 (C0's); the all-task baseline also at width 2 (whole budget 2)
    assert set(cands) == {"s", "d", "sd", "s@0.5", "d@0.5", "sd@2"}
    assert cands["s@0.5"]["cost"] == pytest.approx(0.5, abs=0.02)
    # Budget 0.5 cannot cover two tasks (the cheapest cover is sd, or s@0.5 + d@0.5: 1.0).
    first = results["selections"][0]
    assert first["networks"] == [] and "cheapest" in first["error"]
    # Exhaustive = the exact optimum over C0's validation losses, re-derived by brute force.
    c0 = ["s", "d", "sd", "s@0.5", "d@0.5"]
    nets = [Network(n, cands[n]["cost"], cands[n]["val"]) for n in c0]
    for entry in results["selections"][1:]:
        best = select(nets, entry["budget"], solver="brute")
        assert entry["networks"] == list(best.networks)
        assert entry["val_total"] == pytest.approx(best.total)
        assert entry["test_total"] == pytest.approx(
            sum(cands[entry["assignment"][t]]["test"][t] for t in ("s", "d")))
        assert entry["test_total_min"] == pytest.approx(
            sum(min(cands[n]["test"][t] for n in entry["networks"] if t in cands[n]["test"])
                for t in ("s", "d")))
    # The all-task network is the all-in-one baseline wherever it fits (cost 1); at budget 2
    # the one of the two widths with the lower validation total
    aio = results["baselines"]["all_in_one"]
    assert aio[1]["networks"] == ["sd"]
    assert aio[1]["test_total"] == pytest.approx(sum(cands["sd"]["test"].values()))
    wide = min(("sd", "sd@2"), key=lambda n: (sum(cands[n]["val"].values()), n))
    assert aio[3]["networks"] == [wide]
    assert [e["networks"] for e in results["baselines"]["mgda_ub"][1:]][0] == ["sd-mgda_ub"]
    # ESA trains every C0 network on half the data once: less compute than exhaustive.
    strat = results["strategies"]
    assert strat["esa"]["compute"]["train_samples"] < strat["exhaustive"]["compute"][
        "train_samples"] + sum(cands[n]["train_samples"] for n in c0)
    r = strat["esa"]["stats"]["pearson_r"]
    assert r is None or -1.0 <= r <= 1.0
    # HOA with two tasks predicts nothing (no network of three tasks): no error to report.
    assert strat["hoa"]["stats"]["count"] == 0
    # Table 1 cell: (L_s(s@0.5) - L_s(sd)) / L_s(s@0.5)
    ls_half, ls_pair = cands["s@0.5"]["test"]["s"], cands["sd"]["test"]["s"]
    assert results["relationships"]["pair"]["s"]["d"] == pytest.approx(
        (ls_half - ls_pair) / ls_half)


@pytest.mark.slow
def test_second_search_trains_nothing(tiny_search):
    out, results = tiny_search
    from taskgrouper.runs.store import RunStore

    with RunStore(out / "runs.sqlite") as store:
        before = {r.id: r.finished_at for r in store.records()}
    again = search(ExperimentConfig.model_validate(TINY), out, progress=False,
                   log=lambda *_: None)
    with RunStore(out / "runs.sqlite") as store:
        after = {r.id: r.finished_at for r in store.records()}
    assert after == before
    assert again == json.loads(json.dumps(results))


@pytest.mark.slow
def test_select_runs_on_the_sweep_folder(tiny_search, capsys):
    out, results = tiny_search
    assert main(["select", "--runs", str(out), "--budgets", "0.5:2:0.5", "--json",
                 "--baselines", "--trials", "20"]) == 0
    got = json.loads(capsys.readouterr().out)
    # The search's own pool (C0; search.json says no selection_widths) and the same fully
    # trained networks and validation losses: the same choice at every budget ...
    for mine, theirs in zip(got["selections"], results["selections"], strict=True):
        assert mine["networks"] == theirs["networks"]
        if theirs["networks"]:
            assert mine["val_total"] == pytest.approx(theirs["val_total"])
    # ... while the baselines field their own networks (the all-task one at width 2 too)
    assert {e["networks"][0] for e in got["baselines"]["all_in_one"][1:]} <= {"sd", "sd@2"}
    # --all-networks chooses among every stored run: the width-2 all-task network is a
    # candidate there, never in the search's pool
    assert main(["select", "--runs", str(out), "--budget", "2", "--json",
                 "--all-networks"]) == 0
    wide = json.loads(capsys.readouterr().out)["selections"][0]
    cands = {c["id"]: c for c in results["candidates"]}
    best_total = min(sum(cands[n]["val"].values()) for n in ("sd", "sd@2"))
    assert wide["val_total"] <= min(best_total, results["selections"][3]["val_total"]) + 1e-9


def write(tmp_path: Path, config: dict) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("change,needle", [
    ({"search": {"strategy": "exhaustiv"}}, "did you mean 'exhaustive'"),
    ({"search": {"budgets": "1:5"}}, "1:5"),
    ({"search": {"budgets": "5:1:0.5"}}, "5:1:0.5"),
    ({"search": {"esa_fraction": 1.5}}, "search.esa_fraction"),
    ({"tasks": ["s", "q"]}, "'q'"),
])
def test_search_bad_input_exits_2(tmp_path, capsys, change, needle):
    config = json.loads(json.dumps(TINY))
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    code = main(["search", write(tmp_path, config), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "o" / "runs.sqlite").exists()


def test_search_refuses_a_folder_of_another_config(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "search.json").write_text(json.dumps({"other": 1}))
    code = main(["search", write(tmp_path, TINY), "--out", str(out), "--quiet"])
    assert code == 2 and "different config" in capsys.readouterr().err


def test_report_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "results.json" in capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [
    (["--table", "nowhere.csv"], "nowhere.csv"),
    (["--table", "{csv}", "--budgets", "1:x:1"], "1:x:1"),
    (["--table", "{csv}", "--constraint", "d<"], "d<"),
    (["--table", "{csv}", "--budget", "0.2"], "cheapest"),
    (["--table", "{nan}"], "nan"),
    (["--table", "{text}"], "abc"),
    (["--table", "{uncovered}", "--budget", "3"], "'b'"),
    (["--runs", "{empty}"], "runs.sqlite"),
])
def test_select_bad_input_exits_2(tmp_path, capsys, args, needle):
    files = {
        "csv": "network,cost,a,b\nab,1,0.1,0.2\n",
        "nan": "network,cost,a,b\nab,1,nan,0.2\n",
        "text": "network,cost,a,b\nab,abc,0.1,0.2\n",
        "uncovered": "network,cost,a,b\na,1,0.1,\n",
    }
    paths = {}
    for key, text in files.items():
        paths[key] = tmp_path / f"{key}.csv"
        paths[key].write_text(text)
    paths["empty"] = tmp_path
    args = [a.format(**paths) if "{" in a else a for a in args]
    code = main(["select", *args])
    captured = capsys.readouterr()
    if "--budget" in args and "0.2" in args:
        # no feasible budget at all: the table says why, and the exit status is 2
        assert code == 2 and needle in captured.out and needle in captured.err
        return
    assert code == 2, captured
    assert needle in captured.err and "Traceback" not in captured.err


@pytest.mark.slow
def test_search_killed_mid_sweep_resumes_to_the_same_selections(tiny_search, tmp_path):
    """SIGKILL the search once a few runs are stored; the rerun stores each run once and
    chooses exactly what the uninterrupted search chose."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    _, reference = tiny_search
    out = tmp_path / "killed"
    config = write(tmp_path, TINY)
    cmd = [sys.executable, "-m", "taskgrouper.cli", "search", config, "--out", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        if (out / "runs.sqlite").exists():
            with sqlite3.connect(out / "runs.sqlite") as db:
                try:
                    stored = db.execute("select count(*) from runs").fetchone()[0]
                except sqlite3.OperationalError:
                    stored = 0
            if stored >= 3:
                break
        time.sleep(0.2)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "results.json").exists()
    resumed = search(ExperimentConfig.model_validate(TINY), out, progress=False,
                     log=lambda *_: None)
    with sqlite3.connect(out / "runs.sqlite") as db:
        ids = [row[0] for row in db.execute("select id from runs")]
    # the candidates, the ESA runs, and the all-task MGDA-UB run when that balancer exists
    mgda = int("mgda_ub" in reference["baselines"])
    assert len(ids) == len(set(ids)) == 2 * len(reference["candidates"]) + mgda
    for name, strat in reference["strategies"].items():
        got = resumed["strategies"][name]["selections"]
        assert [s["networks"] for s in got] == [s["networks"] for s in strat["selections"]]
        assert [s["test_total"] for s in got] == [s["test_total"] for s in strat["selections"]]


@pytest.mark.slow
def test_select_runs_refuses_an_unreadable_search_json(tiny_search, tmp_path, capsys):
    import shutil

    out, _ = tiny_search
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "search.json").write_text("{not json")
    assert main(["select", "--runs", str(copy), "--budget", "1"]) == 2
    err = capsys.readouterr().err
    assert "search.json is unreadable" in err and "--all-networks" in err
    # --all-networks does not need it
    assert main(["select", "--runs", str(copy), "--budget", "1", "--all-networks"]) == 0
