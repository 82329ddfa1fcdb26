"""``taskgrouper bench``: the survey's protocol (Vandenhende et al. 2021, Sec. 4.1) end to end.

Fast tests plan without training (grid, table flags, names); the slow ones train a tiny
bench (2 tasks, 32x32 scenes, 16 training images, 1 epoch) and check bench.json, Delta_MTL
by hand, resume, skipped pairs, the grid choice, a diverging run and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskgrouper import balancing
from taskgrouper.balancing import BalancerInfo, Uniform
from taskgrouper.cli import main
from taskgrouper.config import BenchConfig, ConfigError, ExperimentConfig, parse_config
from taskgrouper.experiments.bench import choose_point, grid_points, plan_models, run_bench
from taskgrouper.models import arch as arch_module
from taskgrouper.models.arch import ArchInfo, build_hard_sharing
from taskgrouper.train.compat import incompatibility

# Stand-in rows, so the tests do not depend on which rows other modules have added:
# "twin" trains like hard_sharing but claims no shared parameters; "gradstandin" trains like
# uniform but claims to need per-task gradients; "pairwise" takes at most one task here.
TWIN = ArchInfo("twin", build_hard_sharing, shared_parameters=False,
                shared_representation=False)
SOLO = ArchInfo("solo", build_hard_sharing, max_tasks=1)
GRAD = BalancerInfo("gradstandin", Uniform, needs_task_grads=True)
REP = BalancerInfo("repstandin", Uniform, rep_only=True)


@pytest.fixture()
def tables(monkeypatch):
    """hard_sharing, twin, solo x uniform, fixed, gradstandin, repstandin (the real rows of
    hard_sharing, uniform and fixed, plus the stand-ins)."""
    import taskgrouper.models as models

    real_arch = {a.name: a for a in arch_module.ARCH_TABLE}
    real_bal = {b.name: b for b in balancing.BALANCERS}
    archs = (real_arch["hard_sharing"], TWIN, SOLO)
    bals = (real_bal["uniform"], real_bal["fixed"], GRAD, REP)
    monkeypatch.setattr(arch_module, "ARCH_TABLE", archs)
    monkeypatch.setattr(models, "ARCHITECTURES", tuple(a.name for a in archs))
    monkeypatch.setattr(balancing, "BALANCERS", bals)


# ------------------------------------------------------------------------------ planning


def test_grid_is_table_iv():
    config = ExperimentConfig.model_validate({"bench": {"grid": {
        "optimizer": ["sgd", "adam"], "batch_size": [6, 12],
        "lr": {"sgd": [1e-3, 5e-3, 1e-2, 5e-2], "adam": [1e-4, 5e-4]}}}})
    points = grid_points(config.train, config.bench.grid)
    # 2 batch sizes x (4 SGD rates + 2 Adam rates) = 12 settings, as the survey counts.
    assert len(points) == 12
    assert [p.label for p in points[:2]] == ["sgd bs6 lr0.001", "sgd bs6 lr0.005"]
    assert [p.label for p in points[-2:]] == ["adam bs12 lr0.0001", "adam bs12 lr0.0005"]
    # No grid: the train section's one point.
    plain = ExperimentConfig.model_validate({"train": {"optimizer": "sgd", "lr": 0.1,
                                                       "batch_size": 4}})
    assert [p.as_dict() for p in grid_points(plain.train, None)] == [
        {"optimizer": "sgd", "batch_size": 4, "lr": 0.1}]


def test_plan_skips_what_the_flags_forbid(tables):
    models, skipped = plan_models(BenchConfig(), n_tasks=2, spatial=True)
    # 3 x 4 = 12 pairs. solo takes 1 task < 2: all 4 of its pairs skipped; twin shares no
    # parameters and no representation: gradstandin and repstandin skipped. 12 - 6 = 6 trained.
    assert models == [("hard_sharing", "uniform"), ("hard_sharing", "fixed"),
                      ("hard_sharing", "gradstandin"), ("hard_sharing", "repstandin"),
                      ("twin", "uniform"), ("twin", "fixed")]
    reasons = {(s["architecture"], s["balancer"]): s["reason"] for s in skipped}
    assert len(reasons) == 6
    assert "per-task gradients" in reasons[("twin", "gradstandin")]
    assert "shared representation" in reasons[("twin", "repstandin")]
    assert "at most 1 tasks" in reasons[("solo", "uniform")]


def test_pairs_with_wildcards_give_the_table_v_layout(tables):
    bench = BenchConfig(architectures=["hard_sharing", "twin"],
                        pairs=[("*", "uniform"), ("hard_sharing", "*"), ("twin", "uniform")])
    models, skipped = plan_models(bench, n_tasks=2, spatial=True)
    # every listed architecture with uniform, every balancer with hard_sharing, no repeats
    assert models == [("hard_sharing", "uniform"), ("twin", "uniform"),
                      ("hard_sharing", "fixed"), ("hard_sharing", "gradstandin"),
                      ("hard_sharing", "repstandin")]
    assert skipped == []


def test_every_real_pair_is_planned_or_skipped():
    """Whatever rows the tables hold now: the plan partitions architectures x balancers."""
    archs = [a.name for a in arch_module.ARCH_TABLE]
    bals = [b.name for b in balancing.BALANCERS]
    for spatial in (True, False):
        models, skipped = plan_models(BenchConfig(), n_tasks=4, spatial=spatial)
        pairs = models + [(s["architecture"], s["balancer"]) for s in skipped]
        assert sorted(pairs) == sorted((a, b) for a in archs for b in bals)
        assert all(s["reason"] for s in skipped)
    assert ("hard_sharing", "uniform") in models


def test_incompatibility_reads_only_flags():
    hs = ArchInfo("hs", build_hard_sharing)
    assert incompatibility(hs, GRAD, 5, True) is None
    assert incompatibility(TWIN, BalancerInfo("u", Uniform), 5, True) is None
    assert incompatibility(ArchInfo("img", build_hard_sharing, spatial_only=True),
                           BalancerInfo("u", Uniform), 2, False) is not None


@pytest.mark.parametrize("section,needle", [
    ({"architectures": ["hard_sharin"]}, "did you mean 'hard_sharing'"),
    ({"balancers": ["unifrom"]}, "did you mean 'uniform'"),
    ({"pairs": [["*", "fixd"]]}, "did you mean 'fixed'"),
])
def test_unknown_names_name_the_closest(section, needle):
    with pytest.raises(ValueError, match=needle):
        plan_models(BenchConfig.model_validate(section), n_tasks=2, spatial=True)


def test_choose_point_takes_the_best_finished_point():
    points = [{"status": "done", "v": 1.0}, {"status": "failed"}, {"status": "done", "v": 3.0},
              {"status": "done", "v": 3.0}, {"status": "done", "v": None}]
    assert choose_point(points, lambda p: p.get("v"), higher=True) == 2  # first of the ties
    assert choose_point(points, lambda p: p.get("v"), higher=False) == 0
    # no score anywhere: the first finished point; nothing finished: None
    assert choose_point(points, lambda p: None, higher=True) == 0
    assert choose_point([{"status": "failed"}], lambda p: 1.0, higher=True) is None


def test_bench_section_rejects_unknown_keys_with_a_hint():
    with pytest.raises(ConfigError, match="bench.architecture'.*did you mean 'architectures'"):
        parse_config({"bench": {"architecture": ["hard_sharing"]}})
    with pytest.raises(ConfigError, match="did you mean 'adam'"):
        parse_config({"bench": {"grid": {"lr": {"adma": [0.1]}}}})
    with pytest.raises(ConfigError, match="bench.grid.batch_size"):
        parse_config({"bench": {"grid": {"batch_size": [0]}}})
    # the bench section never enters a run's identity (its id stays the same)
    config = parse_config({"bench": {"balancers": ["uniform"]}})
    assert "bench" not in config.model_dump()


# ------------------------------------------------------------------------------ end to end

TINY = {
    "data": {"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8, "resolution": 32,
             "cache": False},
    "tasks": ["s", "d"],
    "model": {"backbone": "xception", "width": 0.1},
    "balancer": {"name": "uniform", "weights": {"s": 3.0, "d": 1.0}},
    "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "threads": 1},
    "bench": {"architectures": ["hard_sharing", "twin"],
              "balancers": ["uniform", "fixed", "gradstandin"]},
}


def quiet(*_):
    pass


@pytest.fixture()
def tiny_bench(tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    results = run_bench(ExperimentConfig.model_validate(TINY), out, progress=False, log=quiet)
    return out, results


def _by_hand(model: dict, base: dict) -> float:
    """Eq. 10 over one headline metric per task (the default): s by mIoU (higher is better),
    d by RMSE (lower is better)."""
    terms = [(model["s"]["miou"] - base["s"]["miou"]) / base["s"]["miou"],
             -(model["d"]["rmse"] - base["d"]["rmse"]) / base["d"]["rmse"]]
    return 100.0 * sum(terms) / 2


def _by_hand_all(model: dict, base: dict) -> float:
    """Eq. 10 written out over every pair (bench.delta_metrics: all): s (miou, pixel_acc:
    higher is better) and d (l1, rmse, abs_rel: lower is better; delta1: higher is better)."""
    terms = [(model["s"]["miou"] - base["s"]["miou"]) / base["s"]["miou"],
             (model["s"]["pixel_acc"] - base["s"]["pixel_acc"]) / base["s"]["pixel_acc"],
             -(model["d"]["l1"] - base["d"]["l1"]) / base["d"]["l1"],
             -(model["d"]["rmse"] - base["d"]["rmse"]) / base["d"]["rmse"],
             -(model["d"]["abs_rel"] - base["d"]["abs_rel"]) / base["d"]["abs_rel"],
             (model["d"]["delta1"] - base["d"]["delta1"]) / base["d"]["delta1"]]
    return 100.0 * sum(terms) / 6


@pytest.mark.slow
def test_tiny_bench_end_to_end(tiny_bench, monkeypatch):
    from taskgrouper.runs.store import RunStore

    out, results = tiny_bench
    assert json.loads((out / "bench.json").read_text()) == results
    assert results["tasks"] == ["s", "d"]
    assert results["task_metrics"] == {"s": ["miou", "pixel_acc"],
                                       "d": ["rmse", "l1", "abs_rel", "delta1"]}
    assert results["delta_metrics"] == {"mode": "headline",
                                        "metrics": {"s": ["miou"], "d": ["rmse"]}}
    # 2 x 3 pairs, (twin, gradstandin) skipped with its reason, never trained
    pairs = [(r["architecture"], r["balancer"]) for r in results["rows"]]
    assert pairs == [("hard_sharing", "uniform"), ("hard_sharing", "fixed"),
                     ("hard_sharing", "gradstandin"), ("twin", "uniform"), ("twin", "fixed")]
    assert [(s["architecture"], s["balancer"]) for s in results["skipped"]] == [
        ("twin", "gradstandin")]
    assert "per-task gradients" in results["skipped"][0]["reason"]
    assert results["failed"] == []
    with RunStore(out / "runs.sqlite") as store:
        records = {r.id: r for r in store.records()}
    assert len(records) == 5 + 2  # models + one single-task network per task
    assert not any(r.config["model"]["architecture"] == "twin"
                   and r.config["balancer"]["name"] == "gradstandin" for r in records.values())

    # Delta_MTL of every row, by hand from the stored test metrics of its run and of the
    # single-task runs.
    base = {t: records[results["single_task"][t]["run_id"]].test[t] for t in ("s", "d")}
    assert records[results["single_task"]["s"]["run_id"]].tasks == ["s"]
    for row in results["rows"]:
        rec = records[row["run_id"]]
        assert rec.config["model"]["architecture"] == row["architecture"]
        assert rec.config["balancer"]["name"] == row["balancer"]
        assert row["delta_mtl"] == pytest.approx(_by_hand(rec.test, base), rel=1e-9)
        assert row["metrics"]["d"]["rmse"] == rec.test["d"]["rmse"]
        assert row["flops"] == 2 * rec.cost["macs"] and row["params"] == rec.cost["params"]
    # bench.delta_metrics: all re-scores the same runs over every (task, metric) pair
    config = json.loads(json.dumps(TINY))
    config["bench"] = {**config["bench"], "delta_metrics": "all"}
    every = run_bench(ExperimentConfig.model_validate(config), out, progress=False, log=quiet)
    assert every["delta_metrics"]["mode"] == "all"
    for row in every["rows"]:
        rec = records[row["run_id"]]
        assert row["delta_mtl"] == pytest.approx(_by_hand_all(rec.test, base), rel=1e-9)
    report = (out / "report.md").read_text()
    assert "every (task, metric) pair (bench.delta_metrics: all)" in report
    # The balancer weights go to `fixed` only (the one row with a weights option).
    fixed = next(r for r in results["rows"] if r["balancer"] == "fixed")
    assert records[fixed["run_id"]].config["balancer"]["weights"] == {"s": 3.0, "d": 1.0}
    uniform = results["rows"][0]
    assert records[uniform["run_id"]].config["balancer"]["weights"] is None
    log = json.loads((out / "runs" / fixed["run_id"] / "log.json").read_text())
    # Fixed: w_t / T = 3/2 for s and 1/2 for d
    assert log["epochs"][0]["weights"] == pytest.approx({"s": 1.5, "d": 0.5})

    # The report: Table V and the profile, in both files.
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "Table V" in md and "| hard_sharing | fixed |" in md and "ΔMTL (%) ↑" in md
    assert "s miou ↑" in md and "d rmse ↓" in md
    assert "per-task gradients" in md  # the skipped pair and its reason
    assert "data:image/png;base64," in html and "hard_sharing" in html
    assert (out / "figures" / "bench_profile.png").is_file()
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0  # `taskgrouper report` renders a bench folder
    assert (out / "report.md").read_text() == md

    # A second call trains nothing and gives the same bench.json.
    from taskgrouper.train import trainer

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trainer, "train", no_training)
    again = run_bench(ExperimentConfig.model_validate(TINY), out, progress=False, log=quiet)
    assert again == results


@pytest.mark.slow
def test_grid_picks_by_validation_and_survives_a_diverging_run(tmp_path):
    config = json.loads(json.dumps(TINY))
    config["bench"] = {"pairs": [["hard_sharing", "uniform"]],
                       "grid": {"optimizer": ["adam"], "lr": [1e-3, 1e-2, 1e30]}}
    results = run_bench(ExperimentConfig.model_validate(config), tmp_path, progress=False,
                        log=quiet)
    (row,) = results["rows"]
    points = row["grid"]["points"]
    assert [p["lr"] for p in points] == [1e-3, 1e-2, 1e30]
    # lr 1e30 diverges in the model and in both single-task runs: three failed runs, each
    # with its message; everything else finished.
    assert points[2]["status"] == "failed" and "NaN" in points[2]["error"]
    assert len(results["failed"]) == 3
    assert all("NaN" in f["error"] and f["grid"]["lr"] == 1e30 for f in results["failed"])
    # The chosen point is the finished one with the best validation Delta_MTL, recomputed by
    # hand against the single-task networks' validation metrics.
    single = results["single_task"]
    base_val = {t: single[t]["val_metrics"][t] for t in ("s", "d")}
    val = [_by_hand(p["val_metrics"], base_val) for p in points[:2]]
    assert [p["val_delta_mtl"] for p in points[:2]] == pytest.approx(val, rel=1e-9)
    best = 0 if val[0] >= val[1] else 1
    assert row["grid"]["chosen"]["lr"] == points[best]["lr"]
    assert [p["chosen"] for p in points] == [best == 0, best == 1, False]
    assert row["delta_mtl"] == points[best]["delta_mtl"]
    assert row["val_delta_mtl"] == pytest.approx(max(val))
    # Each single-task baseline is its lowest-validation-loss finished point.
    for t in ("s", "d"):
        grid = single[t]["grid"]["points"]
        losses = [p["val_losses"][t] for p in grid[:2]]
        assert single[t]["grid"]["chosen"]["lr"] == grid[losses.index(min(losses))]["lr"]
    md = (tmp_path / "report.md").read_text()
    assert "Grid search" in md and "Failed runs" in md


def test_cli_bad_bench_names_exit_2(tmp_path, capsys):
    for section, needle in (({"architectures": ["hard_sharin"]}, "'hard_sharing'"),
                            ({"balancers": ["unifrom"]}, "'uniform'")):
        config = {**TINY, "bench": section}
        path = tmp_path / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        assert main(["bench", str(path), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert needle in err and "bench." in err and "Traceback" not in err
    assert not (tmp_path / "out" / "runs.sqlite").exists()  # failed before anything ran


def test_example_bench_config_plans_the_survey_layout():
    from taskgrouper.config import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "bench_synthetic.yaml")
    models, skipped = plan_models(config.bench, n_tasks=len(config.tasks), spatial=True)
    archs = [a.name for a in arch_module.ARCH_TABLE]
    bals = [b.name for b in balancing.BALANCERS]
    planned = set(models) | {(s["architecture"], s["balancer"]) for s in skipped}
    assert planned == {(a, "uniform") for a in archs} | {("hard_sharing", b) for b in bals}
    assert config.data.resolution == 32 and config.tasks == ["s", "d", "n", "e"]


def test_run_config_gives_each_row_its_own_options():
    from taskgrouper.experiments.bench import GridPoint, _run_config

    config = ExperimentConfig.model_validate({
        "model": {"architecture": "twin", "options": {"a": 1}},
        "balancer": {"name": "gradstandin", "options": {"beta": 0.5},
                     "weights": {"s": 2.0, "n": 4.0}},
        "bench": {"model_options": {"hard_sharing": {"b": 2}, "twin": {"c": 3}},
                  "balancer_options": {"fixed": {"k": 1}}}})
    base = config.model_dump(mode="json")
    point = GridPoint("sgd", 6, 0.01)
    twin = _run_config(base, config, ["s", "d"], "twin", "uniform", point)
    # model.options belong to model.architecture; bench.model_options add to any row
    assert twin["model"] == {**base["model"], "architecture": "twin",
                             "options": {"a": 1, "c": 3}}
    assert twin["balancer"] == {"name": "uniform", "weights": None, "options": {}}
    assert twin["train"]["optimizer"] == "sgd" and twin["train"]["batch_size"] == 6
    assert twin["train"]["lr"] == 0.01 and "bench" not in twin
    hs = _run_config(base, config, ["s", "d"], "hard_sharing", "fixed", point)
    assert hs["model"]["options"] == {"b": 2}
    # the weights go to balancers with a weights option, for the run's own tasks only
    assert hs["balancer"] == {"name": "fixed", "weights": {"s": 2.0}, "options": {"k": 1}}


def test_bench_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, taskgrouper.experiments.bench, taskgrouper.report.bench\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_delta_mtl_over_headline_metrics_by_hand():
    from taskgrouper.evaluate.metrics import delta_mtl
    from taskgrouper.experiments.bench import delta_metrics

    task_metrics = {"s": ["miou", "pixel_acc"], "d": ["rmse", "l1"]}
    base = {"s": {"miou": 0.50, "pixel_acc": 0.80}, "d": {"rmse": 1.0, "l1": 0.5}}
    model = {"s": {"miou": 0.55, "pixel_acc": 0.80}, "d": {"rmse": 0.9, "l1": 0.6}}
    # headline: s mIoU (0.55 - 0.50) / 0.50 = +10%; d RMSE, lower is better:
    # -(0.9 - 1.0) / 1.0 = +10%; mean of the two: +10%
    head = delta_metrics(task_metrics)
    assert head == {"s": ["miou"], "d": ["rmse"]}
    assert delta_mtl(model, base, metrics=head) == pytest.approx(10.0)
    # all four pairs: +10% (mIoU), 0% (pixel acc), +10% (RMSE), -(0.6 - 0.5) / 0.5 = -20%
    # (L1): mean 0%: the extra depth metric cancels what the headline metrics show
    assert delta_mtl(model, base, metrics=delta_metrics(task_metrics, "all")) == \
        pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="headline"):
        delta_metrics(task_metrics, "some")


@pytest.mark.slow
def test_seeds_repeat_the_chosen_point_and_cross_stitch_starts_from_single_task(tmp_path,
                                                                                monkeypatch):
    """bench.seeds: 2 with a two-point grid: the first seed trains every point, the second only
    the chosen ones; cross-stitch starts from the single-task runs of its own seed and point;
    Delta_MTL is the mean of the per-seed values, each against the same seed's single-task
    networks, with the Student-t interval worked by hand."""
    from taskgrouper.runs.store import RunStore

    config = json.loads(json.dumps(TINY))
    config["bench"] = {"pairs": [["hard_sharing", "uniform"], ["cross_stitch", "uniform"]],
                       "grid": {"optimizer": ["adam"], "lr": [1e-3, 3e-3]}, "seeds": 2}
    results = run_bench(ExperimentConfig.model_validate(config), tmp_path, progress=False,
                        log=quiet)
    assert results["seeds"] == [0, 1] and results["failed"] == []
    with RunStore(tmp_path / "runs.sqlite") as store:
        records = {r.id: r for r in store.records()}
    # seed 0: 2 tasks x 2 points + 2 models x 2 points = 8 runs; seed 1: each task's and each
    # model's chosen point (2 + 2), plus the single-task runs cross-stitch's chosen point
    # starts from where they differ from the tasks' chosen points (0 to 2)
    seed1 = [r for r in records.values() if r.config["train"]["seed"] == 1]
    single_lr = {t: results["single_task"][t]["grid"]["chosen"]["lr"] for t in ("s", "d")}
    stitch_lr = next(r["grid"]["chosen"]["lr"] for r in results["rows"]
                     if r["architecture"] == "cross_stitch")
    sources = sum(single_lr[t] != stitch_lr for t in ("s", "d"))
    assert sum(r.config["train"]["seed"] == 0 for r in records.values()) == 8
    assert len(seed1) == 2 + 2 + sources
    assert all(r.config["train"]["lr"] == single_lr[r.config["tasks"][0]] or
               r.config["train"]["lr"] == stitch_lr for r in seed1)

    for row in results["rows"]:
        per_seed = row["seeds"]
        assert [e["seed"] for e in per_seed] == [0, 1]
        for e in per_seed:
            rec = records[e["run_id"]]
            assert rec.config["train"]["seed"] == e["seed"]
            assert rec.config["train"]["lr"] == row["grid"]["chosen"]["lr"]
            base = {t: records[next(s["run_id"] for s in results["single_task"][t]["seeds"]
                                    if s["seed"] == e["seed"])].test[t] for t in ("s", "d")}
            assert e["delta_mtl"] == pytest.approx(_by_hand(rec.test, base), rel=1e-9)
            options = rec.config["model"]["options"]
            if row["architecture"] == "cross_stitch":
                # the single-task runs of the same seed and learning rate, by folder
                for t, folder in options["pretrained"].items():
                    source = records[Path(folder).name]
                    assert source.config["tasks"] == [t]
                    assert source.config["train"]["seed"] == e["seed"]
                    assert source.config["train"]["lr"] == rec.config["train"]["lr"]
            else:
                assert "pretrained" not in options
        d0, d1 = (e["delta_mtl"] for e in per_seed)
        # mean of two, and half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * |d0 - d1| / 2
        assert row["delta_mtl"] == pytest.approx((d0 + d1) / 2, rel=1e-12)
        assert row["delta_interval"]["half_width"] == pytest.approx(
            12.7062 * abs(d0 - d1) / 2, rel=1e-4)
        # the reported metrics are the seeds' means
        assert row["metrics"]["d"]["rmse"] == pytest.approx(
            sum(records[e["run_id"]].test["d"]["rmse"] for e in per_seed) / 2, rel=1e-12)
    md = (tmp_path / "report.md").read_text()
    assert "±" in md  # Table V shows the interval

    from taskgrouper.train import trainer

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(trainer, "train", no_training)
    assert run_bench(ExperimentConfig.model_validate(config), tmp_path, progress=False,
                     log=quiet) == results
