"""A task without a valid label in a batch: its loss is 0 (times the prediction) and its row of
the per-task Jacobian is exactly zero. Every balancer that combines per-task gradients solves
on the live rows only: the update equals the method run on the live tasks alone, the dead
task's weights are 0, an all-dead step gives a zero update without NaN, and per-task state
(learned scales and weights, logits, previous weights) is not corrupted by the dead step.

The methods come from the table (every row that needs per-task gradients); the loss-weighting
methods with per-task state (FAMO, uncertainty, IMTL-L) get a state check of their own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from balancer_helpers import batch, step_losses, vector_model
from torch import nn

from taskgrouper.balancing import BALANCERS, build_balancer
from taskgrouper.balancing.gradient_method import GradientBalancer

#: Rows that combine per-task gradients (the gradient norms, for GradNorm).
GRADIENT_ROWS = [info for info in BALANCERS if info.needs_task_grads]
#: Of those, the ones that combine a (T, N) matrix through ``combine_gradients``.
COMBINERS = [info.name for info in GRADIENT_ROWS
             if isinstance(info.cls, type) and issubclass(info.cls, GradientBalancer)]
#: Every gradient row on its defaults, and on the representation where it offers both.
VARIANTS = [(info.name, {}) for info in GRADIENT_ROWS] + [
    (info.name, {"rep": True}) for info in GRADIENT_ROWS if "rep" in info.params]
IDS = [name + ("-rep" if options else "") for name, options in VARIANTS]

# two conflicting gradients of different lengths (g1 . g3 = -3), so that every method's
# answer differs from the mean; the Jacobian is (g1, 0, g3)
G1 = [3.0, 1.0, 0.0, -1.0, 0.5, 2.0]
G3 = [-1.0, 2.0, 0.5, 1.0, -2.0, 0.0]
#: The columns belong to one (B=2, F=3) representation tensor (GradDrop reads its signs).
ACTIVATIONS = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 3.0]])


def _setup(name, tasks, model=None, **options):
    balancer = build_balancer(name, **options)
    balancer.setup(tasks, model if model is not None else nn.Linear(2, 2))
    return balancer


def _project_preferences(full, reference, live):
    """Pareto MTL on the live tasks alone compares the loss vector of those tasks with the
    run's preference vectors restricted to their coordinates (renormalised; a vector with no
    weight on a live task says nothing about them and is left out)."""
    if getattr(full, "prefs", None) is None:
        return
    restricted = full.prefs[:, live]  # (K, T_live)
    norms = np.linalg.norm(restricted, axis=1)
    keep = norms > 0
    reference.prefs = restricted[keep] / norms[keep, None]
    reference.index = int(keep[:full.index].sum())


def _combined(balancer, grads, losses):
    direction, heads, log = balancer.combine_gradients(grads, losses, None, [ACTIVATIONS])
    if direction is None:
        direction = heads @ grads
    return direction, heads, log


def _state_is_finite(value):
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_state_is_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_state_is_finite(v) for v in value)
    return True


# --- on the Jacobian --------------------------------------------------------------------
@pytest.mark.parametrize("dead", [[1], [0, 1]], ids=["middle-row-dead", "one-row-live"])
@pytest.mark.parametrize("name", COMBINERS)
def test_a_zero_row_is_solved_without(name, dead):
    """(g1, 0, g3) gives the update of the method on (g1, g3) alone; with only g3 live, the
    method's one-task update. The dead tasks' head and logged weights are 0."""
    tasks = ("a", "b", "c")
    live = [t not in dead for t in range(3)]
    grads = torch.tensor([G1, G3, G3], dtype=torch.float32)
    grads[1] = 0.0
    grads[0] = grads[0] if live[0] else 0.0
    losses = torch.tensor([0.7, 0.0, 1.3])
    losses[~torch.tensor(live)] = 0.0
    full = _setup(name, tasks)
    reference = _setup(name, tuple(t for t, keep in zip(tasks, live, strict=True) if keep))
    _project_preferences(full, reference, np.array(live))
    mask = torch.tensor(live)
    direction, heads, log = _combined(full, grads, losses)
    expected, expected_heads, expected_log = _combined(reference, grads[mask], losses[mask])
    assert torch.isfinite(direction).all() and float(direction.norm()) > 0.1
    torch.testing.assert_close(direction, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(heads[mask], expected_heads, rtol=1e-5, atol=1e-6)
    assert float(heads[~mask].abs().sum()) == 0.0
    np.testing.assert_allclose(np.array(log)[live], expected_log, rtol=1e-5, atol=1e-6)
    assert all(log[t] == 0.0 for t in dead)


@pytest.mark.parametrize("name", COMBINERS)
def test_an_all_zero_jacobian_gives_a_zero_update(name):
    balancer = _setup(name, ("a", "b", "c"))
    direction, heads, log = _combined(balancer, torch.zeros(3, 6), torch.zeros(3))
    assert torch.equal(direction, torch.zeros(6))
    assert torch.equal(heads, torch.zeros(3))
    assert log == [0.0, 0.0, 0.0]


def test_imtl_by_hand_with_a_dead_task():
    # live rows g1 = (1, 0, 0), g3 = (0, 2, 0); u1 = (1, 0, 0), u3 = (0, 1, 0).
    # D = g1 - g3 = (1, -2, 0), U = u1 - u3 = (1, -1, 0): D U^T = 1 + 2 = 3, g1 U^T = 1,
    # alpha3 = 1/3, alpha1 = 2/3; g = (2/3, 2/3, 0), whose projection on u1 and on u3 is 2/3.
    # With the zero row among the constraints (its "unit vector" is 0, so the projection on
    # it is 0 whatever the weights), equal projections force g = 0: the whole update vanished.
    balancer = _setup("imtl", ("a", "b", "c"))
    grads = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    direction, heads, log = balancer.combine_gradients(grads, torch.tensor([1.0, 0.0, 1.0]),
                                                       None, [torch.ones(3)])
    torch.testing.assert_close(direction, torch.tensor([2 / 3, 2 / 3, 0.0]))
    np.testing.assert_allclose(log, [2 / 3, 0.0, 1 / 3], atol=1e-12)
    torch.testing.assert_close(heads, torch.tensor([1.0, 0.0, 1.0]))  # IMTL: heads unweighted


def test_cagrad_by_hand_with_a_dead_task():
    # live rows g1 = (1, 0), g3 = (0, 1), c = 0.5: g0 = (0.5, 0.5), |g0| = 1/sqrt(2);
    # min_w g_w.g0 + c |g0| |g_w| is smallest at w = (1/2, 1/2) (g_w = g0), so
    # d = g0 + c |g0| g_w / |g_w| = 1.5 g0 = (0.75, 0.75): weights (0.75, 0, 0.75).
    # With the zero row, the simplex holds g_w = 0, where |g_w| has no gradient: the solver
    # ends at (or near) that vertex, and c |g0| w / |g_w| is either the plain mean
    # (1/3, 1/3, 1/3) or weights around 1e13 made of the solver's rounding.
    balancer = _setup("cagrad", ("a", "b", "c"))
    grads = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    direction, heads, log = balancer.combine_gradients(grads, torch.tensor([1.0, 0.0, 1.0]),
                                                       None, [torch.ones(2)])
    torch.testing.assert_close(direction, torch.tensor([0.75, 0.75]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(log, [0.75, 0.0, 0.75], atol=1e-5)
    assert max(abs(w) for w in log) <= 1.0 + balancer.c  # bounded: 1/T + c |g0| / |g_w|
    torch.testing.assert_close(heads, torch.tensor([0.5, 0.0, 0.5]))  # 1/T of the live tasks


# --- inside a model ----------------------------------------------------------------------
def _missing(model, targets, task):
    """The batch with every label of ``task`` missing (-1 for class ids, NaN otherwise)."""
    out = dict(targets)
    kind = model.specs[task].kind
    out[task] = (torch.full_like(targets[task], -1) if kind in ("classification", "segmentation")
                 else torch.full_like(targets[task], float("nan")))
    return out


def _grads(model):
    return {n: (torch.zeros_like(p) if p.grad is None else p.grad.clone())
            for n, p in model.named_parameters()}


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_a_task_without_labels_in_a_model(name, options):
    """Five tasks, "cls" without a label in the batch: every parameter gets the gradient the
    balancer gives when set up with the four other tasks only; the weight of "cls" is 0."""
    model = vector_model(5)
    x, targets = batch(model)
    targets = _missing(model, targets, "cls")
    live = [t != "cls" for t in model.tasks]
    results = []
    for tasks in (model.tasks, [t for t in model.tasks if t != "cls"]):
        balancer = _setup(name, tasks, model, **options)
        if len(tasks) < len(model.tasks):
            _project_preferences(results[0][2], balancer, np.array(live))
        losses, out = step_losses(model, x, targets)
        model.zero_grad(set_to_none=True)
        weights = balancer.backward(losses, None, rep=out.rep)
        results.append((weights, _grads(model), balancer))
    (weights, grads, _), (expected_weights, expected, _) = results
    assert weights["cls"] == 0.0
    assert {t: w for t, w in weights.items() if t != "cls"} == pytest.approx(
        expected_weights, rel=1e-4, abs=1e-7)
    assert all(bool(torch.isfinite(g).all()) for g in grads.values())
    assert any(float(grads[n].abs().sum()) > 0 for n, _ in model.named_parameters())
    for n in grads:
        torch.testing.assert_close(grads[n], expected[n], rtol=1e-4, atol=1e-6, msg=n)


@pytest.mark.parametrize("name,options", VARIANTS, ids=IDS)
def test_a_batch_without_any_label(name, options):
    """No task has a label: the step writes zero (finite) gradients, weights are 0."""
    model = vector_model(2)
    x, targets = batch(model)
    for task in model.tasks:
        targets = _missing(model, targets, task)
    balancer = _setup(name, model.tasks, model, **options)
    losses, out = step_losses(model, x, targets)
    model.zero_grad(set_to_none=True)
    weights = balancer.backward(losses, None, rep=out.rep)
    assert all(w == 0.0 for w in weights.values()), weights
    for n, g in _grads(model).items():
        assert torch.equal(g, torch.zeros_like(g)), n
    assert _state_is_finite(balancer.state_dict())


ALL_ROWS = [(info.name, {}) for info in BALANCERS] + [("imtl", {"learn_scales": True}),
                                                      ("nash_mtl", {"update_every": 3})]


@pytest.mark.parametrize("name,options", ALL_ROWS,
                         ids=[n + "".join(f"-{k}" for k in o) for n, o in ALL_ROWS])
def test_a_task_dead_for_two_steps_then_live_again(name, options):
    """Seven Adam steps, "cls" without labels in steps 1-2 and 5: weights, gradients, the
    balancer's parameters and its saved state stay finite throughout, and the run ends with
    "cls" weighted again."""
    model = vector_model(5)
    x, targets = batch(model)
    balancer = _setup(name, model.tasks, model, **options)
    opt = torch.optim.Adam(list(model.parameters()) + balancer.parameters(), lr=1e-2)
    gradient_row = name in {info.name for info in GRADIENT_ROWS}
    for step in range(7):
        dead = step in (1, 2, 5)
        losses, out = step_losses(model, x, _missing(model, targets, "cls") if dead else targets)
        opt.zero_grad()
        weights = balancer.backward(losses, None, rep=out.rep)
        assert all(math.isfinite(w) for w in weights.values()), (step, weights)
        if dead and gradient_row and options.get("update_every", 1) == 1:
            assert weights["cls"] == 0.0
        for n, p in [*model.named_parameters(), *enumerate(balancer.parameters())]:
            assert p.grad is None or bool(torch.isfinite(p.grad).all()), (step, n)
        opt.step()
        assert _state_is_finite(balancer.state_dict()), step
        assert all(bool(torch.isfinite(p).all()) for p in balancer.parameters())
    assert weights["cls"] != 0.0


# --- per-task state ----------------------------------------------------------------------
def _dead_step(balancer, model, x, targets):
    losses, out = step_losses(model, x, _missing(model, targets, "cls"))
    model.zero_grad(set_to_none=True)
    for p in balancer.parameters():
        p.grad = None
    return balancer.backward(losses, None, rep=out.rep)


def test_gradnorm_keeps_the_dead_task_weight_and_its_first_loss():
    """A dead step leaves the weight of "cls" as it was (the live weights keep their sum), and
    a task dead at the first step takes its L_i(0) from its first live step."""
    model = vector_model(5)
    x, targets = batch(model)
    balancer = _setup("gradnorm", model.tasks, model)
    i = model.tasks.index("cls")
    _dead_step(balancer, model, x, targets)
    assert float(balancer.initial[i]) == 0.0  # not seen yet
    before = balancer.w.detach().clone()
    assert float(before[i]) == 1.0 and float(before.sum()) == pytest.approx(5.0)
    losses, out = step_losses(model, x, targets)
    balancer.backward(losses, None, rep=out.rep)  # live: L_cls(0) is this loss
    assert float(balancer.initial[i]) == pytest.approx(float(losses["cls"].detach()))
    before = balancer.w.detach().clone()
    _dead_step(balancer, model, x, targets)
    after = balancer.w.detach()
    assert float(after[i]) == float(before[i])
    assert float(after.sum()) == pytest.approx(5.0)
    assert not torch.equal(after, before)  # the live weights did move


def test_famo_ignores_the_dead_task():
    """On a dead step the dead task gets weight 0 (not almost all of it, as a loss of 0
    clamped to 1e-8 would give), the live weights are FAMO's weights of the live tasks, and the
    logit of the dead task does not move."""
    from taskgrouper.balancing.famo import famo_weights

    model = vector_model(5)
    x, targets = batch(model)
    balancer = _setup("famo", model.tasks, model)
    i = model.tasks.index("cls")
    live = torch.tensor([t != "cls" for t in model.tasks])
    losses, out = step_losses(model, x, targets)
    balancer.backward(losses, None)
    logits = balancer.logits.detach().clone()
    weights = _dead_step(balancer, model, x, targets)  # updates the logits from step 1
    assert weights["cls"] == 0.0
    assert float(balancer.logits.detach()[i]) == float(logits[i])
    live_losses = torch.stack([losses[t].detach() for t in model.tasks])[live]  # unchanged
    expected = famo_weights(live_losses, balancer.logits.detach()[live])
    np.testing.assert_allclose([weights[t] for t in model.tasks if t != "cls"],
                               expected.tolist(), rtol=1e-5)
    _dead_step(balancer, model, x, targets)  # dead before and after: its logit stays
    assert float(balancer.logits.detach()[i]) == float(logits[i])


@pytest.mark.parametrize("name,options,attribute", [
    ("uncertainty", {}, "log_vars"), ("imtl", {"learn_scales": True}, "log_scales")])
def test_learned_scales_get_no_gradient_from_a_dead_task(name, options, attribute):
    """Uncertainty's log variance (d/ds of s/2 would be 1/2) and IMTL-L's log scale (d/ds of
    exp(s) L - s would be -1) of a task with loss 0 get a zero gradient: no drift while it
    has no labels."""
    model = vector_model(5)
    x, targets = batch(model)
    balancer = _setup(name, model.tasks, model, **options)
    weights = _dead_step(balancer, model, x, targets)
    grad = getattr(balancer, attribute).grad
    i = model.tasks.index("cls")
    assert float(grad[i]) == 0.0 and float(grad.abs().sum()) > 0
    assert weights["cls"] == 0.0


def test_nash_keeps_the_dead_task_previous_weight():
    """With update_every=2, a solve on a step where "cls" is dead keeps its previous
    bargaining weight for the reuse step that follows (not 0, not a huge number)."""
    model = vector_model(5)
    x, targets = batch(model)
    balancer = _setup("nash_mtl", model.tasks, model, update_every=2)
    i = model.tasks.index("cls")
    for _ in range(2):  # a solve and a reuse
        losses, out = step_losses(model, x, targets)
        balancer.backward(losses, None, rep=out.rep)
    previous = balancer.alpha[i]
    weights = _dead_step(balancer, model, x, targets)  # the next solve
    assert weights["cls"] == 0.0
    assert balancer.alpha[i] == previous
    assert all(math.isfinite(a) and a > 0 for a in balancer.alpha)
