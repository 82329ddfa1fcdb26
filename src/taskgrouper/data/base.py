"""The in-memory form every dataset loader returns.

A loader reads (or generates) inputs and targets for the train, val and test splits and returns
a :class:`MultiTaskData`. Targets follow the conventions of :mod:`taskgrouper.tasks` (class ids
with -1 for missing labels, NaN for missing regression labels). Normalisation is not applied
here: :func:`taskgrouper.tasks.fit_normalisation` is fitted on ``train`` by the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taskgrouper.tasks import TaskSpec

__all__ = ["DataError", "MultiTaskData", "Split", "SPLITS"]

SPLITS = ("train", "val", "test")


class DataError(ValueError):
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


@dataclass
class MultiTaskData:
    """A multi-task dataset: task specs and three splits.

    Attributes:
        tasks: Task name -> spec, in the dataset's canonical task order.
        train, val, test: The splits.
        name: A short description for logs and reports.
    """

    tasks: dict[str, TaskSpec]
    train: Split
    val: Split
    test: Split
    name: str = ""

    @property
    def input_kind(self) -> str:
        """``"image"`` for (N, C, H, W) inputs, ``"vector"`` for (N, D)."""
        return "image" if self.train.x.ndim == 4 else "vector"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, e.g. (3, 64, 64)."""
        return tuple(int(s) for s in self.train.x.shape[1:])

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def select_tasks(self, names) -> MultiTaskData:
        """A view with only the named tasks (order as given)."""
        names = list(names)
        return MultiTaskData(
            tasks={n: self.tasks[n] for n in names},
            train=Split(self.train.x, {n: self.train.targets[n] for n in names}),
            val=Split(self.val.x, {n: self.val.targets[n] for n in names}),
            test=Split(self.test.x, {n: self.test.targets[n] for n in names}),
            name=self.name,
        )

    def check(self) -> None:
        """Raise ValueError naming the split and task whose arrays disagree."""
        for split_name in SPLITS:
            split = self.split(split_name)
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
