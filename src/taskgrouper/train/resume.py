"""Resuming a run: the checks on ``last.pt`` and ``best.pt`` and loading them into a run.

A checkpoint that lacks part of the resume state, holds the wrong types, or was written for
another network, balancer or config is refused with
:class:`~taskgrouper.models.checkpoint.CheckpointError`, naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from taskgrouper.balancing import Balancer
from taskgrouper.errors import InputError
from taskgrouper.models.checkpoint import CheckpointError, load_checkpoint
from taskgrouper.train.schedule import Schedule

__all__ = ["BEST_FIX", "LAST_FIX", "check_resume_state", "load_weights", "restore"]

#: What to do about an unusable ``last.pt`` (follows "; " in the refusal).
LAST_FIX = "delete it and run the same command again to train this run from scratch"
#: What to do about an unusable ``best.pt``.
BEST_FIX = ("delete it and run the same command again: the run then restores best.pt from "
            "last.pt, or trains again from scratch to rewrite it")

#: What the training loop reads from ``last.pt``: key -> accepted types.
_RESUME_STATE: dict[str, tuple[type, ...]] = {
    "model": (Mapping,), "optimizer": (Mapping,), "schedule": (Mapping,),
    "balancer": (Mapping,), "scaler": (Mapping,), "generator": (Tensor,),
    "torch_rng": (Tensor,), "history": (list,), "epoch": (int,), "best_val": (int, float),
    "best_epoch": (int,), "bad_epochs": (int,), "samples": (int,), "wall_s": (int, float)}


def check_resume_state(state: dict, path: Path, epochs: int, affinity: bool = False,
                       average: bool = False) -> None:
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
    if average and not isinstance(state.get("average"), Mapping):
        problems.append("no 'average' weights (train.ema is set)")
    if not problems:
        bad = [k for k, v in state["model"].items() if not isinstance(v, Tensor)]
        if bad:
            problems.append(f"'model' holds non-tensors ({', '.join(map(str, bad[:3]))})")
        if not 0 <= state["epoch"] <= epochs or not 0 <= state["best_epoch"] <= state["epoch"]:
            problems.append(f"epoch {state['epoch']} (best {state['best_epoch']}) is outside "
                            f"the run's {epochs} epochs")
    if problems:
        raise CheckpointError(f"checkpoint '{path}' is not the resume state that `taskgrouper "
                              f"train` writes ({'; '.join(problems[:4])}); {LAST_FIX}")


def restore(state: dict, path: Path, device: torch.device, *, model: nn.Module,
            optimizer: torch.optim.Optimizer, schedule: Schedule, balancer: Balancer,
            scaler, generator: torch.Generator, recorder, average=None) -> None:
    """Load a checked resume state; one that does not fit this run is refused by name."""
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # moments of another network's shapes
            for p in group["params"]:
                for key, value in optimizer.state.get(p, {}).items():
                    if isinstance(value, Tensor) and value.dim() and value.shape != p.shape:
                        raise InputError(f"optimizer state '{key}' of shape "
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
        if average is not None:
            average.load_state_dict(state["average"])
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint '{path}' does not fit this run ({_short(err)}); it "
                              f"was written for another network, balancer or config; "
                              f"{LAST_FIX}") from None


def load_weights(model: nn.Module, path: Path, device: torch.device) -> None:
    """Load ``path``'s ``model`` weights (a ``best.pt``) into ``model``, or refuse by name."""
    state = load_checkpoint(path, device, fix=BEST_FIX)
    weights = state.get("model")
    if not isinstance(weights, Mapping) or not all(isinstance(v, Tensor)
                                                   for v in weights.values()):
        raise CheckpointError(f"checkpoint '{path}' holds no model weights (a 'model' dict of "
                              f"tensors); {BEST_FIX}")
    try:
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint '{path}' holds the weights of another network "
                              f"({_short(err)}); {BEST_FIX}") from None


def _short(err: BaseException, limit: int = 300) -> str:
    """An exception as one line (torch's load_state_dict errors span several)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].lower().startswith("error(s) in loading"):
        lines = lines[1:]
    text = "; ".join(lines) or type(err).__name__
    if isinstance(err, KeyError):
        text = f"no {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."
