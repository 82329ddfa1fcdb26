"""Transfer readouts: task ``j`` predicted from task ``i``'s frozen encoder.

How Taskonomy measures transfer, and what Standley et al. (2020, Sec. 5, Table 3, Figure 3)
compare multi-task affinity with: take the network trained for source task ``i`` alone, freeze
its encoder, and train only a readout (the head) for target task ``j`` on it. ``j``'s loss
there against ``j``'s loss in its own network says how much of what ``j`` needs ``i``'s encoder
already holds (:func:`taskgrouper.grouping.relationships.transfer_table`).

A readout is an ordinary run of :func:`taskgrouper.train.train`: a hard_sharing network of
task ``j`` with the source's backbone, width and ``model.scale``, whose ``model.options``
carry ``frozen_encoder: <source run folder>`` (the encoder is read from the source's
``best.pt`` as plain data and frozen, its batch-norm statistics included; see
:mod:`taskgrouper.models.arch.hard_sharing`). Everything else is the experiment's: data,
balancer, optimiser, schedule, early stopping, seed, device. So a readout resumes, refuses a
folder of another run, and returns at once when finished, like every run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from taskgrouper.config import ExperimentConfig, parse_config
from taskgrouper.errors import InputError
from taskgrouper.train.trainer import TrainResult, train

__all__ = ["readout_config", "source_run", "train_transfer"]


def source_run(source: str | Path) -> tuple[str, ExperimentConfig]:
    """The task and the config of a finished single-task hard_sharing run folder.

    Reads the folder's ``config.json`` (JSON, validated as a config); the weights are read
    only when the readout's network is built.

    Raises:
        InputError: not a folder, not a finished run (no ``config.json`` or
            ``metrics.json``), a run of several tasks, of another architecture, or itself a
            readout (names the folder and the fix).
    """
    folder = Path(source)
    train_fix = (f"train the source task alone first: `taskgrouper train CONFIG --out {folder}` "
                 f"with one task and architecture hard_sharing")
    if not folder.is_dir():
        raise InputError(f"transfer source '{folder}' is not a run folder; {train_fix}")
    path = folder / "config.json"
    if not path.is_file():
        raise InputError(f"transfer source '{folder}' holds no run (no config.json); "
                         f"{train_fix}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"'{path}' cannot be read as JSON ({err}); {train_fix}") from None
    config = parse_config(raw, source=str(path))
    if not (folder / "metrics.json").is_file():
        raise InputError(f"transfer source '{folder}' has not finished training (no "
                         f"metrics.json); run the same `taskgrouper train` command again to "
                         f"finish it")
    tasks = config.tasks or []
    if len(tasks) != 1:
        raise InputError(f"transfer source '{folder}' is a run of {len(tasks) or 'all the'} "
                         f"tasks ({', '.join(tasks) or 'none listed'}); a transfer source is a "
                         f"network of one task: {train_fix}")
    if config.model.architecture != "hard_sharing":
        raise InputError(f"transfer source '{folder}' is a '{config.model.architecture}' "
                         f"network; readouts read the shared encoder of a hard_sharing "
                         f"network: {train_fix}")
    if config.model.options.get("frozen_encoder") is not None:
        raise InputError(f"transfer source '{folder}' is itself a transfer readout; use the "
                         f"source task's own network")
    return tasks[0], config


def readout_config(config: ExperimentConfig, source: str | Path,
                   target: str) -> ExperimentConfig:
    """The run that trains a readout for ``target`` on ``source``'s frozen encoder.

    Args:
        config: The experiment: its data, balancer and train sections are used (the
            balancer weight of ``target`` only).
        source: A finished single-task hard_sharing run folder (see :func:`source_run`);
            its model section (backbone, width, ``model.scale``, head) is used.
        target: The task to read out.

    Raises:
        InputError: a bad source (see :func:`source_run`).
    """
    _, src = source_run(source)
    dump = config.model_dump(mode="json")
    dump.pop("search", None)
    dump["tasks"] = [target]
    weights = (dump.get("balancer") or {}).get("weights")
    if weights:
        dump["balancer"]["weights"] = {t: w for t, w in weights.items() if t == target} or None
    model = src.model.model_dump(mode="json")
    model["options"] = {**{k: v for k, v in model["options"].items() if k == "head"},
                        "frozen_encoder": str(Path(source).resolve())}
    dump["model"] = model
    return parse_config(dump, source=f"transfer readout of '{target}' from '{source}'")


def train_transfer(config: ExperimentConfig, source: str | Path, target: str,
                   out_dir: str | Path, *, data=None, progress: bool = True,
                   log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume, or return the finished) readout of ``target`` on ``source``'s frozen
    encoder in ``out_dir``.

    Args:
        config: The experiment (see :func:`readout_config`).
        source: The source task's finished single-task run folder (its ``best.pt`` is read).
        target: The task to read out.
        out_dir: The readout's run folder.
        data: An already loaded dataset holding ``target`` (loaded from ``config.data``
            when None).
        progress: Progress bars.
        log: Where status lines go.

    Returns:
        The readout's :class:`~taskgrouper.train.TrainResult`: ``val`` and ``test`` hold
        ``target``'s losses and metrics.
    """
    return train(readout_config(config, source, target), out_dir, data=data,
                 progress=progress, log=log)
