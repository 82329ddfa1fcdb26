"""Feeding data to the training loop: splits as tensors or streamed from files, and the checks
and preparation before a run.

- :class:`Tensors`: an in-memory split as tensors (inputs, normalised targets for the losses,
  raw targets for the metrics);
- :class:`Stream`: a lazy split read through persistent DataLoader workers, batch by batch;
- :func:`as_tensors` picks one for a split; :func:`prepare_data` decodes a lazy dataset into
  memory when it fits; :func:`check_splits` refuses splits a run cannot use; :func:`fit_specs`
  fits each task's normalisation on its training labels.

Both split kinds yield ``(x, normalised targets, raw targets, n)`` per batch from
``batches(order, batch_size)``, in ``order`` (a permutation tensor) or in turn (``None``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from taskgrouper.data import LazySplit, MultiTaskData, Split
from taskgrouper.data.base import DataError
from taskgrouper.tasks import (
    TaskSpec,
    channel_values,
    fit_normalisation,
    normalise_target,
    valid_mask,
)

__all__ = ["Stream", "Tensors", "as_tensors", "check_splits", "fit_specs", "no_val_labels",
           "prepare_data"]


@dataclass
class Tensors:
    """A split as tensors: inputs, normalised targets (for losses), raw targets (metrics)."""

    x: Tensor
    targets: dict[str, Tensor]
    raw: dict[str, Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, order: Tensor | None, batch_size: int):
        """(x, normalised targets, raw targets, n) per batch, in ``order`` (None: every row in
        turn; an order may name a subset of the rows)."""
        for start in range(0, len(self) if order is None else len(order), batch_size):
            idx = (slice(start, start + batch_size) if order is None
                   else order[start:start + batch_size])
            x = self.x[idx]
            yield (x, {t: v[idx] for t, v in self.targets.items()},
                   {t: v[idx] for t, v in self.raw.items()}, int(x.shape[0]))

    def subset(self, index: Tensor) -> Tensors:
        return Tensors(self.x[index], {t: v[index] for t, v in self.targets.items()},
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


class Stream:
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

    def subset(self, index: Tensor) -> Stream:
        return Stream(self.split.subset(index.tolist()), self.specs, self.workers)

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


def as_tensors(data: MultiTaskData, split: str, specs: dict[str, TaskSpec],
               workers: int = 0) -> Tensors | Stream:
    """Split ``split`` of ``data`` for the loop: a lazy one streamed through ``workers``
    DataLoader processes, an in-memory one as tensors."""
    part = data.split(split)
    if isinstance(part, LazySplit):
        return Stream(part, specs, workers)
    x = torch.from_numpy(np.ascontiguousarray(part.x, dtype=np.float32))
    targets, raw = {}, {}
    for name, spec in specs.items():
        target = part.targets[name]
        raw[name] = torch.from_numpy(np.ascontiguousarray(target))
        targets[name] = torch.from_numpy(np.ascontiguousarray(normalise_target(spec, target)))
    return Tensors(x, targets, raw)


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
        raise DataError(no_val_labels(name, empty, len(val)))


def no_val_labels(name: str, tasks: list[str], n: int) -> str:
    """The refusal of a validation split of ``n`` samples in which ``tasks`` have no label."""
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
