"""Bring-your-own-data: multi-task datasets stored as numpy arrays.

Layout (see DESIGN.md)::

    DIR/tasks.yaml                  tasks: {name: {kind: KIND, classes: K, channels: C}}
    DIR/{train,val,test}/x.npy      inputs, first axis = samples: (N, F) or (N, C, H, W)
    DIR/{train,val,test}/<task>.npy targets; NaN (regression) or -1 (classes) = missing label

Targets have the shapes of the table in :mod:`taskgrouper.tasks`. A one-channel target may be
stored with or without its channel axis ((N, 1) or (N,) for global kinds, (N, 1, H, W) or
(N, H, W) for dense kinds and segmentation); it is loaded in the table's form. Missing labels
are kept as missing (masked out of losses and metrics), never imputed.

Everything is checked when the dataset loads, before any training; a problem raises
:class:`DataError` naming the file, the task and the fix. The checks run in two passes so that a
malformed file anywhere is reported without reading any data:

1. the .npy headers of every split: the file exists and is complete; its dtype holds numbers
   (text, Python objects, complex numbers, dates and records are refused; booleans only for
   ``binary`` and ``dense_binary`` targets, where they mean 0 and 1); ``x`` is (N, F) or
   (N, C, H, W) with N >= 1 and the same sample shape in every split; each target has N
   entries and the shape its spec asks for (``channels`` wide, the images' H and W for dense
   tasks, which need image inputs), so target shapes agree between splits too;
2. the values, as each file is read into memory once (inputs through a memory map, cast to
   float32 block by block): inputs are finite (no NaN or inf, also after the cast to float32);
   class ids are whole numbers in -1..K-1 (NaN also marks a missing label); binary labels are
   0, 1, -1 or NaN; dense binary labels lie in [0, 1] or are NaN; regression targets hold no
   inf; the train split holds at least one label of every task.

Numbers in tasks.yaml: ``classes`` (segmentation, classification) is a whole number >= 2 (see
below for the upper limit); ``channels`` is a whole number >= 1 (3 for normals, 1 for the
binary kinds, the default 1 elsewhere). ``3.0`` counts as 3; ``3.9``, ``true`` and text are refused.

Class counts. A head has one output per declared class, so a class count is cheap to get wrong
and expensive to carry: ``classes: 100000000`` would build a head of gigabytes. With ``need``
the largest class id over all splits plus one (read before any model is built):

- ``classes`` above :data:`MAX_CLASSES` (10,000, more than any dense-prediction benchmark's
  label set) is refused unless the labels reach beyond 10,000 too (``need > 10,000``, a real
  label set such as ImageNet-21k's): a typo cannot allocate a giant head, a real one still loads;
- otherwise a count larger than the labels need is allowed, since a small split may lack the
  last classes and a label set may be planned ahead (21 classes with ids 0..19 on disk is
  fine); but when ``need`` is less than half of ``classes``, a :class:`ClassCountWarning` names
  the count the labels need.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import yaml

from taskgrouper.data.base import SPLITS, DataError, MultiTaskData, Split
from taskgrouper.tasks import KINDS, TaskSpec, closest, valid_mask

__all__ = ["MAX_CLASSES", "ClassCountWarning", "load", "load_arrays", "save_arrays"]

_TASK_KEYS = ("kind", "classes", "channels", "loss", "description")
_CLASS_KINDS = ("segmentation", "classification")
_BINARY_KINDS = ("binary", "dense_binary")

#: The largest ``classes`` a task may declare (see the module docstring).
MAX_CLASSES = 10_000

#: Values per block when inputs are cast to float32 and checked.
_BLOCK = 1 << 22


class ClassCountWarning(UserWarning):
    """A task declares at least twice the classes its labels use (see the module docstring)."""


def _show(value) -> str:
    """A tasks.yaml value as the user wrote it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if isinstance(value, str) else str(value)


def _whole(path: Path, name: str, key: str, value, minimum: int, fix: str) -> int:
    """``value`` as an int when it is a whole number >= ``minimum``, else a DataError."""
    whole = ((isinstance(value, int) and not isinstance(value, bool))
             or (isinstance(value, float) and value.is_integer()))
    if not whole or value < minimum:
        raise DataError(f"{path}: task '{name}' has {key}: {_show(value)}; {key} must be a "
                        f"whole number >= {minimum} ({fix})")
    return int(value)


