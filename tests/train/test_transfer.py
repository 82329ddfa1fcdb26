"""Transfer readouts (Standley et al. 2020, Sec. 5): task j read out from task i's frozen
encoder; the ``relationships`` command end to end; bad input refused with exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from taskgrouper.cli import main
from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.errors import InputError
from taskgrouper.models import build_model
from taskgrouper.models.checkpoint import CheckpointError, load_checkpoint
from taskgrouper.train import train
from taskgrouper.train.transfer import readout_config, source_run, train_transfer

TINY = {
    "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16, "resolution": 32,
             "cache": False},
    "tasks": ["d", "e"],
    "model": {"backbone": "shallow", "scale": 0.25},
    "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "device": "cpu", "patience": 10,
              "seed": 0, "threads": 1},
}


def _quiet(message: str) -> None:
    pass


def _config(**changes):
    raw = json.loads(json.dumps(TINY))
    raw.update(changes)
    return parse_config(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The source (task d alone) and the readout of e on d's frozen encoder."""
    root = tmp_path_factory.mktemp("transfer")
    config = _config()
    data = load_dataset(config.data, config.tasks)
    source = root / "d"
    train(_config(tasks=["d"]), source, data=data, progress=False, log=_quiet)
    readout = train_transfer(config, source, "e", root / "d-to-e", data=data, progress=False,
                             log=_quiet)
    return root, config, data, source, readout


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_readout_config_takes_the_source_network_and_the_experiment_training(trained):
    root, config, _, source, _ = trained
    # the experiment asks for another scale and seed: the network follows the source, the
    # training the experiment
    other = _config(model={"backbone": "shallow", "scale": 0.5},
                    train={**TINY["train"], "seed": 7})
    cfg = readout_config(other, source, "e")
    assert cfg.tasks == ["e"]
    assert cfg.model.scale == 0.25 and cfg.model.backbone == "shallow"
    assert cfg.model.architecture == "hard_sharing" and cfg.model.width == 1.0
    assert cfg.model.options["frozen_encoder"] == str(source.resolve())
    assert cfg.train.seed == 7 and cfg.train.device == "cpu"
    assert source_run(source)[0] == "d"


def test_encoder_is_frozen_and_head_trained(trained):
    root, config, data, source, readout = trained
    assert readout.tasks == ["e"] and readout.best_epoch >= 1
    assert set(readout.val) == {"e"} and readout.test["e"]["loss"] > 0
    src, out = _weights(source / "best.pt"), _weights(root / "d-to-e" / "best.pt")
    encoder = [k for k in out if k.startswith("encoder.")]
    buffers = [k for k in encoder if "running_" in k]
    assert buffers, "the shallow encoder has batch-norm statistics to check"
    for key in encoder:  # weights and batch-norm statistics exactly as the source left them
        assert torch.equal(out[key], src[key]), key
    # the head trained: its weights moved away from their initial values (the trainer seeds
    # torch with train.seed right before building, so this build starts from the same head)
    cfg = readout_config(config, source, "e")
    torch.manual_seed(cfg.train.seed)
    fresh = build_model(data.select_tasks(["e"]).tasks, data.input_shape,
                        backbone="shallow", scale=0.25).state_dict()
    head = [k for k in out if k.startswith("heads.e.") and k.endswith(".weight")]
    moved = [k for k in head if not torch.allclose(out[k], fresh[k], atol=1e-4)]
    assert head and len(moved) >= len(head) // 2, moved
    # and the readout is not the source's own network: e's head on d's encoder
    assert not any(k.startswith("heads.d.") for k in out)


def test_unfrozen_training_would_move_the_encoder(trained):
    """The check above can fail: the same network trained without freezing moves both the
    encoder's weights and its batch-norm statistics."""
    root, config, data, source, _ = trained
    cfg = readout_config(config, source, "e").model_dump(mode="json")
    cfg["model"]["options"] = {}
    cfg["train"]["epochs"] = 1
    train(parse_config(cfg), root / "unfrozen", data=data, progress=False, log=_quiet)
    src, out = _weights(source / "best.pt"), _weights(root / "unfrozen" / "best.pt")
    moved = [k for k in src if k.startswith("encoder.") and not torch.equal(src[k], out[k])]
    assert any("running_mean" in k for k in moved) and any(k.endswith(".weight")
                                                           for k in moved)


