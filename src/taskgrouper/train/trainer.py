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
(:mod:`taskgrouper.train.checkpoint`).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from taskgrouper.balancing import Balancer, build_balancer
from taskgrouper.config import ExperimentConfig
from taskgrouper.data import LazySplit, MultiTaskData, Split, load_dataset
from taskgrouper.data.base import DataError, stats_sample
from taskgrouper.tasks import (
    TaskSpec,
    channel_values,
    fit_normalisation,
    normalise_target,
    valid_mask,
)
from taskgrouper.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    temp_files,
    write_json_atomic,
)
from taskgrouper.train.lock import hold_run_folder
from taskgrouper.train.losses import denormalise, task_loss, task_loss_sum

__all__ = ["TrainResult", "TrainingDiverged", "evaluate_split", "resolve_device", "train"]


class TrainingDiverged(RuntimeError):
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
        extra: Further measurements, e.g. ``{"affinity": ...}`` when ``train.affinity_every``
            is set (see :mod:`taskgrouper.train.affinity`).
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


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as torch understands it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"train.device '{name}' is not a device ({err}); use auto, cpu or "
                         f"cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device '{name}' asks for CUDA but none is available; use auto "
                         f"or cpu")
    return device


def _amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype: fp32 eager on CPU by default, bf16 (else fp16) on GPUs."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None  # measured: bf16 autocast trains ~15x slower than fp32 on the dev CPUs


@dataclass
class _Tensors:
    """A split as tensors: inputs, normalised targets (for losses), raw targets (metrics)."""

    x: Tensor
    targets: dict[str, Tensor]
    raw: dict[str, Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])


    def batches(self, order: Tensor | None, batch_size: int):
        """(x, normalised targets, raw targets, n) per batch, in ``order`` (None: in turn)."""
        for start in range(0, len(self), batch_size):
            idx = (slice(start, start + batch_size) if order is None
                   else order[start:start + batch_size])
            x = self.x[idx]
            yield (x, {t: v[idx] for t, v in self.targets.items()},
                   {t: v[idx] for t, v in self.raw.items()}, int(x.shape[0]))

    def subset(self, index: Tensor) -> _Tensors:
        return _Tensors(self.x[index], {t: v[index] for t, v in self.targets.items()},
                        {t: v[index] for t, v in self.raw.items()})

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


class _StreamDataset(torch.utils.data.Dataset):
    """A lazy split as a torch Dataset: one decoded sample with normalised and raw targets."""

    def __init__(self, split: LazySplit, specs: dict[str, TaskSpec]):
        self.split, self.specs = split, specs

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        x, targets = self.split.read(i)
        raw = {t: np.ascontiguousarray(targets[t]) for t in self.specs}
        norm = {t: np.ascontiguousarray(normalise_target(spec, raw[t][None])[0])
                for t, spec in self.specs.items()}
        return (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                {t: torch.from_numpy(v) for t, v in norm.items()},
                {t: torch.from_numpy(v) for t, v in raw.items()})


class _OrderSampler(torch.utils.data.Sampler):
    """Yields the indices of the current epoch's order (set before each pass)."""

    def __init__(self, n: int):
        self.order: list[int] = list(range(n))

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self):
        return iter(self.order)


class _Stream:
    """A lazy split read through DataLoader workers, batch by batch.

    One loader per batch size, with persistent workers: sample indices are drawn in this
    process (from :class:`_OrderSampler`), so a new epoch's order needs no new workers.
    """

    def __init__(self, split: LazySplit, specs: dict[str, TaskSpec], workers: int):
        self.split, self.specs, self.workers = split, specs, workers
        self._loaders: dict[int, tuple[torch.utils.data.DataLoader, _OrderSampler]] = {}

    def __len__(self) -> int:
        return len(self.split)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.split.sample_shape

    def subset(self, index: Tensor) -> _Stream:
        return _Stream(self.split.subset(index.tolist()), self.specs, self.workers)

    def batches(self, order: Tensor | None, batch_size: int):
        if batch_size not in self._loaders:
            sampler = _OrderSampler(len(self.split))
            loader = torch.utils.data.DataLoader(
                _StreamDataset(self.split, self.specs), batch_size=batch_size, sampler=sampler,
                num_workers=self.workers, persistent_workers=self.workers > 0,
                pin_memory=torch.cuda.is_available(),
                prefetch_factor=4 if self.workers else None)
            self._loaders[batch_size] = (loader, sampler)
        loader, sampler = self._loaders[batch_size]
        sampler.order = list(range(len(self.split))) if order is None else order.tolist()
        for x, targets, raw in loader:
            yield x, targets, raw, int(x.shape[0])


