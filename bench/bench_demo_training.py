"""What training to convergence buys: the demo's all-task network at the old and new schedules.

Trains the full demo's all-task network (five tasks, the demo's scenes and network) twice on
one thread, as a demo worker does: once with the schedule the demo had before it was re-sized
(a 5-epoch cap) and once with the demo's own (plateau schedule and early stopping, a 60-epoch
cap), with the same seed, and prints each task's test loss, the total and why each run
stopped. Seeds 0..N-1 with ``--seeds N``; writes ``bench/results/demo_training.json``.

    .venv/bin/python bench/bench_demo_training.py --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path

from taskgrouper.config import ExperimentConfig
from taskgrouper.data import load_dataset
from taskgrouper.experiments.demo import DEMO
from taskgrouper.train import train

OUT = Path(__file__).resolve().parent / "results" / "demo_training.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--old-epochs", type=int, default=5)
    args = ap.parse_args()
    base = {k: v for k, v in DEMO.items() if k != "search"}
    data = load_dataset(ExperimentConfig.model_validate(base).data, DEMO["tasks"])
    rows = []
    for seed in range(args.seeds):
        for label, epochs in (("old (5-epoch cap)", args.old_epochs),
                              ("new (to convergence)", DEMO["train"]["epochs"])):
            raw = {**base, "train": {**DEMO["train"], "epochs": epochs, "seed": seed,
                                     "threads": 1, "device": "cpu"}}
            start = time.perf_counter()
            r = train(ExperimentConfig.model_validate(raw), Path(tempfile.mkdtemp()),
                      data=data, progress=False, log=lambda *_: None)
            total = math.fsum(r.test_losses.values())
            rows.append({"schedule": label, "seed": seed, "epochs_run": r.epochs_run,
                         "best_epoch": r.best_epoch, "stopped": r.extra["stopped"],
                         "test": r.test_losses, "total": total,
                         "seconds": time.perf_counter() - start})
            print(f"seed {seed} {label:<22} {r.epochs_run:>2} epochs (best {r.best_epoch}, "
                  f"{r.extra['stopped']}) total {total:.4f}  "
                  + "  ".join(f"{t} {v:.4f}" for t, v in r.test_losses.items()), flush=True)
    for label in ("old (5-epoch cap)", "new (to convergence)"):
        totals = [r["total"] for r in rows if r["schedule"] == label]
        print(f"{label}: mean total {sum(totals) / len(totals):.4f} over {len(totals)} seeds")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
