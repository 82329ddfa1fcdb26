"""Cross-stitch and NDDR-CNN trained as their papers train them: the fusion units' faster
learning rate in the optimiser the trainer builds, worked by hand, and the start from the
bench's own single-task runs (run folders of ``taskgrouper train``), end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from taskgrouper.config import TrainConfig, parse_config
from taskgrouper.data import load_dataset
from taskgrouper.errors import InputError
from taskgrouper.models import build_model
from taskgrouper.models.arch import arch_info
from taskgrouper.models.checkpoint import load_checkpoint, save_checkpoint
from taskgrouper.tasks import TaskSpec
from taskgrouper.train import train
from taskgrouper.train.schedule import model_optimizer

STITCHED = ["cross_stitch", "nddr"]
SPECS = {"seg": TaskSpec("seg", "segmentation", channels=4),
         "depth": TaskSpec("depth", "dense_regression", channels=1)}
IN_SHAPE = (3, 32, 32)
TINY = {
    "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16, "resolution": 32,
             "cache": False},
    "tasks": ["s", "n"],
    "model": {"backbone": "shallow", "scale": 0.25},
    "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "device": "cpu", "patience": 10,
              "seed": 0, "threads": 1},
}


def _quiet(message: str) -> None:
    pass


def _config(**changes):
    raw = json.loads(json.dumps(TINY))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            raw[section][field] = value
        else:
            raw[key] = value
    return parse_config(raw)


def _model(arch, **options):
    torch.manual_seed(0)
    return build_model(SPECS, IN_SHAPE, backbone="shallow", scale=0.25, architecture=arch,
                       options=options)


# -- the units' learning rate -----------------------------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("arch", STITCHED)
def test_the_units_group_trains_at_the_scaled_rate(arch, optimizer):
    assert arch_info(arch).options["unit_lr_scale"] == 100.0  # the papers' multiplier
    model = _model(arch)
    opt = model_optimizer(model, [], TrainConfig(lr=0.01, optimizer=optimizer))
    plain, units = opt.param_groups
    named = dict(model.named_parameters())
    in_units = {id(p) for n, p in named.items() if n.startswith("encoder.units.")}
    assert {id(p) for p in units["params"]} == in_units
    assert {id(p) for p in plain["params"]} == {id(p) for p in named.values()} - in_units
    # the network at 0.01, the units at 0.01 x 100 = 1.0
    assert plain["lr"] == 0.01 and plain["lr_scale"] == 1.0
    assert units["lr"] == pytest.approx(1.0) and units["lr_scale"] == 100.0
    if arch == "nddr":  # every variable of an NDDR layer: convolution and batch norm
        layer = model.encoder.units[0].reduce["seg"]
        assert {id(layer[0].weight), id(layer[1].weight), id(layer[1].bias)} <= in_units
    else:
        assert id(model.encoder.units[0].alpha["seg"]) in in_units
    # the option sets the multiplier; 1 puts everything in one group
    slow = model_optimizer(_model(arch, unit_lr_scale=10), [], TrainConfig(lr=0.01))
    assert [g["lr"] for g in slow.param_groups] == pytest.approx([0.01, 0.1])
    same = model_optimizer(_model(arch, unit_lr_scale=1), [], TrainConfig(lr=0.01))
    assert len(same.param_groups) == 1


@pytest.mark.parametrize("value", [0, -1.0, float("inf"), "fast", True])
def test_a_bad_multiplier_is_refused(value):
    with pytest.raises(InputError, match="unit_lr_scale must be a positive number"):
        _model("cross_stitch", unit_lr_scale=value)


def test_one_sgd_step_moves_a_mixing_weight_by_lr_times_scale_times_grad():
    """Plain SGD (no momentum, no decay) at lr 0.01: the units move by 0.01 x 100 = 1.0 times
    their gradient, every other weight by 0.01 times its own."""
    model = _model("cross_stitch").train()
    opt = model_optimizer(model, [], TrainConfig(lr=0.01, optimizer="sgd", momentum=0.0))
    x = torch.randn(2, *IN_SHAPE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # the stage-1 outputs of both networks, before the first unit
        a = model.encoder._chains["seg"][0](x)  # (B, C, H, W)
        b = model.encoder._chains["depth"][0](x)
    alpha = model.encoder.units[0].alpha["seg"]  # (C, T): seg~[c] = a0 seg[c] + a1 depth[c]
    conv = next(model.encoder.backbones["seg"].parameters())
    before_alpha, before_conv = alpha.detach().clone(), conv.detach().clone()
    # loss = sum of seg's mixed stage-1 features: d loss / d alpha[c, l] = sum_{b,h,w} x_l[c]
    loss = model.encoder(x)["seg"][0].sum()
    opt.zero_grad()
    loss.backward()
    by_hand = torch.stack([a.sum(dim=(0, 2, 3)), b.sum(dim=(0, 2, 3))], dim=1)  # (C, 2)
    torch.testing.assert_close(alpha.grad, by_hand, rtol=1e-5, atol=1e-4)
    conv_grad = conv.grad.clone()
    opt.step()
    torch.testing.assert_close(alpha.detach(), before_alpha - 1.0 * by_hand, rtol=1e-5,
                               atol=1e-4)
    torch.testing.assert_close(conv.detach(), before_conv - 0.01 * conv_grad)
    # and the step really is 100 times the network's rate: 1.0 / 0.01
    assert opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"] == pytest.approx(100.0)


# -- starting from the bench's single-task runs ------------------------------------------------

@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    """Finished single-task hard_sharing runs of s and n (default head, model.scale 0.25),
    as the bench trains them: root/<task>/{config.json, best.pt, metrics.json}."""
    root = tmp_path_factory.mktemp("single")
    config = _config()
    data = load_dataset(config.data, config.tasks)
    for task in config.tasks:
        train(_config(tasks=[task]), root / task, data=data, progress=False, log=_quiet)
    return root, data


def _source(root: Path, task: str) -> dict[str, torch.Tensor]:
    return load_checkpoint(root / task / "best.pt")["model"]


def _specs(data):
    """The task specs the trainer fits to the data (what its networks are built from)."""
    from taskgrouper.data.base import stats_sample
    from taskgrouper.train.feeding import fit_specs

    stats = stats_sample(data.train)
    return fit_specs(data.tasks, stats.targets, warn=_quiet)


def _copy_runs(root: Path, to: Path) -> Path:
    shutil.copytree(root, to)
    return to


def _stitch(data, source, arch="cross_stitch", **options):
    specs = {t: _specs(data)[t] for t in ("s", "n")}
    return build_model(specs, data.input_shape, backbone="shallow", scale=0.25,
                       architecture=arch, options={"pretrained": source, **options})


@pytest.mark.parametrize("arch", STITCHED)
def test_run_folders_load_encoders_and_heads_exactly(single_runs, arch):
    """The runs used the default head and this model.scale: every encoder and head weight
    (batch-norm statistics included) is the source's, bit for bit."""
    root, data = single_runs
    # a mapping task -> run folder, or -> its best.pt (what a bench hands over)
    model = _stitch(data, {"s": str(root / "s"), "n": str(root / "n" / "best.pt")}, arch)
    for task in ("s", "n"):
        source = _source(root, task)
        for part, prefix in ((model.encoder.backbones[task], "encoder."),
                             (model.heads[task], f"heads.{task}.")):
            mine = part.state_dict()
            theirs = {k[len(prefix):]: v for k, v in source.items() if k.startswith(prefix)}
            assert mine and set(mine) == set(theirs), (task, prefix)
            assert all(torch.equal(v, theirs[k]) for k, v in mine.items()), (task, prefix)
    # one folder holding a run folder per task reads the same files
    again = _stitch(data, str(root), arch).state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("encoder.units."):
            assert torch.equal(v, again[k]), k