def _as_tensors(data: MultiTaskData, split: str, specs: dict[str, TaskSpec],
                workers: int = 0) -> _Tensors | _Stream:
    part = data.split(split)
    if isinstance(part, LazySplit):
        return _Stream(part, specs, workers)
    x = torch.from_numpy(np.ascontiguousarray(part.x, dtype=np.float32))
    targets, raw = {}, {}
    for name, spec in specs.items():
        target = part.targets[name]
        raw[name] = torch.from_numpy(np.ascontiguousarray(target))
        targets[name] = torch.from_numpy(np.ascontiguousarray(normalise_target(spec, target)))
    return _Tensors(x, targets, raw)


def _materialise(split: LazySplit, workers: int) -> Split:
    """Decode a lazy split into memory with ``workers`` DataLoader processes."""
    loader = torch.utils.data.DataLoader(
        _RawDataset(split), batch_size=64, num_workers=workers,
        collate_fn=_stack_samples)
    xs, targets = [], {t: [] for t in split.tasks}
    for x, tg in loader:
        xs.append(x)
        for t in split.tasks:
            targets[t].append(tg[t])
    return Split(np.concatenate(xs), {t: np.concatenate(v) for t, v in targets.items()})


class _RawDataset(torch.utils.data.Dataset):
    def __init__(self, split: LazySplit):
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int):
        return self.split.read(i)


def _stack_samples(samples):
    xs = np.stack([np.asarray(x, dtype=np.float32) for x, _ in samples])
    names = samples[0][1].keys()
    return xs, {t: np.stack([tg[t] for _, tg in samples]) for t in names}


def prepare_data(data: MultiTaskData, dc, log=print) -> MultiTaskData:
    """List the samples a loader left out, and decode a lazy dataset into memory if it fits.

    Args:
        data: The loaded dataset.
        dc: The ``data`` config section (``in_memory``, ``memory_gb``, ``workers``).
    """
    if data.skipped:
        log(f"{data.name}: {len(data.skipped)} sample(s) left out (corrupt or missing files):")
        for path, reason in data.skipped[:20]:
            log(f"  {path}: {reason}")
        if len(data.skipped) > 20:
            log(f"  ... and {len(data.skipped) - 20} more")
    if not data.lazy or dc.in_memory is False:
        return data
    parts = {s: data.split(s) for s in ("train", "val", "test")}
    if dc.in_memory == "auto":
        need = sum(p.nbytes() for p in parts.values() if isinstance(p, LazySplit))
        if need > dc.memory_gb * 1e9:
            log(f"{data.name}: streaming from files with {dc.workers} worker(s) "
                f"({need / 1e9:.1f} GB would exceed data.memory_gb = {dc.memory_gb:g})")
            return data
    t0 = time.perf_counter()
    parts = {s: _materialise(p, dc.workers) if isinstance(p, LazySplit) else p
             for s, p in parts.items()}
    log(f"{data.name}: decoded {sum(len(p) for p in parts.values())} samples into memory in "
        f"{time.perf_counter() - t0:.1f}s")
    return MultiTaskData(data.tasks, name=data.name, skipped=data.skipped, **parts)


