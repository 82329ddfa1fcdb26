"""The Ray executor: a local Ray cluster of 2 CPUs runs sweeps and searches to the same numbers
as the local executor, and a Ray worker killed mid-run has its run retried and stored once."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import ray  # the ray extra: `make install` installs it, so its absence fails rather than skips
from sweep_helpers import tabular, tabular_spec, three_specs
from test_sweep import QUIET, numbers, stored_once

from taskgrouper.runs import run_sweep
from taskgrouper.runs.ray_executor import RayExecutor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance of 2 CPUs for the module (starting one takes ~5 s)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_items_and_failures_come_back_like_the_local_pool(cluster):
    def fn(x, shared):
        if x == 3:
            raise ValueError("three is bad")
        return x * x + shared["k"]

    out = dict(RayExecutor(max_retries=0).submit_all(fn, range(5), shared={"k": 100}))
    assert {k: v for k, v in out.items() if k != 3} == {0: 100, 1: 101, 2: 104, 4: 116}
    assert isinstance(out[3], ValueError) and str(out[3]) == "three is bad"


def test_a_sweep_on_ray_gives_the_inline_numbers(cluster, tmp_path):
    specs, data = three_specs(), tabular()
    inline = run_sweep(specs, tmp_path / "inline", data=data, **QUIET)
    on_ray = run_sweep(specs, tmp_path / "ray", executor=RayExecutor(), data=data, **QUIET)
    for spec in specs:
        assert numbers(on_ray[spec.id]) == numbers(inline[spec.id])
    assert stored_once(tmp_path / "ray") == {s.id: 1 for s in specs}


def test_a_search_on_ray_selects_as_the_local_executor(cluster, tmp_path):
    from taskgrouper.config import ExperimentConfig
    from taskgrouper.data.planted import write_planted
    from taskgrouper.experiments.search import search

    write_planted(tmp_path / "data", 4, clusters=2, conflict=False, n_train=120, n_val=60,
                  n_test=60)
    config = ExperimentConfig.model_validate({
        "data": {"kind": "arrays", "path": str(tmp_path / "data")},
        "model": {"backbone": "mlp", "hidden": [8]},
        "train": {"optimizer": "adam", "lr": 0.01, "epochs": 4, "batch_size": 32,
                  "schedule": "none", "threads": 1, "device": "cpu"},
        "search": {"strategy": "exhaustive,hoa", "budgets": "1:3:1", "random_trials": 10}})
    kw = dict(progress=False, log=lambda *_: None)
    local = search(config, tmp_path / "local", workers=2, **kw)
    on_ray = search(config, tmp_path / "ray", executor=RayExecutor(), **kw)
    for name in ("exhaustive", "hoa"):
        picked = [(s["budget"], s["networks"], s["test_total"])
                  for s in on_ray["strategies"][name]["selections"]]
        assert picked == [(s["budget"], s["networks"], s["test_total"])
                          for s in local["strategies"][name]["selections"]]
    # C0 (15 subsets, 4 half-width singles), the independent baseline's 1/4 and 1/3 widths
    # (4 tasks x 2), the all-task network at widths 2 and 3 (whole budgets)
    assert len(on_ray["candidates"]) == len(local["candidates"]) == 15 + 4 + 4 * 2 + 2


def test_a_killed_ray_worker_is_retried_and_its_run_stored_once(cluster, tmp_path):
    specs = [tabular_spec(["y", "c"], epochs=30), tabular_spec(["y"], epochs=30),
             tabular_spec(["c"], epochs=30)]
    data = tabular(n=(2000, 200, 200))
    reference = run_sweep(specs, tmp_path / "reference", data=data, **QUIET)
    victim = specs[1].id
    log_path = tmp_path / "ray" / "runs" / victim / "train.log"
    killed: list[int] = []

    def kill_mid_run():
        """SIGKILL the Ray worker training ``victim`` once it has finished epoch 2."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log_path.read_text() if log_path.exists() else ""
            pid = re.search(r"process (\d+)", text)
            if pid and "epoch 2:" in text:
                os.kill(int(pid.group(1)), signal.SIGKILL)
                killed.append(int(pid.group(1)))
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_mid_run)
    killer.start()
    records = run_sweep(specs, tmp_path / "ray", executor=RayExecutor(max_retries=2),
                        data=data, **QUIET)
    killer.join()
    assert killed, "the run finished before it could be killed"
    log = log_path.read_text()
    starts = re.findall(r"process (\d+)", log)
    assert len(starts) == 2 and int(starts[0]) == killed[0] != int(starts[1])  # retried
    assert re.search(r"resuming after epoch [2-9]", log)  # from the checkpoint
    assert stored_once(tmp_path / "ray") == {s.id: 1 for s in specs}
    for spec in specs:  # resuming gives the uninterrupted numbers
        assert numbers(records[spec.id]) == numbers(reference[spec.id])
