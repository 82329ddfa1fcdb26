"""Network names and run ids never collide, whatever the task names."""

from __future__ import annotations

import itertools

import pytest

from taskgrouper.grouping.candidates import (
    Candidate,
    baseline_candidates,
    fully_trained,
    network_name,
    pairs_and_singles,
    run_id_base,
    search_candidates,
)
from taskgrouper.runs.store import RunSpec
from taskgrouper.tasks import check_task_name

TASK_SETS = [
    ("s", "d", "n", "k", "e"),                 # the paper's: concatenated names
    ("a", "b", "ab"),                          # {a, b} and ab's own network were both "ab"
    ("a", "b", "c", "abc", "bc"),
    ("depth", "normals", "depth_normals"),
    ("深度", "surface normals", "x"),           # Unicode and spaces
    ("s-w0.5", "s", "e1"),                     # names shaped like run id suffixes
    ("t" * 100, "t" * 99, "u"),                # long names: ids stay folder-sized
]


@pytest.mark.parametrize("tasks", TASK_SETS, ids=lambda t: "+".join(x[:8] for x in t))
def test_every_plan_has_distinct_names_and_run_ids(tasks):
    plans = [search_candidates(tasks), pairs_and_singles(tasks), baseline_candidates(tasks),
             search_candidates(tasks, fraction=0.2, epochs=1)]
    everything = {c for plan in plans for c in plan}
    names = {(c.tasks, c.width): c.name for c in everything}
    assert len(set(names.values())) == len(names)  # one name per (tasks, width)
    ids = {c: c.run_id for c in everything}
    assert len(set(ids.values())) == len(ids)
    for run_id in ids.values():  # every id is a valid folder name of the store
        RunSpec(run_id, "candidate", {})


def test_names_of_the_three_task_example():
    # tasks a, b, ab: the pair is "a+b", ab's single-task network "ab", all three "a+b+ab"
    plan = search_candidates(("a", "b", "ab"))
    full = {c.tasks: c.name for c in plan if c.width == 1.0}
    assert full[("a", "b")] == "a+b"
    assert full[("ab",)] == "ab"
    assert full[("a", "b", "ab")] == "a+b+ab"
    # C0: 7 subsets at full width + 3 tasks at half width: 10 distinct runs
    assert len({c.run_id for c in plan}) == 10
    # two further selection widths (0.5 is C0's already): 3 tasks x 2 more
    assert len({c.run_id for c in search_candidates(("a", "b", "ab"),
                                                    widths=(0.2, 0.25, 0.5))}) == 16
    # the paper's names are unchanged
    assert {c.name for c in search_candidates(("s", "d")) if c.width == 1.0} == {"s", "d",
                                                                                 "sd"}
    assert Candidate(("s",), 0.5).run_id == "s-w0.5"


def test_plain_names_stay_readable_and_others_get_a_hash():
    assert run_id_base(("depth", "normals")) == "depth+normals"
    unicode = run_id_base(("深度", "surface normals"))
    assert "=" in unicode and unicode.startswith("surface_normals=")
    assert run_id_base(("深度",)) != run_id_base(("高度",))  # same readable form, other hash
    assert len(run_id_base(tuple(f"task_{i:03d}_" + "x" * 40 for i in range(30)))) <= 120


def test_fully_trained_uses_the_names_of_the_whole_task_set():
    class Record:
        def __init__(self, c):
            self.tasks, self.width, self.id = list(c.tasks), c.width, c.run_id

    plan = search_candidates(("a", "b", "ab"))
    full = fully_trained([Record(c) for c in plan])
    assert set(full) == {c.name for c in plan}
    assert "a+b" in full and "ab" in full


@pytest.mark.parametrize("name,why", [
    ("", "empty"), ("   ", "empty"), (" d", "white space"), ("d\n", "white space"),
    ("a/b", "path separator"), ("a\\b", "path separator"), ("..", "folder"),
    ("a+b", "joins"), ("s@0.5", "width"), ("a\x00b", "control"), ("x" * 101, "over 100"),
    (3, "text"),
])
def test_unusable_task_names_are_refused_with_the_reason(name, why):
    with pytest.raises(ValueError, match=why):
        check_task_name(name)


def test_usable_task_names():
    for name in ("s", "depth", "surface normals", "深度", "edge-texture", "x.y", "a=b"):
        assert check_task_name(name) == name


def test_network_name_without_context_keeps_the_old_rule():
    assert network_name(("s", "d")) == "sd"
    assert network_name(("depth", "s"), 1 / 3) == "depth+s@0.333"
    assert network_name(("a", "b"), compact=False) == "a+b"
    # the all-task network of {a, b, ab} under either rule: "+"-joined, distinct
    names = {network_name(t) for k in (1, 2, 3)
             for t in itertools.combinations(("a", "b", "ab"), k) if "ab" in t}
    assert len(names) == 4
