"""The command line: bad input gives exit status 2 and one message naming the input and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskgrouper.cli import main

TINY = {
    "data": {"kind": "synthetic", "n_train": 24, "n_val": 8, "n_test": 8, "resolution": 32,
             "cache": False},
    "tasks": ["s", "d"],
    "model": {"backbone": "xception", "width": 0.2},
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu"},
}


def write_config(tmp_path: Path, config: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def with_changes(**sections) -> dict:
    config = json.loads(json.dumps(TINY))
    for key, value in sections.items():
        if isinstance(value, dict):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    return config


def test_unknown_yaml_key_names_it_and_suggests(tmp_path, capsys):
    config = with_changes(train={"learning_rate": 0.1})
    code, _, err = run_cli(["train", str(write_config(tmp_path, config)),
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "train.learning_rate" in err and "'lr'" in err
    assert "Traceback" not in err


def test_unknown_task_suggests_closest(tmp_path, capsys):
    code, _, err = run_cli(["train", str(write_config(tmp_path, with_changes(tasks=["s", "dd"]))),
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert "'dd'" in err and "did you mean 'd'" in err


@pytest.mark.parametrize("key,value,hint", [
    ("backbone", "xceptoin", "did you mean 'xception'"),
    ("architecture", "hard_share", "did you mean 'hard_sharing'"),
])
def test_unknown_model_names(tmp_path, capsys, key, value, hint):
    config = with_changes(model={key: value})
    code, _, err = run_cli(["train", str(write_config(tmp_path, config)),
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert f"model.{key}" in err and hint in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_unknown_balancer(tmp_path, capsys):
    config = with_changes(balancer={"name": "unifrom"})
    code, _, err = run_cli(["train", str(write_config(tmp_path, config)),
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "did you mean 'uniform'" in err


def test_dataset_path_missing(tmp_path, capsys):
    config = with_changes(data={"kind": "arrays", "path": str(tmp_path / "nowhere")})
    del config["tasks"]
    code, _, err = run_cli(["train", str(write_config(tmp_path, config)),
                            "--out", str(tmp_path / "run")], capsys)
    assert code == 2
    assert str(tmp_path / "nowhere") in err and "Traceback" not in err


def test_config_file_missing(tmp_path, capsys):
    code, _, err = run_cli(["train", str(tmp_path / "no.yaml"), "--out", str(tmp_path)], capsys)
    assert code == 2 and "no.yaml" in err


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(ValueError, match="no.yaml"):
        main(["--debug", "train", str(tmp_path / "no.yaml"), "--out", str(tmp_path)])


def test_train_writes_outputs_and_resume_is_a_no_op(tmp_path, capsys):
    path = write_config(tmp_path, TINY)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(["train", str(path), "--out", str(out), "--quiet"], capsys)
    assert code == 0
    for name in ("config.json", "metrics.json", "log.json", "best.pt", "last.pt"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tasks"] == ["s", "d"]
    assert {"miou", "pixel_acc"} <= set(metrics["test"]["s"])
    assert "constant" in stdout
    # Second call: finished run found, same numbers, nothing retrained.
    code, stdout, _ = run_cli(["train", str(path), "--out", str(out), "--quiet"], capsys)
    assert code == 0
    assert json.loads((out / "metrics.json").read_text()) == metrics


def test_train_refuses_a_folder_of_another_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(["train", str(write_config(tmp_path, TINY)), "--out", str(out), "--quiet"],
                   capsys)[0] == 0
    other = with_changes(train={"lr": 0.5})
    code, _, err = run_cli(["train", str(write_config(tmp_path, other, "b.yaml")),
                            "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "different config" in err


@pytest.mark.parametrize("kind, missing", [("nyud", "not a NYUD dataset folder"),
                                           ("pascal_context", "JPEGImages"),
                                           ("cityscapes", "image"),
                                           ("taskonomy", "rgb")])
def test_real_dataset_folder_in_the_wrong_layout(tmp_path, capsys, kind, missing):
    root = tmp_path / "data"
    (root / "something_else").mkdir(parents=True)
    config = {**TINY, "data": {"kind": kind, "path": str(root)}, "tasks": None}
    code, _, err = run_cli(["train", str(write_config(tmp_path, config)), "--out",
                            str(tmp_path / "run"), "--quiet"], capsys)
    assert code == 2
    assert str(root) in err and missing in err
    assert "Traceback" not in err


def test_data_planted_writes_a_family(tmp_path, capsys):
    out = tmp_path / "planted"
    code, stdout, _ = run_cli(["data", "planted", "--tasks", "6", "--clusters", "2",
                               "--no-conflict", "--few-label", "0.1", "--n-train", "40",
                               "--n-val", "10", "--n-test", "10", "--out", str(out)], capsys)
    assert code == 0
    # 6 tasks in 2 clusters, no conflict task: t00-t02 and t03-t05, each with a few-label
    # task (its last: 0.1 * 40 = 4 labels), and 2 blocks of 8 features + 4 nuisance = 20.
    assert "group 0: t00 t01 t02  (features 0:8, few-label t02)" in stdout
    assert "group 1: t03 t04 t05  (features 8:16, few-label t05)" in stdout
    assert f"wrote {out}: 6 tasks, 20 features" in stdout
    truth = json.loads((out / "planted.json").read_text())
    assert truth["groups"] == [["t00", "t01", "t02"], ["t03", "t04", "t05"]]
    assert truth["params"]["conflict"] is False and truth["params"]["n_train"] == 40
    assert (out / "tasks.yaml").is_file() and (out / "train" / "t05.npy").is_file()


def test_data_planted_cluster_sizes_and_bad_input(tmp_path, capsys):
    out = tmp_path / "planted"
    code, stdout, _ = run_cli(["data", "planted", "--tasks", "7", "--clusters", "2,4",
                               "--n-train", "20", "--out", str(out)], capsys)
    # sizes 2 + 4, then the conflict task t06 alone
    assert code == 0 and "group 2: t06  (conflict task, best alone)" in stdout
    code, _, err = run_cli(["data", "planted", "--tasks", "50", "--out", str(tmp_path / "b")],
                           capsys)
    assert code == 2 and "4..40" in err and "got 50" in err
    assert not (tmp_path / "b").exists()
    code, _, err = run_cli(["data", "planted", "--tasks", "6", "--clusters", "two",
                            "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "--clusters two" in err
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    code, _, err = run_cli(["data", "planted", "--tasks", "6", "--out", str(tmp_path / "c")],
                           capsys)
    assert code == 2 and "--force" in err and "Traceback" not in err


@pytest.mark.parametrize("extra, hint", [
    (["--executor", "rai"], "did you mean 'ray'?"),
    (["--address", "auto"], "--address is a Ray option; add --executor ray"),
    (["--executor", "ray", "--cpus-per-run", "0"], "CPUs per run must be positive, got 0"),
    (["--executor", "ray", "--max-retries", "-1"], "max_retries must be 0 or more, got -1"),
])
def test_executor_options_are_checked_before_any_run(tmp_path, capsys, extra, hint):
    config = with_changes(search={"strategy": "exhaustive", "budgets": "1"})
    out = tmp_path / "sweep"
    code, _, err = run_cli(["search", str(write_config(tmp_path, config)), "--out", str(out),
                            "--quiet", *extra], capsys)
    assert code == 2
    assert hint in err
    assert not out.exists()  # refused before the sweep folder was made
