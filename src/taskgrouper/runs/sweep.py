"""A sweep: train many independent runs, record each in the store as it finishes, resume.

Layout of a sweep folder ``DIR``::

    DIR/runs.sqlite            the result store (written by this process only)
    DIR/runs/<id>/             one training run: config.json, best.pt, log.json,
                               metrics.json (see taskgrouper.train), train.log (its messages),
                               error.log (the traceback, if it failed); last.pt (the resume
                               state) while it trains, removed once the run is stored
    DIR/.sweep.lock            held while a sweep runs, so two drivers never share a folder

Resuming is by construction: runs in the store are skipped; a run that was killed resumes from
its ``last.pt`` (the trainer does that); a run that finished but was not yet recorded returns
its ``metrics.json`` without training.
"""

from __future__ import annotations

import functools
import os
import socket
import traceback
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from taskgrouper.errors import InputError, SetupError, TaskgrouperError
from taskgrouper.runs.executors import Executor, build_executor
from taskgrouper.runs.store import RunRecord, RunSpec, RunStore, config_identity

__all__ = ["SweepError", "run_sweep"]


class SweepError(TaskgrouperError, RuntimeError):
    """Some runs of a sweep failed; every other run finished and is stored.

    Attributes:
        failures: Run id -> one-line message (exception type and text).
        errors: Run id -> the exception itself.
    """

    def __init__(self, errors: dict[str, BaseException], finished: int, total: int,
                 out_dir: Path):
        self.errors = dict(errors)
        self.failures = {rid: _one_line(err) for rid, err in errors.items()}
        lines = [f"{len(errors)} of {total} runs failed ({finished} finished and stored in "
                 f"'{out_dir / 'runs.sqlite'}'); tracebacks are in '{out_dir / 'runs'}/<id>/"
                 f"error.log'. Run the sweep again to retry only the runs that did not finish:"]
        lines += [f"  {rid}: {msg}" for rid, msg in self.failures.items()]
        super().__init__("\n".join(lines))


def run_sweep(specs: Iterable[RunSpec], out_dir: str | Path, *,
              store: RunStore | str | Path | None = None,
              executor: Executor | str | None = None, workers: int = 1, data=None,
              progress: bool = True, log=print) -> dict[str, RunRecord]:
    """Train every spec not yet in the store, recording each run as soon as it finishes.

    Args:
        specs: The runs (ids unique; an id is the run's folder name under ``out_dir/runs``).
        out_dir: The sweep folder.
        store: The result store, or its path; default ``out_dir/runs.sqlite``. Only this
            process writes to it.
        executor: An :class:`~taskgrouper.runs.executors.Executor` or its name (``inline``,
            ``local``); default inline for ``workers == 1``, else a local process pool.
        workers: Worker processes when ``executor`` is not given.
        data: An already loaded :class:`~taskgrouper.data.MultiTaskData` shared by every run
            (each run's ``tasks`` select from it); each run loads ``config.data`` when None.
            Local workers inherit it without copying.
        progress: One progress bar for the sweep (and per-epoch bars for in-process runs).
        log: Where one line per finished or failed run goes.

    Returns:
        Run id -> record, for every spec (those stored by earlier calls included), in the
        order of ``specs``.

    Raises:
        ValueError: duplicate ids; a stored run whose config differs from its spec's; a bad
            config (before anything trains).
        SweepError: after every run was tried, if some failed (the rest are stored).
        RuntimeError: another sweep is running on ``out_dir``.
    """
    from taskgrouper.config import parse_config

    specs = list(specs)
    _check_unique(specs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_store = not isinstance(store, RunStore)
    run_store = RunStore(out if store is None else store) if own_store else store
    try:
        with _sweep_lock(out):
            done = run_store.done_ids()
            _check_stored_configs(run_store, [s for s in specs if s.id in done])
            todo = [s for s in specs if s.id not in done]
            for spec in todo:
                parse_config(spec.config, source=f"run '{spec.id}'")  # fail before training
            runner = build_executor(executor, workers)
            return _run(specs, todo, out, run_store, runner, data, progress, log)
    finally:
        if own_store:
            run_store.close()


def _run(specs: list[RunSpec], todo: list[RunSpec], out: Path, store: RunStore,
         executor: Executor, data, progress: bool, log) -> dict[str, RunRecord]:
    from tqdm.auto import tqdm

    total = len(specs)
    bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="run",
               disable=not progress, dynamic_ncols=True)

    def say(message: str) -> None:
        with tqdm.external_write_mode():
            log(message)

    if len(todo) < total:
        say(f"{total - len(todo)} of {total} runs already in '{store.path}'; "
            f"{len(todo)} to train")
    fn = functools.partial(_train_spec, out_dir=str(out),
                           progress=progress and executor.in_process)
    errors: dict[str, BaseException] = {}
    try:
        for spec, outcome in executor.submit_all(fn, todo, shared=data):
            if isinstance(outcome, BaseException):
                errors[spec.id] = outcome
                _write_error(out / "runs" / spec.id, outcome)
                say(f"run {spec.id} failed: {_one_line(outcome)}")
            else:
                record = RunRecord.from_result(spec, outcome)
                store.record(record)
                run_dir = out / "runs" / spec.id
                (run_dir / "error.log").unlink(missing_ok=True)  # an old failure
                # Stored runs are never resumed: the resume state (optimiser moments and all,
                # about three times the weights) goes; best.pt keeps the trained weights.
                (run_dir / "last.pt").unlink(missing_ok=True)
                losses = "  ".join(f"{t} {v:.4g}" for t, v in record.val_losses.items())
                say(f"run {spec.id} done: val loss {losses}  ({record.wall_s:.1f}s)")
            bar.set_postfix(failed=len(errors), refresh=False)
            bar.update(1)
    finally:
        bar.close()
    records = {s.id: store.get(s.id) for s in specs}
    if errors:
        finished = sum(r is not None for r in records.values())
        raise SweepError(errors, finished, total, out)
    return records


