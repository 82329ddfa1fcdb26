"""Is a demo regime one where the comparisons mean something? Measure it before adopting it.

For a candidate setting of the embedded demo (scenes, network size, schedule; the defaults are
the demo's own), trains one run
at a time on one thread, as the demo's workers do, and prints:

- per task: the single-task network's test loss at width 1 and 1/5 (does a larger network
  predict better?), the epoch of its best validation loss and why it stopped (converged, or the
  epoch cap?), and seconds per run;
- segmentation's mIoU against the majority-class predictor's;
- the pair effects (Table 1 of Standley et al.): each task's loss in every two-task network
  against its single-task loss, in percent (negative: the partner helps);
- the all-task network against the single-task networks;
- the demo's wall time this regime implies: the runs a search with 3 seeds trains (the
  candidate set, ESA, the baselines and the seed repeats) times the mean run time, over the
  workers.

    .venv/bin/python bench/bench_demo_regime.py --tasks s,d,n,k,e        # the demo's regime
    .venv/bin/python bench/bench_demo_regime.py --scale 0.5 --n-train 600   # a variant

Writes ``bench/results/demo_regime.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import tempfile
import time
from pathlib import Path

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.grouping.candidates import baseline_candidates, search_candidates
from taskgrouper.train import train

OUT = Path(__file__).resolve().parent / "results" / "demo_regime.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="s,d,n")
    ap.add_argument("--backbone", default="shallow")
    ap.add_argument("--scale", type=float, default=0.4)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--fov", type=float, default=35.0)
    ap.add_argument("--objects", default="2:4", help="MIN:MAX objects a scene")
    ap.add_argument("--texture", type=float, default=0.3)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.004)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="for the wall-time estimate")
    ap.add_argument("--no-pairs", action="store_true", help="skip the two-task networks")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    lo, hi = (int(v) for v in args.objects.split(":"))
    data_section = {"kind": "synthetic", "n_train": args.n_train, "n_val": 100, "n_test": 200,
                    "resolution": args.resolution, "seed": 0, "fov_deg": args.fov,
                    "min_objects": lo, "max_objects": hi, "texture_strength": args.texture}
    data = load_dataset(parse_config({"data": data_section}).data, tasks)

    def run(group, width):
        cfg = parse_config({
            "data": data_section, "tasks": list(group),
            "model": {"backbone": args.backbone, "width": width, "scale": args.scale},
            "train": {"epochs": args.epochs, "batch_size": args.batch, "lr": args.lr,
                      "patience": args.patience, "min_lr": args.lr / 8, "threads": 1,
                      "device": "cpu", "seed": 0}})
        start = time.perf_counter()
        r = train(cfg, Path(tempfile.mkdtemp()), data=data, progress=False,
                  log=lambda *_: None)
        seconds = time.perf_counter() - start
        out = {"tasks": list(group), "width": width, "seconds": seconds,
               "best_epoch": r.best_epoch, "epochs_run": r.epochs_run,
               "stopped": r.extra["stopped"], "test": r.test_losses, "metrics": r.test,
               "constant": r.constant_test}
        print(f"{'+'.join(group):<10} w{width:<4g} {seconds:6.1f}s  best epoch "
              f"{r.best_epoch:>2} of {r.epochs_run:>2} ({r.extra['stopped']})  "
              + "  ".join(f"{t} {v:.4f}" for t, v in r.test_losses.items()), flush=True)
        return out

    runs = [run((t,), w) for t in tasks for w in (1.0, 0.2)]
    pairs = [] if args.no_pairs else [run(p, 1.0) for p in itertools.combinations(tasks, 2)]
    everything = run(tuple(tasks), 1.0)
    single = {r["tasks"][0]: r for r in runs if r["width"] == 1.0}
    fifth = {r["tasks"][0]: r for r in runs if r["width"] == 0.2}

    print("\nwidth: test loss at width 1/5 against width 1 (positive: the larger net is better)")
    for t in tasks:
        print(f"  {t}: {100 * (fifth[t]['test'][t] / single[t]['test'][t] - 1):+.1f}%")
    if "s" in tasks:
        miou, const = single["s"]["metrics"]["s"]["miou"], single["s"]["constant"]["s"]["miou"]
        print(f"segmentation mIoU {miou:.3f} against the majority class's {const:.3f} "
              f"({miou / const:.2f}x)")
    print("pair effects: task loss in the pair against alone (negative: the partner helps)")
    for p in pairs:
        cells = [f"{t} {100 * (p['test'][t] / single[t]['test'][t] - 1):+.1f}%"
                 for t in p["tasks"]]
        print(f"  {'+'.join(p['tasks'])}: " + ", ".join(cells))
    print("all-task network against alone: " + ", ".join(
        f"{t} {100 * (everything['test'][t] / single[t]['test'][t] - 1):+.1f}%" for t in tasks))

    # what a demo with 3 seeds trains: C0 + the smaller singles, ESA (a fifth of the samples),
    # the baselines, MGDA-UB, and 2 more seeds of the ~len(tasks) chosen networks a budget and
    # of the baselines' networks
    full_runs = len(search_candidates(tasks)) + 1
    seeded = 2 * (len(baseline_candidates(tasks)) + 1 + 2 * len(tasks))
    mean_s = sum(r["seconds"] for r in [*runs, *pairs, everything]) / (len(runs) + len(pairs) + 1)
    estimate = (full_runs * mean_s + len(search_candidates(tasks)) * mean_s / 5
                + seeded * mean_s) / args.workers
    print(f"\na search of these {len(tasks)} tasks with 3 seeds: about {full_runs + seeded} full "
          f"runs of {mean_s:.1f}s on one thread: ~{estimate / 60:.1f} min with "
          f"{args.workers} workers")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"settings": vars(args), "machine": platform.platform(),
                               "runs": runs, "pairs": pairs, "all_tasks": everything,
                               "estimated_minutes": estimate / 60}, indent=1,
                              default=lambda v: None if isinstance(v, float) and not
                              math.isfinite(v) else str(v)))


if __name__ == "__main__":
    main()
