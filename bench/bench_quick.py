"""Wall time of the quick toolbox benchmark, ``taskgrouper bench configs/bench_synthetic.yaml``,
from nothing.

Runs the bench into a fresh folder with 2 workers (as the README's command), then a second
call on the same folder, which must train nothing. Prints the wall time, the runs and how
they stopped, and Table V in short; writes ``bench/results/bench_quick.json`` (the timing)
and copies the bench's ``bench.json`` to ``bench/results/bench_synthetic.json``, from which
``bench/readme_tables.py --name bench`` writes the README's bench table.

    .venv/bin/python bench/bench_quick.py              # about half an hour on 2 cores
    .venv/bin/python bench/bench_quick.py --out DIR    # keep the bench folder
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "bench_synthetic.yaml"
RESULTS = ROOT / "bench" / "results"


def main() -> int:
    from taskgrouper.config import load_config
    from taskgrouper.experiments.bench import run_bench

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="the bench folder (default: a temporary one)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-quick-"))
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty; the benchmark measures a bench from nothing")
    config = load_config(CONFIG)
    start = time.perf_counter()
    results = run_bench(config, out, workers=args.workers, progress=False,
                        log=lambda m: print(m, flush=True))
    first = time.perf_counter() - start
    start = time.perf_counter()
    run_bench(config, out, workers=args.workers, progress=False, log=lambda m: None)
    second = time.perf_counter() - start

    stopped = collections.Counter(
        (r.get("extra") or {}).get("stopped", "?") for r in results["rows"])
    timing = {"machine": platform.platform(), "cores": os.cpu_count(),
              "workers": args.workers, "config": str(CONFIG.relative_to(ROOT)),
              "seeds": results.get("seeds"), "wall_s": first, "again_s": second,
              "runs": results["compute"]["runs"], "run_seconds": results["compute"]["wall_s"],
              "models": len(results["rows"]), "stopped_first_seed": dict(stopped)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_quick.json").write_text(json.dumps(timing, indent=1))
    shutil.copyfile(out / "bench.json", RESULTS / "bench_synthetic.json")
    sys.path.insert(0, str(ROOT / "bench"))
    from readme_tables import render_bench

    print(render_bench(results, "bench_synthetic.json"))
    print(f"bench {CONFIG.name}: {first / 60:.1f} min with {args.workers} workers, "
          f"{timing['runs']} runs ({timing['run_seconds'] / 60:.0f} run-minutes); run again on "
          f"the same folder: {second:.1f} s; first seeds stopped by {dict(stopped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