def _constant_outputs(spec: TaskSpec, train_raw: Tensor, n: int, shape) -> Tensor:
    """Predictions of the constant baseline: training mean or most frequent class."""
    if spec.kind in ("segmentation", "classification"):
        valid = train_raw[train_raw >= 0]
        counts = torch.bincount(valid.flatten(), minlength=spec.channels)
        logits = torch.full((spec.channels,), -10.0)
        logits[int(counts.argmax())] = 10.0
        if spec.kind == "segmentation":
            return logits.view(1, -1, 1, 1).expand(n, -1, *shape).clone()
        return logits.expand(n, -1).clone()
    if spec.kind == "binary":
        valid = train_raw[torch.isfinite(train_raw) & (train_raw >= 0)]
        return torch.full((n,), 10.0 if valid.float().mean() > 0.5 else -10.0)
    if spec.kind == "dense_binary":
        # the majority label over valid training pixels (a label >= 0.5 counts as 1)
        valid = train_raw[torch.isfinite(train_raw)]
        positive = bool(valid.numel()) and float((valid >= 0.5).float().mean()) > 0.5
        return torch.full((n, 1, *shape), 10.0 if positive else -10.0)
    if spec.kind == "normals":
        mean = torch.nanmean(train_raw.transpose(0, 1).flatten(1), dim=1)  # (3,)
        mean = mean / mean.norm().clamp(min=1e-8)
        return mean.view(1, 3, 1, 1).expand(n, -1, *shape).clone()
    mean = torch.tensor(spec.mean, dtype=torch.float32)
    if spec.kind == "dense_regression":
        return mean.view(1, -1, 1, 1).expand(n, -1, *shape).clone()
    if train_raw.dim() == 1:
        return mean[:1].expand(n).clone()
    return mean.view(1, -1).expand(n, -1).clone()


def evaluate_split(model: nn.Module, split: _Tensors | _Stream, specs: dict[str, TaskSpec],
                   device: torch.device, batch_size: int = 128,
                   amp_dtype: torch.dtype | None = None,
                   quick: bool = False,
                   label_counts: dict[str, float] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Per-task loss (normalised scale, over all valid labels of the split) and metrics.

    ``quick`` (the per-epoch validation) scores edge tasks at 9 thresholds instead of the
    benchmark's 99; losses and every other metric are the same. ``label_counts``, when given,
    receives the number of valid labels of each task (the loss of a task without any is NaN).
    """
    from taskgrouper.evaluate.metrics import MetricAccumulator

    model.eval()
    sums = {t: torch.zeros((), device=device, dtype=torch.float64) for t in specs}
    counts = {t: torch.zeros((), device=device, dtype=torch.float64) for t in specs}
    accs = {t: MetricAccumulator(spec, edge_thresholds=9 if quick else None)
            for t, spec in specs.items()}
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    with torch.no_grad():
        for x, targets, raw, _ in split.batches(None, batch_size):
            with autocast:
                out = model(x.to(device, non_blocking=True))
            for t, spec in specs.items():
                pred = out[t].float()
                s, c = task_loss_sum(spec, pred, targets[t].to(device, non_blocking=True))
                sums[t] += s
                counts[t] += c
                accs[t].update(denormalise(spec, pred), raw[t].to(device, non_blocking=True))
    result = {}
    for t in specs:
        n = float(counts[t])
        if label_counts is not None:
            label_counts[t] = n
        result[t] = {"loss": float(sums[t]) / n if n else float("nan"), **accs[t].compute()}
    return result


def _evaluate_constant(specs: dict[str, TaskSpec], train_raw: dict[str, Tensor],
                       split: _Tensors | _Stream,
                       batch_size: int = 128) -> dict[str, dict[str, float]]:
    """The constant predictor's loss and metrics on a split (statistics from ``train_raw``)."""
    from taskgrouper.evaluate.metrics import MetricAccumulator

    shape = tuple(split.sample_shape[-2:])
    accs = {t: MetricAccumulator(spec) for t, spec in specs.items()}
    sums = dict.fromkeys(specs, 0.0)
    counts = dict.fromkeys(specs, 0.0)
    for _, targets, raw, n in split.batches(None, batch_size):
        for t, spec in specs.items():
            pred = _constant_outputs(spec, train_raw[t], n, shape)
            accs[t].update(pred, raw[t])
            s, c = task_loss_sum(spec, normalise_pred(spec, pred), targets[t])
            sums[t] += float(s)
            counts[t] += float(c)
    return {t: {"loss": sums[t] / max(counts[t], 1.0), **accs[t].compute()} for t in specs}


def normalise_pred(spec: TaskSpec, pred: Tensor) -> Tensor:
    """Inverse of :func:`denormalise` (a label-scale prediction to the loss scale)."""
    if not spec.normalised:
        return pred
    mean = torch.tensor(spec.mean, dtype=pred.dtype)
    std = torch.tensor(spec.std, dtype=pred.dtype)
    if spec.kind == "dense_regression":
        return (pred - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    if pred.dim() == 1:
        return (pred - mean[0]) / std[0]
    return (pred - mean.view(1, -1)) / std.view(1, -1)


def _memory_format(name: str, input_shape) -> torch.memory_format:
    """``channels_last`` for image inputs under "auto"; vectors stay contiguous."""
    if name == "channels_last" or (name == "auto" and len(input_shape) == 3):
        return torch.channels_last
    return torch.contiguous_format


def _make_optimizer(params, cfg) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class _Schedule:
    """Learning-rate schedules.

    - ``plateau`` (Standley et al. 2020): halve the learning rate every time the epoch's
      training loss did not decrease below the best so far.
    - ``poly`` (the survey's): lr = lr0 * (1 - step / total_steps) ** power, every step.
    - ``none``: constant.
    """

    def __init__(self, optimizer, kind: str, lr0: float, total_steps: int, power: float):
        self.optimizer, self.kind, self.lr0 = optimizer, kind, lr0
        self.total_steps, self.power = max(total_steps, 1), power
        self.step_count = 0
        self.best_train = math.inf

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def after_step(self) -> None:
        self.step_count += 1
        if self.kind == "poly":
            frac = min(self.step_count / self.total_steps, 1.0)
            self._set(self.lr0 * (1.0 - frac) ** self.power)

    def after_epoch(self, train_loss: float) -> None:
        if self.kind != "plateau":
            return
        if train_loss < self.best_train:
            self.best_train = train_loss
        else:
            self._set(self.lr * 0.5)

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "best_train": self.best_train}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]
        self.best_train = state["best_train"]