def test_frozen_encoder_stays_in_eval_mode():
    data = load_dataset(_config().data, ["d"])
    model = build_model(data.tasks, data.input_shape, backbone="shallow", scale=0.25)
    model.freeze_encoder()
    model.train()
    assert not any(m.training for m in model.encoder.modules())
    assert all(m.training for m in model.heads.modules())
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert list(model.shared_parameters()) == []


def test_frozen_encoder_option_refuses_weights_that_do_not_fit(trained):
    _, _, data, source, _ = trained
    specs = data.select_tasks(["e"]).tasks
    model = build_model(specs, data.input_shape, backbone="shallow", scale=0.25,
                        options={"frozen_encoder": str(source)})  # the folder or its best.pt
    assert model.encoder_frozen
    with pytest.raises(InputError, match=r"does not fit this network's encoder \(shape: "):
        build_model(specs, data.input_shape, backbone="shallow", scale=0.5,
                    options={"frozen_encoder": str(source / "best.pt")})


def test_second_call_trains_nothing(trained):
    root, config, data, source, readout = trained
    folder = root / "d-to-e"
    def stamps() -> dict[str, int]:  # the run's files (the lock is taken on every call)
        return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()
                if p.is_file() and p.name != ".train.lock"}

    before = stamps()
    assert {"best.pt", "metrics.json", "log.json"} <= set(before)
    messages: list[str] = []
    again = train_transfer(config, source, "e", folder, data=data, progress=False,
                           log=messages.append)
    assert again.test == readout.test and again.val == readout.val
    assert messages == [f"{folder}: finished run found; nothing to train"]
    assert stamps() == before


class _Interrupt(Exception):
    pass


def test_interrupted_readout_resumes_to_the_same_result(trained):
    root, config, data, source, readout = trained

    def stop_after_epoch_1(message: str) -> None:
        if message.startswith("epoch 1:"):
            raise _Interrupt

    folder = root / "cut"
    with pytest.raises(_Interrupt):
        train_transfer(config, source, "e", folder, data=data, progress=False,
                       log=stop_after_epoch_1)
    messages: list[str] = []
    resumed = train_transfer(config, source, "e", folder, data=data, progress=False,
                             log=messages.append)
    assert f"{folder}: resuming after epoch 1" in messages
    assert resumed.test == readout.test


def test_bad_sources_are_refused(trained, tmp_path):
    _, config, data, source, _ = trained
    with pytest.raises(InputError, match="not a run folder"):
        readout_config(config, tmp_path / "nowhere", "e")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(source / "config.json", unfinished / "config.json")
    with pytest.raises(InputError, match="has not finished training"):
        readout_config(config, unfinished, "e")
    pair = tmp_path / "pair"
    pair.mkdir()
    raw = json.loads((source / "config.json").read_text())
    (pair / "config.json").write_text(json.dumps({**raw, "tasks": ["d", "e"]}))
    (pair / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="network of one task"):
        readout_config(config, pair, "e")
    # weights gone (e.g. search.keep_weights: chosen): named, with the fix
    gone = tmp_path / "gone"
    shutil.copytree(source, gone)
    (gone / "best.pt").unlink()
    with pytest.raises(InputError, match=r"best\.pt' does not exist"):
        train_transfer(config, gone, "e", tmp_path / "out-gone", data=data, progress=False,
                       log=_quiet)


