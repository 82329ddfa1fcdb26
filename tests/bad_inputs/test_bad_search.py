"""``search`` and ``select`` on odd task names and bad budgets: unambiguous runs, infeasible
budgets refused before anything trains, re-selecting without retraining, and nothing stored
lost."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from bad_input_helpers import (
    assert_kept,
    refused,
    run_cli,
    search_config,
    snapshot,
    write_named_tasks,
    write_yaml,
)

STANDLEY = "standley2020"


@pytest.fixture
def shared_data():
    """The released tables kept as test fixtures."""
    return Path(__file__).resolve().parents[1] / "fixtures"


def _search(tmp_path, capsys, names, budgets="1:1.5:0.5", out="sweep", **search):
    data = write_named_tasks(tmp_path / "data", names)
    config = write_yaml(tmp_path / "search.yaml", search_config(data, budgets, **search))
    result = run_cli(["search", config, "--out", tmp_path / out, "--quiet"], capsys)
    return config, result


def _stored_ids(folder):
    with sqlite3.connect(folder / "runs.sqlite") as db:
        return sorted(row[0] for row in db.execute("SELECT id FROM runs"))


@pytest.mark.slow
def test_tasks_a_b_and_ab_get_distinct_runs(tmp_path, capsys):
    """With tasks a, b and ab the {a, b} network and ab's own were both run "ab": one run
    planned too few and a "duplicate network name" after training."""
    _, result = _search(tmp_path, capsys, ["a", "b", "ab"])
    assert result.code == 0, result.err
    ids = _stored_ids(tmp_path / "sweep")
    # C0 (7 subsets + 3 half-width singles), the independent baseline's third-width singles
    # (1/k for k up to 3 tasks), and MGDA-UB
    assert len(ids) == len(set(ids)) == 7 + 3 + 3 + 1
    assert {"a+b", "ab", "a+b+ab"} <= set(ids)
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    networks = {c["id"]: c["tasks"] for c in results["candidates"]}
    assert networks["a+b"] == ["a", "b"] and networks["ab"] == ["ab"]


@pytest.mark.slow
def test_unicode_and_spaces_in_task_names_search_as_they_train(tmp_path, capsys):
    _, result = _search(tmp_path, capsys, ["深度", "surface normals"])
    assert result.code == 0, result.err
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert results["tasks"] == ["深度", "surface normals"]
    assert "深度+surface normals" in {c["id"] for c in results["candidates"]}
    assert all(s["networks"] for s in results["selections"])


def test_every_budget_infeasible_is_refused_before_training(tmp_path, capsys):
    # three tasks: the cheapest cover in C0 is the all-task network, 1 SNT
    data = write_named_tasks(tmp_path / "data", ["a", "b", "c"])
    config = write_yaml(tmp_path / "s.yaml", search_config(data, "0.2:0.5:0.1"))
    refused(["search", config, "--out", tmp_path / "sweep"], capsys,
            "every budget is below 1 snt", "nothing was trained")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_some_budgets_infeasible_trains_and_names_them(tmp_path, capsys):
    config, result = _search(tmp_path, capsys, ["a", "b", "c"], budgets="0.5:1.1:0.6")
    assert result.code == 0, result.err
    assert "budgets 0.5 are below 1" in result.out  # C0's cheapest cover: the all-task network
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    first, second = results["selections"]
    assert first["networks"] == [] and "cost 1" in first["error"]
    assert second["networks"]

    # budgets alone changed: the folder resumes, re-selects and trains nothing
    stored = _stored_ids(tmp_path / "sweep")
    raw = json.loads(json.dumps(search_config(tmp_path / "data", "0.6:1.6:0.5")))
    write_yaml(config, raw)
    again = run_cli(["search", config, "--out", tmp_path / "sweep", "--quiet"], capsys)
    assert again.code == 0, again.err
    assert "(0 to train)" in again.out and "chosen networks to train" not in again.out
    assert _stored_ids(tmp_path / "sweep") == stored
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert results["budgets"] == [0.6, 1.1, 1.6]

    # what a run is did change: refused, naming what differs, nothing touched
    raw["train"]["lr"] = 0.01
    write_yaml(config, raw)
    before = snapshot(tmp_path / "sweep")
    refused(["search", config, "--out", tmp_path / "sweep"], capsys,
            "different config", "train", "select --runs")
    assert_kept(before, tmp_path / "sweep")

    # a hand-edited store row: the store, the run and the fix are named, nothing lost
    with sqlite3.connect(tmp_path / "sweep" / "runs.sqlite") as db:
        db.execute("UPDATE runs SET tasks = 'not json' WHERE id = 'a'")
    before = snapshot(tmp_path / "sweep")
    refused(["select", "--runs", tmp_path / "sweep"], capsys, "runs.sqlite", "run 'a'",
            "malformed", "DELETE FROM runs")
    assert_kept(before, tmp_path / "sweep")


def test_unreadable_search_record_is_named(tmp_path, capsys):
    data = write_named_tasks(tmp_path / "data", ["a", "b"])
    config = write_yaml(tmp_path / "s.yaml", search_config(data))
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "search.json").write_text("{not json")
    before = snapshot(tmp_path / "sweep")
    refused(["search", config, "--out", tmp_path / "sweep"], capsys, "search.json",
            "unreadable")
    assert_kept(before, tmp_path / "sweep")


@pytest.mark.parametrize("budgets,words", [
    ("1:1e9:1e-9", ["1e+18 budgets", "larger step"]),
    ("0:2:0.5", ["positive"]),
    ("5:1:0.5", ["start <= stop"]),
    ("1:x:1", ["1:x:1"]),
    ("nan", ["nan"]),
])
def test_bad_budgets_in_a_search_config(tmp_path, capsys, budgets, words):
    data = write_named_tasks(tmp_path / "data", ["a", "b"])
    config = write_yaml(tmp_path / "s.yaml", search_config(data, budgets))
    refused(["search", config, "--out", tmp_path / "sweep"], capsys, *words)
    assert not (tmp_path / "sweep").exists()


SELECT_CASES = [
    ("huge budget range", ["--budgets", "1:1e9:1e-9"], ["10,000"]),
    ("negative budget", ["--budget", "-1"], ["--budget -1", "positive"]),
    ("zero budget", ["--budget", "0"], ["positive"]),
    ("every budget infeasible", ["--budgets", "0.1:0.4:0.1"], ["no budget is feasible",
                                                               "cheapest"]),
    ("one infeasible budget", ["--budget", "0.5"], ["no budget is feasible"]),
    ("bad constraint", ["--constraint", "d<"], ["d<", "task<=value"]),
    ("test table and runs", ["--runs", "{tmp}"], ["not allowed with argument"]),
]


@pytest.mark.parametrize("case,args,words", SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
def test_bad_select(shared_data, tmp_path, capsys, case, args, words):
    table = shared_data / STANDLEY / "results.txt"
    before = snapshot(shared_data / STANDLEY)
    args = [a.format(tmp=tmp_path) for a in args]
    refused(["select", "--table", table, "--format", "standley", *args], capsys, *words)
    assert_kept(before, shared_data / STANDLEY)


def test_select_bad_table_rows(tmp_path, capsys):
    cases = {
        "dup.csv": ("network,cost,a,b\nab,1,0.1,0.2\nab,1,0.1,0.2\n", "duplicate"),
        "neg.csv": ("network,cost,a,b\nab,-1,0.1,0.2\n", "cost"),
        "inf.csv": ("network,cost,a,b\nab,1,inf,0.2\n", "finite"),
        "short.csv": ("network,cost\n", "task"),
        "binary.csv": (b"\x00\xff\xfe", ""),
    }
    for name, (text, word) in cases.items():
        path = tmp_path / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        refused(["select", "--table", path], capsys, name, word)