def check_splits(data: MultiTaskData) -> None:
    """Refuse, before training, splits the run cannot use: an empty training or validation
    split, and a task without a single label in the validation split (in-memory splits; a
    streamed one is counted in the first validation).

    Raises:
        DataError: naming the dataset, the split and the task.
    """
    name = data.name or "dataset"
    for split in ("train", "val"):
        if not len(data.split(split)):
            role = ("the network learns from it" if split == "train" else
                    "the run keeps the weights of the epoch with the lowest validation loss, "
                    "which cannot be measured without samples")
            raise DataError(f"{name}: split '{split}' has no samples; {role}. Add samples to "
                            f"the dataset's '{split}' split")
    val = data.split("val")
    if isinstance(val, LazySplit):
        return
    empty = [t for t, spec in data.tasks.items() if not valid_mask(spec, val.targets[t]).any()]
    if empty:
        raise DataError(_no_val_labels(name, empty, len(val)))


def _no_val_labels(name: str, tasks: list[str], n: int) -> str:
    those = f"task '{tasks[0]}' has" if len(tasks) == 1 else \
        f"tasks {', '.join(repr(t) for t in tasks)} have"
    return (f"{name}: {those} no label in split 'val' (all {n} samples are missing it), so "
            f"the validation loss cannot be measured and no epoch's weights could be kept. Add "
            f"val labels for {'it' if len(tasks) == 1 else 'them'}, or leave "
            f"{'it' if len(tasks) == 1 else 'them'} out of the run (list the other tasks under "
            f"`tasks:` in the config)")


def fit_specs(tasks: dict[str, TaskSpec], targets: dict[str, np.ndarray],
              warn=None) -> dict[str, TaskSpec]:
    """Each task's spec with normalisation fitted on its training labels.

    A regression channel whose training labels are all equal (zero variance) cannot be scaled
    to unit variance: dividing by its standard deviation (~0) would blow every other value up
    (a validation loss of 1e8). It keeps std 1 (labels minus their mean), and ``warn`` gets a
    message naming the task.
    """
    specs = {}
    for name, spec in tasks.items():
        fitted = fit_normalisation(spec, targets[name])
        if fitted.normalised:
            constant = _constant_channels(fitted, targets[name])
            if constant:
                std = [1.0 if c in constant else s for c, s in enumerate(fitted.std)]
                fitted = fitted.with_normalisation(fitted.mean, std)
                if warn is not None:
                    values = ", ".join(f"{fitted.mean[c]:g}" for c in constant)
                    where = ("" if len(fitted.std) == 1 else
                             f" (channel(s) {', '.join(map(str, constant))})")
                    warn(f"task '{name}'{where}: its training labels have zero variance (every "
                         f"valid label is {values}), so they cannot be normalised; the loss "
                         f"uses them minus their mean (std 1), and the network learns nothing "
                         f"about '{name}' from them. Check the labels of task '{name}' in "
                         f"split 'train'")
        specs[name] = fitted
    return specs


