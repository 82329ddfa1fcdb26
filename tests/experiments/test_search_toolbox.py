"""The toolbox inside the grouping framework: any architecture and balancer for the candidate
networks, and the all-task MGDA-UB network as a baseline (Standley et al. 2020, Sec. 4.3)."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import numpy as np
import pytest

from taskgrouper import balancing
from taskgrouper.balancing import BalancerInfo, Uniform
from taskgrouper.config import ExperimentConfig
from taskgrouper.grouping.candidates import baseline_candidates, search_candidates
from taskgrouper.models import arch as arch_module
from taskgrouper.models.arch import ArchInfo, build_hard_sharing

# the module, not the package's lazily bound search() function of the same name
search_module = importlib.import_module("taskgrouper.experiments.search")

#: A stand-in for the MGDA-UB row (trains like uniform; the flags are the real one's).
MGDA_STANDIN = BalancerInfo("mgda_ub", Uniform, needs_task_grads=True, supports_rep_grad=True,
                            rep_only=True)


@pytest.fixture()
def with_mgda(monkeypatch):
    rows = tuple(b for b in balancing.BALANCERS if b.name != "mgda_ub") + (MGDA_STANDIN,)
    monkeypatch.setattr(balancing, "BALANCERS", rows)


@pytest.fixture()
def without_mgda(monkeypatch):
    monkeypatch.setattr(balancing, "BALANCERS",
                        tuple(b for b in balancing.BALANCERS if b.name != "mgda_ub"))


def _config(**changes) -> ExperimentConfig:
    raw = {"data": {"kind": "synthetic", "resolution": 32}, "tasks": ["s", "d", "n"],
           "model": {"architecture": "hard_sharing", "width": 0.7},
           "balancer": {"name": "fixed", "weights": {"s": 2.0, "n": 0.5}},
           "train": {"epochs": 2, "optimizer": "sgd", "lr": 0.05}}
    raw.update(changes)
    return ExperimentConfig.model_validate(raw)


def test_model_and_balancer_flow_into_every_candidate_run():
    config = _config()
    tasks = ["s", "d", "n"]
    base = config.model_dump(mode="json")
    cands = [(c, None, "candidate") for c in search_candidates(tasks)]
    cands += [(c, None, "baseline") for c in baseline_candidates(tasks)]
    specs = search_module._specs(base, cands)
    assert len(specs) == 7 + 3 + 9  # subsets at width 1, singles at 1/2, singles at 1/5..1/3
    for spec in specs:
        cfg = spec.config
        assert cfg["model"]["architecture"] == "hard_sharing"
        assert cfg["model"]["options"] == {}
        assert cfg["balancer"]["name"] == "fixed"
        # the weights of the run's own tasks only (Fixed rejects weights of other tasks)
        expected = {t: w for t, w in {"s": 2.0, "n": 0.5}.items() if t in cfg["tasks"]}
        assert cfg["balancer"]["weights"] == (expected or None)
        assert cfg["train"]["optimizer"] == "sgd" and cfg["train"]["lr"] == 0.05
        assert "search" not in cfg
        ExperimentConfig.model_validate(cfg)  # every run config is valid as it stands
    by_id = {s.id: s.config for s in specs}
    assert by_id["sn"]["balancer"]["weights"] == {"s": 2.0, "n": 0.5}
    assert by_id["d"]["balancer"]["weights"] is None
    assert by_id["s-w0.5"]["model"]["width"] == 0.5


def test_mgda_baseline_run_needs_the_row(with_mgda):
    config = _config()
    base = config.model_dump(mode="json")
    spec, wide = search_module._mgda_specs(base, config, ["s", "d", "n"], True, [1.0, 2.0],
                                           print)
    assert spec.id == "sdn-mgda_ub" and spec.group == "baseline"
    assert spec.config["tasks"] == ["s", "d", "n"] and spec.config["model"]["width"] == 1.0
    # one run per all-task width: the paper's baselines at several encoder sizes
    assert wide.id == "sdn-w2-mgda_ub" and wide.config["model"]["width"] == 2.0
    assert spec.config["balancer"] == {"name": "mgda_ub", "weights": None, "options": {}}
    # everything else as the experiment
    assert spec.config["train"] == base["train"]
    assert spec.config["model"]["architecture"] == "hard_sharing"


def test_no_mgda_baseline_without_the_row_or_a_shared_representation(without_mgda,
                                                                      monkeypatch):
    config = _config()
    base = config.model_dump(mode="json")
    assert search_module._mgda_specs(base, config, ["s", "d"], True, [1.0], print) == []
    monkeypatch.setattr(balancing, "BALANCERS", balancing.BALANCERS + (MGDA_STANDIN,))
    lonely = ArchInfo("lonely", build_hard_sharing, shared_representation=False)
    monkeypatch.setattr(arch_module, "ARCH_TABLE", arch_module.ARCH_TABLE + (lonely,))
    said = []
    config = _config(model={"architecture": "lonely"})
    assert search_module._mgda_specs(base, config, ["s", "d"], True, [1.0],
                                     said.append) == []
    assert "shared representation" in said[0]


def test_mgda_baseline_at_every_budget():
    full = {"sd": SimpleNamespace(tasks=["s", "d"], width=1.0, val_losses={"s": 1.0, "d": 2.0},
                                  test_losses={"s": 1.5, "d": 2.5}),
            "s": SimpleNamespace(tasks=["s"], width=1.0, val_losses={"s": 0.9},
                                 test_losses={"s": 1.1}),
            "d": SimpleNamespace(tasks=["d"], width=1.0, val_losses={"d": 1.8},
                                 test_losses={"d": 2.1})}
    mgda = SimpleNamespace(id="sd-mgda_ub", width=1.0, val_losses={"s": 1.2, "d": 1.9},
                           test_losses={"s": 1.3, "d": 2.2})
    # the same network at width 2: better on validation (2.9 < 3.1), fielded from budget 2
    wide = SimpleNamespace(id="sd-w2-mgda_ub", width=2.0, val_losses={"s": 1.1, "d": 1.8},
                           test_losses={"s": 1.2, "d": 2.0})
    out = search_module._baselines(["s", "d"], [0.5, 1.0, 2.0], full, [], 10, [mgda, wide])
    entries = out["mgda_ub"]
    assert entries[0]["networks"] == [] and "below" in entries[0]["error"]
    # budget 1: only width 1 fits: 1.3 + 2.2 = 3.5 on test, 3.1 on validation
    assert entries[1]["networks"] == ["sd-mgda_ub"]
    assert entries[1]["test_total"] == pytest.approx(3.5)
    assert entries[1]["val_total"] == pytest.approx(3.1)
    # budget 2: the wider one: 1.2 + 2.0 = 3.2
    assert entries[2]["networks"] == ["sd-w2-mgda_ub"]
    assert entries[2]["test_total"] == pytest.approx(3.2)
    assert "mgda_ub" not in search_module._baselines(["s", "d"], [1.0], full, [], 10)


def _tabular(root, seed: int = 0):
    """Two tasks over 8 features: y = x0 + 2 x1 (regression) and c = [x2 > 0] (2 classes)."""
    from taskgrouper.data.arrays import save_arrays
    from taskgrouper.data.base import MultiTaskData, Split
    from taskgrouper.tasks import TaskSpec

    rng = np.random.default_rng(seed)

    def split(size):
        x = rng.normal(size=(size, 8)).astype(np.float32)
        return Split(x, {"y": (x[:, 0] + 2 * x[:, 1]).astype(np.float32),
                         "c": (x[:, 2] > 0).astype(np.int64)})

    data = MultiTaskData({"y": TaskSpec("y", "regression"),
                          "c": TaskSpec("c", "classification", 2)},
                         split(64), split(32), split(32), name="tabular")
    return save_arrays(data, root)


@pytest.mark.slow
def test_search_trains_candidates_with_the_configured_balancer_and_mgda(tmp_path, with_mgda):
    from taskgrouper.runs.store import RunStore

    root = _tabular(tmp_path / "data")
    config = ExperimentConfig.model_validate({
        "data": {"kind": "arrays", "path": str(root)}, "tasks": ["y", "c"],
        "model": {"backbone": "mlp"},
        "balancer": {"name": "fixed", "weights": {"y": 3.0}},
        "train": {"epochs": 1, "batch_size": 32, "device": "cpu", "threads": 1},
        "search": {"strategy": "exhaustive", "budgets": "0.5:1.5:0.5", "random_trials": 5}})
    out = tmp_path / "search"
    results = search_module.search(config, out, progress=False, log=lambda *_: None)
    with RunStore(out / "runs.sqlite") as store:
        records = {r.id: r for r in store.records()}
    mgda = records.pop("yc-mgda_ub")
    assert mgda.config["balancer"]["name"] == "mgda_ub" and mgda.tasks == ["y", "c"]
    for rid, rec in records.items():
        assert rec.config["balancer"]["name"] == "fixed", rid
        log = json.loads((out / "runs" / rid / "log.json").read_text())
        weights = log["epochs"][0]["weights"]
        # Fixed: w_t / T with w_y = 3 and w_c = 1 (unnamed): {y: 1.5, c: 0.5} for the pair,
        # {y: 3.0} and {c: 1.0} alone.
        expected = {"y": 3.0, "c": 1.0}
        assert weights == pytest.approx({t: expected[t] / len(rec.tasks) for t in rec.tasks})
    entries = results["baselines"]["mgda_ub"]
    assert [e["budget"] for e in entries] == [0.5, 1.0, 1.5]
    assert entries[0]["networks"] == []
    assert entries[1]["test_total"] == pytest.approx(sum(mgda.test_losses.values()))
    assert "All-in-one (MGDA-UB)" in (out / "report.md").read_text()


def test_all_task_baseline_widths():
    # by default 1 and every whole-number budget above it: budgets 1, 1.5, ..., 5 -> 1..5
    config = _config()
    budgets = [1.0 + 0.5 * k for k in range(9)]
    assert search_module.all_task_widths(config, budgets) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert search_module.all_task_widths(config, [0.5, 1.5]) == [1.0]
    # or as configured, once each, ascending
    config = _config(search={"baseline_widths": [2, 1, 2]})
    assert search_module.all_task_widths(config, budgets) == [1.0, 2.0]
