"""Cost of every balancer: one training step against the uniform mean of the losses.

One step is what the trainer does per batch: forward, the balancer's backward (per-task
gradients and their combination included), optimiser step. Every row of ``BALANCERS`` is timed
with its defaults, and rows that offer ``rep`` also on the shared representation, all on the
same five-task hard-sharing network (reduced Xception at width 1, light decoders) and the
same synthetic scenes as ``bench_train.py``, in the library's memory format. Rounds alternate
the balancers; within a round every timed step of a balancer sits between two ``uniform``
steps, and its ratio is to their mean (paired, so the drifting load of a shared machine
cancels); the first step of every balancer in every round is a warm-up and is dropped. A
balancer's ratio is the median of its paired ratios, its time the median of its steps.

Targets: methods on the representation (and methods without per-task gradients) within 1.3x
of uniform; methods on the shared parameters within (T + 1)x.

Prints a table and writes ``bench/results/balancers.json``.

Run: ``.venv/bin/python bench/bench_balancers.py [--rounds 3] [--steps 4] [--threads 1]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from taskgrouper.balancing import BALANCERS, build_balancer
from taskgrouper.data.synthetic import SceneConfig, load_synthetic
from taskgrouper.models import build_model
from taskgrouper.tasks import fit_normalisation, normalise_target
from taskgrouper.train.losses import task_loss

OUT = Path(__file__).resolve().parent / "results" / "balancers.json"
TASKS = ["s", "d", "n", "k", "e"]


def variants(with_batched: bool) -> list[tuple[str, dict, bool]]:
    """(row name, options, on the representation) for every timed configuration."""
    out = []
    for info in BALANCERS:
        out.append((info.name, {}, info.rep_only))
        if "rep" in info.params:
            out.append((info.name, {"rep": True}, True))
        if with_batched and "batched" in info.params and not info.rep_only:
            out.append((info.name, {"batched": True}, False))
    return out


def label(name: str, options: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in options.items())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="steps per balancer per round")
    parser.add_argument("--warmup", type=int, default=1, help="steps dropped per round")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--with-batched", action="store_true",
                        help="also time the parameter-level methods with batched=true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data = load_synthetic(n_train=4 * args.batch_size, n_val=8, n_test=8, seed=0,
                          config=SceneConfig(resolution=args.resolution), tasks=TASKS,
                          cache_dir=None)
    specs = {t: fit_normalisation(s, data.train.targets[t]) for t, s in data.tasks.items()}
    fmt = torch.channels_last
    x_all = torch.from_numpy(data.train.x).to(device).contiguous(memory_format=fmt)
    y_all = {t: torch.from_numpy(normalise_target(specs[t], data.train.targets[t])).to(device)
             for t in specs}
    n_batches = x_all.shape[0] // args.batch_size
    torch.manual_seed(0)
    model = build_model(specs, data.input_shape, "xception", args.width).to(device)
    model = model.to(memory_format=fmt).train()

    configs = variants(args.with_batched)
    runs = []
    for name, options, _ in configs:
        balancer = build_balancer(name, **options)
        balancer.setup(list(specs), model)
        optimizer = torch.optim.Adam(list(model.parameters()) + balancer.parameters(), lr=1e-4)
        runs.append((balancer, optimizer))

    def step(balancer, optimizer, i: int) -> float:
        sl = slice((i % n_batches) * args.batch_size, (i % n_batches + 1) * args.batch_size)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(x_all[sl])
        losses = {t: task_loss(specs[t], out[t].float(), y_all[t][sl]) for t in specs}
        optimizer.zero_grad(set_to_none=True)
        balancer.backward(losses, None, rep=out.rep)  # returns floats: one sync per step
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    # paired measurements: every step of a balancer sits between two uniform steps, and its
    # ratio is to their mean, so slow drifts of a shared machine's load cancel out
    uniform = runs[[n for n, _, _ in configs].index("uniform")]
    times: dict[str, list[float]] = {label(n, o): [] for n, o, _ in configs}
    ratios: dict[str, list[float]] = {label(n, o): [] for n, o, _ in configs}
    counter = 0
    for r in range(args.rounds):
        for (name, options, _), (balancer, optimizer) in zip(configs, runs, strict=True):
            key = label(name, options)
            for _ in range(args.warmup):
                step(balancer, optimizer, counter)
                counter += 1
            before = step(*uniform, counter)
            for _ in range(args.steps):
                seconds = step(balancer, optimizer, counter + 1)
                after = step(*uniform, counter + 2)
                counter += 2
                times[key].append(seconds)
                times["uniform"].append(after)
                ratios[key].append(2.0 * seconds / (before + after))
                before = after
        base = statistics.median(times["uniform"])
        print(f"round {r + 1}/{args.rounds}: uniform {base * 1e3:.0f} ms/step", flush=True)

    n_tasks = len(TASKS)
    base = statistics.median(times["uniform"])
    rows = []
    for name, options, on_rep in configs:
        info = next(i for i in BALANCERS if i.name == name)
        cheap = on_rep or not info.needs_task_grads
        target = 1.3 if cheap else float(n_tasks + 1)
        seconds = statistics.median(times[label(name, options)])
        ratio = statistics.median(ratios[label(name, options)])
        rows.append({"balancer": name, "options": options, "representation": on_rep,
                     "ms_per_step": seconds * 1e3, "ratio": ratio, "target": target,
                     "within_target": ratio <= target})
    print(f"\n{'balancer':28s} {'ms/step':>9s} {'x uniform':>10s} {'target':>7s}")
    for row in rows:
        mark = "" if row["within_target"] else "  OVER"
        print(f"{label(row['balancer'], row['options']):28s} {row['ms_per_step']:9.1f} "
              f"{row['ratio']:10.2f} {row['target']:7.1f}{mark}")
    result = {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "device": str(device)},
        "settings": vars(args), "tasks": TASKS, "uniform_ms_per_step": base * 1e3,
        "rows": rows}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
