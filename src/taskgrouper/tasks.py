"""Task specifications: what a task predicts, its loss, its metrics and its label normalisation.

Label conventions (shared by every dataset, model head, loss and metric):

==================  =====================  ===========  ===============================
kind                target array            dtype        missing / invalid label
==================  =====================  ===========  ===============================
segmentation        (N, H, W) class ids     int64        -1
dense_regression    (N, C, H, W)            float32      NaN
normals             (N, 3, H, W) unit vecs  float32      NaN (any component)
dense_binary        (N, 1, H, W) 0 or 1     float32      NaN
classification      (N,) class ids          int64        -1
binary              (N,) 0 or 1             float32      NaN or -1
regression          (N,) or (N, C)          float32      NaN
==================  =====================  ===========  ===============================

Regression-style targets (``dense_regression`` and ``regression``) are normalised to zero mean
and unit standard deviation with statistics fitted on the training split, as Standley et al.
(2020) normalise every label; losses are computed on normalised values, metrics on the original
scale.

``dense_binary`` targets are per-pixel labels such as edges or saliency; values in between 0
and 1 are accepted by the loss (soft labels) and count as positive in the metrics from 0.5 up.

Options (:attr:`TaskSpec.options`, floats) read by the loss and the metrics:

====================  ================  ===================================================
option                kinds             meaning
====================  ================  ===================================================
``pos_weight``        dense_binary      class-balanced BCE: positives weighted ``w``,
                                        negatives ``1 - w`` (e.g. 0.95 for edges)
``thresholds``        dense_binary      number of evenly spaced probability thresholds
                                        ``k / (n + 1)``, k = 1..n, of the threshold-swept
                                        metrics (default 99, the BSDS benchmark's)
``max_dist``          dense_binary      edge matching tolerance as a fraction of the image
                                        diagonal (default 0.0075; 0.011 for NYUD)
``miou_absent_zero``  segmentation,     1: a class absent from prediction and ground truth
                      dense_binary      counts as IoU 0 in ``miou`` / ``max_miou``; 0
                                        (default): left out of the mean
====================  ================  ===================================================
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field, replace

import numpy as np

from taskgrouper.errors import InputError

__all__ = [
    "KINDS",
    "TaskSpec",
    "channel_values",
    "check_task_name",
    "closest",
    "table_row",
    "fit_normalisation",
    "valid_mask",
]

#: Every task kind, with the number of output channels a head must produce by default.
KINDS: dict[str, str] = {
    "segmentation": "dense",
    "dense_regression": "dense",
    "normals": "dense",
    "dense_binary": "dense",
    "classification": "global",
    "binary": "global",
    "regression": "global",
}

_DEFAULT_LOSS = {
    "segmentation": "cross_entropy",
    "dense_regression": "l1",
    "normals": "l1",
    "dense_binary": "bce",
    "classification": "cross_entropy",
    "binary": "bce",
    "regression": "l1",
}
_ALLOWED_LOSSES = {
    "segmentation": ("cross_entropy",),
    "dense_regression": ("l1", "mse"),
    "normals": ("l1", "cosine"),
    "dense_binary": ("bce",),
    "classification": ("cross_entropy",),
    "binary": ("bce",),
    "regression": ("l1", "mse"),
}


def _initials(name: str) -> str:
    """``learning_rate`` -> ``lr``: the abbreviation difflib cannot see."""
    parts = [p for p in name.replace("-", "_").split("_") if p]
    return "".join(p[0] for p in parts) if len(parts) > 1 else ""


def closest(name: str, choices) -> str:
    """A hint naming the closest of ``choices`` to ``name``, or listing them all."""
    choices = sorted(choices)
    match = [c for c in choices if _initials(name) == c or _initials(c) == name]
    match = match or difflib.get_close_matches(name, choices, n=1, cutoff=0.4)
    if match:
        return f"did you mean '{match[0]}'? (choices: {', '.join(choices)})"
    return f"choices: {', '.join(choices)}"


def table_row(rows, name: str, what: str):
    """The row of a name-keyed table (architectures, balancers, strategies) called ``name``.

    Raises:
        InputError: no row has that name; names ``what`` and suggests the closest.
    """
    for row in rows:
        if row.name == name:
            return row
    raise InputError(f"unknown {what} '{name}'; {closest(name, [r.name for r in rows])}")


#: Longest task name: names become parts of network names, run ids and folder names.
MAX_TASK_NAME = 100
#: Characters no task name may hold, and why.
_RESERVED = {"/": "a path separator", "\\": "a path separator",
             "+": "it joins task names in network names ('depth+normals')",
             "@": "it marks a network's width ('s@0.5')"}


def check_task_name(name: object) -> str:
    """``name`` if it can name a task, else a ValueError saying which name and why.

    Any printable text works (Unicode and inner spaces included) except: an empty name,
    leading or trailing white space, ``.`` and ``..``, control characters, ``/`` and ``\\``
    (run folders are named after tasks), ``+`` and ``@`` (they build network names), and
    names over :data:`MAX_TASK_NAME` characters.
    """
    if not isinstance(name, str):
        raise InputError(f"task name {name!r} is a {type(name).__name__}; task names are text "
                         f"(quote it in YAML: '{name}')")
    if not name.strip():
        raise InputError(f"task name {name!r} is empty; give every task a name")
    if name != name.strip():
        raise InputError(f"task name {name!r} starts or ends with white space; remove it")
    if name in (".", ".."):
        raise InputError(f"task name {name!r} is a folder reference; choose another name")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise InputError(f"task name {name!r} holds the control character "
                             f"U+{ord(char):04X}; remove it")
        if char in _RESERVED:
            raise InputError(f"task name {name!r} holds '{char}', {_RESERVED[char]}; "
                             f"rename the task (e.g. with '_')")
    if len(name) > MAX_TASK_NAME:
        raise InputError(f"task name {name[:20]!r}... has {len(name)} characters, over "
                         f"{MAX_TASK_NAME}; use a shorter name")
    return name


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task.

    Attributes:
        name: Short identifier, e.g. ``"d"`` or ``"depth"``.
        kind: One of :data:`KINDS`.
        channels: Output channels of the head (classes for segmentation/classification,
            3 for normals, 1 for binary, C for regression-style targets).
        loss: Loss name, one of the kind's allowed losses (default: the paper's choice).
        mean: Per-channel label mean used for normalisation (regression-style kinds only).
        std: Per-channel label standard deviation (regression-style kinds only).
        description: Human readable name for reports.
        metrics: Metric names to report (default: the kind's, see :func:`default_metrics`).
        options: (name, value) pairs that tune the loss and the metrics, e.g.
            ``(("pos_weight", 0.95), ("max_dist", 0.011))``; read with :meth:`option`.
    """

    name: str
    kind: str
    channels: int = 1
    loss: str = ""
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    description: str = ""
    metrics: tuple[str, ...] = field(default=())
    options: tuple[tuple[str, float], ...] = field(default=())

    def option(self, name: str, default: float | None = None) -> float | None:
        """The value of option ``name``, or ``default`` when the spec does not set it."""
        for key, value in self.options:
            if key == name:
                return value
        return default

    def __post_init__(self) -> None:
        check_task_name(self.name)
        if self.kind not in KINDS:
            raise InputError(f"task '{self.name}': unknown kind '{self.kind}'; "
                             + closest(self.kind, KINDS))
        if not self.loss:
            object.__setattr__(self, "loss", _DEFAULT_LOSS[self.kind])
        if self.loss not in _ALLOWED_LOSSES[self.kind]:
            raise InputError(f"task '{self.name}': loss '{self.loss}' does not fit kind "
                             f"'{self.kind}'; " + closest(self.loss, _ALLOWED_LOSSES[self.kind]))
        if self.kind == "normals" and self.channels != 3:
            raise InputError(f"task '{self.name}': normals have 3 channels, not {self.channels}")
        if self.kind in ("segmentation", "classification") and self.channels < 2:
            raise InputError(f"task '{self.name}': a {self.kind} task needs classes >= 2 "
                             f"(got {self.channels}); set 'classes' in the task spec")
        if self.kind in ("binary", "dense_binary") and self.channels != 1:
            raise InputError(f"task '{self.name}': {self.kind} tasks have 1 channel")
        if not self.metrics:
            object.__setattr__(self, "metrics", default_metrics(self.kind))

    @property
    def dense(self) -> bool:
        """True when the task predicts a map at the input resolution."""
        return KINDS[self.kind] == "dense"

    @property
    def normalised(self) -> bool:
        """True when targets are standardised by (mean, std) before the loss."""
        return self.kind in ("dense_regression", "regression")

    def with_normalisation(self, mean, std) -> TaskSpec:
        """A copy with the given per-channel statistics."""
        mean = tuple(float(m) for m in np.atleast_1d(mean))
        std = tuple(float(max(s, 1e-8)) for s in np.atleast_1d(std))
        return replace(self, mean=mean, std=std)


