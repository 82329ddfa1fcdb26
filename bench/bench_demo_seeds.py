"""The full demo's headline comparison with more seeds than the demo trains.

``taskgrouper demo`` trains every scored network with 3 seeds, as its time budget allows; on
its five tasks segmentation's seed-to-seed spread leaves the comparison against the independent
networks inside its interval. This benchmark asks whether that difference is real: the same
scenes, networks and schedule, exhaustive selection on seed 0's validation losses, and the
chosen networks, the all-task networks and the independent baseline's networks each trained
with ``--seeds`` seeds (default 8), paired by seed. ESA, HOA, MGDA-UB and the transfer
readouts are left out (they do not enter this comparison), so it costs C0 plus the seeds.

Prints the paired comparison per budget and writes the search's ``results.json`` to
``bench/results/demo_seeds_results.json`` (``bench/readme_tables.py --name demo-seeds`` writes
the README's table from it). Resumable: run again with the same ``--out`` to finish.

    .venv/bin/python bench/bench_demo_seeds.py                  # 8 seeds, about half an hour
    .venv/bin/python bench/bench_demo_seeds.py --seeds 5 --out /tmp/demo-seeds
"""

from __future__ import annotations

import argparse
import copy
import shutil
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def seeds_config(seeds: int) -> dict:
    """The full demo's experiment with ``seeds`` seeds and only what the comparison needs."""
    from taskgrouper.experiments.demo import DEMO

    cfg = copy.deepcopy(DEMO)
    cfg["search"] = {**cfg["search"], "strategy": "exhaustive", "seeds": seeds,
                     "transfer": False, "mgda_baseline": False}
    return cfg


def main() -> None:
    from taskgrouper.config import ExperimentConfig
    from taskgrouper.experiments.demo import default_workers
    from taskgrouper.experiments.search import search

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8, help="seeds per scored network (>= 2)")
    ap.add_argument("--out", default=str(RESULTS / "demo_seeds"), help="the search's folder")
    ap.add_argument("--workers", type=int, default=default_workers())
    args = ap.parse_args()
    if args.seeds < 2:
        ap.error("--seeds must be at least 2 (an interval needs two seeds)")
    start = time.perf_counter()
    results = search(ExperimentConfig.model_validate(seeds_config(args.seeds)), args.out,
                     workers=args.workers, progress=False, log=lambda *_: None)
    wall = time.perf_counter() - start
    RESULTS.mkdir(exist_ok=True)
    shutil.copyfile(Path(args.out) / "results.json", RESULTS / "demo_seeds_results.json")
    print(f"{args.seeds} seeds, {args.workers} workers: {wall / 60:.1f} min")
    print("budget  against       relative  95% interval of the difference")
    for row in results["comparisons"]["exhaustive"]:
        verdict = ("better" if row["high"] < 0 else "worse" if row["low"] > 0
                   else "within noise")
        print(f"{row['budget']:>6g}  {row['against']:<12}  {100 * row['relative']:+6.2f}%  "
              f"[{row['low']:+.4f}, {row['high']:+.4f}]  {verdict}")


if __name__ == "__main__":
    main()
