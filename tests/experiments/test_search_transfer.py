"""``search.transfer``: a search also trains the transfer readouts on its own full-width
single-task networks and reports Table 3 and Figure 3 (Standley et al. 2020, Sec. 5.1)."""

from __future__ import annotations

import json

import pytest
import torch

from taskgrouper.config import ExperimentConfig
from taskgrouper.errors import InputError
from taskgrouper.experiments.search import search
from taskgrouper.models.checkpoint import load_checkpoint
from taskgrouper.runs.store import RunStore

TINY = {
    "data": {"kind": "synthetic", "n_train": 32, "n_val": 16, "n_test": 16, "resolution": 32,
             "cache": False},
    "tasks": ["d", "e", "n"],
    "model": {"backbone": "shallow", "scale": 0.25},
    "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "device": "cpu", "threads": 1},
    "search": {"strategy": "exhaustive", "budgets": "1:3:1"},
}


def _config(transfer: bool, keep_weights: str = "chosen") -> ExperimentConfig:
    raw = json.loads(json.dumps(TINY))
    raw["search"].update(transfer=transfer, keep_weights=keep_weights)
    return ExperimentConfig.model_validate(raw)


def _stored(out) -> dict[str, str]:
    with RunStore(out / "runs.sqlite") as store:
        return {r.id: r.finished_at for r in store.records()}


def _quiet(*_) -> None:
    pass


@pytest.mark.slow
def test_transfer_is_added_to_a_finished_search_and_then_resumes(tmp_path):
    out = tmp_path / "search"
    plain = search(_config(False), out, baselines=False, progress=False, log=_quiet)
    assert "transfer" not in plain["relationships"]
    before = _stored(out)

    # the same folder with search.transfer: the search itself is not repeated, only the six
    # readouts train; their sources' weights, deleted when unchosen, are restored first by
    # training them again with the same seed
    for t in "den":
        (out / "runs" / t / "best.pt").unlink(missing_ok=True)
    messages: list[str] = []
    results = search(_config(True, keep_weights="all"), out, baselines=False, progress=False,
                     log=messages.append)
    assert sum("weights were deleted" in m for m in messages) == 3
    after = _stored(out)
    new = sorted(set(after) - set(before))
    assert new == sorted(f"transfer-{i}-to-{j}" for i in "den" for j in "den" if i != j)
    assert {k: after[k] for k in before} == before
    transfer = results["relationships"]["transfer"]
    cands = {c["id"]: c for c in results["candidates"]}
    # own losses are the search's full-width single-task networks
    for t in "den":
        assert transfer["own"][t]["test"] == cands[t]["test"][t]
        assert transfer["own"][t]["run_id"] == cands[t]["run_id"]
    for r in transfer["readouts"]:
        i, j = r["source"], r["target"]
        own = cands[j]["test"][j]
        assert transfer["pair"][j][i] == pytest.approx((own - r["test"]) / abs(own))
        # each readout sits on its source's (restored) encoder, which is the stored network
        src = load_checkpoint(out / "runs" / i / "best.pt")["model"]
        got = load_checkpoint(out / "runs" / r["run_id"] / "best.pt")["model"]
        assert all(torch.equal(got[k], v) for k, v in src.items() if k.startswith("encoder."))
    for t in "den":
        restored = json.loads((out / "runs" / t / "metrics.json").read_text())
        assert restored["test"][t]["loss"] == cands[t]["test"][t]
    # Figure 3's points: Table 3 (x) against the search's own Table 2 (y), three pairs
    corr = transfer["correlation"]
    table2 = results["relationships"]["affinity"]
    assert corr["pairs"] == [["d", "e"], ["d", "n"], ["e", "n"]]
    assert corr["multi_task"] == [table2[t][u] for t, u in corr["pairs"]]
    assert corr["transfer"] == [pytest.approx(transfer["affinity"][t][u])
                                for t, u in corr["pairs"]]
    assert corr["pearson_r"] is None or -1.0 <= corr["pearson_r"] <= 1.0
    report = (out / "report.md").read_text()
    assert "Table 3: transfer affinity" in report
    assert (out / "figures" / "fig3_transfer_vs_multitask.png").is_file()
    assert json.loads((out / "results.json").read_text())["relationships"]["transfer"] == \
        json.loads(json.dumps(transfer))

    # a third call trains nothing and reports the same
    again = search(_config(True), out, baselines=False, progress=False, log=_quiet)
    assert _stored(out) == after
    assert again["relationships"]["transfer"] == json.loads(json.dumps(transfer))


def test_transfer_needs_hard_sharing_before_anything_trains(tmp_path):
    raw = json.loads(json.dumps(TINY))
    raw["search"]["transfer"] = True
    raw["model"]["architecture"] = "mtan"
    with pytest.raises(InputError, match="search.transfer: true.*model.architecture 'mtan'"):
        search(ExperimentConfig.model_validate(raw), tmp_path / "o", progress=False,
               log=_quiet)
    assert not (tmp_path / "o" / "runs.sqlite").exists()
