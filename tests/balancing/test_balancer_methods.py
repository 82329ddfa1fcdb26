"""Hand-worked cases for every method, with the arithmetic in comments, plus brute-force and
identity checks of the solvers on random instances."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from balancer_helpers import batch, step_losses, vector_model

from taskgrouper.balancing.dtp import DTP, dtp_weight
from taskgrouper.balancing.dwa import DWA, dwa_weights
from taskgrouper.balancing.famo import FAMO, famo_weights
from taskgrouper.balancing.gradnorm import GradNorm, gradnorm_targets
from taskgrouper.balancing.imtl import imtl_weights
from taskgrouper.balancing.mgda import MGDA, gradient_normalizers, min_norm_weights
from taskgrouper.balancing.nash import nash_weights
from taskgrouper.balancing.pareto import pareto_mtl_weights, preference_vectors
from taskgrouper.balancing.projection import (
    GradDrop,
    cagrad_weights,
    graddrop_gradient,
    pcgrad_weights,
)
from taskgrouper.balancing.uncertainty import Uncertainty, uncertainty_loss


def _gram(*vectors):
    g = np.array(vectors, dtype=np.float64)
    return g, g @ g.T


def _random_gradients(n, dim, seed):
    return np.random.default_rng(seed).normal(size=(n, dim))


# --- MGDA ---------------------------------------------------------------------------------
def test_mgda_two_vectors_closed_form():
    # g1 = (1, 0), g2 = (0, 2): gamma = (g22 - g12) / (g11 - 2 g12 + g22) = (4 - 0) / 5 = 0.8,
    # so alpha = (0.8, 0.2) and the min-norm point is 0.8 (1, 0) + 0.2 (0, 2) = (0.8, 0.4)
    g, m = _gram([1.0, 0.0], [0.0, 2.0])
    alpha = min_norm_weights(m)
    np.testing.assert_allclose(alpha, [0.8, 0.2])
    np.testing.assert_allclose(alpha @ g, [0.8, 0.4])
    # the point is orthogonal to g1 - g2 (first-order optimality): (0.8, 0.4).(1, -2) = 0
    assert abs((alpha @ g) @ (g[0] - g[1])) < 1e-12


def test_mgda_clips_to_a_vertex_when_one_gradient_is_inside():
    # g1 = (1, 0), g2 = (2, 0): the shortest point of the segment is g1 itself
    _, m = _gram([1.0, 0.0], [2.0, 0.0])
    np.testing.assert_allclose(min_norm_weights(m), [1.0, 0.0])


@pytest.mark.parametrize("seed", range(4))
def test_mgda_frank_wolfe_matches_brute_force(seed):
    """Three and four vectors: Frank-Wolfe's norm is within 1e-6 of the best point of a fine
    simplex grid, and never above it by more than the grid's resolution allows."""
    n = 3 + seed % 2
    g = _random_gradients(n, 6, seed)
    m = g @ g.T
    alpha = min_norm_weights(m)
    assert alpha.min() >= 0 and abs(alpha.sum() - 1) < 1e-12
    steps = 60 if n == 3 else 24
    best = min(float(np.linalg.norm(np.array(c) / steps @ g))
               for c in itertools.product(range(steps + 1), repeat=n) if sum(c) == steps)
    found = float(np.linalg.norm(alpha @ g))
    assert found <= best + 1e-9


def test_mgda_normalizations():
    # gradients (3, 0) and (0, 4), losses 2 and 8
    g, m = _gram([3.0, 0.0], [0.0, 4.0])
    losses = np.array([2.0, 8.0])
    np.testing.assert_allclose(gradient_normalizers(m, losses, "none"), [1, 1])
    np.testing.assert_allclose(gradient_normalizers(m, losses, "l2"), [3, 4])
    np.testing.assert_allclose(gradient_normalizers(m, losses, "loss"), [2, 8])
    np.testing.assert_allclose(gradient_normalizers(m, losses, "loss+"), [6, 32])
    # l2: unit gradients (1, 0), (0, 1): alpha = (0.5, 0.5), update 0.5 (3, 0) + 0.5 (0, 4)
    balancer = MGDA(normalization="l2")
    alpha, heads, log = balancer.solve(m, losses)
    np.testing.assert_allclose(alpha, [0.5, 0.5])


