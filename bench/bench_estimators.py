"""Benchmark: how cheap strategies compare with the exhaustive search on the synthetic scenes.

One search over the demo's sweep (``taskgrouper demo``: five tasks on the synthetic scenes,
400 training scenes at 32x32, 5 epochs per network; ``--quick``: three tasks) with every
strategy at once (exhaustive, esa, hoa, lookahead, gradcos) and the baselines. The folder is
resumable: a second call trains nothing. For each strategy it prints the estimator table of
the report (compute used to estimate as a fraction of the exhaustive search's, Spearman's rho
of predicted against fully trained losses, regret at every budget), then the same for the
affinity strategies without calibration pairs (``search.calibration_pairs: 0``; reselected on
a copy of the store, nothing trained), and where the affinity strategies' compute goes: the
single-task networks at every width (which every strategy trains), the one recording run,
the calibration pairs.

Run: ``python bench/bench_estimators.py [--out DIR] [--workers 2] [--quick]`` (about 30
minutes on two cores from an empty folder). Prints tables and writes DIR/estimators.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from pathlib import Path

from taskgrouper.experiments.demo import demo_config
from taskgrouper.experiments.search import search
from taskgrouper.runs.store import STORE_FILE, RunStore

STRATEGIES = "exhaustive,esa,hoa,lookahead,gradcos"


def _table(results: dict, label: str) -> list[str]:
    rows = results["evaluation"]["rows"]
    budgets = results["budgets"]
    lines = [f"{'strategy':<22} {'runs':>4} {'compute':>8} {'samples':>8} {'rho':>6} "
             f"{'mean':>7} {'max':>7}  regret per budget ({', '.join(f'{b:g}' for b in budgets)})"]
    for name, row in rows.items():
        regret = ", ".join("-" if r is None else f"{100 * r:+.2f}" for r in row["regret"])
        lines.append(f"{name + label:<22} {row['runs']:>4} {100 * row['compute_fraction']:>7.1f}% "
                     f"{100 * row['samples_fraction']:>7.1f}% {row['spearman']:>6.3f} "
                     f"{100 * row['mean_regret']:>+6.2f}% {100 * row['max_regret']:>+6.2f}%  "
                     f"{regret}")
    return lines


def _breakdown(out: Path, results: dict) -> dict:
    """Wall seconds of the affinity strategies' estimation, by kind of run, over the
    exhaustive search's estimation."""
    records = {r.id: r for r in RunStore(out / STORE_FILE).records()}
    exhaustive = results["strategies"]["exhaustive"]["estimation_compute"]["wall_s"]
    full_ids = {c["run_id"] for c in results["candidates"]}
    singles = math.fsum(records[i].wall_s for i in full_ids if len(records[i].tasks) == 1)
    recording = math.fsum(r.wall_s for r in records.values() if r.extra.get("affinity"))
    out_ = {"exhaustive_s": exhaustive, "singles_s": singles, "recording_s": recording}
    for name in ("lookahead", "gradcos"):
        pairs = results["strategies"][name]["stats"]["calibration_pairs"]
        ids = {c["run_id"] for c in results["candidates"] if sorted(c["tasks"]) in
               [sorted(p) for p in pairs] and c["width"] == 1.0}
        out_[f"{name}_pairs_s"] = math.fsum(records[i].wall_s for i in ids)
    return out_


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/estimators", help="sweep folder")
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument("--quick", action="store_true", help="three tasks")
    args = parser.parse_args(argv)
    out = Path(args.out)
    config = demo_config(args.quick)

    t0 = time.perf_counter()
    results = search(config, out, strategies=STRATEGIES, workers=args.workers, progress=False,
                     log=lambda message: None)
    wall = time.perf_counter() - t0

    # The same runs, the affinity strategies fitted without calibration pairs.
    bare = out / "no-calibration-pairs"
    shutil.rmtree(bare, ignore_errors=True)
    bare.mkdir(parents=True)
    shutil.copy(out / STORE_FILE, bare / STORE_FILE)
    config0 = config.model_copy(update={"search": config.search.model_copy(
        update={"calibration_pairs": 0})})
    results0 = search(config0, bare, strategies="exhaustive,lookahead,gradcos",
                      workers=args.workers, progress=False, log=lambda message: None)

    split = _breakdown(out, results)
    lines = [f"estimators on the synthetic scenes ({'quick, ' if args.quick else ''}"
             f"{len(results['tasks'])} tasks), {platform.machine()}, {args.workers} workers; "
             f"search wall {wall:.0f} s",
             *_table(results, ""),
             *[line for line in _table(results0, " (0 pairs)")[1:]
               if not line.startswith("exhaustive")],
             "of the exhaustive estimation's {:.0f} run-seconds: single-task networks at every "
             "width {:.1%}, the affinity recording run {:.1%}, calibration pairs {:.1%} "
             "(lookahead) and {:.1%} (gradcos)".format(
                 split["exhaustive_s"], *(split[k] / split["exhaustive_s"] for k in (
                     "singles_s", "recording_s", "lookahead_pairs_s", "gradcos_pairs_s")))]
    print("\n".join(lines))
    (out / "estimators.json").write_text(json.dumps({
        "tasks": results["tasks"], "budgets": results["budgets"], "search_wall_s": wall,
        "rows": results["evaluation"]["rows"],
        "rows_without_pairs": results0["evaluation"]["rows"], "compute_split": split,
        "workers": args.workers, "machine": platform.machine()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