def _constant_channels(spec: TaskSpec, target: np.ndarray) -> list[int]:
    """Channels of a normalised task whose valid training labels do not vary (all equal, or
    spread no more than float rounding: std below 1e-6 of the mean's magnitude)."""
    values = channel_values(spec, target)
    return [c for c, row in enumerate(values)
            if row.size and (row.max() == row.min()
                             or spec.std[c] <= 1e-6 * abs(spec.mean[c]))]


def _warn(message: str) -> None:
    print(f"taskgrouper: warning: {message}", file=sys.stderr, flush=True)


#: What :func:`_train` reads from ``last.pt``: key -> accepted types.
_RESUME_STATE: dict[str, tuple[type, ...]] = {
    "model": (Mapping,), "optimizer": (Mapping,), "schedule": (Mapping,),
    "balancer": (Mapping,), "scaler": (Mapping,), "generator": (Tensor,),
    "torch_rng": (Tensor,), "history": (list,), "epoch": (int,), "best_val": (int, float),
    "best_epoch": (int,), "bad_epochs": (int,), "samples": (int,), "wall_s": (int, float)}


def check_resume_state(state: dict, path: Path, epochs: int, affinity: bool = False) -> None:
    """Refuse a ``last.pt`` that lacks a part of the resume state or holds the wrong types.

    Raises:
        CheckpointError: naming the file, what is wrong and the fix.
    """
    problems = []
    for key, types in _RESUME_STATE.items():
        if key not in state:
            problems.append(f"no '{key}'")
        elif not isinstance(state[key], types) or isinstance(state[key], bool):
            problems.append(f"'{key}' is a {type(state[key]).__name__}")
    if affinity and not isinstance(state.get("affinity"), Mapping):
        problems.append("no 'affinity' record (train.affinity_every is set)")
    if not problems:
        bad = [k for k, v in state["model"].items() if not isinstance(v, Tensor)]
        if bad:
            problems.append(f"'model' holds non-tensors ({', '.join(map(str, bad[:3]))})")
        if not 0 <= state["epoch"] <= epochs or not 0 <= state["best_epoch"] <= state["epoch"]:
            problems.append(f"epoch {state['epoch']} (best {state['best_epoch']}) is outside "
                            f"the run's {epochs} epochs")
    if problems:
        raise CheckpointError(f"checkpoint '{path}' is not the resume state that `taskgrouper "
                              f"train` writes ({'; '.join(problems[:4])}); {_LAST_FIX}")


def _restore(state: dict, path: Path, device: torch.device, *, model: nn.Module,
             optimizer: torch.optim.Optimizer, schedule: _Schedule, balancer: Balancer,
             scaler, generator: torch.Generator, recorder) -> None:
    """Load a checked resume state; one that does not fit this run is refused by name."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # moments of another network's shapes
            for p in group["params"]:
                for key, value in optimizer.state.get(p, {}).items():
                    if isinstance(value, Tensor) and value.dim() and value.shape != p.shape:
                        raise ValueError(f"optimizer state '{key}' of shape "
                                         f"{tuple(value.shape)} for a parameter of shape "
                                         f"{tuple(p.shape)}")
        schedule.load_state_dict(state["schedule"])
        balancer.load_state_dict(state["balancer"])
        scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if device.type == "cuda" and isinstance(state.get("cuda_rng"), Tensor):
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)
        if recorder is not None:
            recorder.load_state_dict(state["affinity"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint '{path}' does not fit this run ({_short(err)}); it "
                              f"was written for another network, balancer or config; "
                              f"{_LAST_FIX}") from None


def _load_weights(model: nn.Module, path: Path, device: torch.device) -> None:
    """Load ``path``'s ``model`` weights (a ``best.pt``) into ``model``, or refuse by name."""
    state = load_checkpoint(path, device, fix=_BEST_FIX)
    weights = state.get("model")
    if not isinstance(weights, Mapping) or not all(isinstance(v, Tensor)
                                                   for v in weights.values()):
        raise CheckpointError(f"checkpoint '{path}' holds no model weights (a 'model' dict of "
                              f"tensors); {_BEST_FIX}")
    try:
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint '{path}' holds the weights of another network "
                              f"({_short(err)}); {_BEST_FIX}") from None