# --- PCGrad -------------------------------------------------------------------------------
def test_pcgrad_opposite_gradients():
    # g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1 < 0, so both are projected.
    # g1' = g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + 1/2 (-1, 1) = (0.5, 0.5)
    # g2' = g2 - (g2.g1 / |g1|^2) g1 = (-1, 1) + 1 (1, 0)   = (0, 1)
    # sum = (0.5, 1.5) = 2 g1 + 1.5 g2  ->  weights (2, 1.5)
    g, m = _gram([1.0, 0.0], [-1.0, 1.0])
    w = pcgrad_weights(m, [[1], [0]])
    np.testing.assert_allclose(w, [2.0, 1.5])
    np.testing.assert_allclose(w @ g, [0.5, 1.5])
    # each projected gradient is orthogonal to the other original gradient
    np.testing.assert_allclose(np.array([0.5, 0.5]) @ g[1], 0.0)
    np.testing.assert_allclose(np.array([0.0, 1.0]) @ g[0], 0.0)


def test_pcgrad_leaves_agreeing_gradients_alone():
    # g1 = (1, 0), g2 = (1, 1): g1.g2 = 1 > 0, nothing is projected: the plain sum
    g, m = _gram([1.0, 0.0], [1.0, 1.0])
    np.testing.assert_allclose(pcgrad_weights(m, [[1], [0]]), [1.0, 1.0])


def test_pcgrad_matches_explicit_projection_on_random_gradients():
    g = _random_gradients(4, 5, 7)
    orders = [[j for j in (3, 1, 0, 2) if j != i] for i in range(4)]
    total = np.zeros(5)
    for i in range(4):  # the algorithm as the paper writes it, on the vectors themselves
        gi = g[i].copy()
        for j in orders[i]:
            dot = gi @ g[j]
            if dot < 0:
                gi -= dot / (g[j] @ g[j]) * g[j]
        total += gi
    np.testing.assert_allclose(pcgrad_weights(g @ g.T, orders) @ g, total, atol=1e-12)


# --- CAGrad -------------------------------------------------------------------------------
def test_cagrad_orthogonal_unit_gradients():
    # g1 = (1, 0), g2 = (0, 1), c = 0.5: g0 = (0.5, 0.5), |g0| = 1/sqrt(2).
    # min_w g_w.g0 + c|g0| |g_w| = 0.5 + 0.3536 |w| is smallest at w = (0.5, 0.5), g_w = g0.
    # d = g0 + c |g0| g_w / |g_w| = g0 (1 + c) = (0.75, 0.75)
    g, m = _gram([1.0, 0.0], [0.0, 1.0])
    w = cagrad_weights(m, 0.5)
    np.testing.assert_allclose(w @ g, [0.75, 0.75], atol=1e-6)


def test_cagrad_with_c_zero_is_the_average_gradient():
    g, m = _gram([1.0, 0.0], [-1.0, 3.0])
    np.testing.assert_allclose(cagrad_weights(m, 0.0), [0.5, 0.5])


def test_cagrad_direction_maximises_the_worst_improvement_in_its_ball():
    """CAGrad's d maximises min_t g_t.d over the ball |d - g0| <= c |g0|. Brute force: d lies
    on the ball's boundary and no one of 20,000 random points of the ball does better."""
    g = _random_gradients(3, 4, 3)
    g[2] = -0.8 * g[0] + 0.1 * g[1]  # a conflicting task
    c = 0.5
    d = cagrad_weights(g @ g.T, c) @ g
    g0 = g.mean(axis=0)
    radius = c * np.linalg.norm(g0)
    assert np.linalg.norm(d - g0) == pytest.approx(radius, rel=1e-6)
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20000, 4))
    v *= (radius * rng.uniform(size=(20000, 1)) ** 0.25) / np.linalg.norm(v, axis=1,
                                                                            keepdims=True)
    worst_random = (g @ (g0 + v).T).min(axis=0).max()
    assert (g @ d).min() >= worst_random - 1e-6
    assert (g @ d).min() > (g @ g0).min()  # better than the plain average here