def test_training_starts_from_the_single_task_networks(single_runs, tmp_path):
    """``taskgrouper.train.train`` with ``pretrained``: plain SGD at a rate too small to move
    anything visibly, so the kept network is still the two single-task networks; the optimiser
    the trainer built and saved holds the units at 100 times the rate."""
    root, data = single_runs
    folders = {t: str(root / t) for t in ("s", "n")}
    config = _config(model={"backbone": "shallow", "scale": 0.25,
                            "architecture": "cross_stitch",
                            "options": {"pretrained": folders}},
                     train__optimizer="sgd", train__momentum=0.0, train__lr=1e-9,
                     train__epochs=1)
    result = train(config, tmp_path / "stitched", data=data, progress=False, log=_quiet)
    assert result.best_epoch == 1 and set(result.test) == {"s", "n"}
    assert all(v["loss"] == v["loss"] and v["loss"] > 0 for v in result.test.values())
    kept = load_checkpoint(tmp_path / "stitched" / "best.pt")["model"]
    for task in ("s", "n"):
        source = _source(root, task)
        for k, v in source.items():
            if k.startswith("encoder.") and v.is_floating_point() and "running" not in k:
                mine = kept[f"encoder.backbones.{task}.{k[len('encoder.'):]}"]
                torch.testing.assert_close(mine, v, rtol=0, atol=1e-6)
    groups = load_checkpoint(tmp_path / "stitched" / "last.pt")["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 100.0]
    assert groups[1]["lr"] == pytest.approx(100 * groups[0]["lr"])


@pytest.mark.parametrize("arch", STITCHED)
def test_a_short_training_from_single_task_networks_learns(single_runs, tmp_path, arch):
    """Two epochs of Adam from the single-task runs, the units at 100 times the rate: finite
    losses, and the units moved far off their initial values while the networks stayed near
    the single-task ones (on this run: units 2.3, networks 0.024)."""
    root, data = single_runs
    config = _config(model={"backbone": "shallow", "scale": 0.25, "architecture": arch,
                            "options": {"pretrained": str(root)}})
    result = train(config, tmp_path / arch, data=data, progress=False, log=_quiet)
    assert result.best_epoch >= 1
    assert all(0 < v["loss"] < float("inf") for v in result.test.values())
    last = load_checkpoint(tmp_path / arch / "last.pt")["model"]
    fresh = _stitch(data, None, arch).state_dict()  # the units' initial values: seed-free
    units = [k for k, v in fresh.items() if k.startswith("encoder.units.")
             and v.is_floating_point() and "running" not in k]
    assert units
    moved = max(float((last[k] - fresh[k]).abs().max()) for k in units)
    # Adam moves a weight by about its rate per step: 8 steps (2 epochs of 4 batches) at
    # 3e-3 move the networks' weights by at most about 0.024, the units' (at 0.3) by far more
    drift = max(float((last[f"encoder.backbones.{t}.{k[len('encoder.'):]}"] - v).abs().max())
                for t in ("s", "n") for k, v in _source(root, t).items()
                if k.startswith("encoder.") and v.is_floating_point() and "running" not in k)
    assert moved > 0.1 > drift


# -- bad input ------------------------------------------------------------------------------

def test_unfinished_or_unsuitable_runs_are_refused(single_runs, tmp_path):
    root, data = single_runs
    runs = _copy_runs(root, tmp_path / "runs")
    # a run still training: best.pt is only the best epoch so far
    (runs / "n" / "metrics.json").unlink()
    with pytest.raises(InputError, match=r"task 'n': run '.*n' has not finished.*resumes it"):
        _stitch(data, str(runs))
    shutil.copy(root / "n" / "metrics.json", runs / "n" / "metrics.json")
    config = json.loads((runs / "n" / "config.json").read_text())
    # a transfer readout: its encoder is another task's, frozen
    frozen = {**config, "model": {**config["model"], "options": {"frozen_encoder": "elsewhere"}}}
    (runs / "n" / "config.json").write_text(json.dumps(frozen))
    with pytest.raises(InputError, match="transfer readout.*task 'n''s single-task run"):
        _stitch(data, str(runs))
    # another architecture
    other = {**config, "model": {**config["model"], "architecture": "mtan"}}
    (runs / "n" / "config.json").write_text(json.dumps(other))
    with pytest.raises(InputError, match="trained architecture 'mtan'.*single-task "
                                         "hard_sharing runs"):
        _stitch(data, str(runs))
    # another head: the message gives the option that fits
    aspp = {**config, "model": {**config["model"], "options": {"head": "aspp"}}}
    (runs / "n" / "config.json").write_text(json.dumps(aspp))
    with pytest.raises(InputError, match="'aspp' heads.*'light' heads; set model.options.head: "
                                         "aspp"):
        _stitch(data, str(runs))


def test_aspp_single_task_runs_load_into_aspp_heads(single_runs, tmp_path):
    """A single-task run with ``head: aspp`` (written here without training) loads exactly
    when the stitched model has ``head: aspp`` too, and its weights do not fit a light head."""
    root, data = single_runs
    runs = _copy_runs(root, tmp_path / "runs")
    specs = _specs(data)
    nets = {}
    for seed, task in enumerate(("s", "n")):
        torch.manual_seed(5 + seed)
        nets[task] = build_model({task: specs[task]}, data.input_shape, backbone="shallow",
                                 scale=0.25, options={"head": "aspp"})
        save_checkpoint({"model": nets[task].state_dict(), "epoch": 1},
                        runs / task / "best.pt")
        config = json.loads((runs / task / "config.json").read_text())
        config["model"]["options"] = {"head": "aspp"}
        (runs / task / "config.json").write_text(json.dumps(config))
    model = _stitch(data, str(runs), head="aspp")
    for task, net in nets.items():
        for k, v in net.state_dict().items():
            mine = (f"encoder.backbones.{task}.{k[len('encoder.'):]}"
                    if k.startswith("encoder.") else k)
            assert torch.equal(model.state_dict()[mine], v), k
    (runs / "n" / "config.json").unlink()  # without the run's config, the weights decide
    with pytest.raises(InputError, match="does not fit the head of task 'n'.*model.options.head"):
        _stitch(data, {"s": str(root / "s"), "n": str(runs / "n")})


def test_bad_files_and_layouts_name_the_file_and_the_fix(single_runs, tmp_path):
    root, data = single_runs
    runs = _copy_runs(root, tmp_path / "runs")
    # not a checkpoint at all: an InputError, like every other bad value of the option
    (runs / "s" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"task 's'.*best.pt' cannot be read.*train task 's' "
                                         r"alone"):
        _stitch(data, str(runs))
    # a task missing from the mapping, and a value that is not a path
    with pytest.raises(InputError, match=r"no checkpoint for task\(s\) n"):
        _stitch(data, {"s": str(root / "s")})
    with pytest.raises(InputError, match="entry of task 'n' is 3"):
        _stitch(data, {"s": str(root / "s"), "n": 3})
    # runs of another model.scale: the encoder does not fit
    specs = {t: _specs(data)[t] for t in ("s", "n")}
    with pytest.raises(InputError, match=r"does not fit the encoder of task 's' \(shape: .*"
                                         r"model.scale"):
        build_model(specs, data.input_shape, backbone="shallow", scale=0.5,
                    architecture="nddr", options={"pretrained": str(root)})
