"""``report`` on a results.json that is not a search's: exit 2, and the good report and
figures already in the folder stay as they were."""

from __future__ import annotations

import json

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


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = write_named_tasks(root / "data", ["a", "b"])
    config = write_yaml(root / "s.yaml", search_config(data))
    from taskgrouper.cli import main

    assert main(["search", str(config), "--out", str(root / "sweep"), "--quiet"]) == 0
    return root / "sweep"


CASES = [
    ("empty object", "{}", ["names no task", "nothing was written"]),
    ("a list", "[]", ["json object"]),
    ("not JSON", "{oops", ["not valid json", "line 1"]),
    ("not UTF-8", b"\xff\xfe\x00", ["utf-8"]),
    ("tasks a number", '{"tasks": 5}', ["'tasks'", "malformed"]),
    ("selections text", '{"tasks": ["a"], "budgets": [1], "selections": "x"}', ["malformed"]),
    ("candidates wrong", '{"tasks": ["a"], "candidates": [{"tasks": 3}]}', ["malformed"]),
]


@pytest.mark.parametrize("case,content,words", CASES, ids=[c[0] for c in CASES])
def test_bad_results_keep_the_report(sweep, tmp_path, capsys, case, content, words):
    folder = tmp_path / "copy"
    import shutil

    shutil.copytree(sweep, folder)
    data = content if isinstance(content, bytes) else content.encode()
    (folder / "results.json").write_bytes(data)
    before = snapshot(folder)
    refused(["report", folder], capsys, "results.json", *words)
    assert_kept(before, folder)  # report.md, report.html and every figure unchanged
    assert not [p for p in folder.iterdir() if p.name.startswith(".figures")]


def test_report_of_a_missing_or_odd_folder(tmp_path, capsys):
    refused(["report", tmp_path / "none"], capsys, "no such file", "taskgrouper search")
    (tmp_path / "results.json").mkdir()
    refused(["report", tmp_path], capsys, "results.json")


def test_report_rewrites_from_good_results(sweep, capsys):
    results = json.loads((sweep / "results.json").read_text())
    assert results["tasks"] == ["a", "b"]
    assert run_cli(["report", sweep], capsys).code == 0
