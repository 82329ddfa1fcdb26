"""``taskgrouper train`` under torchrun: two CPU processes (gloo) train what one process trains
with the same global batch, and rank 0 alone writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from taskgrouper.data.planted import write_planted

pytestmark = pytest.mark.slow


def _config(tmp_path, balancer: str) -> str:
    write_planted(tmp_path / "data", 4, clusters=2, conflict=False, n_train=256, n_val=64,
                  n_test=64)
    config = {"data": {"kind": "arrays", "path": str(tmp_path / "data")},
              "model": {"backbone": "mlp", "hidden": [16]},
              "balancer": {"name": balancer},
              "train": {"optimizer": "adam", "lr": 0.01, "epochs": 3, "batch_size": 64,
                        "schedule": "none", "threads": 1, "device": "cpu"}}
    path = tmp_path / f"{balancer}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _run(args, env_extra=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.parametrize("balancer", ["uniform", "pcgrad"])
def test_two_gloo_processes_match_one_process(tmp_path, balancer):
    config = _config(tmp_path, balancer)
    single = tmp_path / "single"
    _run([sys.executable, "-m", "taskgrouper.cli", "train", config, "--out", str(single),
          "--quiet"])
    ddp = tmp_path / "ddp"
    done = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                 "--master_port", str(29500 + os.getpid() % 1000), "-m", "taskgrouper.cli",
                 "train", config, "--out", str(ddp), "--quiet"])
    assert done.stdout.count("wrote ") == 1  # rank 0 alone speaks
    assert "data-parallel: 2 processes (gloo), global batch 64, about 32 rows" in done.stdout
    one = json.loads((single / "log.json").read_text())["epochs"]
    two = json.loads((ddp / "log.json").read_text())["epochs"]
    assert len(one) == len(two) == 3
    for a, b in zip(one, two, strict=True):
        # each rank holds 32 of the 64 rows of a batch; the averaged gradients are the
        # global batch's up to float rounding, so the losses agree to ~1e-6
        for task in a["train"]:
            assert b["train"][task] == pytest.approx(a["train"][task], rel=1e-4)
            assert b["val"][task]["loss"] == pytest.approx(a["val"][task]["loss"], rel=1e-4)
    m1 = json.loads((single / "metrics.json").read_text())
    m2 = json.loads((ddp / "metrics.json").read_text())
    for task in m1["test"]:
        assert m2["test"][task]["loss"] == pytest.approx(m1["test"][task]["loss"], rel=1e-4)
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in single.iterdir())


def test_a_representation_balancer_is_refused_under_torchrun(tmp_path):
    config = _config(tmp_path, "mgda_ub")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                           "2", "--master_port", str(30500 + os.getpid() % 1000), "-m",
                           "taskgrouper.cli", "train", config, "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "per-task gradients of the shared representation" in done.stderr