class _Payload:
    """Unpickling this would create a file: a crafted checkpoint must never get that far."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_crafted_source_checkpoint_runs_nothing(trained, tmp_path):
    _, config, data, source, _ = trained
    crafted = tmp_path / "crafted"
    shutil.copytree(source, crafted)
    marker = tmp_path / "ran"
    torch.save({"model": _Payload(marker), "epoch": 1}, crafted / "best.pt")
    with pytest.raises(CheckpointError, match="not loaded"):
        train_transfer(config, crafted, "e", tmp_path / "out", data=data, progress=False,
                       log=_quiet)
    assert not marker.exists()


# the command line


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_relationships_command_end_to_end(tmp_path, capsys):
    config = _write(tmp_path, {**TINY, "train": {**TINY["train"], "epochs": 2}})
    out = tmp_path / "rel"
    assert main(["relationships", str(config), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "transfer affinity" in printed and "relationships.json" in printed
    results = json.loads((out / "relationships.json").read_text())
    assert results["tasks"] == ["d", "e"] and results["split"] == "test"
    assert {(r["source"], r["target"]) for r in results["readouts"]} == {("d", "e"),
                                                                           ("e", "d")}
    own = {t: v["test"] for t, v in results["own"].items()}
    by_pair = {(r["source"], r["target"]): r for r in results["readouts"]}
    # the ordered table from the stored losses: (L_j,own - L_j,from i) / |L_j,own|
    for (i, j), r in by_pair.items():
        assert r["run_id"] == f"transfer-{i}-to-{j}"
        assert results["pair"][j][i] == pytest.approx((own[j] - r["test"]) / abs(own[j]))
    assert results["affinity"]["d"]["e"] == pytest.approx(
        (results["pair"]["d"]["e"] + results["pair"]["e"]["d"]) / 2)
    assert results["correlation"] is None  # no search there: nothing to correlate with
    assert results["compute"]["runs"] == 2
    md = (out / "relationships.md").read_text()
    assert "Table 3" in md and f"{100 * results['affinity']['d']['e']:.2f}%" in md
    # the readouts' folders hold e's head on d's encoder, d's head on e's
    src = load_checkpoint(out / "runs" / "d" / "best.pt")["model"]
    readout = load_checkpoint(out / "runs" / "transfer-d-to-e" / "best.pt")["model"]
    assert all(torch.equal(readout[k], v) for k, v in src.items() if k.startswith("encoder."))

    # a second call trains nothing; a search's Table 2 beside it gives the correlation
    search = tmp_path / "search"
    search.mkdir()
    (search / "results.json").write_text(json.dumps(
        {"relationships": {"affinity": {"d": {"d": None, "e": 0.1},
                                        "e": {"d": 0.1, "e": None}}}}))
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("best.pt")}
    assert main(["relationships", str(config), "--out", str(out), "--search", str(search),
                 "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("best.pt")} == before
    again = json.loads((out / "relationships.json").read_text())
    assert again["readouts"] == results["readouts"]
    # two tasks: one pair, too few points for a correlation
    assert again["correlation"]["n"] == 1 and again["correlation"]["pearson_r"] is None
    assert again["multi_task"]["d"]["e"] == 0.1


@pytest.mark.parametrize("args,needle", [
    (["relationships", "missing.yaml", "--out", "OUT"], "config file 'missing.yaml' does not "
                                                        "exist"),
    (["relationships", "CONFIG", "--out", "OUT", "--search", "NOSEARCH"],
     "--search NOSEARCH: no results.json there"),
])
def test_relationships_bad_paths_exit_2(tmp_path, capsys, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, TINY).rename(tmp_path / "CONFIG")
    (tmp_path / "NOSEARCH").mkdir()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "OUT" / "runs").exists()  # nothing trained


@pytest.mark.parametrize("changes,needle", [
    ({"tasks": ["d"]}, "need at least two tasks"),
    ({"model": {"backbone": "shallow", "architecture": "mtan"}},
     "set model.architecture: hard_sharing"),
])
def test_relationships_bad_config_exit_2(tmp_path, capsys, changes, needle):
    config = _write(tmp_path, {**TINY, **changes})
    code = main(["relationships", str(config), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err
    assert not (tmp_path / "out" / "runs").exists()