_CLASSES_FIX = "the number of classes, i.e. the largest class id + 1, e.g. 'classes: 3'"
_CHANNELS_FIX = ("the width of the target: 1 for (N,) targets, C for (N, C) or (N, C, H, W) "
                 "targets; omit it for 1")


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
        channels = _channels(path, name, kind, entry)
        try:
            specs[name] = TaskSpec(name=name, kind=kind, channels=channels,
                                   loss=entry.get("loss", ""),
                                   description=entry.get("description", ""))
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
    return specs


def _channels(path: Path, name: str, kind: str, entry: dict) -> int:
    """The head width a tasks.yaml entry declares, checked (see the module docstring)."""
    if kind in _CLASS_KINDS:
        if "classes" not in entry:
            raise DataError(f"{path}: task '{name}' ({kind}) needs 'classes: K', "
                            f"{_CLASSES_FIX}")
        classes = _whole(path, name, "classes", entry["classes"], 2, _CLASSES_FIX)
        if "channels" in entry and entry["channels"] != classes:
            raise DataError(f"{path}: task '{name}' ({kind}) has channels: "
                            f"{_show(entry['channels'])}; a {kind} head has one output per "
                            f"class: remove 'channels' and keep 'classes: {classes}'")
        return classes
    fixed = {"normals": (3, "normals have 3 channels (x, y, z)"),
             "binary": (1, "a binary task has 1 channel; declare one binary task per label"),
             "dense_binary": (1, "a dense binary task has 1 channel; declare one task per "
                                 "mask")}
    if kind in fixed:
        width, why = fixed[kind]
        if "channels" in entry and entry["channels"] != width:
            raise DataError(f"{path}: task '{name}' has channels: "
                            f"{_show(entry['channels'])}; {why}: remove 'channels'")
        return width
    if "channels" not in entry:
        return 1
    return _whole(path, name, "channels", entry["channels"], 1, _CHANNELS_FIX)


# -- pass 1: headers ---------------------------------------------------------------------------


