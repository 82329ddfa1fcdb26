"""report.md and report.html from results.json: files, Table 4, self-containment, errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import fresh_results

from taskgrouper.report import ResultsFileError, load_and_write, write_report

FIGURES = ["fig2_order.png", "fig4_loss_vs_budget.png", "fig5_groupings.png",
           "table1_pair.png", "table2_affinity.png"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    (out / "results.json").write_text(json.dumps(fresh_results()), encoding="utf-8")
    md, html = load_and_write(out)
    assert (md, html) == (out / "report.md", out / "report.html")
    return out


def test_files_written(full_report):
    assert sorted(p.name for p in (full_report / "figures").iterdir()) == FIGURES
    for name in FIGURES:
        assert (full_report / "figures" / name).read_bytes().startswith(PNG)
    md = (full_report / "report.md").read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"](figures/{name})" in md
    assert md.startswith("# Fake search: a, b, c\n")


def test_table4_in_markdown(full_report):
    md = (full_report / "report.md").read_text(encoding="utf-8")
    section = md.split("## Total test loss per budget")[1].split("##")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    assert lines[0] == "| Method | 1 | 2 |"
    assert lines[2:] == [
        "| Optimal (exhaustive) | **1.1700** | **1.1200** |",
        "| ESA | – | 1.1500 |",
        "| All-in-one | **1.1700** | 1.1700 |",
        "| Independent | – | 1.2000 |",
        "| Random (mean of 100) | **1.1700 ± 0.0000** | 1.1412 ± 0.0123 |",
        "| Pessimal | **1.1700** | 1.1900 |",
    ]


def test_report_sections(full_report):
    md = (full_report / "report.md").read_text(encoding="utf-8")
    for heading in ("## Compute and quality", "## Chosen task groupings (Figure 5)",
                    "### Optimal (exhaustive)", "### ESA", "### Pessimal",
                    "### Table 1: pairs against half-width single-task networks",
                    "### Table 2: multi-task affinity", "## Candidate networks"):
        assert f"\n{heading}\n" in md
    assert "### Random" not in md  # a mean over trials has no single grouping
    assert "| ESA | 3,000 | 25.0 | 0.300 | 0.250 | 1.1500 | 1/2 | +2.68% |" in md
    assert "| b | 4.17% | – | -34.64% | -15.23% |" in md
    assert "| 3 tasks | +4.23% | 1 |" in md


def test_html_is_self_contained(full_report):
    html = (full_report / "report.html").read_text(encoding="utf-8")
    assert "http" not in html
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, flags=re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert "<script" not in html and "<link" not in html
    # each figure embedded once, byte for byte
    for name in FIGURES:
        data = base64.b64encode((full_report / "figures" / name).read_bytes()).decode()
        assert html.count(data) == 1
    assert "<strong>1.1200</strong>" in html
    assert "<td>–</td>" in html  # ESA at budget 1


def test_deterministic(full_report, tmp_path):
    md, html = write_report(fresh_results(), tmp_path)
    assert md.read_bytes() == (full_report / "report.md").read_bytes()
    assert html.read_bytes() == (full_report / "report.html").read_bytes()


def test_missing_optional_sections(tmp_path):
    results = fresh_results()
    for key in ("strategies", "baselines", "relationships", "compute", "dataset", "title",
                "version"):
        del results[key]
    md, html = write_report(results, tmp_path)
    text = md.read_text(encoding="utf-8")
    assert "| Optimal (exhaustive) | 1.1700 | 1.1200 |" not in text  # bold: the only row
    assert "| Optimal (exhaustive) | **1.1700** | **1.1200** |" in text
    # relationships recomputed from the candidates: a trained with b: (0.48 - 0.46) / 0.48
    assert "computed from the candidates' test losses" in text
    assert "| b | 4.17% |" in text
    assert html.is_file()


def test_minimal_and_empty_results(tmp_path):
    md, _ = write_report({"tasks": ["a"], "selections": []}, tmp_path / "one")
    assert "No selections or baselines" in md.read_text(encoding="utf-8")
    md, html = write_report({}, tmp_path / "empty")
    assert md.read_text(encoding="utf-8").startswith("# taskgrouper report\n")
    assert "<title>taskgrouper report</title>" in html.read_text(encoding="utf-8")


def test_stale_figures_removed(full_report, tmp_path):
    shutil.copytree(full_report / "figures", tmp_path / "figures")
    results = fresh_results()
    del results["relationships"], results["candidates"]
    write_report(results, tmp_path)
    left = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert left == ["fig4_loss_vs_budget.png", "fig5_groupings.png"]


def test_missing_results_json(tmp_path):
    with pytest.raises(ResultsFileError) as err:
        load_and_write(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "results.json") in msg
    assert "taskgrouper search" in msg and "taskgrouper demo" in msg
    with pytest.raises(ResultsFileError, match="no such file"):
        load_and_write(tmp_path / "nowhere")


def test_corrupt_results_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"tasks": ["a", ', encoding="utf-8")
    with pytest.raises(ResultsFileError) as err:
        load_and_write(tmp_path)
    assert str(path) in str(err.value) and "not valid JSON" in str(err.value)
    assert "taskgrouper search" in str(err.value)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ResultsFileError, match=re.escape(str(path))):
        load_and_write(path)  # the file itself is accepted too
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ResultsFileError, match="not a UTF-8"):
        load_and_write(tmp_path)
    assert isinstance(err.value, ValueError)  # the CLI's error handler catches it


def test_malformed_section_is_named(tmp_path):
    results = fresh_results()
    results["candidates"] = [{"id": "x", "tasks": ["a"], "width": "wide", "val": {}}]
    del results["relationships"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(ResultsFileError) as err:
        load_and_write(tmp_path)
    assert str(path) in str(err.value) and "'relationships'" in str(err.value)


def test_no_torch_and_lazy_matplotlib(tmp_path):
    code = (
        "import sys, json\n"
        "import taskgrouper.report, taskgrouper.grouping.relationships\n"
        "assert 'matplotlib' not in sys.modules\n"
        "taskgrouper.report.write_report({'tasks': ['a'], 'budgets': [1.0], 'selections': "
        "[{'budget': 1.0, 'networks': ['a'], 'test_total': 0.5, 'assignment': {'a': 'a'}}]}, "
        f"{str(tmp_path)!r})\n"
        "assert 'matplotlib' in sys.modules\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
