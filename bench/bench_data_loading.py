"""Data-loading throughput on a Taskonomy-layout folder, against what training consumes.

Writes synthetic scenes in the Taskonomy on-disk layout (PNG files, 16-bit depth, edges and
keypoints), loads them with the ``taskonomy`` loader, and measures side by side in one run:

1. decoding alone: images/s through the trainer's DataLoader path (PNG decode, label decoding,
   resize, normalisation, batching) with 0, 1, 2, ... worker processes;
2. the second training epoch of the default five-task network from memory and streamed from
   the files with each worker count, so the ratio says what streaming costs the training loop.

On a machine with few cores, loader workers and the training step share them, so (2) is the
number that matters there; (1) shows how far the loader scales on its own.

Prints a table and writes ``bench/results/data_loading.json``.

Run: ``.venv/bin/python bench/bench_data_loading.py [--n 128] [--size 128] [--workers 0 1 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from taskgrouper.config import parse_config
from taskgrouper.data import load_dataset
from taskgrouper.data.synthetic import SceneConfig, generate
from taskgrouper.tasks import fit_normalisation
from taskgrouper.train import train
from taskgrouper.train.feeding import Stream, prepare_data

# the writer of Taskonomy's folder layout lives beside the test fixtures that use it
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from taskonomy_layout import write_taskonomy  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "data_loading.json"
TASKS = ["s", "d", "n", "k", "e"]


def write_fixture(root: Path, n: int, size: int) -> None:
    """``n`` scenes per split folder (train/val/test buildings) in the Taskonomy layout."""
    for i, building in enumerate(("b_train", "b_val", "b_test")):
        count = n if building == "b_train" else max(n // 8, 8)
        split = generate(count, seed=100 + i, config=SceneConfig(resolution=size), tasks=TASKS)
        write_taskonomy(split, root, building=building, tasks=TASKS)
    (root / "splits").mkdir()
    (root / "splits" / "train_val_test_bench.csv").write_text(
        "id,train,val,test\nb_train,1,0,0\nb_val,0,1,0\nb_test,0,0,1\n")


def config(root: Path, size: int, workers: int, in_memory: bool, batch_size: int):
    return parse_config({
        "data": {"kind": "taskonomy", "path": str(root), "size": [size, size],
                 "split": str(root / "splits" / "train_val_test_bench.csv"), "classes": 4,
                 "workers": workers, "in_memory": in_memory, "cache": False},
        "tasks": TASKS,
        "model": {"backbone": "xception", "width": 1.0},
        "train": {"epochs": 2, "batch_size": batch_size, "lr": 1e-3, "device": "auto",
                  "patience": 10}})


def decode_rate(cfg, epochs: int) -> float:
    """Images/s through the trainer's streaming path, without training."""
    data = load_dataset(cfg.data, cfg.tasks)
    specs = {t: fit_normalisation(s, _sample_targets(data, t)) for t, s in data.tasks.items()}
    stream = Stream(data.train, specs, cfg.data.workers)
    n, t0 = 0, time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(stream), generator=torch.Generator().manual_seed(epoch))
        for _, _, _, size in stream.batches(order, cfg.train.batch_size):
            n += size
    return n / (time.perf_counter() - t0)


def _sample_targets(data, task):
    from taskgrouper.data.base import stats_sample

    return stats_sample(data.train, 64).targets[task]


def epoch_seconds(cfg, data=None) -> float:
    """Training seconds of the second epoch (validation excluded), from the run's log.

    The first epoch pays for starting the loader's worker processes; the second is what every
    later epoch costs.
    """
    with tempfile.TemporaryDirectory() as out:
        train(cfg, out, data=data, progress=False, log=lambda m: None)
        log = json.loads((Path(out) / "log.json").read_text())
    return log["epochs"][1]["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=128, help="training scenes")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "taskonomy"
        t0 = time.perf_counter()
        write_fixture(root, args.n, args.size)
        print(f"wrote {args.n} training scenes at {args.size}x{args.size} in "
              f"{time.perf_counter() - t0:.0f}s")
        mem_cfg = config(root, args.size, 0, True, args.batch_size)
        in_memory = prepare_data(load_dataset(mem_cfg.data, TASKS), mem_cfg.data,
                                 log=lambda m: None)
        decode, stream_s, memory_s = {}, {}, []
        for _ in range(args.rounds):  # alternate so machine noise hits every setting
            memory_s.append(epoch_seconds(mem_cfg, in_memory))
            for w in args.workers:
                cfg = config(root, args.size, w, False, args.batch_size)
                decode.setdefault(w, []).append(decode_rate(cfg, 1))
                stream_s.setdefault(w, []).append(epoch_seconds(cfg))

    mem = statistics.median(memory_s)
    rows = []
    print(f"\n{'workers':>8} {'decode img/s':>13} {'epoch s (streamed)':>19} "
          f"{'epoch s (memory)':>17} {'streamed / memory':>18}")
    for w in args.workers:
        d, s = statistics.median(decode[w]), statistics.median(stream_s[w])
        rows.append({"workers": w, "decode_images_per_s": d, "epoch_s_streamed": s,
                     "epoch_s_in_memory": mem, "ratio": s / mem})
        print(f"{w:>8} {d:>13.0f} {s:>19.1f} {mem:>17.1f} {s / mem:>18.2f}")
    print(f"training consumes {args.n / mem:.0f} images/s from memory")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu"},
        "settings": vars(args), "train_images_per_s": args.n / mem, "rows": rows}, indent=2))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
