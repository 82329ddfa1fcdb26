"""Table 3 (transfer affinity) and Figure 3 (multi-task against transfer affinity) in the
search report, when ``results["relationships"]["transfer"]`` exists."""

from __future__ import annotations

import json

import pytest
from report_helpers import fresh_results

from taskgrouper.grouping.relationships import affinity_correlation, transfer_tables
from taskgrouper.report import ResultsFileError, load_and_write, write_report

FIG3 = "fig3_transfer_vs_multitask.png"
OWN = {"a": 2.0, "b": 4.0, "c": 1.0}
LOSSES = {("b", "a"): 1.5, ("c", "a"): 2.2, ("a", "b"): 3.4, ("c", "b"): 5.0,
          ("a", "c"): 0.9, ("b", "c"): 1.15}


def _with_transfer(multi: dict | None = None) -> dict:
    results = fresh_results()
    tables = transfer_tables(OWN, LOSSES, ["a", "b", "c"])  # Table 3: ab 20%, ac 0%, bc -20%
    multi = multi or {"a": {"b": -0.1, "c": 0.2}, "b": {"a": -0.1, "c": 0.05},
                      "c": {"a": 0.2, "b": 0.05}}
    results["relationships"]["transfer"] = {
        "split": "test",
        "own": {t: {"run_id": t, "val": v, "test": v} for t, v in OWN.items()},
        "readouts": [{"source": i, "target": j, "run_id": f"transfer-{i}-to-{j}", "val": v,
                      "test": v} for (i, j), v in LOSSES.items()],
        **tables, "multi_task": multi,
        "correlation": affinity_correlation(multi, tables["affinity"], ["a", "b", "c"]),
        "compute": {"runs": 6, "train_samples": 600, "wall_s": 12.5}}
    return results


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("transfer")
    (out / "results.json").write_text(json.dumps(_with_transfer()), encoding="utf-8")
    md, _ = load_and_write(out)
    return out, md.read_text(encoding="utf-8")


def test_table3_in_the_paper_layout(report):
    _, md = report
    section = md.split("### Table 3: transfer affinity\n\n")[1]
    lines = section.split("\n\n")[0].splitlines()  # the first table
    # rows a, b; columns b, c; the upper triangle: ab (0.25 + 0.15) / 2, ac (-0.1 + 0.1) / 2,
    # bc (-0.25 - 0.15) / 2
    assert lines[0] == "| Task | b | c |"
    assert lines[2:] == ["| a | 20.00% | 0.00% |", "| b |  | -20.00% |"]
    # the ordered table: row = encoder of, column = readout of; e.g. a read out from b's
    # encoder: (2.0 - 1.5) / 2.0 = 25%, b from a's: (4.0 - 3.4) / 4.0 = 15%
    assert "| a | – | 15.00% | 10.00% | 12.50% |" in md
    assert "| b | 25.00% | – | -15.00% | 5.00% |" in md
    assert "| a | 2.0000 | 2.0000 |" in md  # the own networks' losses
    assert "6 readouts, 12.5 s of training" in md


def test_figure3_with_the_correlation_in_its_caption(report):
    out, md = report
    assert (out / "figures" / FIG3).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"](figures/{FIG3})" in md
    # x = (0.2, 0, -0.2), y = (-0.1, 0.2, 0.05): r = -0.5, p = 2/3; rho = -0.5, p = 2/3
    assert ("Figure 3: one point per task pair. Transfer against multi-task affinity over 3 "
            "task pairs: Pearson's r = -0.50 (two-sided p = 0.67), Spearman's rho = -0.50 "
            "(p = 0.67).") in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Table 3: transfer affinity" in html and html.count("data:image/png;base64,") == 6


def test_too_few_pairs_give_text_not_a_figure(tmp_path):
    results = _with_transfer()
    transfer = results["relationships"]["transfer"]
    multi = {"a": {"b": 0.1}, "b": {"a": 0.1}}
    transfer["correlation"] = affinity_correlation(multi, transfer["affinity"], ["a", "b", "c"])
    md, _ = write_report(results, tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "Figure 3" in text and "1 task pair, too few (3 needed)" in text
    # without a multi-task table there is nothing to plot or correlate
    transfer["correlation"] = None
    md, _ = write_report(results, tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "Table 3: transfer affinity" in text and "No multi-task affinity" in text
    assert not (tmp_path / "figures" / FIG3).exists()


def test_no_transfer_section_no_table3(tmp_path):
    md, _ = write_report(fresh_results(), tmp_path)
    assert "Table 3" not in md.read_text(encoding="utf-8")
    assert not (tmp_path / "figures" / FIG3).exists()


def test_malformed_transfer_section_is_named(tmp_path):
    results = _with_transfer()
    results["relationships"]["transfer"]["affinity"] = {"a": 3}
    (tmp_path / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(ResultsFileError, match="section 'relationships' is malformed"):
        load_and_write(tmp_path)