# --- Nash-MTL -----------------------------------------------------------------------------
def test_nash_orthogonal_gradients():
    # g1 = (1, 0), g2 = (0, 2): M = diag(1, 4); M alpha = 1/alpha gives alpha1^2 = 1 and
    # 4 alpha2^2 = 1, so alpha = (1, 0.5) and d = (1, 0) + 0.5 (0, 2) = (1, 1);
    # each task's directional derivative g_t.d = 1/alpha_t = (1, 2)
    g, m = _gram([1.0, 0.0], [0.0, 2.0])
    alpha = nash_weights(m)
    np.testing.assert_allclose(alpha, [1.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(alpha @ g, [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(g @ (alpha @ g), 1.0 / alpha, rtol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_nash_solves_the_bargaining_equation(seed):
    g = _random_gradients(5, 20, seed) * np.array([[0.1], [1], [3], [10], [0.5]])
    m = g @ g.T
    alpha = nash_weights(m)
    assert (alpha > 0).all()
    np.testing.assert_allclose(m @ alpha, 1.0 / alpha, rtol=1e-5)


# --- IMTL ---------------------------------------------------------------------------------
def test_imtl_orthogonal_gradients():
    # g1 = (1, 0), g2 = (0, 2); u1 = (1, 0), u2 = (0, 1).
    # D = g1 - g2 = (1, -2), U = u1 - u2 = (1, -1): D U^T = 1 + 2 = 3, g1 U^T = 1,
    # alpha2 = 1/3, alpha1 = 2/3; g = (2/3, 0) + (0, 2/3) = (2/3, 2/3), equal projections 2/3
    g, m = _gram([1.0, 0.0], [0.0, 2.0])
    alpha = imtl_weights(m)
    np.testing.assert_allclose(alpha, [2 / 3, 1 / 3])
    np.testing.assert_allclose(alpha @ g, [2 / 3, 2 / 3])


def test_imtl_equal_projections_on_random_gradients():
    g = _random_gradients(4, 7, 11)
    alpha = imtl_weights(g @ g.T)
    agg = alpha @ g
    units = g / np.linalg.norm(g, axis=1, keepdims=True)
    proj = units @ agg
    np.testing.assert_allclose(proj, proj[0], rtol=1e-8)
    assert alpha.sum() == pytest.approx(1.0)


# --- Pareto MTL ---------------------------------------------------------------------------
def test_preference_vectors():
    two = preference_vectors(2, 3)  # angles 0, pi/4, pi/2
    np.testing.assert_allclose(two, [[1, 0], [math.sqrt(0.5), math.sqrt(0.5)], [0, 1]],
                               atol=1e-12)
    many = preference_vectors(4, 6)
    assert many.shape == (6, 4) and (many >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0)
    assert len({tuple(np.round(v, 9)) for v in many}) == 6  # distinct


def test_pareto_mtl_initial_phase_descends_on_the_active_constraint():
    # preferences u0 = (1, 0) (this run) and u1 = (0, 1); losses F = (1, 2).
    # G_1 = (u1 - u0).F / |F| = (2 - 1) / sqrt(5) > 0: active. Its gradient is
    # -g1 + g2, so the initial phase moves along w = (-1, 1), normalised to sum |w| = 1:
    # (-0.5, 0.5): it lowers task 2's loss and raises task 1's, towards u0's region
    prefs = preference_vectors(2, 2)
    _, m = _gram([1.0, 0.0], [0.0, 1.0])
    w, feasible = pareto_mtl_weights(m, np.array([1.0, 2.0]), prefs, 0, initial=True)
    assert not feasible
    np.testing.assert_allclose(w, [-0.5, 0.5])


def test_pareto_mtl_in_its_region_is_mgda():
    # F = (2, 1) lies in u0's region (G_1 = (1 - 2)/sqrt(5) < 0): no active constraint, the
    # main phase is plain MGDA: g1 = (1, 0), g2 = (0, 2) -> alpha = (0.8, 0.2)
    prefs = preference_vectors(2, 2)
    _, m = _gram([1.0, 0.0], [0.0, 2.0])
    w, feasible = pareto_mtl_weights(m, np.array([2.0, 1.0]), prefs, 0, initial=False)
    assert feasible
    np.testing.assert_allclose(w, [0.8, 0.2])


# --- GradDrop -----------------------------------------------------------------------------
def test_graddrop_mask_by_hand():
    # two tasks, one sample, three elements, activations all positive (sign 1):
    #   element 0: grads (1, 1)  -> P = (1 + 2/2)/2 = 1  > U = 0.5: keep positives -> 2
    #   element 1: grads (-1, 1) -> P = (1 + 0/2)/2 = 0.5 > U = 0.3: keep positives -> 1
    #   element 2: grads (2, -2) -> P = 0.5 < U = 0.7: keep negatives             -> -2
    grads = torch.tensor([[[1.0, -1.0, 2.0]], [[1.0, 1.0, -2.0]]])  # (T=2, B=1, F=3)
    act = torch.ones(1, 3)
    u = torch.tensor([0.5, 0.3, 0.7])
    out = graddrop_gradient(grads, act, u, torch.zeros(2))
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0, -2.0]]))
    # leak 1 for task 0 passes its gradient unmasked: element 1 -> -1 + 1, element 2 -> 2 - 2
    out = graddrop_gradient(grads, act, u, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(out, torch.tensor([[2.0, 0.0, 0.0]]))
    # a negative activation flips the signs the choice sees: element 2 with A = -1 has signed
    # gradients (-2, 2); P = 0.5 < U = 0.7 keeps the negative one, task 0's, whose raw
    # gradient is +2
    out = graddrop_gradient(grads, torch.tensor([[1.0, 1.0, -1.0]]), u, torch.zeros(2))
    torch.testing.assert_close(out, torch.tensor([[2.0, 1.0, 2.0]]))


def test_graddrop_sums_the_batch_before_the_sign_choice():
    # sample gradients of task 0: (+3, -1) -> batch sum +2; task 1: (-1, -1) -> -2.
    # P = (1 + 0/4)/2 = 0.5 < U = 0.9: negative batch sum kept: only task 1, for both samples
    grads = torch.tensor([[[3.0], [-1.0]], [[-1.0], [-1.0]]])  # (T=2, B=2, F=1)
    out = graddrop_gradient(grads, torch.ones(2, 1), torch.tensor([0.9]), torch.zeros(2))
    torch.testing.assert_close(out, torch.tensor([[-1.0], [-1.0]]))


def test_graddrop_seeded_masks_repeat():
    model = vector_model(2)
    x, targets = batch(model)

    def one_step(seed):
        balancer = GradDrop(seed=seed)
        balancer.setup(model.tasks, model)
        model.zero_grad()
        losses, out = step_losses(model, x, targets)
        balancer.backward(losses, rep=out.rep)
        return torch.cat([p.grad.reshape(-1) for p in model.shared_parameters()])

    a, b, c = one_step(0), one_step(0), one_step(1)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)


# --- DWA ----------------------------------------------------------------------------------
def test_dwa_weights_from_a_loss_history():
    # epochs 1, 2: losses a = 1.0 -> 0.5 (r = 0.5), b = 1.0 -> 1.0 (r = 1.0); Temp = 2:
    # exp(0.25) = 1.28403, exp(0.5) = 1.64872, sum 2.93275;
    # w = 2 * (1.28403, 1.64872) / 2.93275 = (0.87565, 1.12435)
    np.testing.assert_allclose(dwa_weights([0.5, 1.0], [1.0, 1.0], 2.0), [0.87565, 1.12435],
                               atol=1e-5)
    balancer = DWA()
    balancer.setup(["a", "b"], vector_model(2))
    assert balancer.weights() == {"a": 1.0, "b": 1.0}  # epoch 1
    balancer.epoch_end({"a": 1.0, "b": 1.0})
    assert balancer.weights() == {"a": 1.0, "b": 1.0}  # epoch 2
    balancer.epoch_end({"a": 0.5, "b": 1.0})
    w = balancer.weights()  # epoch 3
    assert w["a"] == pytest.approx(0.87565, abs=1e-5) and w["b"] == pytest.approx(1.12435,
                                                                                 abs=1e-5)
    balancer.epoch_end({"a": 0.5, "b": 0.25})  # now r = (1.0, 0.25): a gets more
    w = balancer.weights()
    assert w["a"] > 1 > w["b"] and w["a"] + w["b"] == pytest.approx(2.0)


# --- DTP ----------------------------------------------------------------------------------
def test_dtp_weights_and_moving_average():
    # kappa = 0.5, gamma = 2: -(0.5)^2 ln 0.5 = 0.25 * 0.693147 = 0.173287
    assert dtp_weight(0.5, 2.0) == pytest.approx(0.173287, abs=1e-6)
    assert dtp_weight(1.0, 2.0) == 0.0
    model = vector_model(2)  # tasks reg (regression) and cls (classification)
    balancer = DTP(gamma=2.0, alpha=0.5)
    balancer.setup(model.tasks, model)
    assert balancer.weights() == {"reg": 1.0, "cls": 1.0}  # before any validation
    balancer.epoch_end({}, {"reg": 0.5, "cls": 1.0},
                       {"reg": {"loss": 0.5, "l1": 3.0}, "cls": {"loss": 1.0, "accuracy": 0.5}})
    # reg has no bounded metric: kappa = exp(-0.5) = 0.606531; cls: accuracy 0.5
    w = balancer.weights()
    assert w["cls"] == pytest.approx(0.173287, abs=1e-6)
    k = math.exp(-0.5)
    assert w["reg"] == pytest.approx(-((1 - k) ** 2) * math.log(k), abs=1e-9)
    balancer.epoch_end({}, None, {"reg": {"loss": 0.5}, "cls": {"loss": 1.0, "accuracy": 0.9}})
    # moving average with alpha 0.5: kappa_cls = 0.5 * 0.9 + 0.5 * 0.5 = 0.7
    assert balancer.weights()["cls"] == pytest.approx(dtp_weight(0.7, 2.0))
    assert balancer.kpi_metric("cls") == "accuracy" and balancer.kpi_metric("reg") == "loss"


# --- Uncertainty --------------------------------------------------------------------------
def test_uncertainty_loss_and_its_gradient():
    # L = (2, 2), s = (0, 0), factors (1/2 regression, 1 classification):
    # total = 1/2 e^0 2 + 0 + 1 e^0 2 + 0 = 3
    # d/ds_reg = -1/2 e^-s L + 1/2 = -1 + 0.5 = -0.5;  d/ds_cls = -e^-s L + 1/2 = -1.5
    s = torch.zeros(2, requires_grad=True)
    total, weights = uncertainty_loss(torch.tensor([2.0, 2.0]), s, torch.tensor([0.5, 1.0]))
    assert float(total.detach()) == pytest.approx(3.0)
    total.backward()
    torch.testing.assert_close(s.grad, torch.tensor([-0.5, -1.5]))
    torch.testing.assert_close(weights.detach(), torch.tensor([0.5, 1.0]))
    # the gradient vanishes where factor e^-s L = 1/2: s = log(2 factor L) = (log 2, log 4)
    s = torch.tensor([math.log(2.0), math.log(4.0)], requires_grad=True)
    total, _ = uncertainty_loss(torch.tensor([2.0, 2.0]), s, torch.tensor([0.5, 1.0]))
    total.backward()
    torch.testing.assert_close(s.grad, torch.zeros(2), atol=1e-6, rtol=0)


def test_uncertainty_uses_the_task_kind():
    model = vector_model(2)  # reg: regression (1/2), cls: classification (1)
    balancer = Uncertainty()
    balancer.setup(model.tasks, model)
    losses, _ = step_losses(model, *batch(model))
    w = balancer.backward(losses)
    assert w == {"reg": 0.5, "cls": 1.0}
    assert balancer.log_vars.grad is not None


# --- GradNorm -----------------------------------------------------------------------------
def test_gradnorm_targets_by_hand():
    # L(0) = (1, 1), L(t) = (0.5, 1): L~ = (0.5, 1), mean 0.75, r = (2/3, 4/3).
    # w = (1, 1), ||grad_W L|| = (2, 4): G = (2, 4), G_bar = 3;
    # targets = 3 r^1.5 = 3 (0.544331, 1.539601) = (1.632993, 4.618802)
    targets = gradnorm_targets(torch.tensor([2.0, 4.0]), torch.ones(2), torch.tensor([0.5, 1.0]),
                               torch.ones(2), 1.5)
    torch.testing.assert_close(targets, torch.tensor([1.632993, 4.618802]))


def test_gradnorm_moves_weights_towards_the_targets():
    """Task 0's gradient is above its target (G = 2 > 1.63) and task 1's below (4 < 4.62):
    after one update w0 falls and w1 rises, and they still sum to T = 2."""
    model = vector_model(2)
    balancer = GradNorm(lr=0.1)
    balancer.setup(model.tasks, model)
    balancer.initial = torch.ones(2)
    balancer._update(torch.tensor([2.0, 4.0]), torch.tensor([0.5, 1.0]))
    w = balancer.w.detach()
    assert float(w[0]) < 1.0 < float(w[1])
    assert float(w.sum()) == pytest.approx(2.0)


# --- FAMO ---------------------------------------------------------------------------------
def test_famo_weights_and_logit_update():
    # z = softmax(0, 0) = (1/2, 1/2), L = (1, 4): z/L = (0.5, 0.125), c = 1/0.625 = 1.6;
    # w = c z / L = (0.8, 0.2), summing to 1
    w = famo_weights(torch.tensor([1.0, 4.0]), torch.zeros(2))
    torch.testing.assert_close(w, torch.tensor([0.8, 0.2]))
    model = vector_model(2)
    balancer = FAMO(lr=0.1, gamma=0.0)
    balancer.setup(model.tasks, model)
    # task 0's log loss fell by log 2, task 1's not at all: task 0 loses weight
    balancer.update_logits(torch.tensor([1.0, 1.0]), torch.tensor([0.5, 1.0]))
    z = torch.softmax(balancer.logits.detach(), dim=0)
    assert float(z[0]) < 0.5 < float(z[1])


# --- options ------------------------------------------------------------------------------
def test_pareto_mtl_default_preference_is_the_balanced_vector():
    from taskgrouper.balancing.pareto import ParetoMTL

    model = vector_model(5)
    balancer = ParetoMTL()
    balancer.setup(model.tasks, model)
    np.testing.assert_allclose(balancer.prefs[balancer.index], np.full(5, 1 / math.sqrt(5)))
    assert balancer.prefs.shape == (5, 5)  # this run's vector and 4 others to compare with
    two = ParetoMTL(n_preferences=3, preference=2)
    two.setup(["a", "b"], model)
    np.testing.assert_allclose(two.prefs[two.index], [0.0, 1.0], atol=1e-12)  # angle pi/2


def test_imtl_learned_scales():
    # IMTL-L: d/ds_t (exp(s_t) L_t - s_t) = exp(s_t) L_t - 1 = L_t - 1 at s = 0
    from taskgrouper.balancing.imtl import IMTL

    model = vector_model(2)
    balancer = IMTL(learn_scales=True)
    balancer.setup(model.tasks, model)
    losses, out = step_losses(model, *batch(model))
    balancer.backward(losses, rep=out.rep)
    expected = torch.stack([losses[t].detach() for t in model.tasks]) - 1.0
    torch.testing.assert_close(balancer.log_scales.grad, expected)


def test_nash_update_every_reuses_the_weights():
    """With update_every=3, steps 2 and 3 reuse step 1's alpha and back-propagate
    sum_t alpha_t L_t in one pass."""
    from taskgrouper.balancing.nash import NashMTL

    model = vector_model(2)
    x, targets = batch(model)
    balancer = NashMTL(update_every=3)
    balancer.setup(model.tasks, model)
    logs = []
    for _ in range(3):
        losses, out = step_losses(model, x, targets)
        model.zero_grad(set_to_none=True)
        logs.append(balancer.backward(losses, rep=out.rep))
    assert logs[0] == logs[1] == logs[2]
    losses, _ = step_losses(model, x, targets)
    reference = torch.autograd.grad(sum(logs[0][t] * losses[t] for t in model.tasks),
                                    list(model.parameters()))
    for p, g in zip(model.parameters(), reference, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_dtp_kpi_override():
    model = vector_model(2)
    balancer = DTP(kpi={"cls": "loss"})
    balancer.setup(model.tasks, model)
    balancer.epoch_end({}, None, {"reg": {"loss": 1.0}, "cls": {"loss": 2.0, "accuracy": 0.9}})
    # cls uses exp(-2) = 0.135335 instead of its accuracy
    assert balancer.weights()["cls"] == pytest.approx(dtp_weight(math.exp(-2.0), 2.0))
