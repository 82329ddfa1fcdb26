"""The sweep driver: same numbers in any executor, resumable, failures isolated and reported."""

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import CountingExecutor, tabular, tabular_spec, three_specs

from taskgrouper.runs import LocalExecutor, RunStore, SweepError, run_sweep
from taskgrouper.runs.sweep import _sweep_lock

QUIET = {"progress": False, "log": lambda message: None}


def numbers(record):
    """Everything a run measured except the clock (wall time and measured latency)."""
    cost = {k: v for k, v in record.cost.items() if not k.startswith("latency")}
    return (record.tasks, record.val, record.test, record.constant_test, cost,
            record.train_samples, record.best_epoch, record.epochs_run)


def stored_once(out_dir: Path) -> dict[str, int]:
    with sqlite3.connect(out_dir / "runs.sqlite") as db:
        return dict(db.execute("SELECT id, COUNT(*) FROM runs GROUP BY id").fetchall())


def test_inline_and_local_pool_give_identical_numbers_and_a_rerun_trains_nothing(tmp_path):
    specs, data = three_specs(), tabular()
    inline = run_sweep(specs, tmp_path / "inline", data=data, **QUIET)
    pooled = run_sweep(specs, tmp_path / "pool", executor=LocalExecutor(2), data=data, **QUIET)
    assert list(inline) == list(pooled) == [s.id for s in specs]
    for spec in specs:
        assert numbers(inline[spec.id]) == numbers(pooled[spec.id])
        assert inline[spec.id].tasks == spec.tags["tasks"]
    assert inline[specs[1].id].cost["snt"] < inline[specs[0].id].cost["snt"]  # width 0.25
    assert {r.epochs_run for r in inline.values()} == {3}

    counting = CountingExecutor()
    again = run_sweep(specs, tmp_path / "pool", executor=counting, data=data, **QUIET)
    assert counting.items == []
    assert again == pooled  # wall_s and finished_at unchanged: nothing retrained
    with RunStore(tmp_path / "inline") as store:
        assert store.records() == list(inline.values())
        assert store.records()[0].group == "candidate"
    for spec in specs:
        run_dir = tmp_path / "inline" / "runs" / spec.id
        assert (run_dir / "metrics.json").exists() and (run_dir / "train.log").exists()
        # the weights stay; the resume state of a stored run goes
        assert (run_dir / "best.pt").exists() and not (run_dir / "last.pt").exists()


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_a_failing_run_is_reported_and_the_others_are_stored(tmp_path, executor):
    good = three_specs()[:2]
    bad = tabular_spec(["y", "c"], optimizer="sgd", lr=1e30)  # NaN in epoch 1
    specs = [good[0], bad, good[1]]
    with pytest.raises(SweepError) as info:
        run_sweep(specs, tmp_path, executor=executor, workers=2, data=tabular(), **QUIET)
    err = info.value
    assert list(err.failures) == [bad.id]
    assert err.failures[bad.id].startswith("TrainingDiverged: ")
    assert isinstance(err.errors[bad.id], RuntimeError)
    assert "1 of 3 runs failed (2 finished and stored" in str(err) and bad.id in str(err)
    assert "became NaN/inf in epoch 1" in (tmp_path / "runs" / bad.id / "error.log").read_text()
    assert stored_once(tmp_path) == {good[0].id: 1, good[1].id: 1}

    counting = CountingExecutor()
    with pytest.raises(SweepError):  # a rerun retries the failed run only
        run_sweep(specs, tmp_path, executor=counting, data=tabular(), **QUIET)
    assert [s.id for s in counting.items] == [bad.id]


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_stores_each_run_once(tmp_path):
    specs = three_specs()
    reference = run_sweep(specs, tmp_path / "reference", data=tabular(), **QUIET)

    out = tmp_path / "killed"
    helper = Path(__file__).with_name("sweep_helpers.py")
    # The child SIGKILLs itself right after the second run saved its epoch-2 checkpoint.
    child = subprocess.run([sys.executable, str(helper), str(out), specs[1].id, "2"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert stored_once(out) == {specs[0].id: 1}
    assert not (out / "runs" / specs[1].id / "metrics.json").exists()

    counting = CountingExecutor()
    resumed = run_sweep(specs, out, executor=counting, data=tabular(), **QUIET)
    assert [s.id for s in counting.items] == [specs[1].id, specs[2].id]
    log = (out / "runs" / specs[1].id / "train.log").read_text()
    assert "resuming after epoch 2" in log
    assert stored_once(out) == {s.id: 1 for s in specs}
    for spec in specs:  # resuming from the checkpoint gives the uninterrupted numbers
        assert numbers(resumed[spec.id]) == numbers(reference[spec.id])
    metrics = json.loads((out / "runs" / specs[1].id / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3


def test_synthetic_config_loads_its_own_data(tmp_path):
    from taskgrouper.runs import RunSpec

    config = {"data": {"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8,
                       "resolution": 32, "cache": False},
              "tasks": ["s", "d"], "model": {"backbone": "xception", "width": 0.2},
              "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1}}
    spec = RunSpec.create("candidate", config)
    messages = []
    records = run_sweep([spec], tmp_path, progress=False, log=messages.append)
    record = records[spec.id]
    assert record.tasks == ["s", "d"] and set(record.val["s"]) >= {"loss", "miou"}
    assert 0 < record.cost["snt"] < 1 and record.train_samples == 16
    assert messages and messages[-1].startswith(f"run {spec.id} done: val loss s ")


def test_duplicate_ids_are_refused(tmp_path):
    spec = tabular_spec(["y"])
    with pytest.raises(ValueError, match=f"repeated: {spec.id}"):
        run_sweep([spec, spec], tmp_path, data=tabular(), **QUIET)


def test_a_stored_run_with_another_config_is_refused(tmp_path):
    spec = tabular_spec(["y"], epochs=1)
    run_sweep([spec], tmp_path, data=tabular(), **QUIET)
    changed = type(spec)(spec.id, spec.group, {**spec.config, "train": {
        **spec.config["train"], "lr": 0.1}})
    with pytest.raises(ValueError, match=f"run\\(s\\) {spec.id} are stored .* different "
                                         f"config"):
        run_sweep([changed], tmp_path, data=tabular(), **QUIET)
    # another device or thread count is the same run: skipped, not refused
    moved = type(spec)(spec.id, spec.group, {**spec.config, "train": {
        **spec.config["train"], "threads": 2}})
    counting = CountingExecutor()
    run_sweep([moved], tmp_path, executor=counting, data=tabular(), **QUIET)
    assert counting.items == []


def test_a_bad_config_fails_before_anything_trains(tmp_path):
    good = tabular_spec(["y"])
    bad = type(good)("bad-run", "candidate", {**good.config, "train": {"learning_rate": 1}})
    counting = CountingExecutor()
    with pytest.raises(ValueError, match="run 'bad-run'.*train.learning_rate"):
        run_sweep([good, bad], tmp_path, executor=counting, data=tabular(), **QUIET)
    assert counting.items == []


def test_two_sweeps_on_one_folder_are_refused(tmp_path):
    with _sweep_lock(tmp_path):
        with pytest.raises(RuntimeError, match="another sweep .* is running on"):
            run_sweep([tabular_spec(["y"])], tmp_path, data=tabular(), **QUIET)
    counting = CountingExecutor()
    run_sweep([tabular_spec(["y"], epochs=1)], tmp_path, executor=counting, data=tabular(),
              **QUIET)
    assert len(counting.items) == 1  # the lock is free again
