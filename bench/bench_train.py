"""Training throughput: the library loop against a minimal hand-written PyTorch loop.

Both train the same five-task hard-sharing network (reduced Xception, light decoders) on the
same synthetic scenes with the same batch size and optimiser. The library side is
:func:`taskgrouper.train.train` (balancer, finiteness checks, schedule, per-epoch checkpoint);
its per-epoch ``train_seconds`` from ``log.json`` excludes the validation pass, and the hand
loop is timed the same way. Rounds alternate library and hand runs so that machine noise hits
both; the first epoch of every run is a warm-up and is dropped. The ratio compares like with
like (the hand loop uses the library's memory format); the hand loop in the default contiguous
format is printed too, which shows what the ``channels_last`` default buys.

Prints a table and writes ``bench/results/train.json``.

Run: ``.venv/bin/python bench/bench_train.py [--rounds 3] [--epochs 3] [--n-train 256]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from taskgrouper.config import ExperimentConfig
from taskgrouper.data.synthetic import load_synthetic
from taskgrouper.models import build_model
from taskgrouper.tasks import fit_normalisation, normalise_target
from taskgrouper.train import train

OUT = Path(__file__).resolve().parent / "results" / "train.json"
TASKS = ["s", "d", "n", "k", "e"]


def hand_loop(data, epochs: int, batch_size: int, lr: float, seed: int,
              channels_last: bool) -> list[float]:
    """Plain PyTorch: model, Adam, shuffled batches, summed per-task losses. Seconds/epoch."""
    specs = {t: fit_normalisation(s, data.train.targets[t]) for t, s in data.tasks.items()}
    x_all = torch.from_numpy(data.train.x)
    y_all = {t: torch.from_numpy(normalise_target(specs[t], data.train.targets[t]))
             for t in specs}
    torch.manual_seed(seed)
    model = build_model(specs, data.input_shape, "xception", 1.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x_all.shape[0]
    times = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = x_all[idx].contiguous(memory_format=fmt)
            out = model(x)
            loss = 0.0
            for t, spec in specs.items():
                y = y_all[t][idx]
                if spec.kind == "segmentation":
                    loss = loss + F.cross_entropy(out[t], y.long(), ignore_index=-1)
                else:  # dense regression and normals: L1 over labelled pixels
                    valid = torch.isfinite(y)
                    loss = loss + (out[t] - torch.nan_to_num(y)).abs()[valid].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def library_loop(data, epochs: int, batch_size: int, lr: float, seed: int) -> list[float]:
    config = ExperimentConfig.model_validate({
        "tasks": TASKS, "model": {"backbone": "xception", "width": 1.0},
        "train": {"epochs": epochs, "batch_size": batch_size, "optimizer": "adam", "lr": lr,
                  "schedule": "none", "patience": epochs + 1, "seed": seed, "device": "cpu"}})
    with tempfile.TemporaryDirectory() as tmp:
        train(config, tmp, data=data, progress=False, log=lambda *_: None)
        log = json.loads((Path(tmp) / "log.json").read_text())
    return [e["train_seconds"] for e in log["epochs"]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, one per core); on a busy "
                             "machine 1 thread keeps OpenMP barriers from stalling")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from taskgrouper.data.synthetic import SceneConfig

    data = load_synthetic(n_train=args.n_train, n_val=32, n_test=32, seed=0,
                          config=SceneConfig(resolution=args.resolution), tasks=TASKS,
                          cache_dir=None)
    lr, seed = 1e-3, 0
    lib, hand, hand_contig = [], [], []
    for r in range(args.rounds):
        lib += library_loop(data, args.epochs, args.batch_size, lr, seed)[1:]
        hand += hand_loop(data, args.epochs, args.batch_size, lr, seed, True)[1:]
        hand_contig += hand_loop(data, args.epochs, args.batch_size, lr, seed, False)[1:]
        print(f"round {r + 1}/{args.rounds}: library {statistics.median(lib):.2f}s  "
              f"hand {statistics.median(hand):.2f}s per epoch", flush=True)
    n = args.n_train
    result = {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "settings": vars(args),
        "library_samples_per_s": n / statistics.median(lib),
        "hand_samples_per_s": n / statistics.median(hand),
        "hand_contiguous_samples_per_s": n / statistics.median(hand_contig),
    }
    result["ratio"] = result["library_samples_per_s"] / result["hand_samples_per_s"]
    result["ratio_vs_contiguous_hand"] = (result["library_samples_per_s"]
                                          / result["hand_contiguous_samples_per_s"])
    print(f"library loop            {result['library_samples_per_s']:7.1f} samples/s")
    print(f"hand loop               {result['hand_samples_per_s']:7.1f} samples/s")
    print(f"hand loop (contiguous)  {result['hand_contiguous_samples_per_s']:7.1f} samples/s")
    print(f"ratio library/hand      {result['ratio']:.3f}  (target >= 0.95)")
    print(f"ratio library/contiguous hand {result['ratio_vs_contiguous_hand']:.3f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
