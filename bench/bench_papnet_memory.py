"""Peak memory of PAP-Net's pixel affinities on CPU, with and without the reduced scale.

For each backbone, input size and ``max_affinity_pixels`` setting, one training step (forward
and backward of the summed outputs) runs in a fresh subprocess; the peak is the process's
resident-set high-water mark after the step minus its resident set just before it (Linux
``ru_maxrss`` and ``/proc/self/statm``), so it covers activations, the affinity matrices and
gradients, not the weights. Hard sharing with the same backbone, width, tasks and batch is the
reference. ``affinity_mb`` is the size of the ``2 T`` matrices ``A_t`` and ``M_k`` per batch in
float32 (``2 T B N^2 4`` bytes), the part that grows with ``N^2``.

First the propagation alone (:meth:`PAPNet.propagate`, forward and backward, on random task
features of 8x8 to 64x64 pixels), then whole networks. Prints tables and writes
``bench/results/papnet_memory.json``.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_papnet_memory.py``
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "papnet_memory.json"
TASKS = ("seg", "depth", "normal")
BATCH = 4
WIDTH = 0.25
NO_LIMIT = 1 << 30
#: (backbone, input size, architecture, max_affinity_pixels)
CASES = [
    *((b, s, "hard_sharing", None) for b in ("xception", "resnet") for s in (64, 128, 256, 512)),
    *(("xception", s, "papnet", m) for s in (64, 128, 256, 512) for m in (1024, NO_LIMIT)),
    *(("resnet", s, "papnet", m) for s in (64, 128, 256) for m in (1024, NO_LIMIT)),
    ("resnet", 512, "papnet", 1024),
    ("resnet", 512, "papnet", NO_LIMIT),  # N = 64 x 64 = 4096 without the reduction
]
#: Propagation alone: (side of the task-feature map, max_affinity_pixels)
PROPAGATION = [(s, m) for s in (8, 16, 32, 64) for m in (1024, NO_LIMIT)]
CHANNELS = 32


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one(backbone: str, size: int, architecture: str, max_pixels: int | None) -> dict:
    """One training step in this process; the peak memory above the pre-step resident set."""
    import torch

    from taskgrouper.models import build_model
    from taskgrouper.models.arch.papnet import reduced_grid
    from taskgrouper.tasks import TaskSpec

    torch.set_num_threads(1)
    specs = {"seg": TaskSpec("seg", "segmentation", channels=4),
             "depth": TaskSpec("depth", "dense_regression", channels=1),
             "normal": TaskSpec("normal", "normals", channels=3)}
    options = {} if max_pixels is None else {"max_affinity_pixels": max_pixels}
    torch.manual_seed(0)
    model = build_model(specs, (3, size, size), backbone=backbone, width=WIDTH,
                        architecture=architecture, options=options).train()
    x = torch.randn(BATCH, 3, size, size)
    before = _rss_bytes()
    t0 = time.perf_counter()
    out = model(x)
    loss = sum(v.float().mean() for v in out.values())
    loss = loss + sum(p.float().mean() for preds in out.aux.values() for p in preds)
    loss.backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    stride = model.encoder.strides[-1]
    h = w = size // stride
    row = {"backbone": backbone, "input": size, "architecture": architecture,
           "max_affinity_pixels": max_pixels, "features": f"{h}x{w}",
           "peak_mb": round((peak - before) / 2**20, 1), "seconds": round(seconds, 2)}
    if architecture == "papnet":
        gh, gw = reduced_grid(h, w, max_pixels)
        n = gh * gw
        row.update(affinity_grid=f"{gh}x{gw}", n=n,
                   affinity_mb=round(2 * len(TASKS) * BATCH * n * n * 4 / 2**20, 1))
    return row


def one_propagation(side: int, max_pixels: int) -> dict:
    """Forward and backward of :meth:`PAPNet.propagate` alone on ``(B, 32, side, side)``
    features of the three tasks; the peak memory above the pre-step resident set."""
    import torch

    from taskgrouper.models import build_model
    from taskgrouper.models.arch.papnet import reduced_grid
    from taskgrouper.tasks import TaskSpec

    torch.set_num_threads(1)
    specs = {t: TaskSpec(t, "dense_regression", channels=1) for t in TASKS}
    model = build_model(specs, (3, 32, 32), backbone="xception", width=WIDTH,
                        architecture="papnet", options={"max_affinity_pixels": max_pixels})
    feats = {t: torch.randn(BATCH, CHANNELS, side, side, requires_grad=True) for t in TASKS}
    before = _rss_bytes()
    t0 = time.perf_counter()
    out = model.propagate(feats)
    sum(v.sum() for v in out.values()).backward()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gh, gw = reduced_grid(side, side, max_pixels)
    n = gh * gw
    return {"features": f"{side}x{side}", "max_affinity_pixels": max_pixels,
            "affinity_grid": f"{gh}x{gw}", "n": n,
            "affinity_mb": round(2 * len(TASKS) * BATCH * n * n * 4 / 2**20, 1),
            "peak_mb": round((peak - before) / 2**20, 1), "seconds": round(seconds, 2)}


def _run(kind: str, args: list) -> dict:
    done = subprocess.run([sys.executable, __file__, kind, json.dumps(args)],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> dict:
    propagation = []
    print(f"propagation alone: {len(TASKS)} tasks, batch {BATCH}, {CHANNELS} channels")
    for side, max_pixels in PROPAGATION:
        row = _run("--propagation", [side, max_pixels])
        propagation.append(row)
        limit = "none" if max_pixels == NO_LIMIT else max_pixels
        print(f"features {side:3d}x{side:<3d} limit {limit!s:>5s}  affinity grid "
              f"{row.get('affinity_grid', '?'):>6s}  affinity {row.get('affinity_mb', 0):8.1f} MB"
              f"  peak {row.get('peak_mb', float('nan')):8.1f} MB  {row.get('seconds', 0):6.2f} s"
              f"{'  ' + str(row['error']) if 'error' in row else ''}", flush=True)
    print(f"one training step: backbone width {WIDTH}, batch {BATCH}, tasks {', '.join(TASKS)}")
    rows = []
    for backbone, size, arch, max_pixels in CASES:
        row = {"backbone": backbone, "input": size, "architecture": arch,
               "max_affinity_pixels": max_pixels, **_run("--one", [backbone, size, arch,
                                                                    max_pixels])}
        rows.append(row)
        limit = "-" if max_pixels is None else ("none" if max_pixels == NO_LIMIT else max_pixels)
        print(f"{backbone:9s} {size:4d} {arch:13s} limit {limit!s:>5s}  "
              f"features {row.get('features', '?'):>6s}  affinity grid "
              f"{row.get('affinity_grid', '-'):>6s}  affinity {row.get('affinity_mb', 0):8.1f} MB"
              f"  peak {row.get('peak_mb', float('nan')):8.1f} MB  {row.get('seconds', 0):6.2f} s"
              f"{'  ' + str(row['error']) if 'error' in row else ''}", flush=True)
    result = {"batch": BATCH, "width": WIDTH, "tasks": list(TASKS), "channels": CHANNELS,
              "propagation": propagation, "rows": rows,
              "platform": platform.platform(), "python": platform.python_version()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(one(*json.loads(sys.argv[2]))))
    elif len(sys.argv) == 3 and sys.argv[1] == "--propagation":
        print(json.dumps(one_propagation(*json.loads(sys.argv[2]))))
    else:
        main()
