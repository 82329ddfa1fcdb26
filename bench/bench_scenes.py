"""Generation rate of the synthetic dataset (scenes per second, one process).

Usage: ``python bench/bench_scenes.py [--scenes 50]``. Prints one line per resolution and
writes ``bench/results/scenes.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from taskgrouper.data.synthetic import TASKS, SceneConfig, generate

RESULTS = Path(__file__).resolve().parent / "results" / "scenes.json"


def bench(resolution: int, scenes: int, repeats: int = 3) -> dict:
    """Best-of-``repeats`` rate of ``generate`` with every task at ``resolution``.

    Args:
        resolution: Image size in pixels.
        scenes: Scenes per timed run.
        repeats: Timed runs; the fastest is reported (the machine may be shared).

    Returns:
        A JSON-ready record with scenes/s and ms/scene.
    """
    config = SceneConfig(resolution=resolution)
    generate(2, 999, config, TASKS)  # warm-up: imports, cached camera rays
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        generate(scenes, r, config, TASKS)
        times.append(time.perf_counter() - start)
    best = min(times)
    return {
        "resolution": resolution,
        "scenes": scenes,
        "repeats": repeats,
        "scenes_per_s": scenes / best,
        "ms_per_scene": 1000.0 * best / scenes,
        "scenes_per_s_median": scenes / float(np.median(times)),
    }


def main() -> None:
    """Run the benchmark at 64x64 and 128x128 and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=50, help="scenes per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per resolution")
    args = parser.parse_args()
    records = []
    for resolution in (64, 128):
        record = bench(resolution, args.scenes, args.repeats)
        records.append(record)
        print(f"{resolution}x{resolution}: {record['scenes_per_s']:.1f} scenes/s "
              f"({record['ms_per_scene']:.1f} ms/scene, best of {args.repeats} x "
              f"{args.scenes} scenes; median {record['scenes_per_s_median']:.1f} scenes/s)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "synthetic scene generation, all tasks, single process",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "results": records,
    }
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
