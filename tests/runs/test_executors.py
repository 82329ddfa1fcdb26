"""Executors: one conformance suite for every implementation, plus the local pool's specifics."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from taskgrouper.runs import (
    Executor,
    InlineExecutor,
    LocalExecutor,
    available_cores,
    build_executor,
)

EXECUTORS = [pytest.param(InlineExecutor, id="inline"),
             pytest.param(lambda: LocalExecutor(2), id="local2")]


def square(x):
    return x * x


def fail_on_two(x):
    if x == 2:
        raise ValueError(f"item {x} is bad")
    return x


def use_shared(x, shared):
    with shared["lock"]:  # a lock cannot be pickled: it must have been inherited
        return shared["scale"](x), os.getpid()


@pytest.mark.parametrize("make", EXECUTORS)
def test_every_item_comes_back_once_with_its_result(make):
    outcomes = list(make().submit_all(square, range(5)))
    assert sorted(outcomes) == [(i, i * i) for i in range(5)]


@pytest.mark.parametrize("make", EXECUTORS)
def test_a_failing_item_is_yielded_and_the_others_still_run(make):
    outcomes = dict(make().submit_all(fail_on_two, [1, 2, 3]))
    assert outcomes[1] == 1 and outcomes[3] == 3
    assert isinstance(outcomes[2], ValueError) and str(outcomes[2]) == "item 2 is bad"


@pytest.mark.parametrize("make", EXECUTORS)
def test_shared_object_reaches_fn_without_pickling(make):
    shared = {"lock": threading.Lock(), "scale": lambda x: 10 * x}
    executor = make()
    outcomes = dict(executor.submit_all(use_shared, [1, 2, 3], shared=shared))
    assert {k: v[0] for k, v in outcomes.items()} == {1: 10, 2: 20, 3: 30}
    in_parent = {pid == os.getpid() for _, pid in outcomes.values()}
    assert in_parent == {executor.in_process}


@pytest.mark.parametrize("make", EXECUTORS)
def test_no_items_no_work(make):
    assert list(make().submit_all(square, [])) == []


def threads_and_pid(_):
    return torch.get_num_threads(), os.getpid()


def test_local_workers_split_the_cores():
    executor = LocalExecutor(2)
    assert executor.threads_per_worker == max(1, available_cores() // 2)
    outcomes = [o for _, o in executor.submit_all(threads_and_pid, range(4))]
    assert {threads for threads, _ in outcomes} == {executor.threads_per_worker}
    pids = {pid for _, pid in outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert [o for _, o in LocalExecutor(1, threads_per_worker=3).submit_all(
        threads_and_pid, [0])][0][0] == 3


def die(x):
    if x == 0:
        os._exit(3)  # the worker process vanishes (like an OOM kill)
    time.sleep(0.2)
    return x


def test_a_dead_worker_is_reported_not_hung():
    outcomes = dict(LocalExecutor(1).submit_all(die, [0, 1]))
    assert set(outcomes) == {0, 1}
    assert isinstance(outcomes[0], Exception)  # BrokenProcessPool


def sleep_unless_zero(x):
    if x:
        time.sleep(60)
    return x


def test_closing_the_iterator_stops_running_workers():
    start = time.perf_counter()
    outcomes = LocalExecutor(2).submit_all(sleep_unless_zero, [0, 1])
    assert next(outcomes) == (0, 0)
    outcomes.close()  # the consumer gave up (an exception, Ctrl-C): item 1 must not run on
    assert time.perf_counter() - start < 30


FORK_AFTER_TORCH = r"""
import json, torch
from taskgrouper.runs import LocalExecutor

def conv(seed):
    torch.manual_seed(seed)
    x = torch.randn(4, 3, 48, 48, requires_grad=True)
    w = torch.randn(16, 3, 3, 3)
    out = torch.nn.functional.conv2d(x, w).relu().sum()
    out.backward()
    return float(out.detach()), float(x.grad.abs().sum()), torch.get_num_threads()

torch.set_num_threads(2)
parent = conv(0)  # the parent runs multi-threaded OpenMP regions before forking
children = [out for workers in (1, 2)
            for _, out in LocalExecutor(workers, threads_per_worker=2).submit_all(conv, [0])]
print(json.dumps({"parent": parent, "children": children}))
"""


def test_fork_after_the_parent_used_torch_does_not_hang(tmp_path):
    # GNU OpenMP is not fork-safe: without the executor's fork from a fresh thread, the
    # children hang in their first 2-thread op. A subprocess with a timeout turns a hang into
    # a failure instead of a stuck suite.
    script = tmp_path / "fork_after_torch.py"
    script.write_text(FORK_AFTER_TORCH)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for child in result["children"]:
        assert child[2] == 2
        assert child[:2] == pytest.approx(result["parent"][:2], rel=1e-5)


def test_build_executor_by_name_or_instance():
    assert isinstance(build_executor(None, 1), InlineExecutor)
    local = build_executor(None, 3)
    assert isinstance(local, LocalExecutor) and local.workers == 3
    assert isinstance(build_executor("local", 2), LocalExecutor)
    mine = InlineExecutor()
    assert build_executor(mine, 4) is mine
    with pytest.raises(ValueError, match="unknown executor 'lcoal'; did you mean 'local'"):
        build_executor("lcoal")
    assert issubclass(LocalExecutor, Executor)


def test_bad_worker_counts_are_refused():
    with pytest.raises(ValueError, match="workers must be at least 1"):
        LocalExecutor(0)
    with pytest.raises(ValueError, match="threads_per_worker"):
        LocalExecutor(2, threads_per_worker=0)


def test_module_has_no_leftover_shared_objects():
    from taskgrouper.runs import executors

    list(LocalExecutor(1).submit_all(use_shared, [1],
                                     shared={"lock": threading.Lock(), "scale": abs}))
    assert executors._SHARED == {}


KILLED_PARENT = r"""
import sys, time
import torch  # imported once in the parent, as in a sweep
from taskgrouper.runs import LocalExecutor

def record_pid_and_sleep(i):
    import os
    with open(f"{sys.argv[1]}/{i}.pid", "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(120)

for _ in LocalExecutor(2).submit_all(record_pid_and_sleep, [0, 1]):
    pass
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie nobody reaped has still stopped running


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux")
def test_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    finally:
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