def _train_spec(spec: RunSpec, data=None, *, out_dir: str, progress: bool):
    """One run, in whichever process the executor chose: train (or resume) in its folder."""
    from taskgrouper.config import parse_config
    from taskgrouper.train import trainer

    run_dir = Path(out_dir) / "runs" / spec.id
    run_dir.mkdir(parents=True, exist_ok=True)
    config = parse_config(spec.config, source=f"run '{spec.id}'")
    with open(run_dir / "train.log", "a", encoding="utf-8") as handle:
        def log(message: str) -> None:
            print(message, file=handle, flush=True)

        log(f"run {spec.id}: process {os.getpid()} on {socket.gethostname()}")
        return trainer.train(config, run_dir, data=data, progress=progress, log=log)


def _check_unique(specs: list[RunSpec]) -> None:
    counts = Counter(s.id for s in specs)
    dupes = sorted(rid for rid, n in counts.items() if n > 1)
    if dupes:
        raise InputError(f"run ids must be unique in a sweep; repeated: {', '.join(dupes)}")


def _check_stored_configs(store: RunStore, specs: list[RunSpec]) -> None:
    """A stored run must be the run its spec describes; otherwise skipping it would be wrong."""
    changed = []
    for spec in specs:
        stored = store.get(spec.id)
        if config_identity(stored.config) != config_identity(spec.config):
            changed.append(spec.id)
    if changed:
        raise InputError(
            f"run(s) {', '.join(changed)} are stored in '{store.path}' with a different config "
            f"than the specs now give them; a changed run needs a new id (RunSpec.create "
            f"derives ids from configs), or use a new sweep folder")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _write_error(run_dir: Path, err: BaseException) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    (run_dir / "error.log").write_text(text, encoding="utf-8")


def _sweep_lock(out: Path):
    """An exclusive lock on ``DIR/.sweep.lock`` for the life of a sweep."""
    from taskgrouper.io import hold_lock

    def busy(holder: str) -> SetupError:
        return SetupError(f"another sweep (pid {holder or 'unknown'}) is running on '{out}'; "
                          f"wait for it to finish, or use another folder")

    return hold_lock(out / ".sweep.lock", busy)
