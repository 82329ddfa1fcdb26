"""Atomic writes: a crash leaves the previous file or the new one, never half of one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint", "write_json_atomic"]


def _replace_from_temp(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    _replace_from_temp(Path(path), lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Raises:
        ValueError: the file is not a readable checkpoint (names it and the fix).
    """
    try:
        return torch.load(path, map_location=device, weights_only=False)
    except Exception as err:  # torch raises several unrelated types for corrupt files
        raise ValueError(f"checkpoint '{path}' cannot be read ({type(err).__name__}: {err}); "
                         f"delete it to restart that run from scratch") from None


def write_json_atomic(obj: Any, path: str | Path) -> None:
    """Write JSON (indented, keys in insertion order) atomically."""
    data = json.dumps(obj, indent=2, allow_nan=True).encode()
    _replace_from_temp(Path(path), lambda handle: handle.write(data))
