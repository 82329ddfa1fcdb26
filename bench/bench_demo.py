"""Wall time and disk of ``taskgrouper demo --quick`` and ``taskgrouper demo``, from nothing.

Each demo runs into a fresh folder with an empty scene cache, with the workers ``demo`` picks
(one per core), as a new user's first command would; then a second call on the same folder,
which must train nothing. Prints and writes ``bench/results/demo.json``: wall seconds of the
first and second call, runs trained, and the folder's size; copies each demo's
``results.json`` to ``bench/results/demo_{quick,full}_results.json``, from which
``bench/readme_tables.py`` writes the README's demo tables.

    .venv/bin/python bench/bench_demo.py            # both (the full demo takes minutes)
    .venv/bin/python bench/bench_demo.py --quick    # the quick demo only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "demo.json"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def row_name(quick: bool) -> str:
    return "quick" if quick else "full"


def _measure(quick: bool, root: Path) -> dict:
    from taskgrouper.experiments.demo import run_demo

    out = root / ("quick" if quick else "full")
    OUT.parent.mkdir(exist_ok=True)
    start = time.perf_counter()
    run_demo(out, quick=quick, progress=False, log=lambda *_: None)
    first = time.perf_counter() - start
    start = time.perf_counter()
    run_demo(out, quick=quick, progress=False, log=lambda *_: None)
    again = time.perf_counter() - start
    # the results behind the README's demo tables (bench/readme_tables.py reads them)
    shutil.copyfile(out / "results.json", OUT.parent / f"demo_{row_name(quick)}_results.json")
    with sqlite3.connect(out / "runs.sqlite") as db:
        runs = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    row = {"demo": "quick" if quick else "full", "wall_s": first, "rerun_s": again,
           "runs": runs, "folder_mb": _size(out) / 1e6}
    print(f"demo{' --quick' if quick else ''}: {first / 60:.1f} min, {runs} runs, "
          f"{row['folder_mb']:.0f} MB; run again on the same folder: {again:.1f} s",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the quick demo only")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TASKGROUPER_CACHE"] = str(Path(tmp) / "cache")  # scenes from nothing
        rows = [_measure(True, Path(tmp))]
        if not args.quick:
            rows.append(_measure(False, Path(tmp)))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.platform(), "cores": os.cpu_count(),
                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