def _short(err: BaseException, limit: int = 300) -> str:
    """An exception as one line (torch's load_state_dict errors span several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].lower().startswith("error(s) in loading"):
        lines = lines[1:]
    text = "; ".join(lines) or type(err).__name__
    if isinstance(err, KeyError):
        text = f"no {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def run_identity(config: ExperimentConfig) -> dict:
    """The parts of a config that define a run (device and thread count may change)."""
    dump = config.model_dump(mode="json")
    dump["train"] = {k: v for k, v in dump["train"].items()
                     if k not in ("device", "threads", "eval_batch_size")}
    # how the data is fed does not change what is learned
    dump["data"] = {k: v for k, v in dump["data"].items()
                    if k not in ("workers", "in_memory", "memory_gb")}
    dump.pop("search", None)
    # settings added after runs were stored count only when set, so older runs resume
    if not dump["train"].get("affinity_every"):
        dump["train"].pop("affinity_every", None)
    if dump["model"].get("hidden") is None:
        dump["model"].pop("hidden", None)
    return dump


def check_names(config: ExperimentConfig) -> None:
    """Fail fast, before any data is loaded, on an unknown backbone, architecture or balancer.

    Raises:
        ValueError: naming the config key, the bad value and the closest known name.
    """
    from taskgrouper.balancing import BALANCERS, balancer_info, build_balancer
    from taskgrouper.models import ARCHITECTURES, BACKBONES, arch_info, check_architecture
    from taskgrouper.tasks import closest

    for key, value, known in (
            ("model.backbone", config.model.backbone, BACKBONES),
            ("model.architecture", config.model.architecture, ARCHITECTURES),
            ("balancer.name", config.balancer.name, [b.name for b in BALANCERS])):
        if value not in known:
            raise ValueError(f"{key}: unknown name '{value}'; {closest(value, known)}")
    arch, bal = arch_info(config.model.architecture), balancer_info(config.balancer.name)
    check_architecture(arch.name, config.tasks or [], options=config.model.options)
    build_balancer(bal.name, weights=config.balancer.weights, **config.balancer.options)
    if bal.needs_task_grads and not arch.shared_parameters:
        raise ValueError(f"balancer '{bal.name}' needs per-task gradients of shared parameters, "
                         f"but architecture '{arch.name}' shares none (one network per task); "
                         f"use a loss-weighting balancer ("
                         + ", ".join(b.name for b in BALANCERS if not b.needs_task_grads)
                         + ") or an architecture with a shared encoder")
    if bal.rep_only and not arch.shared_representation:
        raise ValueError(f"balancer '{bal.name}' works on the shared representation, which "
                         f"architecture '{arch.name}' does not have; use hard_sharing, or a "
                         f"balancer on parameter gradients (e.g. mgda)")


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
            that cannot be used (:class:`~taskgrouper.train.checkpoint.CheckpointError`).
        OSError: a write failed, e.g. a full disk
            (:class:`~taskgrouper.train.checkpoint.DiskFullError`).
    """
    from taskgrouper.train import distributed as dp

    check_names(config)
    ctx = dp.setup(config.train.device)
    if not ctx.is_main:
        log = _silent
    if ctx.active and config.train.affinity_every:
        raise ValueError("train.affinity_every records task affinities in one process; set it "
                         "to 0 under torchrun, or train the recording run without torchrun")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # rank 0 holds the folder for every rank of a torchrun
    with hold_run_folder(out) if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main:  # left by a process killed while writing
            for stale in temp_files(out, list(_RUN_FILES)):
                stale.unlink(missing_ok=True)
        return _train(config, out, ctx, data, progress, log)


#: The files a run folder holds.
_RUN_FILES = ("config.json", "last.pt", "best.pt", "log.json", "metrics.json")

_LAST_FIX = "delete it and run the same command again to train this run from scratch"
_BEST_FIX = ("delete it and run the same command again: the run then restores best.pt from "
             "last.pt, or trains again from scratch to rewrite it")


