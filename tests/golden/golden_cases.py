"""Numbers the renovation must not change: each case runs a public entry point with a fixed
seed and returns the numbers it produced, with run times and paths left out.

``python tests/golden/golden_cases.py record`` wrote ``values/*.json`` from the code before the
drivers moved to ``taskgrouper.experiments``; ``test_golden.py`` runs the same cases and
compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
VALUES = HERE / "values"
STANDLEY = HERE.parent / "fixtures" / "standley2020"

#: Keys whose values are times, places or versions, not results (``compute_fraction`` is a
#: ratio of wall seconds).
_VOLATILE = {"wall_s", "finished_at", "seconds", "s_per_epoch", "dataset", "title", "path",
             "out", "source", "seconds_per_epoch", "wall_seconds", "time", "elapsed",
             "compute_fraction"}


def numbers(obj):
    """``obj`` without volatile keys, floats rounded to 10 significant digits."""
    if isinstance(obj, dict):
        return {str(k): numbers(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, (list, tuple)):
        return [numbers(v) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.10g}")
    return obj


SETTINGS = {"1": ("results.txt", "results_test.txt"),
            "2": ("results_alt.txt", "results_alt_test.txt"),
            "3": ("results_large.txt", "results_large_test.txt"),
            "4": ("results_small_data.txt", "results_small_data_test.txt")}


def standley() -> dict:
    """Exact selection and HOA on the four released settings, nine budgets each."""
    from taskgrouper.grouping.api import select_table

    out = {}
    for key, (val, test) in SETTINGS.items():
        for hoa in (False, True):
            result = select_table(STANDLEY / val, fmt="standley",
                                  budgets=[1 + 0.5 * k for k in range(9)],
                                  test_path=STANDLEY / test, hoa=hoa)
            out[f"{key}{'-hoa' if hoa else ''}"] = result["selections"]
    return numbers(out)


def _tabular(root: Path) -> Path:
    """Three regression tasks and one classification task over 6 features (fixed seed)."""
    rng = np.random.default_rng(7)
    tasks = {"a": {"kind": "regression"}, "b": {"kind": "regression"},
             "c": {"kind": "regression"}, "k": {"kind": "classification", "classes": 3}}
    (root).mkdir(parents=True, exist_ok=True)
    (root / "tasks.yaml").write_text(yaml.safe_dump({"tasks": tasks}))
    w = rng.normal(size=(6, 3))
    for split, n in (("train", 96), ("val", 48), ("test", 48)):
        (root / split).mkdir(exist_ok=True)
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = np.tanh(x @ w) + 0.2 * rng.normal(size=(n, 3))
        np.save(root / split / "x.npy", x)
        for j, name in enumerate("abc"):
            np.save(root / split / f"{name}.npy", y[:, j].astype(np.float32))
        np.save(root / split / "k.npy", (np.digitize(x[:, 0] + x[:, 1], [-0.5, 0.5])
                                         .astype(np.int64)))
    return root


def search(tmp: Path) -> dict:
    """Every strategy and baseline on a small tabular problem (tiny MLPs, CPU)."""
    from taskgrouper.config import parse_config

    data = _tabular(tmp / "data")
    config = parse_config({
        "data": {"kind": "arrays", "path": str(data)},
        "model": {"backbone": "mlp", "width": 1.0, "hidden": [16]},
        "train": {"epochs": 4, "batch_size": 16, "device": "cpu", "seed": 0, "lr": 0.01},
        "search": {"strategy": "exhaustive,esa,hoa,lookahead,gradcos", "budgets": "1:3:0.5",
                   "random_trials": 50, "esa_fraction": 0.5, "affinity_every": 2}})
    import taskgrouper as tg

    results = tg.search(config, tmp / "sweep", workers=1, progress=False, log=lambda _: None)
    return numbers(results)


def bench(tmp: Path) -> dict:
    """A small bench on the synthetic scenes: four models against the single-task networks."""
    from taskgrouper.config import parse_config

    config = parse_config({
        "data": {"kind": "synthetic", "n_train": 24, "n_val": 8, "n_test": 8, "resolution": 32,
                 "cache": False},
        "tasks": ["s", "d"],
        "model": {"backbone": "xception", "width": 0.2},
        "train": {"epochs": 1, "batch_size": 8, "device": "cpu", "seed": 0},
        # every (task, metric) pair, as Delta_MTL was computed when the values were recorded
        "bench": {"pairs": [["hard_sharing", "uniform"], ["mtan", "uniform"],
                            ["hard_sharing", "pcgrad"], ["hard_sharing", "dwa"]],
                  "delta_metrics": "all"}})
    import taskgrouper as tg

    results = tg.run_bench(config, tmp / "bench", workers=1, progress=False,
                           log=lambda _: None)
    return numbers(results)


CASES = {"standley": standley, "search": search, "bench": bench}


def run(name: str, tmp: Path) -> dict:
    case = CASES[name]
    return case() if name == "standley" else case(tmp)


if __name__ == "__main__" and sys.argv[1:2] == ["run"]:  # one case, in a fresh process
    _, _, name, tmp, out = sys.argv
    Path(out).write_text(json.dumps(run(name, Path(tmp))))

if __name__ == "__main__" and sys.argv[1:2] == ["record"]:
    import tempfile
    import time

    VALUES.mkdir(exist_ok=True)
    for name in sys.argv[2:] or CASES:
        start = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            value = run(name, Path(tmp))
        (VALUES / f"{name}.json").write_text(json.dumps(value, indent=1, sort_keys=True))
        print(f"{name}: {time.time() - start:.1f}s")