def _header(path: Path, task: str = "") -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file from its header, checking the file holds the data."""
    if not path.is_file():
        what = f" (the labels of task '{task}')" if task else ""
        raise DataError(f"missing file {path}{what}; every split needs x.npy and one "
                        f"<task>.npy per task")
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = fmt.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = fmt.read_array_header_2_0(f)
            else:  # 3.0: written only for records with non-Latin-1 field names
                raise DataError(f"{path}: holds records (.npy format {version[0]}.{version[1]}); "
                                f"save a plain numeric array with numpy.save")
            offset = f.tell()
        size = path.stat().st_size
    except (ValueError, OSError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a readable .npy file ({err}); re-save it with "
                        f"numpy.save") from None
    shape = tuple(int(s) for s in shape)
    if not dtype.hasobject:
        need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if size < need:
            raise DataError(f"{path}: the file is cut short ({size:,} bytes, its header "
                            f"describes {need:,}: shape {shape}, {dtype}); copy or re-save it "
                            f"with numpy.save")
    return shape, dtype


_DTYPE_WORDS = {"b": "booleans", "U": "text", "S": "bytes (text)", "c": "complex numbers",
                "M": "dates", "m": "time spans", "V": "records or raw bytes", "O": "objects"}


def _what(dtype: np.dtype) -> str:
    if dtype.hasobject:
        return "Python objects (dtype object, never unpickled)"
    return f"{_DTYPE_WORDS.get(dtype.kind, 'non-numbers')} (dtype {dtype})"


def _check_input_header(path: Path, shape, dtype, split: str, first: tuple | None) -> None:
    """The header of one split's x.npy; ``first``: (path, shape) of an earlier split's x."""
    if dtype.hasobject or dtype.kind not in "fiu":
        hint = {"c": "; keep the real and imaginary parts as separate features",
                "U": "; encode text or categories as numbers first",
                "S": "; encode text or categories as numbers first"}.get(dtype.kind, "")
        raise DataError(f"{path}: inputs hold {_what(dtype)}; inputs must be numbers: save "
                        f"them with np.save(path, x.astype(np.float32)){hint}")
    if len(shape) not in (2, 4):
        hint = {0: "for one feature per sample save an array of shape (N, 1)",
                1: "for one feature per sample save x.reshape(-1, 1)",
                3: "for one-channel images save x[:, None], shape (N, 1, H, W); for vectors "
                   "save x.reshape(len(x), -1)"}.get(len(shape), "flatten the extra axes, "
                                                             "x.reshape(len(x), -1)")
        raise DataError(f"{path}: inputs have shape {shape}, but need a sample axis plus "
                        f"features (N, F) or images (N, C, H, W); {hint}")
    if shape[0] == 0:
        fix = ("add samples" if split == "train"
               else f"move some samples from train into {split}")
        raise DataError(f"{path}: the {split} split has no samples (shape {shape}); every split "
                        f"needs at least one: {fix}")
    if 0 in shape[1:]:
        raise DataError(f"{path}: each input has no values (shape {shape}); save at least one "
                        f"feature per sample")
    if first is not None and tuple(first[1][1:]) != tuple(shape[1:]):
        raise DataError(f"{path}: each input is {tuple(shape[1:])} but {first[0]} inputs are "
                        f"{tuple(first[1][1:])}; every split needs the same input shape (the "
                        f"same features, or the same channels and image size): fix the file "
                        f"that differs")


def _target_fix(spec: TaskSpec) -> str:
    if spec.kind in _CLASS_KINDS:
        return "save class ids as integers, -1 for a missing label: ids.astype(np.int64)"
    if spec.kind == "binary":
        return "save labels 0 or 1, NaN or -1 for a missing label: y.astype(np.float32)"
    if spec.kind == "dense_binary":
        return "save values in [0, 1], NaN for an ignored pixel: y.astype(np.float32)"
    return "save numbers, NaN for a missing label: y.astype(np.float32)"


def _check_target_header(spec: TaskSpec, path: Path, shape, dtype, x_path: Path,
                         x_shape) -> tuple[int, ...]:
    """The header of one target file; returns the shape it is loaded with."""
    name, kind, c = spec.name, spec.kind, spec.channels
    allowed = "fiub" if kind in _BINARY_KINDS else "fiu"
    if dtype.hasobject or dtype.kind not in allowed:
        raise DataError(f"{path}: task '{name}' ({kind}) holds {_what(dtype)}; "
                        + _target_fix(spec))
    n = x_shape[0]
    if len(shape) >= 1 and shape[0] != n:
        raise DataError(f"{path}: {shape[0]} labels but {x_path} has {n} inputs; the first "
                        f"dimensions must agree: save one label of task '{name}' per input, NaN "
                        f"or -1 where it is missing")
    rest = tuple(shape[1:])
    if not spec.dense:
        if kind == "regression" and c > 1:
            expected, ok = f"(N, {c})", len(shape) == 2 and rest == (c,)
        else:
            expected, ok = "(N,)", len(shape) == 1 or (len(shape) == 2 and rest == (1,))
        if ok:
            return (n, c) if kind == "regression" and c > 1 else (n,)
        declared = (f"; tasks.yaml says channels: {c}" + (" (the default)" if c == 1 else "")
                    if kind == "regression" else "")
        if kind == "regression" and len(shape) == 2 and shape[1] != c:
            hint = (f"for a {shape[1]}-channel target set 'channels: {shape[1]}' for task "
                    f"'{name}' in tasks.yaml, or save {expected}")
        elif kind == "regression":
            hint = f"save {'one value' if c == 1 else f'{c} values'} per sample, {expected}"
        elif kind == "classification" and len(shape) == 2 and shape[1] == c:
            hint = ("it looks one-hot: save the class ids, labels.argmax(axis=1), with -1 for "
                    "a missing label")
        elif kind == "binary":
            hint = "save one 0/1 label per sample; declare one binary task per label"
        else:
            hint = "save one class id per sample"
        raise DataError(f"{path}: task '{name}' ({kind}) expects shape {expected}, got "
                        f"{shape}{declared}; {hint}")
    if len(x_shape) != 4:
        raise DataError(f"{path}: task '{name}' ({kind}) is a dense task and needs image inputs "
                        f"(N, C, H, W), but {x_path} holds vectors {tuple(x_shape)}; save images "
                        f"in x.npy or declare a global kind (regression, classification)")
    h, w = x_shape[2:]
    if kind == "segmentation":
        expected = "(N, H, W) class ids"
        ok = len(shape) == 3 or (len(shape) == 4 and shape[1] == 1)
        hint = "save one class id per pixel (maps.argmax(axis=1) for one-hot maps)"
    else:
        expected = f"(N, {c}, H, W)" + (" or (N, H, W)" if c == 1 else "")
        ok = (len(shape) == 4 and shape[1] == c) or (len(shape) == 3 and c == 1)
        if kind == "dense_regression" and len(shape) in (3, 4):
            got = shape[1] if len(shape) == 4 else 1
            hint = (f"set 'channels: {got}' for task '{name}' in tasks.yaml, or save "
                    f"{expected}")
        else:
            hint = f"save {expected}"
    if not ok:
        raise DataError(f"{path}: task '{name}' ({kind}) expects shape {expected}, got {shape}; "
                        f"{hint}")
    if tuple(shape[-2:]) != (h, w):
        raise DataError(f"{path}: task '{name}' maps are {tuple(shape[-2:])} (H, W) but "
                        f"{x_path} images are {(h, w)}; dense labels must match the input size: "
                        f"resize the labels (nearest-neighbour for class ids) or the images")
    return (n, h, w) if kind == "segmentation" else (n, c, h, w)


# -- pass 2: values ----------------------------------------------------------------------------


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a readable .npy file ({err}); re-save it with "
                        f"numpy.save") from None


def _read_inputs(path: Path) -> np.ndarray:
    """x.npy as float32, read once block by block, refusing NaN and inf."""
    source = _open(path)
    x = np.empty(source.shape, dtype=np.float32)
    rows = max(1, _BLOCK // max(1, int(np.prod(source.shape[1:]))))
    nan = inf = overflow = 0
    first = None
    for start in range(0, len(x), rows):
        block = x[start:start + rows]
        with np.errstate(over="ignore", invalid="ignore"):  # reported below as inf
            block[...] = source[start:start + rows]
        if source.dtype.kind != "f":
            continue
        finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
        if finite.all():
            continue
        if first is None:
            first = start + int(np.argmin(finite))
        block_nan = int(np.isnan(block).sum())
        block_inf = int(np.isinf(block).sum())
        nan += block_nan
        inf += block_inf
        if block_inf:
            overflow += block_inf - int(np.isinf(source[start:start + rows]).sum())
    del source
    if first is not None:
        note = (f"; {overflow} of them are values beyond the float32 range (about 3.4e38)"
                if overflow else "")
        raise DataError(
            f"{path}: inputs hold {nan} NaN and {inf} infinite value(s), the first in sample "
            f"{first}{note}; inputs must be finite: fill them in (e.g. with the feature's mean "
            f"over train) or drop those samples from x.npy and every <task>.npy of the split "
            f"(a missing label goes in the <task>.npy file, as NaN or -1, never in x)")
    return x


def _read_target(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    return np.array(_open(path)).reshape(shape)


def _conform(spec: TaskSpec, target: np.ndarray, path: Path) -> np.ndarray:
    """Cast a stored target to the conventions of taskgrouper.tasks, checking its values."""
    name, kind = spec.name, spec.kind
    if kind in _CLASS_KINDS:
        if np.issubdtype(target.dtype, np.floating):
            if np.isinf(target).any():
                raise DataError(f"{path}: task '{name}' ({kind}) holds inf; class ids are "
                                f"whole numbers, with -1 or NaN for a missing label")
            bad = np.isfinite(target) & (target != np.round(target))
            if bad.any():
                raise DataError(f"{path}: task '{name}' holds non-integer class ids (e.g. "
                                f"{target[bad].flat[0]}); save whole class ids, with -1 or NaN "
                                f"for a missing label")
            target = np.where(np.isnan(target), -1, target)
        out = (target < -1) | (target >= spec.channels)
        if out.any():
            value = target[out].flat[0]
            value = int(value) if float(value).is_integer() else value
            need = int(target.max()) + 1
            fix = ("fix the labels" if value < 0 or need > MAX_CLASSES
                   else f"fix the labels or set 'classes: {need}' for task '{name}' in "
                        f"tasks.yaml")
            raise DataError(
                f"{path}: task '{name}' has label {value} outside 0..{spec.channels - 1} "
                f"(-1 marks a missing label); {fix}")
        return target.astype(np.int64)
    target = target.astype(np.float32)
    if kind == "binary":
        labelled = target[~np.isnan(target)]
        bad = (labelled != 0) & (labelled != 1) & (labelled != -1)
        if bad.any():
            raise DataError(f"{path}: binary task '{name}' has label {labelled[bad][0]}; "
                            f"use 0, 1, and -1 or NaN for missing")
        return np.where(target == -1, np.nan, target).astype(np.float32)
    if kind == "dense_binary":
        finite = target[np.isfinite(target)]
        bad = (finite < 0) | (finite > 1)
        if bad.any():
            raise DataError(f"{path}: dense binary task '{name}' has label "
                            f"{finite[bad][0]}; use values in [0, 1] (0/1 masks) and NaN for "
                            f"ignored pixels")
    if np.isinf(target).any():
        raise DataError(f"{path}: task '{name}' ({kind}) contains inf (or values beyond the "
                        f"float32 range); use finite labels, NaN for a missing one")
    return target


def load_arrays(path: str | Path, tasks=None) -> MultiTaskData:
    """Read an array dataset folder, checking every file first (see the module docstring).

    Args:
        path: The dataset folder.
        tasks: Task names to load (default: every task in tasks.yaml).

    Raises:
        DataError: naming the folder or file, the task and the fix, for a missing folder or
            file, a malformed tasks.yaml, a dtype or shape that does not fit, splits that
            disagree, NaN or inf inputs, labels out of range, or a class count above
            :data:`MAX_CLASSES` that the labels do not need.

    Warns:
        ClassCountWarning: a task declares at least twice the classes its labels use.
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

    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    first = None
    for split in SPLITS:
        x_path = root / split / "x.npy"
        x_shape, x_dtype = _header(x_path)
        _check_input_header(x_path, x_shape, x_dtype, split, first)
        first = first or (x_path, x_shape)
        shapes[split] = {}
        for name in names:
            file = root / split / f"{name}.npy"
            shape, dtype = _header(file, name)
            shapes[split][name] = _check_target_header(specs[name], file, shape, dtype, x_path,
                                                       x_shape)

    splits = {}
    top = dict.fromkeys(names, -1)  # largest class id over all splits
    for split in SPLITS:
        x = _read_inputs(root / split / "x.npy")
        targets = {}
        for name in names:
            file = root / split / f"{name}.npy"
            spec = specs[name]
            target = _conform(spec, _read_target(file, shapes[split][name]), file)
            if split == "train" and not valid_mask(spec, target).any():
                raise DataError(f"{file}: task '{name}' has no label in the train split (all "
                                f"missing); add labels, or leave the task out of the config's "
                                f"tasks")
            if spec.kind in _CLASS_KINDS:
                top[name] = max(top[name], int(target.max()))
            targets[name] = target
        splits[split] = Split(x, targets)
    for name in names:
        spec = specs[name]
        need = top[name] + 1
        if spec.kind not in _CLASS_KINDS:
            continue
        if spec.channels > MAX_CLASSES and need <= MAX_CLASSES:
            raise DataError(
                f"{root / 'tasks.yaml'}: task '{name}' has classes: {spec.channels} but its "
                f"labels use ids 0..{need - 1} only; more than {MAX_CLASSES:,} classes are "
                f"accepted only when the labels reach beyond that (the head has one output per "
                f"class, so such a count is almost always a typo): set 'classes: {need}'")
        if 2 * need < spec.channels:
            warnings.warn(
                f"{root / 'tasks.yaml'}: task '{name}' declares classes: {spec.channels} but "
                f"its labels use ids 0..{need - 1} only, over train, val and test; the head gets "
                f"{spec.channels - need} outputs no label asks for: set 'classes: {need}' unless "
                f"the other classes are real", ClassCountWarning, stacklevel=2)
    return MultiTaskData({n: specs[n] for n in names}, name=f"arrays:{root}", **splits)


def load(cfg, tasks=None) -> MultiTaskData:
    """The array dataset a ``data`` section (``kind: arrays``) names.

    Raises:
        DataError: no ``data.path``, or what :func:`load_arrays` refuses.
    """
    if not cfg.path:
        raise DataError("data.path is required for kind 'arrays': set it to the dataset folder")
    return load_arrays(cfg.path, tasks)


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
