"""One training loop for every multi-task network.

:func:`train` takes an experiment config (or its parts) and an output folder and leaves there:

- ``config.json``: the resolved config the run used;
- ``last.pt``: model, optimiser, schedule, balancer and RNG state after the last finished epoch
  (written atomically every epoch; a second ``train`` on the folder resumes from it);
- ``best.pt``: the weights with the lowest validation loss so far (early stopping keeps it);
- ``log.json``: per-epoch learning rate, per-task train losses, per-task validation losses and
  metrics, task weights, seconds and samples;
- ``metrics.json``: at the end, validation and test losses and metrics of the best weights, the
  same metrics for a constant predictor (the training mean or majority class), and the cost;
- ``.train.lock``: held while a process trains there (:mod:`taskgrouper.train.lock`).

Checkpoints hold plain data only and are read without unpickling anything else
(:mod:`taskgrouper.models.checkpoint`).

This module holds the loop; its parts live beside it: :mod:`~taskgrouper.train.feeding` (splits
as tensors or streams, data checks), :mod:`~taskgrouper.train.evaluation` (losses and metrics
over a split, the constant predictor, cost), :mod:`~taskgrouper.train.schedule` (optimiser,
learning-rate schedule, early stopping), :mod:`~taskgrouper.train.resume` (resume checks),
:mod:`~taskgrouper.train.device` (device and precision) and :mod:`~taskgrouper.train.compat`
(which architecture, balancer and tasks go together).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from taskgrouper.balancing import Balancer, build_balancer
from taskgrouper.config import ExperimentConfig, run_identity
from taskgrouper.data import MultiTaskData, load_dataset
from taskgrouper.data.base import DataError, stats_sample
from taskgrouper.errors import InputError, TaskgrouperError
from taskgrouper.io import temp_files, write_json_atomic
from taskgrouper.models.checkpoint import load_checkpoint, save_checkpoint
from taskgrouper.tasks import TaskSpec
from taskgrouper.train.augment import check_augment, draw_flips, flip_batch
from taskgrouper.train.averaging import WeightAverage
from taskgrouper.train.compat import check_compatible
from taskgrouper.train.device import autocast_dtype, input_memory_format, resolve_device
from taskgrouper.train.evaluation import (
    evaluate_constant,
    evaluate_split,
    run_cost,
)
from taskgrouper.train.feeding import (
    as_tensors,
    check_splits,
    fit_specs,
    no_val_labels,
    prepare_data,
)
from taskgrouper.train.lock import hold_run_folder
from taskgrouper.train.losses import task_loss
from taskgrouper.train.resume import LAST_FIX, check_resume_state, load_weights, restore
from taskgrouper.train.schedule import EarlyStopping, Schedule, model_optimizer

__all__ = ["TrainResult", "TrainingDiverged", "evaluate_split", "resolve_device", "train"]

class TrainingDiverged(TaskgrouperError, RuntimeError):
    """A task loss became NaN or infinite; the run stopped, its last good checkpoint stays."""


@dataclass
class TrainResult:
    """What one finished run measured (also written to ``metrics.json``).

    Attributes:
        out_dir: The run folder.
        tasks: Task names.
        val: Task -> {"loss": normalised-scale loss, metric: value, ...} on the validation split.
        test: The same on the test split.
        constant_test: The same metrics for a constant predictor (training mean / majority).
        best_epoch: Epoch (1-based) of the kept weights.
        epochs_run: Epochs trained in total.
        train_samples: Training samples processed over the whole run (resumes included).
        wall_s: Training wall seconds over the whole run.
        cost: MACs, parameters and SNT of the network.
        extra: Further measurements: ``stopped`` (why training ended: ``early_stopping``,
            ``schedule`` when the plateau schedule fell below ``train.min_lr``, or
            ``epoch_cap``), ``val_curve`` (total validation loss per epoch),
            ``affinity`` when ``train.affinity_every`` is set (see
            :mod:`taskgrouper.train.affinity`), and what the model reports
            (``MultiTaskModel.extra_results()``: AdaShare's ``adashare``, its policies and
            the fraction of blocks each task keeps).
    """

    out_dir: str
    tasks: list[str]
    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    constant_test: dict[str, dict[str, float]]
    best_epoch: int
    epochs_run: int
    train_samples: int
    wall_s: float
    cost: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def val_losses(self) -> dict[str, float]:
        return {t: m["loss"] for t, m in self.val.items()}

    @property
    def test_losses(self) -> dict[str, float]:
        return {t: m["loss"] for t, m in self.test.items()}


def train(config: ExperimentConfig, out_dir: str | Path, *, data: MultiTaskData | None = None,
          progress: bool = True, log=print) -> TrainResult:
    """Train one multi-task network and evaluate it; resume if ``out_dir`` holds a run.

    Args:
        config: The experiment (data, tasks, model, balancer, train sections).
        out_dir: Run folder; created if needed.
        data: An already loaded dataset (tasks are taken from ``config.tasks`` or all of it);
            loaded from ``config.data`` when None.
        progress: Show progress bars.
        log: Where one-line status messages go (``print`` by default).

    Returns:
        The measured :class:`TrainResult` (also in ``out_dir/metrics.json``).

    Under ``torchrun`` (``WORLD_SIZE > 1``) the run trains data-parallel, one process per
    device, and rank 0 alone writes ``out_dir`` and the messages
    (:mod:`taskgrouper.train.distributed`).

    One process trains in a folder at a time: a second one is refused at once (the lock is
    released by the operating system when its holder exits, however it exits). A run whose
    ``best.pt`` is gone is restored: from ``last.pt`` when that holds the best epoch, else by
    training the run again from scratch (finished runs included).

    Raises:
        TrainingDiverged: a task loss became NaN/inf (names the task and epoch).
        ValueError: an output folder holding a different run or in use by another process, a
            bad device or name, a validation split without samples or labels, a checkpoint
            that cannot be used (:class:`~taskgrouper.models.checkpoint.CheckpointError`).
        OSError: a write failed, e.g. a full disk
            (:class:`~taskgrouper.io.DiskFullError`).
    """
    from taskgrouper.train import distributed as dp

    check_compatible(config)
    ctx = dp.setup(config.train.device)
    try:
        if not ctx.is_main:
            log = _silent
        if ctx.active and config.train.affinity_every:
            raise InputError("train.affinity_every records task affinities in one process; set "
                             "it to 0 under torchrun, or train the recording run without "
                             "torchrun")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # rank 0 holds the folder for every rank of a torchrun
        with hold_run_folder(out) if ctx.is_main else contextlib.nullcontext():
            if ctx.is_main:  # left by a process killed while writing
                for stale in temp_files(out, list(_RUN_FILES)):
                    stale.unlink(missing_ok=True)
            return _train(config, out, ctx, data, progress, log)
    finally:
        dp.teardown(ctx)


#: The files a run folder holds.
_RUN_FILES = ("config.json", "last.pt", "best.pt", "log.json", "metrics.json")


def _train(config: ExperimentConfig, out: Path, ctx, data: MultiTaskData | None,
           progress: bool, log) -> TrainResult:
    """:func:`train` once the run folder is held."""
    from taskgrouper.train import distributed as dp

    identity = run_identity(config)
    config_path = out / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != identity:
            raise InputError(f"output folder '{out}' holds a run of a different config; pass a "
                             f"new --out, or delete the folder to start over")
    elif ctx.is_main:
        write_json_atomic(identity, config_path)
    best_path = out / "best.pt"
    finished = (out / "metrics.json").exists()
    if finished and best_path.exists():
        saved = json.loads((out / "metrics.json").read_text())
        log(f"{out}: finished run found; nothing to train")
        return TrainResult(**saved)

    tc = config.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = (torch.device("cuda", ctx.local_rank)
              if ctx.active and tc.device in ("auto", "cuda") and torch.cuda.is_available()
              else resolve_device(tc.device))
    amp_dtype = autocast_dtype(device, tc.precision)
    if ctx.active:
        import torch.distributed as dist

        log(f"data-parallel: {ctx.world} processes ({dist.get_backend()}), global batch "
            f"{tc.batch_size}, about {tc.batch_size // ctx.world} rows per process")

    if data is None:
        data = load_dataset(config.data, config.tasks)
    elif config.tasks:
        data = data.select_tasks(config.tasks)
    data.check()
    data = prepare_data(data, config.data, log)
    check_splits(data)
    stats = stats_sample(data.train)  # every sample when in memory
    specs = fit_specs(data.tasks, stats.targets,
                      warn=_warn if ctx.is_main else _silent)
    train_raw = {t: torch.from_numpy(np.ascontiguousarray(stats.targets[t])) for t in specs}
    del stats
    tasks = list(specs)
    workers = config.data.workers
    train_t = as_tensors(data, "train", specs, workers)
    val_t = as_tensors(data, "val", specs, workers)

    from taskgrouper.models import build_model

    torch.manual_seed(tc.seed)
    model = build_model(specs, data.input_shape, backbone=config.model.backbone,
                        width=config.model.width, architecture=config.model.architecture,
                        options=config.model.options, hidden=config.model.hidden,
                        scale=config.model.scale).to(device)
    check_augment(tc.augment, data.input_shape, data.name or "dataset")
    memory_format = input_memory_format(tc.memory_format, data.input_shape)
    model = model.to(memory_format=memory_format)
    if ctx.active:
        dp.broadcast_state(model)  # one initialisation on every rank
    balancer: Balancer = build_balancer(config.balancer.name, weights=config.balancer.weights,
                                        **config.balancer.options)
    balancer.setup(tasks, model)
    optimizer = model_optimizer(model, balancer.parameters(), tc)
    average = WeightAverage(model, tc.ema) if tc.ema else None

    n_train = len(train_t)
    generator = torch.Generator().manual_seed(tc.seed)
    if tc.train_fraction < 1.0:
        n_keep = max(1, int(n_train * tc.train_fraction))
        keep = torch.randperm(n_train, generator=generator)[:n_keep]
        train_t = train_t.subset(keep)
        n_train = len(train_t)
    steps_per_epoch = math.ceil(n_train / tc.batch_size)
    halves = _halves(n_train, tc.seed)  # for models that train parts on each half
    schedule = Schedule(optimizer, tc.schedule, tc.lr, steps_per_epoch * tc.epochs,
                        tc.poly_power)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    recorder = None
    if tc.affinity_every:
        from taskgrouper.train.affinity import AffinityRecorder

        recorder = AffinityRecorder(model, tasks, tc.affinity_every,
                                    config.model.architecture)

    history: list[dict[str, Any]] = []
    start_epoch, stopper = 0, EarlyStopping(tc.patience)
    samples, wall = 0, 0.0
    last_path = out / "last.pt"
    state = None
    if last_path.exists():
        state = load_checkpoint(last_path, device, fix=LAST_FIX)
        check_resume_state(state, last_path, tc.epochs, affinity=recorder is not None,
                           average=average is not None)
    restore_best = False
    if state is not None and state["best_epoch"] > 0:
        if best_path.exists():  # read it now, not after the remaining epochs
            load_weights(model, best_path, device)
        elif state["best_epoch"] == state["epoch"]:
            restore_best = True  # last.pt holds the best weights
        else:
            log(f"{out}: best.pt (the weights of epoch {state['best_epoch']}) is missing and "
                f"last.pt holds epoch {state['epoch']}; training the run again from scratch "
                f"to restore it")
            state = None
    elif state is None and finished:
        log(f"{out}: best.pt is missing; training the finished run again from scratch to "
            f"restore it")
    if state is None and finished and ctx.is_main:
        (out / "metrics.json").unlink()  # rewritten by the new training
    if state is not None:
        restore(state, last_path, device, model=model, optimizer=optimizer,
                schedule=schedule, balancer=balancer, scaler=scaler, generator=generator,
                recorder=recorder, average=average)
        history = list(state["history"])
        start_epoch = int(state["epoch"])
        stopper.load_state_dict(state)
        samples, wall = int(state["samples"]), float(state["wall_s"])
        if restore_best and ctx.is_main:
            # with train.ema the kept weights are the average
            average_weights = (state.get("average") or {}).get("weights", {})
            save_checkpoint({"model": {**state["model"], **average_weights},
                             "epoch": start_epoch}, best_path)
            log(f"{out}: best.pt was missing; restored it from last.pt (epoch {start_epoch}, "
                f"the best so far)")
        log(f"{out}: resuming after epoch {start_epoch}")
    del state
    dp.barrier()  # every rank sees the files rank 0 restored

    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    check_every = 1 if device.type == "cpu" else 25  # finiteness checks sync a GPU
    def schedule_ended() -> bool:  # the plateau schedule halved the rate below train.min_lr
        return tc.min_lr is not None and schedule.lr < tc.min_lr

    def validate() -> float:  # for a phase switch choosing among candidates (AdaShare)
        with average.applied(model) if average is not None else contextlib.nullcontext():
            val = evaluate_split(model, val_t, specs, device, tc.eval_batch_size, amp_dtype,
                                 quick=True)
        return sum(v["loss"] for v in val.values())

    for epoch in range(start_epoch + 1, tc.epochs + 1):
        if (stopper.stopped or schedule_ended()) and not model.must_train(epoch, tc.epochs):
            break
        if model.on_epoch_start(epoch, tc.epochs, validate=validate):
            # a new phase (AdaShare's policy search after its warm-up, its re-training from
            # scratch): fresh optimiser and schedule; the best checkpoint must come from it
            optimizer = model_optimizer(model, balancer.parameters(), tc)
            schedule = Schedule(optimizer, tc.schedule, tc.lr,
                                steps_per_epoch * (tc.epochs - epoch + 1), tc.poly_power)
            stopper.new_phase()
            if average is not None:
                average = WeightAverage(model, tc.ema)
            log(f"{out}: epoch {epoch} starts a new training phase")
        model.train()
        t0 = time.perf_counter()
        lr_used = schedule.lr
        running = torch.zeros(len(tasks), dtype=torch.float64, device=device)
        weight_sum = dict.fromkeys(tasks, 0.0)
        # the model's passes over the training rows (one over every row unless it says)
        plan = [(p.frozen(model), torch.randperm(n_train, generator=generator)
                 if p.half is None else halves[p.half][
                     torch.randperm(len(halves[p.half]), generator=generator)])
                for p in model.train_passes()]
        epoch_steps = sum(math.ceil(len(order) / tc.batch_size) for _, order in plan)
        bar = _progress(((frozen, batch) for frozen, order in plan
                         for batch in train_t.batches(order, tc.batch_size)), progress,
                        f"epoch {epoch}/{tc.epochs}", total=epoch_steps)
        for step, (frozen, (x, batch_targets, _, n_batch)) in enumerate(bar):
            if tc.augment == "flip":  # drawn for the global batch, so every rank agrees
                x, batch_targets = flip_batch(x, batch_targets, specs,
                                              draw_flips(n_batch, generator))
            if ctx.active:  # this rank's rows of the global batch
                x = x[ctx.rank::ctx.world]
                batch_targets = {t: v[ctx.rank::ctx.world] for t, v in batch_targets.items()}
                n_batch = int(x.shape[0])
            x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            batch_targets = {t: batch_targets[t].to(device, non_blocking=True) for t in tasks}
            with autocast:
                out_t = model(x)
            losses = _task_losses(specs, out_t, batch_targets)
            optimizer.zero_grad(set_to_none=True)
            recording = recorder is not None and recorder.due((epoch - 1) * steps_per_epoch
                                                              + step)
            if recording:
                task_grads = recorder.task_gradients(losses)
            scale = scaler.scale if scaler.is_enabled() else None
            extra = model.regularization()
            if extra is not None:  # outside balancing; balancers accumulate onto it
                (scale(extra) if scale is not None else extra).backward(retain_graph=True)
            weights = balancer.backward(losses, scale, rep=getattr(out_t, "rep", None))
            stacked = torch.stack([losses[t].detach() for t in tasks])
            running += stacked.double() * n_batch
            if step % check_every == 0 or step == epoch_steps - 1:
                seen = dp.all_sum(running.clone()) if ctx.active else running  # ranks agree
                if not bool(torch.isfinite(seen).all()):
                    bad = [t for t, v in zip(tasks, seen.tolist(), strict=True)
                           if not math.isfinite(v)]
                    raise TrainingDiverged(
                        f"{out}: loss of task(s) {', '.join(bad)} became NaN/inf in epoch "
                        f"{epoch}; the run stopped and its last good checkpoint "
                        f"(epoch {epoch - 1}) is kept. Lower train.lr, or check the labels of "
                        f"those tasks")
            if recording:
                def again(x=x, targets=batch_targets):
                    with autocast:
                        again_out = model(x)
                    return [v.item() for v in _task_losses(specs, again_out, targets).values()]

                recorder.record(task_grads, optimizer, again)
            if ctx.active:
                dp.average_gradients(list(model.parameters()) + balancer.parameters())
            for p in frozen:  # what this pass keeps fixed: no step, no momentum, no decay
                p.grad = None
            if scaler.is_enabled():
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if average is not None:
                average.update(model)
            schedule.after_step()
            for t in tasks:
                weight_sum[t] += weights[t]
        if ctx.active:
            dp.all_sum(running)  # the global batch's losses
        train_losses = dict(zip(tasks, (running / n_train).tolist(), strict=True))
        train_seconds = time.perf_counter() - t0
        if ctx.active:  # normalisation statistics met only this rank's rows: average them
            dp.average_buffers(model)
        labelled: dict[str, float] = {}
        with average.applied(model) if average is not None else contextlib.nullcontext():
            val = evaluate_split(model, val_t, specs, device, tc.eval_batch_size, amp_dtype,
                                 quick=True, label_counts=labelled)
            kept = model.state_dict() if average is None else {
                k: v.detach().clone() for k, v in model.state_dict().items()}
        unlabelled = [t for t in tasks if not labelled[t]]
        if unlabelled:  # a streamed split is only counted here
            raise DataError(no_val_labels(data.name or "dataset", unlabelled, len(val_t)))
        val_losses = {t: val[t]["loss"] for t in tasks}
        val_total = sum(val_losses.values())
        balancer.epoch_end(train_losses, val_losses, val)
        schedule.after_epoch(sum(train_losses.values()))
        seconds = time.perf_counter() - t0
        samples += n_train
        wall += seconds
        improved = stopper.update(val_total, epoch)
        if improved and ctx.is_main:
            save_checkpoint({"model": kept, "epoch": epoch}, out / "best.pt")
        history.append({"epoch": epoch, "lr": lr_used, "train": train_losses, "val": val,
                        "val_total": val_total,
                        "weights": {t: w / epoch_steps for t, w in weight_sum.items()},
                        "seconds": seconds, "train_seconds": train_seconds,
                        "samples": n_train})
        if ctx.is_main:
            last = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "balancer": balancer.state_dict(),
                "scaler": scaler.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch,
                **stopper.state_dict(), "samples": samples, "wall_s": float(wall),
                "affinity": recorder.state_dict() if recorder is not None else None}
            if average is not None:
                last["average"] = average.state_dict()
            if device.type == "cuda":  # random draws on the device (e.g. AdaShare's Gumbel)
                last["cuda_rng"] = torch.cuda.get_rng_state(device)
            _save_last(out, last, history, tasks)
        log(f"epoch {epoch}: train {sum(train_losses.values()):.4f}  val {val_total:.4f}"
            f"{'  *' if improved else ''}  lr {lr_used:.3g}  {seconds:.1f}s")
        ends = not model.must_train(epoch + 1, tc.epochs)  # else a phase goes on regardless
        if ends and stopper.stopped:
            log(f"early stop: validation loss has not improved for {tc.patience} epochs")
        elif ends and schedule_ended():
            log(f"schedule ended: the learning rate fell below train.min_lr={tc.min_lr:g}")
    stopped = ("early_stopping" if stopper.stopped else "schedule" if schedule_ended()
               else "epoch_cap")

    # Final evaluation of the kept (best) weights.
    dp.barrier()  # rank 0 has written best.pt
    if stopper.best_epoch == 0:
        never = [t for t in tasks
                 if not any(math.isfinite(e["val"][t]["loss"]) for e in history)] or tasks
        raise TrainingDiverged(
            f"{out}: no epoch had a finite validation loss (task(s) {', '.join(never)}: "
            f"NaN/inf in all {len(history)} epoch(s)), so there are no weights to keep; check "
            f"the val labels and inputs of those tasks, or lower train.lr")
    load_weights(model, best_path, device)
    test_t = as_tensors(data, "test", specs, workers)
    val = evaluate_split(model, val_t, specs, device, tc.eval_batch_size, amp_dtype)
    test = evaluate_split(model, test_t, specs, device, tc.eval_batch_size, amp_dtype)
    constant = evaluate_constant(specs, train_raw, test_t, tc.eval_batch_size)
    result = TrainResult(out_dir=str(out), tasks=tasks, val=val, test=test,
                         constant_test=constant, best_epoch=stopper.best_epoch,
                         epochs_run=len(history), train_samples=samples, wall_s=wall,
                         cost=run_cost(model, config, data.input_shape),
                         extra={**_extra(recorder, stopped, history),
                                **model.extra_results()})
    if ctx.is_main:
        write_json_atomic(asdict(result), out / "metrics.json")
    return result


def _extra(recorder, stopped: str, history: list[dict]) -> dict[str, Any]:
    """What a run measured beyond its metrics: why it stopped, its validation curve (total
    validation loss per epoch) and the affinities it recorded."""
    extra: dict[str, Any] = {"stopped": stopped,
                             "val_curve": [float(e["val_total"]) for e in history]}
    if recorder is not None:
        extra["affinity"] = recorder.result()
    return extra


def _halves(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed split of ``n`` training rows into two disjoint halves (``ceil(n / 2)`` and
    ``floor(n / 2)`` rows), drawn from ``seed`` with a generator of its own, so the epochs'
    orders are those of every other run with this seed.

    Example: ``n = 5`` -> a permutation ``[p0 .. p4]`` split as ``[p0, p1, p2]``, ``[p3, p4]``.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    return perm[:(n + 1) // 2], perm[(n + 1) // 2:]


def _silent(message: str) -> None:
    """The log of ranks other than 0 under torchrun."""


def _save_last(out: Path, state: dict, history: list, tasks: list[str]) -> None:
    """The epoch's resumable checkpoint and the log (rank 0 only under torchrun)."""
    save_checkpoint(state, out / "last.pt")
    write_json_atomic({"tasks": tasks, "epochs": history}, out / "log.json")


def _task_losses(specs: dict[str, TaskSpec], out_t, targets: dict[str, Tensor]
                 ) -> dict[str, Tensor]:
    """Each task's training loss (deep supervision outputs added with weight 1)."""
    losses = {}
    aux = getattr(out_t, "aux", {})
    for t, spec in specs.items():
        losses[t] = task_loss(spec, out_t[t].float(), targets[t])
        for pred in aux.get(t, ()):  # deep supervision: same label, weight 1
            losses[t] = losses[t] + task_loss(spec, pred.float(), targets[t])
    return losses


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, total=total)


def _warn(message: str) -> None:
    print(f"taskgrouper: warning: {message}", file=sys.stderr, flush=True)
