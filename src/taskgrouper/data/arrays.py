"""Bring-your-own-data: multi-task datasets stored as numpy arrays.

Layout (see DESIGN.md)::

    DIR/tasks.yaml                  tasks: {name: {kind: KIND, classes: K}}
    DIR/{train,val,test}/x.npy      inputs, float32, first axis = samples
    DIR/{train,val,test}/<task>.npy targets; NaN (regression) or -1 (classes) = missing label

Dense targets may be stored without their channel axis ((N, H, W) for one channel). Missing
labels are kept as missing (masked out of losses and metrics), never imputed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from taskgrouper.data.base import SPLITS, DataError, MultiTaskData, Split
from taskgrouper.tasks import KINDS, TaskSpec, closest

__all__ = ["load_arrays", "save_arrays"]

_TASK_KEYS = ("kind", "classes", "channels", "loss", "description")


def _read_specs(root: Path) -> dict[str, TaskSpec]:
    path = root / "tasks.yaml"
    if not path.is_file():
        raise DataError(f"{root}: no tasks.yaml; write one with "
                        f"'tasks: {{NAME: {{kind: regression}}}}' (kinds: {', '.join(KINDS)})")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as YAML ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise DataError(f"{path}: expected a mapping 'tasks: {{NAME: {{kind: KIND}}}}' with at "
                        f"least one task")
    specs = {}
    for name, entry in raw["tasks"].items():
        name = str(name)
        if not isinstance(entry, dict) or "kind" not in entry:
            raise DataError(f"{path}: task '{name}' needs a 'kind' ({', '.join(KINDS)})")
        for key in entry:
            if key not in _TASK_KEYS:
                raise DataError(f"{path}: task '{name}' has unknown key '{key}'; "
                                + closest(str(key), _TASK_KEYS))
        kind = entry["kind"]
        if kind not in KINDS:
            raise DataError(f"{path}: task '{name}' has unknown kind '{kind}'; "
                            + closest(str(kind), KINDS))
        if kind in ("segmentation", "classification"):
            if "classes" not in entry:
                raise DataError(f"{path}: task '{name}' ({kind}) needs 'classes: K'")
            channels = int(entry["classes"])
        elif kind == "normals":
            channels = 3
        else:
            channels = int(entry.get("channels", 1))
        try:
            specs[name] = TaskSpec(name=name, kind=kind, channels=channels,
                                   loss=entry.get("loss", ""),
                                   description=entry.get("description", ""))
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
    return specs


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing file {path}; every split needs x.npy and one <task>.npy per "
                        f"task")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err}); re-save it with "
                        f"numpy.save") from None


def _conform(spec: TaskSpec, target: np.ndarray, path: Path) -> np.ndarray:
    """Cast a stored target to the conventions of taskgrouper.tasks, checking its values."""
    if spec.kind in ("segmentation", "classification"):
        if np.issubdtype(target.dtype, np.floating):
            bad = np.isfinite(target) & (target != np.round(target))
            if bad.any():
                raise DataError(f"{path}: task '{spec.name}' holds non-integer class ids")
            target = np.where(np.isfinite(target), target, -1)
        target = target.astype(np.int64)
        out = (target < -1) | (target >= spec.channels)
        if out.any():
            value = int(target[out].flat[0])
            raise DataError(
                f"{path}: task '{spec.name}' has label {value} outside 0..{spec.channels - 1} "
                f"(-1 marks a missing label); fix the labels or set 'classes' in tasks.yaml")
        return target
    target = target.astype(np.float32)
    if spec.kind == "binary":
        finite = target[np.isfinite(target)]
        bad = (finite != 0) & (finite != 1) & (finite != -1)
        if bad.any():
            raise DataError(f"{path}: binary task '{spec.name}' has label {finite[bad][0]}; "
                            f"use 0, 1, and -1 or NaN for missing")
        return np.where(target == -1, np.nan, target).astype(np.float32)
    if spec.kind == "dense_binary":
        finite = target[np.isfinite(target)]
        bad = (finite < 0) | (finite > 1)
        if bad.any():
            raise DataError(f"{path}: dense binary task '{spec.name}' has label "
                            f"{finite[bad][0]}; use values in [0, 1] (0/1 masks) and NaN for "
                            f"ignored pixels")
    if spec.dense and target.ndim == 3:
        target = target[:, None]  # (N, H, W) -> (N, 1, H, W)
    if spec.dense and (target.ndim != 4 or target.shape[1] != spec.channels):
        raise DataError(f"{path}: task '{spec.name}' ({spec.kind}) expects shape "
                        f"(N, {spec.channels}, H, W), got {target.shape}")
    if np.isinf(target).any():
        raise DataError(f"{path}: task '{spec.name}' contains inf; use NaN for missing labels")
    return target


def load_arrays(path: str | Path, tasks=None) -> MultiTaskData:
    """Read an array dataset folder.

    Args:
        path: The dataset folder.
        tasks: Task names to load (default: every task in tasks.yaml).

    Raises:
        DataError: naming the folder or file and the fix, for a missing folder or file, a
            malformed tasks.yaml, first dimensions that disagree, or labels out of range.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"dataset folder '{root}' does not exist; set data.path to a folder "
                        f"with tasks.yaml and train/, val/, test/ subfolders")
    specs = _read_specs(root)
    names = list(specs) if tasks is None else list(tasks)
    for name in names:
        if name not in specs:
            raise DataError(f"{root}: unknown task '{name}'; {closest(name, specs)}")
    splits = {}
    for split in SPLITS:
        x = _load_npy(root / split / "x.npy").astype(np.float32)
        targets = {}
        for name in names:
            file = root / split / f"{name}.npy"
            target = _conform(specs[name], _load_npy(file), file)
            if target.shape[0] != x.shape[0]:
                raise DataError(f"{file}: {target.shape[0]} labels but {root / split / 'x.npy'} "
                                f"has {x.shape[0]} inputs; the first dimensions must agree")
            targets[name] = target
        splits[split] = Split(x, targets)
    data = MultiTaskData({n: specs[n] for n in names}, name=f"arrays:{root}", **splits)
    if data.input_kind == "image":
        h, w = data.input_shape[1:]
        for name in names:
            t = data.train.targets[name]
            if specs[name].dense and tuple(t.shape[-2:]) != (h, w):
                raise DataError(f"{root}: task '{name}' maps are {tuple(t.shape[-2:])} but "
                                f"inputs are {(h, w)}; dense labels must match the input size")
    return data


def save_arrays(data: MultiTaskData, path: str | Path) -> Path:
    """Write a dataset in the array layout (useful to export synthetic or planted data)."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for name, spec in data.tasks.items():
        entry: dict = {"kind": spec.kind}
        if spec.kind in ("segmentation", "classification"):
            entry["classes"] = spec.channels
        elif spec.kind in ("dense_regression", "regression") and spec.channels != 1:
            entry["channels"] = spec.channels
        tasks[name] = entry
    (root / "tasks.yaml").write_text(yaml.safe_dump({"tasks": tasks}, sort_keys=False))
    for split in SPLITS:
        part = data.split(split)
        (root / split).mkdir(exist_ok=True)
        np.save(root / split / "x.npy", part.x.astype(np.float32))
        for name, target in part.targets.items():
            np.save(root / split / f"{name}.npy", target)
    return root
