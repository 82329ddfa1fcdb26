"""Checkpoints that must not be trusted or cannot be used: a pickle payload, a file that is
not a checkpoint, one without weights or with the weights of another network, a best.pt that
is unreadable or gone, and a disk that fills up while a checkpoint is written.

Every refusal exits with status 2, names the file and a fix, and keeps the stored files; where
the fix is to delete a file, following it leads to a working run."""

from __future__ import annotations

import errno
import json
import os
import shlex
from pathlib import Path

import pytest
import torch
from bad_input_helpers import (
    arrays_config,
    assert_kept,
    refused,
    run_cli,
    snapshot,
    write_arrays,
    write_yaml,
)

from taskgrouper.train import trainer as trainer_mod


class _Payload:
    """Unpickling this runs ``touch MARKER``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def _crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": _Payload(marker), "epoch": 1}, path)
    return path


def _setup(tmp_path: Path, name: str = "exp", **config) -> Path:
    """A config file training on a tiny array dataset (shared by every config of a test)."""
    data = tmp_path / "data"
    if not data.exists():
        write_arrays(data)
    cfg = arrays_config(data, epochs=2)
    for key, value in config.items():
        section, _, field = key.partition("__")
        if field:
            cfg[section][field] = value
        else:
            cfg[section] = value
    return write_yaml(tmp_path / f"{name}.yaml", cfg)


def _train(config: Path, run: Path, capsys) -> None:
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err


def _interrupted(config: Path, run: Path, capsys, monkeypatch) -> None:
    """``train`` stopped by Ctrl-C in epoch 2: last.pt and best.pt hold epoch 1."""
    original = trainer_mod.evaluate_split
    calls = {"n": 0}

    def stop_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "evaluate_split", stop_in_epoch_2)
    assert run_cli(["train", config, "--out", run, "--quiet"], capsys).code == 130
    monkeypatch.setattr(trainer_mod, "evaluate_split", original)
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert (run / "best.pt").exists() and not (run / "metrics.json").exists()


def _test_metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["test"]


# -- code in a checkpoint never runs ---------------------------------------------------------

def test_crafted_last_pt_is_refused_and_never_runs(tmp_path, capsys):
    config, run = _setup(tmp_path), tmp_path / "run"
    marker = tmp_path / "pwned"
    _crafted(run / "last.pt", marker)
    before = snapshot(run)
    refused(["train", config, "--out", run], capsys, str(run / "last.pt"), "not loaded",
            "could run code", "delete it")
    assert not marker.exists(), "the checkpoint's pickle payload ran"
    assert_kept(before, run)
    # the advice works: without the file the run trains from scratch
    (run / "last.pt").unlink()
    _train(config, run, capsys)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_crafted_checkpoint_of_an_interrupted_run_is_refused(tmp_path, capsys, monkeypatch,
                                                             name):
    config, run = _setup(tmp_path), tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    marker = tmp_path / "pwned"
    _crafted(run / name, marker)
    before = snapshot(run)
    refused(["train", config, "--out", run], capsys, str(run / name), "delete it")
    assert not marker.exists(), "the checkpoint's pickle payload ran"
    assert_kept(before, run)


def test_crafted_pretrained_checkpoint_is_refused(tmp_path, capsys):
    """cross_stitch starts from single-task best.pt files (model.options.pretrained)."""
    single = tmp_path / "single"
    for task in ("r", "c"):
        _train(_setup(tmp_path, f"only_{task}", tasks=[task], train__epochs=1),
               single / task, capsys)
    marker = tmp_path / "pwned"
    _crafted(single / "r" / "best.pt", marker)
    config = _setup(tmp_path, "stitched", train__epochs=1,
                    model={"backbone": "mlp", "width": 0.25, "hidden": [8],
                           "architecture": "cross_stitch",
                           "options": {"pretrained": str(single)}})
    before = snapshot(single)
    refused(["train", config, "--out", tmp_path / "run"], capsys,
            str(single / "r" / "best.pt"), "not loaded", "train task 'r' alone",
            f"--out {single / 'r'}")
    assert not marker.exists(), "the checkpoint's pickle payload ran"
    assert_kept(before, single)
    # the advice works: delete it, train 'r' alone again (its finished run retrains), stitch
    (single / "r" / "best.pt").unlink()
    _train(tmp_path / "only_r.yaml", single / "r", capsys)
    assert (single / "r" / "best.pt").exists()
    _train(config, tmp_path / "run", capsys)
    assert not marker.exists()


# -- checkpoints that are not resume states of this run ---------------------------------------

@pytest.mark.parametrize("content, words", [
    (b"not a checkpoint at all", ["cannot be read"]),
    ([1, 2, 3], ["holds a list"]),
    ({"epoch": 1, "optimizer": {}}, ["no 'model'"]),
    ({"model": "weights", "epoch": 1}, ["'model' is a str"]),
], ids=["garbage", "a list", "no model key", "model not a dict"])
def test_unusable_last_pt_is_refused_and_deleting_it_works(tmp_path, capsys, monkeypatch,
                                                          content, words):
    config, run = _setup(tmp_path), tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    if isinstance(content, bytes):
        (run / "last.pt").write_bytes(content)
    else:
        torch.save(content, run / "last.pt")
    before = snapshot(run)
    refused(["train", config, "--out", run], capsys, str(run / "last.pt"), *words, "delete it")
    assert_kept(before, run)
    (run / "last.pt").unlink()
    _train(config, run, capsys)
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2


def test_last_pt_with_weights_of_another_network_is_refused(tmp_path, capsys, monkeypatch):
    small, wide = _setup(tmp_path, "small"), _setup(
        tmp_path, "wide", model={"backbone": "mlp", "width": 0.25, "hidden": [16]})
    _interrupted(small, tmp_path / "small_run", capsys, monkeypatch)
    run = tmp_path / "run"
    _interrupted(wide, run, capsys, monkeypatch)
    (run / "last.pt").write_bytes((tmp_path / "small_run" / "last.pt").read_bytes())
    before = snapshot(run)
    refused(["train", wide, "--out", run], capsys, str(run / "last.pt"), "does not fit",
            "size mismatch", "delete it")
    assert_kept(before, run)
    # a state whose values have the wrong types
    state = torch.load(run / "last.pt", weights_only=True)
    state["generator"] = "seed 0"
    torch.save(state, run / "last.pt")
    refused(["train", wide, "--out", run], capsys, str(run / "last.pt"),
            "'generator' is a str")


def test_best_pt_of_another_network_is_refused_at_resume(tmp_path, capsys, monkeypatch):
    config, run = _setup(tmp_path), tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    torch.save({"model": {"w": torch.zeros(3)}, "epoch": 1}, run / "best.pt")
    before = snapshot(run)
    refused(["train", config, "--out", run], capsys, str(run / "best.pt"), "another network",
            "delete it")
    assert_kept(before, run)
    torch.save({"epoch": 1}, run / "best.pt")
    refused(["train", config, "--out", run], capsys, str(run / "best.pt"), "no model weights")


# -- a best.pt that is unreadable or gone: the advice leads to a working run --------------------

def test_corrupt_best_pt_of_an_interrupted_run_then_its_advice(tmp_path, capsys, monkeypatch):
    config = _setup(tmp_path)
    _train(config, tmp_path / "reference", capsys)
    run = tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    (run / "best.pt").write_bytes(b"\x00" * 64)
    before = snapshot(run)
    # refused at once (before the remaining epochs), naming the file and the fix
    refused(["train", config, "--out", run], capsys, str(run / "best.pt"), "cannot be read",
            "delete it")
    assert_kept(before, run)
    (run / "best.pt").unlink()
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    assert "restored it from last.pt" in result.out
    assert _test_metrics(run) == _test_metrics(tmp_path / "reference")


def test_best_pt_deleted_from_a_finished_run_is_trained_again(tmp_path, capsys):
    config = _setup(tmp_path)
    _train(config, tmp_path / "reference", capsys)
    run = tmp_path / "run"
    _train(config, run, capsys)
    (run / "best.pt").unlink()
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    assert (run / "best.pt").exists()
    assert _test_metrics(run) == _test_metrics(tmp_path / "reference")
    # a stored sweep run keeps best.pt alone (last.pt goes): the same
    (run / "best.pt").unlink()
    (run / "last.pt").unlink()
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    assert "training the finished run again from scratch" in result.out
    assert _test_metrics(run) == _test_metrics(tmp_path / "reference")


def test_best_pt_gone_while_last_pt_holds_a_later_epoch(tmp_path, capsys, monkeypatch):
    """best.pt of epoch 1 deleted after epoch 2 was not better: retrained from scratch."""
    config = _setup(tmp_path, train__epochs=3)
    _train(config, tmp_path / "reference", capsys)
    run = tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    state = torch.load(run / "last.pt", weights_only=True)
    state["epoch"] = 2  # as if epoch 2 had run without improving
    torch.save(state, run / "last.pt")
    (run / "best.pt").unlink()
    result = run_cli(["train", config, "--out", run, "--quiet"], capsys)
    assert result.code == 0, result.err
    assert "training the run again from scratch" in result.out
    assert _test_metrics(run) == _test_metrics(tmp_path / "reference")


# -- a full disk -----------------------------------------------------------------------------

class _FullDisk:
    """A file whose every write fails as on a full disk."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def test_full_disk_names_the_file_and_leaves_no_temp_file(tmp_path, capsys, monkeypatch):
    config, run = _setup(tmp_path), tmp_path / "run"
    _interrupted(config, run, capsys, monkeypatch)
    before = snapshot(run)
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real(fd, *a, **k)))
    result = refused(["train", config, "--out", run], capsys, "no space left on device",
                     "free some space", "run the same command again")
    assert str(run / "best.pt") in result.err or str(run / "last.pt") in result.err
    assert "enforce fail" not in result.err
    assert _temp_files(run) == []
    assert_kept(before, run)
    # once there is space again, the run resumes and finishes
    monkeypatch.setattr(os, "fdopen", real)
    _train(config, run, capsys)


def test_full_disk_inside_torch_save_names_the_file(tmp_path, capsys, monkeypatch):
    """torch's zip writer turns the failed write into RuntimeError('[enforce fail at
    inline_container.cc:...] unexpected pos'); the message is about the disk instead."""
    config, run = _setup(tmp_path), tmp_path / "run"
    real = torch.save

    def miniz_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04")  # a partial file
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:  # as torch raises it: the OSError is only its __context__
            raise RuntimeError("[enforce fail at inline_container.cc:672] . "  # noqa: B904
                               "unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", miniz_save)
    result = refused(["train", config, "--out", run], capsys, "no space left on device")
    assert str(run / "best.pt") in result.err and "enforce fail" not in result.err
    assert _temp_files(run) == [] and not (run / "best.pt").exists()
    monkeypatch.setattr(torch, "save", real)
    _train(config, run, capsys)
