"""The form every dataset loader returns: three splits, in memory or read from files on demand.

A loader reads (or generates) inputs and targets for the train, val and test splits and returns
a :class:`MultiTaskData`. Small datasets hold each split as arrays (:class:`Split`); datasets
read from image files hold a :class:`LazySplit`, a list of sample keys and a picklable reader
that decodes one sample, so training streams them through ``torch.utils.data.DataLoader``
workers (the trainer turns a lazy split into arrays when it fits the memory budget). Targets
follow the conventions of :mod:`taskgrouper.tasks` (class ids
with -1 for missing labels, NaN for missing regression labels). Normalisation is not applied
here: :func:`taskgrouper.tasks.fit_normalisation` is fitted on ``train`` by the trainer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskgrouper.errors import TaskgrouperError
from taskgrouper.tasks import TaskSpec

__all__ = ["DataError", "LazySplit", "MultiTaskData", "Split", "SPLITS", "stats_sample"]

SPLITS = ("train", "val", "test")


class DataError(TaskgrouperError):
    """A dataset problem; the message names the file or folder and what would fix it."""


@dataclass
class Split:
    """One split: inputs and per-task targets, all with the same first dimension.

    Attributes:
        x: Inputs, float32; images (N, C, H, W) or vectors (N, D).
        targets: Task name -> target array (see :mod:`taskgrouper.tasks` for shapes).
    """

    x: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index) -> Split:
        """The split restricted to ``index`` (a slice or an index array)."""
        return Split(self.x[index], {k: v[index] for k, v in self.targets.items()})

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input, e.g. (3, 64, 64)."""
        return tuple(int(s) for s in self.x.shape[1:])

    def with_tasks(self, names) -> Split:
        return Split(self.x, {n: self.targets[n] for n in names})


#: ``reader(key, tasks) -> (x, targets)``: one sample's input (C, H, W) float32 and its targets
#: without the sample axis ((H, W) int64 for segmentation, (C, H, W) float32 for dense maps,
#: scalars or (C,) for global kinds). Must be picklable (a module-level function or a
#: dataclass instance) so DataLoader worker processes can call it.
Reader = Callable[[Any, Sequence[str]], tuple[np.ndarray, dict[str, np.ndarray]]]


@dataclass
class LazySplit:
    """A split whose samples are decoded from files when asked for.

    Attributes:
        keys: One key per sample (e.g. the file stem); passed to ``reader``.
        reader: See :data:`Reader`.
        tasks: The task names ``reader`` returns targets for.
        shape: Shape of one input (C, H, W), known to the loader without decoding.
    """

    keys: list
    reader: Reader
    tasks: tuple[str, ...]
    shape: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.shape)

    def read(self, i: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sample ``i``: (input, targets)."""
        return self.reader(self.keys[int(i)], self.tasks)

    def subset(self, index) -> LazySplit:
        """The split restricted to ``index`` (a slice or an index sequence)."""
        if isinstance(index, slice):
            keys = self.keys[index]
        else:
            keys = [self.keys[int(i)] for i in np.asarray(index).reshape(-1)]
        return LazySplit(keys, self.reader, self.tasks, self.shape)

    def with_tasks(self, names) -> LazySplit:
        return LazySplit(self.keys, self.reader, tuple(names), self.shape)

    def materialise(self) -> Split:
        """Decode every sample into one in-memory :class:`Split`."""
        if not self.keys:
            raise DataError("cannot load an empty split into memory")
        xs, per_task = [], {t: [] for t in self.tasks}
        for i in range(len(self)):
            x, targets = self.read(i)
            xs.append(x)
            for t in self.tasks:
                per_task[t].append(targets[t])
        return Split(np.stack(xs).astype(np.float32, copy=False),
                     {t: np.stack(v) for t, v in per_task.items()})

    def nbytes(self) -> int:
        """Bytes the split would take in memory, estimated from its first sample."""
        x, targets = self.read(0)
        return len(self) * (x.nbytes + sum(v.nbytes for v in targets.values()))


def stats_sample(split: Split | LazySplit, max_samples: int = 512) -> Split:
    """The split itself if in memory, else up to ``max_samples`` evenly spaced samples of it.

    Label statistics of a lazy split (normalisation, the constant baseline) are fitted on this
    sample rather than on every file.
    """
    if isinstance(split, Split):
        return split
    n = len(split)
    index = np.unique(np.linspace(0, n - 1, min(n, max_samples)).round().astype(int))
    return split.subset(index).materialise()


@dataclass
class MultiTaskData:
    """A multi-task dataset: task specs and three splits.

    Attributes:
        tasks: Task name -> spec, in the dataset's canonical task order.
        train, val, test: The splits.
        name: A short description for logs and reports.
        skipped: (file, reason) for every sample the loader left out (a corrupt image, a
            missing label file); the trainer lists them when training starts.
    """

    tasks: dict[str, TaskSpec]
    train: Split | LazySplit
    val: Split | LazySplit
    test: Split | LazySplit
    name: str = ""
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def lazy(self) -> bool:
        """True when any split is read from files on demand."""
        return any(isinstance(self.split(s), LazySplit) for s in SPLITS)

    @property
    def input_kind(self) -> str:
        """``"image"`` for (C, H, W) inputs, ``"vector"`` for (D,)."""
        return "image" if len(self.input_shape) == 3 else "vector"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. (3, 64, 64)."""
        return self.train.sample_shape

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def select_tasks(self, names) -> MultiTaskData:
        """A view with only the named tasks (order as given)."""
        names = list(names)
        return MultiTaskData(
            tasks={n: self.tasks[n] for n in names},
            train=self.train.with_tasks(names),
            val=self.val.with_tasks(names),
            test=self.test.with_tasks(names),
            name=self.name,
            skipped=list(self.skipped),
        )

    def check(self) -> None:
        """Raise ValueError naming the split and task whose arrays disagree."""
        for split_name in SPLITS:
            split = self.split(split_name)
            if isinstance(split, LazySplit):
                if not len(split):
                    raise DataError(f"{self.name or 'dataset'}: split '{split_name}' has no "
                                    f"usable sample; check the split lists and the files")
                missing = set(self.tasks) - set(split.tasks)
                if missing:
                    raise DataError(f"{self.name or 'dataset'}: split '{split_name}' reads no "
                                    f"labels for task(s) {sorted(missing)}")
                continue
            n = len(split)
            for task, target in split.targets.items():
                if target.shape[0] != n:
                    raise DataError(
                        f"{self.name or 'dataset'}: split '{split_name}' has {n} inputs but "
                        f"{target.shape[0]} labels for task '{task}'; the first dimensions of "
                        f"x and every target must agree")
            missing = set(self.tasks) - set(split.targets)
            if missing:
                raise DataError(f"{self.name or 'dataset'}: split '{split_name}' has no "
                                 f"labels for task(s) {sorted(missing)}")