def _train(config: ExperimentConfig, out: Path, ctx, data: MultiTaskData | None,
           progress: bool, log) -> TrainResult:
    """:func:`train` once the run folder is held."""
    from taskgrouper.train import distributed as dp

    identity = run_identity(config)
    config_path = out / "config.json"
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != identity:
            raise ValueError(f"output folder '{out}' holds a run of a different config; pass a "
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
    amp_dtype = _amp_dtype(device, tc.precision)
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
    train_t = _as_tensors(data, "train", specs, workers)
    val_t = _as_tensors(data, "val", specs, workers)

    from taskgrouper.models import build_model

    torch.manual_seed(tc.seed)
    model = build_model(specs, data.input_shape, backbone=config.model.backbone,
                        width=config.model.width, architecture=config.model.architecture,
                        options=config.model.options, hidden=config.model.hidden).to(device)
    memory_format = _memory_format(tc.memory_format, data.input_shape)
    model = model.to(memory_format=memory_format)
    if ctx.active:
        dp.broadcast_state(model)  # one initialisation on every rank
    balancer: Balancer = build_balancer(config.balancer.name, weights=config.balancer.weights,
                                        **config.balancer.options)
    balancer.setup(tasks, model)
    optimizer = _make_optimizer(list(model.parameters()) + balancer.parameters(), tc)

    n_train = len(train_t)
    generator = torch.Generator().manual_seed(tc.seed)
    if tc.train_fraction < 1.0:
        n_keep = max(1, int(n_train * tc.train_fraction))
        keep = torch.randperm(n_train, generator=generator)[:n_keep]
        train_t = train_t.subset(keep)
        n_train = len(train_t)
    steps_per_epoch = math.ceil(n_train / tc.batch_size)
    schedule = _Schedule(optimizer, tc.schedule, tc.lr, steps_per_epoch * tc.epochs,
                         tc.poly_power)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    recorder = None
    if tc.affinity_every:
        from taskgrouper.train.affinity import AffinityRecorder

        recorder = AffinityRecorder(model, tasks, tc.affinity_every,
                                    config.model.architecture)

    history: list[dict[str, Any]] = []
    start_epoch, best_val, best_epoch, bad_epochs = 0, math.inf, 0, 0
    samples, wall = 0, 0.0
    last_path = out / "last.pt"
    state = None
    if last_path.exists():
        state = load_checkpoint(last_path, device, fix=_LAST_FIX)
        check_resume_state(state, last_path, tc.epochs, affinity=recorder is not None)
    restore_best = False
    if state is not None and state["best_epoch"] > 0:
        if best_path.exists():  # read it now, not after the remaining epochs
            _load_weights(model, best_path, device)
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
        _restore(state, last_path, device, model=model, optimizer=optimizer,
                 schedule=schedule, balancer=balancer, scaler=scaler, generator=generator,
                 recorder=recorder)
        history = list(state["history"])
        start_epoch, best_val = int(state["epoch"]), float(state["best_val"])
        best_epoch, bad_epochs = int(state["best_epoch"]), int(state["bad_epochs"])
        samples, wall = int(state["samples"]), float(state["wall_s"])
        if restore_best and ctx.is_main:
            save_checkpoint({"model": state["model"], "epoch": start_epoch}, best_path)
            log(f"{out}: best.pt was missing; restored it from last.pt (epoch {start_epoch}, "
                f"the best so far)")
        log(f"{out}: resuming after epoch {start_epoch}")
    del state
    dp.barrier()  # every rank sees the files rank 0 restored

    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    check_every = 1 if device.type == "cpu" else 25  # finiteness checks sync a GPU
    stopped_early = bad_epochs >= tc.patience
    for epoch in range(start_epoch + 1, tc.epochs + 1):
        if stopped_early:
            break
        if model.on_epoch_start(epoch, tc.epochs):
            # a new phase re-initialised the model (AdaShare's re-training): fresh optimiser
            # and schedule, and the best checkpoint must come from the new phase
            optimizer = _make_optimizer(list(model.parameters()) + balancer.parameters(), tc)
            schedule = _Schedule(optimizer, tc.schedule, tc.lr,
                                 steps_per_epoch * (tc.epochs - epoch + 1), tc.poly_power)
            best_val, bad_epochs = math.inf, 0
            log(f"{out}: epoch {epoch} starts a new training phase")
        model.train()
        t0 = time.perf_counter()
        lr_used = schedule.lr
        running = torch.zeros(len(tasks), dtype=torch.float64, device=device)
        weight_sum = dict.fromkeys(tasks, 0.0)
        order = torch.randperm(n_train, generator=generator)
        bar = _progress(train_t.batches(order, tc.batch_size), progress,
                        f"epoch {epoch}/{tc.epochs}", total=steps_per_epoch)
        for step, (x, batch_targets, _, n_batch) in enumerate(bar):
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
            if step % check_every == 0 or step == steps_per_epoch - 1:
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
            if scaler.is_enabled():
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
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
        val = evaluate_split(model, val_t, specs, device, tc.eval_batch_size, amp_dtype,
                             quick=True, label_counts=labelled)
        unlabelled = [t for t in tasks if not labelled[t]]
        if unlabelled:  # a streamed split is only counted here
            raise DataError(_no_val_labels(data.name or "dataset", unlabelled, len(val_t)))
        val_losses = {t: val[t]["loss"] for t in tasks}
        val_total = sum(val_losses.values())
        balancer.epoch_end(train_losses, val_losses, val)
        schedule.after_epoch(sum(train_losses.values()))
        seconds = time.perf_counter() - t0
        samples += n_train
        wall += seconds
        improved = val_total < best_val
        if improved:
            best_val, best_epoch, bad_epochs = val_total, epoch, 0
            if ctx.is_main:
                save_checkpoint({"model": model.state_dict(), "epoch": epoch}, out / "best.pt")
        else:
            bad_epochs += 1
        history.append({"epoch": epoch, "lr": lr_used, "train": train_losses, "val": val,
                        "val_total": val_total,
                        "weights": {t: w / steps_per_epoch for t, w in weight_sum.items()},
                        "seconds": seconds, "train_seconds": train_seconds,
                        "samples": n_train})
        if ctx.is_main:
            last = {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "balancer": balancer.state_dict(),
                "scaler": scaler.state_dict(), "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "history": history, "epoch": epoch,
                "best_val": float(best_val), "best_epoch": best_epoch,
                "bad_epochs": bad_epochs, "samples": samples, "wall_s": float(wall),
                "affinity": recorder.state_dict() if recorder is not None else None}
            if device.type == "cuda":  # random draws on the device (e.g. AdaShare's Gumbel)
                last["cuda_rng"] = torch.cuda.get_rng_state(device)
            _save_last(out, last, history, tasks)
        log(f"epoch {epoch}: train {sum(train_losses.values()):.4f}  val {val_total:.4f}"
            f"{'  *' if improved else ''}  lr {lr_used:.3g}  {seconds:.1f}s")
        if bad_epochs >= tc.patience:
            log(f"early stop: validation loss has not improved for {tc.patience} epochs")
            stopped_early = True

    # Final evaluation of the kept (best) weights.
    dp.barrier()  # rank 0 has written best.pt
    if best_epoch == 0:
        never = [t for t in tasks
                 if not any(math.isfinite(e["val"][t]["loss"]) for e in history)] or tasks
        raise TrainingDiverged(
            f"{out}: no epoch had a finite validation loss (task(s) {', '.join(never)}: "
            f"NaN/inf in all {len(history)} epoch(s)), so there are no weights to keep; check "
            f"the val labels and inputs of those tasks, or lower train.lr")
    _load_weights(model, best_path, device)
    test_t = _as_tensors(data, "test", specs, workers)
    val = evaluate_split(model, val_t, specs, device, tc.eval_batch_size, amp_dtype)
    test = evaluate_split(model, test_t, specs, device, tc.eval_batch_size, amp_dtype)
    constant = _evaluate_constant(specs, train_raw, test_t, tc.eval_batch_size)
    result = TrainResult(out_dir=str(out), tasks=tasks, val=val, test=test,
                         constant_test=constant, best_epoch=best_epoch,
                         epochs_run=len(history), train_samples=samples, wall_s=wall,
                         cost=_cost(model, config, data.input_shape),
                         extra={} if recorder is None else {"affinity": recorder.result()})
    if ctx.is_main:
        write_json_atomic(asdict(result), out / "metrics.json")
    return result


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


def _cost(model: nn.Module, config: ExperimentConfig, in_shape) -> dict[str, float]:
    from taskgrouper.evaluate.cost import encoder_cost, network_cost

    reference = encoder_cost(config.model.backbone, tuple(in_shape), 1.0, config.model.hidden)
    device = next(model.parameters()).device
    cost = network_cost(model, tuple(in_shape), reference, latency_device=device)
    return {"macs": int(cost.macs), "params": int(cost.params), "snt": float(cost.snt),
            "latency_s": float(cost.latency_s), "latency_device": str(device)}


def _progress(iterable, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True, total=total)
