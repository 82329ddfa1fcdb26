"""Bad configs and command lines: exit 2, one message naming the input and the fix, no
traceback, and a run folder trained before is left exactly as it was."""

from __future__ import annotations

import pytest
from bad_input_helpers import (
    arrays_config,
    assert_kept,
    refused,
    run_cli,
    snapshot,
    write_arrays,
    write_yaml,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset, its config and a finished run folder (trained once for the module)."""
    root = tmp_path_factory.mktemp("trained")
    data = write_arrays(root / "data")
    config = write_yaml(root / "good.yaml", arrays_config(data))
    from taskgrouper.cli import main

    assert main(["train", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    return root, data


def _with(dataset, **sections):
    config = arrays_config(dataset)
    for key, value in sections.items():
        config[key] = ({**config.get(key, {}), **value} if isinstance(value, dict)
                       else value)
    return config


# (what is wrong, the YAML text or the config sections, words the message must hold)
YAML_CASES = [
    ("empty file", "", ["is empty", "configs/"]),
    ("only a comment", "# nothing here\n", ["is empty"]),
    ("a list, not sections", "- data\n- tasks\n", ["mapping of sections"]),
    ("bad YAML", "data: {kind: arrays\n", ["not valid yaml"]),
    ("epochs true", {"train": {"epochs": True}}, ["train.epochs", "whole number", "true"]),
    ("lr false", {"train": {"lr": False}}, ["train.lr", "number", "false"]),
    ("epochs zero", {"train": {"epochs": 0}}, ["train.epochs", "greater than or equal to 1"]),
    ("epochs negative", {"train": {"epochs": -3}}, ["train.epochs"]),
    ("batch size text", {"train": {"batch_size": "many"}}, ["train.batch_size"]),
    ("width zero", {"model": {"width": 0}}, ["model.width"]),
    ("unknown key", {"train": {"learning_rate": 0.1}}, ["train.learning_rate", "'lr'"]),
    ("unknown section", {"trian": {}}, ["trian", "'train'"]),
    ("tasks twice", {"tasks": ["r", "r"]}, ["'r'", "listed twice"]),
    ("no task", {"tasks": []}, ["no task listed"]),
    ("task with a slash", {"tasks": ["r", "a/b"]}, ["'a/b'", "path separator"]),
    ("task with a plus", {"tasks": ["r+c"]}, ["'r+c'", "joins task names"]),
    ("empty task name", {"tasks": [""]}, ["empty"]),
    ("task name a number", {"tasks": [3]}, ["tasks"]),
    ("unknown task", {"tasks": ["r", "q"]}, ["'q'"]),
    ("fractional classes", {"data": {"classes": 3.9}}, ["data.classes", "fractional"]),
    ("unknown data kind", {"data": {"kind": "csv"}}, ["data.kind", "csv"]),
    ("missing dataset folder", {"data": {"path": "/nowhere/at/all"}}, ["/nowhere/at/all"]),
    ("unknown optimiser", {"train": {"optimizer": "adamw"}}, ["train.optimizer"]),
    ("unknown backbone", {"model": {"backbone": "vit"}}, ["vit"]),
    ("unknown balancer", {"balancer": {"name": "magic"}}, ["magic"]),
    ("unknown architecture", {"model": {"architecture": "towers"}}, ["towers"]),
    # the knobs of the re-sized demo
    ("no seed", {"search": {"seeds": 0}}, ["search.seeds", "greater than or equal to 1"]),
    ("too many seeds", {"search": {"seeds": 101}}, ["search.seeds", "less than or equal to 100"]),
    ("keep some weights", {"search": {"keep_weights": "some"}}, ["search.keep_weights"]),
    ("scale zero", {"model": {"scale": 0}}, ["model.scale"]),
    ("min_lr zero", {"train": {"min_lr": 0}}, ["train.min_lr"]),
    ("ema one", {"train": {"ema": 1.0}}, ["train.ema"]),
    ("ema zero", {"train": {"ema": 0}}, ["train.ema"]),
    ("field of view 5", {"data": {"fov_deg": 5}}, ["data.fov_deg"]),
    ("selection width 1", {"search": {"selection_widths": [0.2, 1.0]}},
     ["search.selection_widths", "less than 1"]),
    ("baseline width 0", {"search": {"baseline_widths": [0]}},
     ["search.baseline_widths", "greater than 0"]),
    ("augment unknown", {"train": {"augment": "mirror"}}, ["train.augment", "'flip'"]),
    ("flip on tabular inputs", {"train": {"augment": "flip"}},
     ["train.augment: flip mirrors images", "set train.augment: none"]),
    ("objects out of order", {"data": {"min_objects": 5, "max_objects": 2}},
     ["data.max_objects (2)", "data.min_objects (5)"]),
]


@pytest.mark.parametrize("case,content,words", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_bad_config_refused_and_nothing_changed(trained, tmp_path, capsys, case, content,
                                                words):
    root, data = trained
    path = tmp_path / "bad.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        write_yaml(path, _with(data, **content))
    before = snapshot(root)
    refused(["train", path, "--out", tmp_path / "new"], capsys, *words)
    assert_kept(before, root)  # the dataset and the finished run
    assert not list(tmp_path.rglob("*.pt"))  # and nothing trained


def test_other_config_on_a_finished_run_folder(trained, tmp_path, capsys):
    root, data = trained
    path = write_yaml(tmp_path / "other.yaml", _with(data, train={"lr": 0.01}))
    before = snapshot(root)
    refused(["train", path, "--out", root / "run"], capsys, "different config", "new --out")
    assert_kept(before, root)


@pytest.mark.parametrize("section", ["train:\n", "train: 5\n", "train: [1, 2]\n"])
def test_empty_or_scalar_section_with_an_override(trained, tmp_path, capsys, section):
    """``train:`` left empty takes the --epochs override; a number or list there is named."""
    root, data = trained
    path = tmp_path / "c.yaml"
    path.write_text(f"data: {{kind: arrays, path: '{data}'}}\n"
                    "model: {backbone: mlp, width: 0.25, hidden: [8]}\n" + section)
    if section == "train:\n":
        result = run_cli(["train", path, "--out", tmp_path / "run", "--epochs", "1",
                          "--device", "cpu", "--quiet"], capsys)
        assert result.code == 0, result.err
        return
    refused(["train", path, "--out", tmp_path / "run", "--epochs", "1"], capsys,
            "'train' must be a mapping")


COMMAND_CASES = [
    ("config is a folder", ["train", "{root}", "--out", "{tmp}/r"], ["is a folder"]),
    ("config missing", ["train", "{tmp}/none.yaml", "--out", "{tmp}/r"], ["does not exist"]),
    ("epochs 0", ["train", "{good}", "--out", "{tmp}/r", "--epochs", "0"],
     ["--epochs", "1 or more"]),
    ("epochs -3", ["train", "{good}", "--out", "{tmp}/r", "--epochs", "-3"], ["--epochs"]),
    ("epochs text", ["train", "{good}", "--out", "{tmp}/r", "--epochs", "x"], ["--epochs"]),
    ("empty out", ["train", "{good}", "--out", ""], ["--out", "empty folder name"]),
    ("blank out", ["train", "{good}", "--out", "  "], ["--out", "empty folder name"]),
    ("search workers 0", ["search", "{good}", "--out", "{tmp}/s", "--workers", "0"],
     ["--workers", "1 or more"]),
    ("demo workers 0", ["demo", "--out", "{tmp}/d", "--workers", "0"], ["--workers"]),
    ("bench workers -1", ["bench", "{good}", "--out", "{tmp}/b", "--workers", "-1"],
     ["--workers"]),
    ("demo empty out", ["demo", "--out", ""], ["--out"]),
    ("demo seeds 0", ["demo", "--out", "{tmp}/d", "--seeds", "0"], ["--seeds", "1 or more"]),
    ("demo seeds 101", ["demo", "--out", "{tmp}/d", "--seeds", "101"],
     ["seeds", "between 1 and 100"]),
    ("ray option without ray", ["search", "{good}", "--out", "{tmp}/s", "--address", "auto"],
     ["--address", "--executor ray"]),
    ("unknown executor", ["search", "{good}", "--out", "{tmp}/s", "--executor", "slurm"],
     ["slurm"]),
    ("unknown strategy", ["search", "{good}", "--out", "{tmp}/s", "--strategy", "exhaustiv"],
     ["exhaustiv", "exhaustive"]),
    ("no command", [], ["command"]),
    ("unknown command", ["trian"], ["trian"]),
    ("planted too few tasks", ["data", "planted", "--tasks", "1", "--out", "{tmp}/p"],
     ["tasks"]),
    ("planted bad clusters", ["data", "planted", "--tasks", "6", "--out", "{tmp}/p",
                              "--clusters", "a,b"], ["--clusters"]),
    ("planted huge split", ["data", "planted", "--tasks", "6", "--out", "{tmp}/p",
                            "--n-train", "100000000"], ["n_train", "1,000,000"]),
    ("planted negative noise", ["data", "planted", "--tasks", "6", "--out", "{tmp}/p",
                                "--noise", "-1"], ["noise"]),
]


@pytest.mark.parametrize("case,args,words", COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_bad_command_line_refused(trained, tmp_path, capsys, case, args, words):
    root, _ = trained
    paths = {"root": root, "tmp": tmp_path, "good": root / "good.yaml"}
    before, cwd_before = snapshot(root), snapshot(tmp_path)
    refused([a.format(**{k: str(v) for k, v in paths.items()}) for a in args], capsys, *words)
    assert_kept(before, root)
    assert snapshot(tmp_path) == cwd_before  # nothing new was written either
