"""Which architecture, balancer and task set go together: taskgrouper.train.compat, the one
home of the rules that ``check_names`` (trainer), ``incompatibility`` (bench) and
``check_architecture`` (models) each held a copy of."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from taskgrouper.balancing import BALANCERS
from taskgrouper.config import ExperimentConfig
from taskgrouper.models.arch import ARCH_TABLE
from taskgrouper.train.compat import check_compatible, clashes, incompatibility


def _bench_incompatibility(arch: Any, bal: Any, n_tasks: int, spatial: bool) -> str | None:
    """``taskgrouper.bench.incompatibility`` as it was before the rules moved to
    ``train.compat`` (verbatim): the reference the new function must reproduce."""
    if getattr(bal, "needs_task_grads", False) and not getattr(arch, "shared_parameters", True):
        return (f"balancer '{bal.name}' needs per-task gradients of shared parameters; "
                f"architecture '{arch.name}' shares none")
    if getattr(bal, "rep_only", False) and not getattr(arch, "shared_representation", True):
        return (f"balancer '{bal.name}' works on the shared representation; architecture "
                f"'{arch.name}' has none")
    max_tasks = getattr(arch, "max_tasks", None)
    if max_tasks is not None and n_tasks > max_tasks:
        return (f"architecture '{arch.name}' takes at most {max_tasks} tasks; the bench has "
                f"{n_tasks}")
    if getattr(arch, "spatial_only", False) and not spatial:
        return f"architecture '{arch.name}' needs image inputs; the dataset has vectors"
    return None


def test_incompatibility_is_the_bench_rule_over_the_whole_table():
    flagged = 0
    for arch in ARCH_TABLE:
        for bal in BALANCERS:
            for n_tasks in range(1, 5):
                for spatial in (False, True):
                    want = _bench_incompatibility(arch, bal, n_tasks, spatial)
                    assert incompatibility(arch, bal, n_tasks, spatial) == want, (
                        arch.name, bal.name, n_tasks, spatial)
                    flagged += want is not None
    assert flagged  # the table has forbidden pairs, so the comparison covers every rule


def test_rows_without_flags_count_as_permissive():
    bare = SimpleNamespace(name="bare")
    strict_arch = SimpleNamespace(name="a", shared_parameters=False, shared_representation=False,
                                  max_tasks=1, spatial_only=True)
    strict_bal = SimpleNamespace(name="b", needs_task_grads=True, rep_only=True)
    for arch, bal in ((bare, bare), (bare, strict_bal), (strict_arch, bare),
                      (strict_arch, strict_bal)):
        for n_tasks in (1, 2):
            for spatial in (False, True):
                assert incompatibility(arch, bal, n_tasks, spatial) == \
                    _bench_incompatibility(arch, bal, n_tasks, spatial)
    assert [c.rule for c in clashes(strict_arch, strict_bal, 2, False)] == [
        "task_grads", "representation", "max_tasks", "spatial"]
    assert [c.rule for c in clashes(strict_arch, strict_bal, 2, None)] == [
        "task_grads", "representation", "max_tasks"]  # inputs not known yet


def _config(**sections) -> ExperimentConfig:
    base = {"tasks": ["a", "b", "c"], "model": {"backbone": "mlp"}}
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return ExperimentConfig.model_validate(base)


@pytest.mark.parametrize("sections, message", [
    ({"model": {"architecture": "hard_sharing"}}, None),
    ({"model": {"backbone": "xceptoin"}}, r"model.backbone: unknown name 'xceptoin'"),
    ({"model": {"architecture": "cross_stich"}}, r"model.architecture: unknown name"),
    ({"balancer": {"name": "pcgard"}}, r"balancer.name: unknown name 'pcgard'"),
    ({"model": {"architecture": "jtrl"}},
     r"^architecture 'jtrl' takes at most 2 tasks, got 3 \(a, b, c\); choose 2 tasks, or "
     r"another architecture$"),
    ({"model": {"architecture": "nddr"}, "balancer": {"name": "mgda_ub"}},
     r"^balancer 'mgda_ub' needs per-task gradients of shared parameters, but architecture "
     r"'nddr' shares none \(one network per task\); use a loss-weighting balancer \(uniform, "),
    # jtrl's task limit is reported before the unknown option and the balancer pairing
    ({"model": {"architecture": "jtrl", "options": {"nope": 1}},
      "balancer": {"name": "mgda_ub"}}, r"^architecture 'jtrl' takes at most 2 tasks"),
    ({"model": {"architecture": "cross_stitch", "options": {"alpha": 1}},
      "balancer": {"name": "pcgrad"}},
     r"^model.options: architecture 'cross_stitch' has no option 'alpha'"),
])
def test_check_compatible_refuses_with_the_trainers_messages(sections, message):
    config = _config(**sections)
    if message is None:
        check_compatible(config)
        return
    with pytest.raises(ValueError, match=message):
        check_compatible(config)


def test_check_compatible_applies_the_image_rule_only_when_the_inputs_are_known():
    config = _config(tasks=["a", "b"], model={"architecture": "mtan"})
    check_compatible(config)  # inputs not known: build_model refuses vectors later
    check_compatible(config, spatial=True)
    with pytest.raises(ValueError, match=r"^architecture 'mtan' needs image inputs and an image "
                                         r"backbone; use hard_sharing for vector inputs$"):
        check_compatible(config, spatial=False)


def test_the_trainer_checks_with_compat():
    from taskgrouper.train import trainer

    assert trainer.check_compatible is check_compatible
