"""The per-task gradient helpers and the plumbing every gradient balancer shares: the (T, N)
matrix against per-task autograd, accumulation into ``.grad``, the representation frontier and
its clean/unclean split, and the update written for parameters, for the representation (fast
path and hook fallback) and under an AMP loss scale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from balancer_helpers import TwoPathNet, batch, conv_model, step_losses, vector_model
from torch import nn

from taskgrouper.balancing.gradient_method import GradientBalancer
from taskgrouper.balancing.gradients import (
    accumulate_gradients,
    host_values,
    representation_frontier,
    scale_factor,
    split_at_representation,
    task_gradients,
)


def _reference_rows(losses, params):
    """One autograd.grad per task, flattened: the definition task_gradients must match."""
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    return torch.stack(rows)


@pytest.mark.parametrize("batched", [False, True])
def test_task_gradients_match_per_task_autograd(batched):
    model = vector_model(5)
    x, targets = batch(model)
    losses, _ = step_losses(model, x, targets)
    params = [p for p in model.parameters() if p.requires_grad]
    own = [losses[t] for t in model.tasks]
    grads = task_gradients(own, params, batched=batched)
    assert grads.shape == (5, sum(p.numel() for p in params))
    torch.testing.assert_close(grads, _reference_rows(own, params), rtol=1e-5, atol=1e-7)
    # a head's columns are zero in every other task's row
    head = list(model.task_parameters("cls"))
    start = sum(p.numel() for p in params[:[id(p) for p in params].index(id(head[0]))])
    cols = grads[:, start:start + head[0].numel()]
    assert cols[1].abs().sum() > 0 and cols[[0, 2, 3, 4]].abs().sum() == 0


def test_task_gradients_zero_row_for_a_loss_without_graph():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    losses = [(w ** 2).sum(), torch.tensor(3.0)]  # the second has no graph (no labels)
    grads = task_gradients(losses, [w])
    torch.testing.assert_close(grads, torch.tensor([[2.0, 4.0], [0.0, 0.0]]))


def test_accumulate_gradients_adds_and_keeps_memory_format():
    conv = nn.Conv2d(2, 3, 3).to(memory_format=torch.channels_last)
    bias = nn.Parameter(torch.zeros(3))
    bias.grad = torch.ones(3)  # e.g. a regularisation term back-propagated first
    params = [conv.weight, bias]
    flat = torch.arange(conv.weight.numel() + 3, dtype=torch.float32)
    accumulate_gradients(params, flat)
    torch.testing.assert_close(conv.weight.grad, flat[:54].view(3, 2, 3, 3))
    assert conv.weight.grad.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(bias.grad, torch.tensor([55.0, 56.0, 57.0]))  # 1 + (54, 55, 56)


def test_representation_frontier_drops_ancestors():
    x = torch.randn(3, requires_grad=True)
    a = x * 2  # stage 1
    b = a.exp()  # stage 2, computed from a
    c = a.sin()  # a second branch from a
    d = x.cos()  # independent of the others
    assert representation_frontier([a, b, c, d]) == [1, 2, 3]
    assert representation_frontier([b, a]) == [0]


def test_split_is_clean_for_hard_sharing_and_finds_the_heads():
    model = conv_model()
    x, targets = batch(model, n=2)
    losses, out = step_losses(model, x, targets)
    split = split_at_representation([losses[t] for t in model.tasks], out.rep)
    assert split.clean
    assert split.frontier == [len(out.rep) - 1]  # the deepest stage
    heads = {id(p) for t in model.tasks for p in model.task_parameters(t)}
    assert {id(p) for p in split.downstream} == heads


def test_split_is_not_clean_when_a_head_reads_below_the_frontier():
    model = TwoPathNet()
    out = model(torch.randn(4, 6))
    losses = [out["p"].pow(2).mean(), out["q"].pow(2).mean()]
    split = split_at_representation(losses, out.rep)
    assert split.frontier == [1] and not split.clean


def test_scale_factor_and_host_values():
    assert scale_factor(None, torch.zeros(())) is None
    factor = scale_factor(lambda t: t * 512.0, torch.zeros(3))
    assert factor.shape == () and float(factor) == 512.0
    a, b = host_values(torch.ones(2, 2), torch.tensor([3.0, 4.0]))
    assert a.dtype == np.float64 and a.shape == (2, 2) and b.tolist() == [3.0, 4.0]


class _Fixed(GradientBalancer):
    """A stub method: shared weights (1, 2, ...), head weights (3, 3, ...)."""

    name = "stub"

    def solve(self, gram, losses):
        n = gram.shape[0]
        w = np.arange(1.0, n + 1.0)
        return w, np.full(n, 3.0), w


def _reference_grads(model, x, targets, shared_w, head_w):
    """Shared parameters: grad of sum w_t L_t; the others: grad of sum h_t L_t."""
    model.zero_grad()
    losses, _ = step_losses(model, x, targets)
    shared = list(model.shared_parameters())
    others = [p for p in model.parameters() if all(p is not s for s in shared)]
    shared_total = sum(w * losses[t] for w, t in zip(shared_w, model.tasks, strict=True))
    head_total = sum(h * losses[t] for h, t in zip(head_w, model.tasks, strict=True))
    g_shared = torch.autograd.grad(shared_total, shared, retain_graph=True)
    g_other = torch.autograd.grad(head_total, others, allow_unused=True)
    out = {id(p): g for p, g in zip(shared, g_shared, strict=True)}
    out.update({id(p): (torch.zeros_like(p) if g is None else g)
                for p, g in zip(others, g_other, strict=True)})
    return out


@pytest.mark.parametrize("make,rep", [(lambda: vector_model(5), False),
                                      (lambda: vector_model(5), True),
                                      (conv_model, True), (TwoPathNet, True),
                                      (TwoPathNet, False)])
def test_plumbing_writes_shared_and_head_gradients(make, rep):
    """Params mode, clean representation (hard sharing) and the hook fallback (TwoPathNet)
    all write grad(sum_t w_t L_t) into the shared part and grad(sum_t h_t L_t) elsewhere."""
    model = make()
    x = torch.randn(4, 6) if isinstance(model, TwoPathNet) else batch(model, n=4)[0]
    targets = ({t: torch.randn(4) for t in model.tasks} if isinstance(model, TwoPathNet)
               else batch(model, n=4)[1])
    n = len(model.tasks)
    shared_w, head_w = list(range(1, n + 1)), [3.0] * n
    expected = _reference_grads(model, x, targets, shared_w, head_w)
    balancer = _Fixed(rep=rep)
    balancer.setup(model.tasks, model)
    model.zero_grad()
    losses, out = step_losses(model, x, targets)
    log = balancer.backward(losses, rep=out.rep)
    assert log == dict(zip(model.tasks, [float(w) for w in shared_w], strict=True))
    for name, p in model.named_parameters():
        if isinstance(model, TwoPathNet) and rep and name.startswith("w1."):
            # below the frontier and read directly by head q: it gets the combined gradient
            # through b plus head q's direct path with q's head weight (checked exactly below
            # for a method whose head weights equal its shared weights)
            continue
        torch.testing.assert_close(p.grad, expected[id(p)], rtol=1e-4, atol=1e-6, msg=name)


class _Linear(GradientBalancer):
    """A stub linear method whose head weights equal its shared weights (like MGDA-UB)."""

    name = "stub_linear"

    def solve(self, gram, losses):
        w = np.array([0.25, 0.75])
        return w, w, w


def test_hook_fallback_is_exact_for_a_linear_method():
    """On TwoPathNet (not clean) with h = w, every parameter, w1 included, gets
    grad(0.25 L_p + 0.75 L_q)."""
    model = TwoPathNet()
    x, targets = torch.randn(4, 6), {"p": torch.randn(4), "q": torch.randn(4)}
    expected = _reference_grads(model, x, targets, [0.25, 0.75], [0.25, 0.75])
    balancer = _Linear(rep=True)
    balancer.setup(model.tasks, model)
    model.zero_grad()
    losses, out = step_losses(model, x, targets)
    balancer.backward(losses, rep=out.rep)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, expected[id(p)], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("rep", [False, True])
def test_plumbing_under_an_amp_scale(rep):
    """With GradScaler's scale (x 1024) every gradient is 1024 times the unscaled one, and the
    scale-sensitive Nash-MTL weights do not change (the solver sees the unscaled Gram)."""
    from taskgrouper.balancing.nash import NashMTL

    model = vector_model(2)
    x, targets = batch(model)
    results = []
    for scale in (None, lambda t: t * 1024.0):
        balancer = NashMTL(rep=rep)
        balancer.setup(model.tasks, model)
        model.zero_grad()
        losses, out = step_losses(model, x, targets)
        log = balancer.backward(losses, scale, rep=out.rep)
        results.append((log, {n: p.grad.clone() for n, p in model.named_parameters()}))
    (log0, g0), (log1, g1) = results
    assert log0 == pytest.approx(log1, rel=1e-4)
    for name in g0:
        torch.testing.assert_close(g1[name], 1024.0 * g0[name], rtol=1e-4, atol=1e-6)


def test_a_parameter_no_loss_reaches_keeps_no_gradient():
    """As after a plain backward, so the optimiser skips it (no momentum or decay step)."""
    model = vector_model(2)
    model.unused = nn.Parameter(torch.zeros(3))
    balancer = _Fixed()
    balancer.setup(model.tasks, model)
    losses, out = step_losses(model, *batch(model))
    balancer.backward(losses, rep=out.rep)
    assert model.unused.grad is None
    assert all(p.grad is not None for n, p in model.named_parameters() if n != "unused")


def test_rep_mode_without_a_representation_is_a_clear_error():
    model = vector_model(2)
    balancer = _Fixed(rep=True)
    balancer.setup(model.tasks, model)
    losses, _ = step_losses(model, *batch(model))
    with pytest.raises(ValueError, match="Outputs.rep is None.*rep: false"):
        balancer.backward(losses, rep=None)


def test_a_model_without_shared_parameters_is_a_clear_error():
    model = TwoPathNet()
    model.shared_parameters = lambda: iter(())  # one network per task
    balancer = _Fixed()
    balancer.setup(model.tasks, model)
    out = model(torch.randn(4, 6))
    with pytest.raises(ValueError, match="needs per-task gradients of shared parameters"):
        balancer.backward({t: out[t].pow(2).mean() for t in model.tasks})
