"""Shared helpers of the bad-input suite: run the CLI in-process, check that nothing stored
before is lost or changed, and write small valid inputs to break one thing at a time."""

from __future__ import annotations

import hashlib
import sqlite3
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskgrouper.cli import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(args: list[str], capsys) -> Outcome:
    """``taskgrouper ARGS`` in this process; a Python exception escaping ``main`` fails the
    test (the user would have seen a traceback)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - any escape is the failure under test
        pytest.fail(f"taskgrouper {' '.join(map(str, args))} raised:\n{traceback.format_exc()}")
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return Outcome(code, captured.out, captured.err)


def refused(args: list[str], capsys, *words: str) -> Outcome:
    """Run the CLI and check it exits 2 with a message holding every one of ``words``
    (case-insensitive)."""
    result = run_cli(args, capsys)
    assert result.code == 2, (result.code, result.err, result.out)
    message = result.err.lower()
    for word in words:
        assert word.lower() in message, (word, result.err)
    return result


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``root`` (an absent root: empty).

    A SQLite store counts by its content (its SQL dump), since opening it to read may
    checkpoint its write-ahead log into the file; the log and shared-memory files are left
    out for the same reason.
    """
    root = Path(root)
    if not root.exists():
        return {}
    out = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(("-wal", "-shm")):
            continue
        if p.suffix == ".sqlite":
            with sqlite3.connect(p) as db:
                data = "\n".join(db.iterdump()).encode()
            db.close()
        else:
            data = p.read_bytes()
        out[str(p.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def assert_kept(before: dict[str, str], root: Path) -> None:
    """Every file of ``before`` is still below ``root`` with the same bytes."""
    after = snapshot(root)
    lost = [k for k in before if k not in after]
    changed = [k for k in before if k in after and after[k] != before[k]]
    assert not lost and not changed, f"lost {lost}, changed {changed}"


def write_yaml(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))
    return path


def write_arrays(root: Path, n: int = 24, features: int = 4, seed: int = 0) -> Path:
    """A valid array dataset: inputs (n, features), a regression task ``r`` and a
    three-class classification task ``c`` in every split."""
    rng = np.random.default_rng(seed)
    write_yaml(root / "tasks.yaml", {"tasks": {"r": {"kind": "regression"},
                                               "c": {"kind": "classification", "classes": 3}}})
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        x = rng.normal(size=(n, features)).astype(np.float32)
        np.save(root / split / "x.npy", x)
        np.save(root / split / "r.npy", (x[:, 0] + 0.1 * rng.normal(size=n)).astype(np.float32))
        np.save(root / split / "c.npy", rng.integers(0, 3, size=n).astype(np.int64))
    return root


def arrays_config(data: Path, **train) -> dict:
    """A config training a tiny MLP on the array dataset at ``data`` for one epoch on CPU."""
    return {"data": {"kind": "arrays", "path": str(data)},
            "model": {"backbone": "mlp", "width": 0.25, "hidden": [8]},
            "train": {"epochs": 1, "batch_size": 8, "device": "cpu", **train}}


def write_named_tasks(root: Path, names, n: int = 24, features: int = 4, seed: int = 0) -> Path:
    """A valid array dataset of regression tasks with the given names (any text)."""
    rng = np.random.default_rng(seed)
    write_yaml(root / "tasks.yaml", {"tasks": {name: {"kind": "regression"} for name in names}})
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        x = rng.normal(size=(n, features)).astype(np.float32)
        np.save(root / split / "x.npy", x)
        for k, name in enumerate(names):
            y = x[:, k % features] + 0.1 * rng.normal(size=n)
            np.save(root / split / f"{name}.npy", y.astype(np.float32))
    return root


def search_config(data: Path, budgets: str = "0.6:1:0.4", **search) -> dict:
    """A search over the array dataset at ``data``: exhaustive, tiny MLPs, one epoch."""
    config = arrays_config(data)
    config["search"] = {"strategy": "exhaustive", "budgets": budgets, "random_trials": 20,
                        **search}
    return config
