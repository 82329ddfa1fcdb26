"""Checkpoints: a crash leaves the previous file or the new one, never half of one, and
reading a checkpoint never runs code.

A checkpoint holds plain data only: tensors, numbers, strings, ``None``, lists, tuples and
dicts (the model's ``state_dict``, the optimiser's, RNG states as byte tensors, the balancer's
and the schedule's state, the log). :func:`save_checkpoint` refuses anything else, and
:func:`load_checkpoint` reads with ``torch.load(..., weights_only=True)``, which builds only
those types: a file that holds other Python objects (a crafted pickle payload, or a checkpoint
of another program) is refused before any of it is built. No further type is allow-listed.

Writes go through :func:`taskgrouper.io.replace_atomic` (temporary file, fsync, rename; a full
disk raises :class:`~taskgrouper.io.DiskFullError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from taskgrouper.errors import TaskgrouperError
from taskgrouper.io import DiskFullError, replace_atomic

__all__ = ["CheckpointError", "DiskFullError", "load_checkpoint", "save_checkpoint",
           "state_mismatch"]

#: Leaf types a checkpoint may hold besides tensors (all built by the weights-only loader).
_PLAIN = (type(None), bool, int, float, str, bytes, torch.dtype, torch.device, torch.Size)

_REDO = "delete it and run the same `taskgrouper train` command again to write it anew"


class CheckpointError(TaskgrouperError):
    """A checkpoint that cannot be used; the message names the file and the fix."""


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError naming the first value below ``value`` that is not plain data."""
    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise TypeError(f"checkpoint key {key!r} under {where} is a "
                                f"{type(key).__name__}; keys must be strings or integers")
            _check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"checkpoint value {where} is a {type(value).__module__}."
                    f"{type(value).__qualname__}; a checkpoint holds only tensors, numbers, "
                    f"strings, lists and dicts (convert it, e.g. with float() or "
                    f"torch.as_tensor())")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``.

    Raises:
        TypeError: ``state`` holds something other than plain data (a bug of the caller;
            nothing is written).
        DiskFullError: the disk is full (the previous file stays).
    """
    _check_plain(state, "state")
    replace_atomic(Path(path), lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", *,
                    fix: str = _REDO) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, building plain data only.

    Args:
        path: The file.
        device: Where tensors go.
        fix: What the error message tells the user to do (it follows "; ").

    Raises:
        CheckpointError: the file is missing, unreadable, holds Python objects other than plain
            data (it is not unpickled), or is not a dict (names it and ``fix``).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; check the path")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except OSError as err:  # the file is fine, reading it is not (permissions, I/O)
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({err.strerror or err}); "
                              f"check its permissions and the disk") from None
    except Exception as err:  # torch raises several unrelated types for corrupt files
        text = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or re.search(r"unsupported class|reduce for", text, re.IGNORECASE):
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"checkpoint '{path}' holds Python objects other than tensors, numbers, "
                f"strings, lists and dicts{what}, so it was not loaded: unpickling them could "
                f"run code. `taskgrouper train` never writes such objects: the file comes from "
                f"elsewhere or was altered; {fix}") from None
        text = text.split("WeightsUnpickler error:")[-1]  # torch's reason, after its advice
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = lines[0].split(". ")[0][:200] if lines else ""
        reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
        raise CheckpointError(f"checkpoint '{path}' cannot be read ({reason}): it is damaged "
                              f"or not a checkpoint; {fix}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(state).__name__}, not the "
                              f"dict that `taskgrouper train` writes; {fix}")
    return state


def state_mismatch(own: Mapping[str, Any], weights: Mapping[str, Any]) -> str | None:
    """What keeps ``weights`` from loading into a module whose state is ``own`` (missing and
    unexpected keys, shapes that differ; the first three of each), or None when it fits."""
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shapes = [f"{k} {tuple(weights[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
              if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    if not (missing or unexpected or shapes):
        return None
    return "; ".join(f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                     for what, keys in (("missing", missing), ("unexpected", unexpected),
                                        ("shape", shapes)) if keys)
