"""Config parsing: unknown keys are named with the closest valid key."""

import pytest

from taskgrouper.config import ConfigError, load_config, parse_config


def test_defaults_are_valid():
    cfg = parse_config({})
    assert cfg.data.kind == "synthetic"
    assert cfg.train.optimizer == "adam"
    assert cfg.balancer.name == "uniform"


def test_unknown_top_level_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'trian'.*did you mean 'train'"):
        parse_config({"trian": {"epochs": 3}})


def test_unknown_nested_key_names_the_path_and_closest():
    with pytest.raises(ConfigError, match=r"'train.epoch'.*did you mean 'epochs'"):
        parse_config({"train": {"epoch": 3}})


def test_bad_value_names_the_key():
    with pytest.raises(ConfigError, match=r"'train.lr'"):
        parse_config({"train": {"lr": -1}})
    with pytest.raises(ConfigError, match=r"'data.kind'.*unknown data kind 'synthetc'.*synthetic"):
        parse_config({"data": {"kind": "synthetc"}})
    with pytest.raises(ConfigError, match=r"'data.resolution'"):
        parse_config({"data": {"resolution": 16}})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match=r"expected a mapping"):
        load_config(scalar)


def test_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 3}\n")
    cfg = load_config(path, {"train.device": "cpu", "model.width": 0.5})
    assert cfg.train.epochs == 3 and cfg.train.device == "cpu" and cfg.model.width == 0.5


def test_closest_knows_abbreviations_and_typos():
    from taskgrouper.tasks import closest

    assert closest("learning_rate", ["lr", "memory_format", "momentum"]).startswith(
        "did you mean 'lr'")
    assert closest("lr", ["learning_rate", "seed"]).startswith("did you mean 'learning_rate'")
    assert closest("xceptoin", ["xception", "resnet"]).startswith("did you mean 'xception'")
    assert closest("zzz", ["xception", "resnet"]) == "choices: resnet, xception"


def test_every_example_config_parses():
    from pathlib import Path

    from taskgrouper.config import load_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        load_config(path)


def test_new_settings_at_their_defaults_leave_run_identity_alone():
    """model.scale 1 and train.min_lr null change no run (older run folders resume); set, they
    do."""
    from taskgrouper.config import parse_config, run_identity

    plain = run_identity(parse_config({}))
    assert "scale" not in plain["model"] and "min_lr" not in plain["train"]
    assert run_identity(parse_config({"model": {"scale": 1.0}})) == plain
    assert run_identity(parse_config({"model": {"scale": 0.5}}))["model"]["scale"] == 0.5
    assert run_identity(parse_config({"train": {"min_lr": 1e-4}}))["train"]["min_lr"] == 1e-4
    assert not {"fov_deg", "min_objects", "max_objects"} & set(plain["data"])
    assert run_identity(parse_config({"data": {"fov_deg": 35}}))["data"]["fov_deg"] == 35


def test_scene_knobs_reach_the_scenes():
    """A narrower field of view makes the objects larger: fewer background pixels."""
    from taskgrouper.config import parse_config
    from taskgrouper.data import load_dataset

    def background(**data):
        section = {"n_train": 24, "n_val": 4, "n_test": 4, "resolution": 32, "cache": False,
                   "min_objects": 3, "max_objects": 3, **data}
        seg = load_dataset(parse_config({"data": section}).data, ["s"]).train.targets["s"]
        return float((seg == 0).mean())

    assert background(fov_deg=30) < background(fov_deg=90)


def test_table_row_finds_a_row_or_names_the_closest():
    from collections import namedtuple

    from taskgrouper.errors import InputError
    from taskgrouper.tasks import table_row

    Row = namedtuple("Row", "name value")
    rows = (Row("uniform", 1), Row("uncertainty", 2))
    assert table_row(rows, "uncertainty", "balancer").value == 2
    with pytest.raises(InputError, match="unknown balancer 'uniforn'; did you mean 'uniform'"):
        table_row(rows, "uniforn", "balancer")
