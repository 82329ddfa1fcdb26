"""Benchmark: the quick demo's sweep with the local executor and with Ray, on this machine.

The same search (``taskgrouper demo --quick``: three tasks, exhaustive + ESA + HOA + baselines)
runs twice into fresh folders, side by side in one process: first with the local fork-based
pool of ``--workers`` processes, then on a Ray instance started here with as many CPUs, one CPU
per run. The ratio Ray / local is Ray's overhead on one machine (starting the instance and its
workers, shipping the dataset through the object store, one task per run). The two sweeps must
choose the same networks at every budget; the benchmark fails otherwise.

Run: ``python bench/bench_ray.py [--workers 2] [--order local,ray]``.
Prints a table and writes bench/results/ray.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from taskgrouper.experiments.demo import run_demo


def _selections(results: dict) -> dict:
    """Strategy -> budget -> (chosen networks, test total): what both executors must agree on."""
    return {name: {str(s["budget"]): (s["networks"], s.get("test_total"))
                   for s in strategy["selections"]}
            for name, strategy in results["strategies"].items()}


def _run(mode: str, workers: int, out: Path) -> dict:
    executor, start_s = None, 0.0
    t0 = time.perf_counter()
    if mode == "ray":
        import ray

        from taskgrouper.runs.ray_executor import RayExecutor

        executor = RayExecutor(num_cpus=1, local_cpus=workers)
        executor._connect()  # the instance's start, timed on its own
        start_s = time.perf_counter() - t0
    results = run_demo(out, quick=True, workers=workers, executor=executor, progress=False,
                       log=lambda message: None)
    wall = time.perf_counter() - t0
    if mode == "ray":
        ray.shutdown()
    runs = sum(1 for _ in (out / "runs").iterdir())
    return {"wall_s": wall, "start_s": start_s, "runs": runs, "selections": _selections(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="processes / Ray CPUs")
    parser.add_argument("--order", default="local,ray", help="modes in the order they run")
    args = parser.parse_args(argv)
    modes = args.order.split(",")
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            measured[mode] = _run(mode, args.workers, Path(tmp) / mode)
            print(f"{mode}: {measured[mode]['wall_s']:.1f} s for {measured[mode]['runs']} runs",
                  flush=True)
    local, ray_ = measured["local"], measured["ray"]
    same = local["selections"] == ray_["selections"]
    cpu = platform.processor() or platform.machine()
    print(f"\nquick demo sweep, {args.workers} workers, {cpu}")
    print(f"{'executor':<8} {'wall s':>8} {'s/run':>7} {'start s':>8}")
    for mode in modes:
        m = measured[mode]
        print(f"{mode:<8} {m['wall_s']:>8.1f} {m['wall_s'] / m['runs']:>7.2f} {m['start_s']:>8.1f}")
    ratio = ray_["wall_s"] / local["wall_s"]
    print(f"Ray / local wall time: {ratio:.2f}; same selections at every budget: {same}")
    out = Path(__file__).parent / "results" / "ray.json"
    out.write_text(json.dumps({
        "machine": platform.platform(), "python": sys.version.split()[0],
        "workers": args.workers, "order": modes, "ratio": ratio, "same_selections": same,
        **{mode: {k: v for k, v in m.items() if k != "selections"}
           for mode, m in measured.items()}}, indent=2))
    print(f"wrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
