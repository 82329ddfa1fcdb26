"""Seed noise against effect in the full demo: can three seeds tell the grouping from the
independent networks, and does a change of training settings help?

At its top budgets the full demo's exhaustive choice serves segmentation from ``sne`` and depth
from ``dne`` where the independent baseline fields ``s`` and ``d`` alone (normals, keypoints
and edges come from the same networks in both, which cancel when paired by seed). So the paired
difference is, up to the assignment, ``s(sne) + d(dne) - s(s) - d(d)``. This trains those four
full-width networks with ``--seeds`` seeds (default 8) under the demo's settings and under
each variant, and prints per variant the mean and spread of each, the mean paired difference
and its standard deviation, and the ratio a 3-seed paired t-interval must exceed to exclude
zero (t = 4.30; with 8 seeds, 2.36).

    .venv/bin/python bench/bench_demo_noise.py                 # every variant (about 25 min)
    .venv/bin/python bench/bench_demo_noise.py --variants demo,rooms_1200 --seeds 4

Writes ``bench/results/demo_noise.json`` (the per-run test losses and the summary).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics as st
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "demo_noise.json"
GROUPS = ("s", "sne", "d", "dne")

#: Changes to the demo's settings, each a dict of "section.key": value.
VARIANTS: dict[str, dict] = {
    "demo": {},
    "lr_0.002": {"train.lr": 0.002},
    "patience_8": {"train.patience": 8},
    "rooms_1200": {"data.n_train": 1200},
}


def _train(job: tuple) -> tuple:
    import torch

    torch.set_num_threads(1)
    import taskgrouper as tg
    from taskgrouper.config import ExperimentConfig
    from taskgrouper.experiments.demo import DEMO

    group, seed, over, out = job
    cfg = copy.deepcopy(DEMO)
    cfg.pop("search")
    for key, value in over.items():
        section, name = key.split(".")
        cfg[section] = {**cfg[section], name: value}
    cfg["tasks"] = list(group)
    cfg["train"] = {**cfg["train"], "seed": seed}
    start = time.perf_counter()
    result = tg.train(ExperimentConfig.model_validate(cfg), out)
    return (group, seed, {t: m["loss"] for t, m in result.test.items()}, result.best_epoch,
            time.perf_counter() - start)


def summarise(rows: list) -> dict:
    """Means, spreads and the paired difference of the four networks' test losses."""
    loss = {(g, s): test for g, s, test, _, _ in rows}
    seeds = sorted({s for _, s, _, _, _ in rows})
    out: dict = {"seeds": len(seeds), "run_seconds": sum(r[4] for r in rows),
                 "best_epochs": {g: [r[3] for r in rows if r[0] == g] for g in GROUPS}}
    for task in ("s", "d"):
        alone = [loss[(task, s)][task] for s in seeds]
        shared = [loss[(task + "ne", s)][task] for s in seeds]
        diff = [a - b for a, b in zip(shared, alone, strict=True)]
        out[task] = {"alone_mean": st.mean(alone), "alone_sd": st.stdev(alone),
                     "shared_mean": st.mean(shared), "shared_sd": st.stdev(shared),
                     "diff_mean": st.mean(diff), "diff_sd": st.stdev(diff)}
    total = [loss[("sne", s)]["s"] + loss[("dne", s)]["d"] - loss[("s", s)]["s"]
             - loss[("d", s)]["d"] for s in seeds]
    mean, sd = st.mean(total), st.stdev(total)
    out["paired"] = {"mean": mean, "sd": sd,
                     "t_ratio_3_seeds": abs(mean) / (sd / 3 ** 0.5),
                     "t_ratio_all_seeds": abs(mean) / (sd / len(seeds) ** 0.5)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or args.seeds < 2:
        ap.error(f"unknown variants {unknown}" if unknown else "--seeds must be at least 2")
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp, get_context("fork").Pool(args.workers) as pool:
        for name in names:
            jobs = [(g, s, VARIANTS[name], str(Path(tmp) / name / f"{g}-{s}"))
                    for s in range(args.seeds) for g in GROUPS]
            rows = pool.map(_train, jobs, chunksize=1)
            summary = summarise(rows)
            report[name] = {"settings": VARIANTS[name], "runs": rows, "summary": summary}
            s, d, p = summary["s"], summary["d"], summary["paired"]
            print(f"{name}: s alone {s['alone_mean']:.4f} sd {s['alone_sd']:.4f}, in sne "
                  f"{s['shared_mean']:.4f} sd {s['shared_sd']:.4f}; d alone "
                  f"{d['alone_mean']:.4f} sd {d['alone_sd']:.4f}, in dne {d['shared_mean']:.4f}"
                  f" sd {d['shared_sd']:.4f}; paired s+d {p['mean']:+.4f} sd {p['sd']:.4f}, "
                  f"mean over its standard error {p['t_ratio_3_seeds']:.2f} with 3 seeds at this "
                  f"spread (needs 4.30), {p['t_ratio_all_seeds']:.2f} with "
                  f"{summary['seeds']}", flush=True)
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