def default_metrics(kind: str) -> tuple[str, ...]:
    """The metric names reported for a kind; the first is the headline metric."""
    return {
        "segmentation": ("miou", "pixel_acc"),
        "dense_regression": ("l1", "rmse", "abs_rel", "delta1"),
        "normals": ("mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"),
        "dense_binary": ("f1", "pixel_acc"),
        "classification": ("accuracy",),
        "binary": ("accuracy",),
        "regression": ("l1", "mse"),
    }[kind]


def valid_mask(spec: TaskSpec, target: np.ndarray) -> np.ndarray:
    """Boolean mask of labelled entries, shaped like the target without its channel axis.

    For dense kinds the mask is (N, H, W); for global kinds (N,).
    """
    if spec.kind in ("segmentation", "classification"):
        return target >= 0
    if spec.kind == "binary":
        return np.isfinite(target) & (target >= 0)
    if spec.kind in ("dense_regression", "normals", "dense_binary"):
        return np.all(np.isfinite(target), axis=1)
    # regression: (N,) or (N, C)
    if target.ndim == 1:
        return np.isfinite(target)
    return np.all(np.isfinite(target), axis=1)


def fit_normalisation(spec: TaskSpec, train_target: np.ndarray) -> TaskSpec:
    """Fit per-channel mean and std on the valid labels of the training split.

    Tasks whose kind is not regression-style are returned unchanged.
    """
    if not spec.normalised:
        return spec
    values = channel_values(spec, train_target)
    if not values.shape[1]:
        raise InputError(f"task '{spec.name}': the training split has no valid label")
    values = values.astype(np.float64)
    return spec.with_normalisation(values.mean(axis=1), values.std(axis=1))


def channel_values(spec: TaskSpec, target: np.ndarray) -> np.ndarray:
    """The valid labels of a regression-style target, one row per channel: ``(C, valid)``."""
    mask = valid_mask(spec, target)
    if spec.kind == "dense_regression":
        return np.moveaxis(target, 1, 0)[:, mask]  # (N, C, H, W) -> (C, valid)
    if target.ndim == 1:
        return target[mask][None, :]
    return target[mask].T


def normalise_target(spec: TaskSpec, target: np.ndarray) -> np.ndarray:
    """Standardise a regression-style target with the spec's (mean, std); others unchanged.

    NaN (missing) entries stay NaN.
    """
    if not spec.normalised:
        return target
    if spec.mean is None or spec.std is None:
        raise InputError(f"task '{spec.name}': normalisation not fitted; call fit_normalisation")
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    if spec.kind == "dense_regression":
        shape = (1, -1, 1, 1)  # (N, C, H, W)
    elif target.ndim == 1:
        shape = (-1,)
        mean, std = mean[:1], std[:1]
    else:
        shape = (1, -1)  # (N, C)
    return ((target - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)
