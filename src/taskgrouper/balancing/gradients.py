"""Pure helpers on per-task gradients, shared by every gradient-based balancer.

One tested function computes the (T, N) matrix of per-task gradients, whether ``N`` counts the
shared parameters or the elements of the shared representation; the others find the part of
the representation the heads read, split a model's parameters, write a flat gradient into
``.grad`` by accumulation, and bring the T x T Gram matrix to the host for the small solvers.

Conventions: ``T`` tasks; a flat gradient of ``N`` numbers lists the inputs (parameters or
representation tensors) in the order given, each flattened in its logical (row-major) order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from taskgrouper.balancing.distributed import all_average, all_sum, distributed
from taskgrouper.errors import InputError

__all__ = ["RepresentationSplit", "accumulate_gradients", "host_values", "live_losses",
           "non_shared_parameters", "representation_frontier", "scale_factor",
           "split_at_representation", "task_gradients", "unflatten"]


def task_gradients(losses: Sequence[Tensor], inputs: Sequence[Tensor], *,
                   batched: bool = False, reached: list[bool] | None = None) -> Tensor:
    """Per-task gradients of ``losses`` with respect to ``inputs``, flattened.

    The graph is kept (``retain_graph``), so the caller can back-propagate afterwards. An input
    a task's loss does not reach contributes zeros to that task's row.

    Args:
        losses: T scalar losses (scaled by the AMP factor where one is used), each with its
            own graph: not the entries of one stacked tensor, whose backward would push zero
            cotangents through every other task's head.
        inputs: Tensors that require gradients: shared parameters, or shared representation
            tensors.
        batched: One vectorised backward (``is_grads_batched``: every task's cotangent pushed
            through the whole graph at once) instead of one backward per task. The loop visits
            only each task's own head, so it does less arithmetic (T encoder passes plus one
            pass over all heads, against T passes over encoder and all heads); the batched
            call launches fewer, larger kernels, which may pay off on a GPU (not measured
            here; on CPU the loop is faster, see ``bench/bench_balancers.py``).

    Under torchrun (data-parallel training, :mod:`taskgrouper.train.distributed`) the gradients
    with respect to parameters are averaged over the ranks, so every rank holds the gradients
    of the global batch; gradients with respect to per-sample activations cannot be, and are
    refused.

    Returns:
        ``(T, N)`` float32 matrix on the inputs' device, ``N = sum(x.numel() for x in inputs)``.

    Raises:
        RuntimeError: under data-parallel training, an input that is not a parameter.
    """
    if not distributed():
        return _local_task_gradients(losses, inputs, batched=batched, reached=reached)
    if not all(isinstance(x, nn.Parameter) for x in inputs):
        raise RuntimeError(
            "this balancer combines per-task gradients of the shared representation, which "
            "are per sample and differ between the ranks of a data-parallel (torchrun) run; "
            "use its shared-parameter variant (balancer option rep: false, where it has one), "
            "another balancer, or train in one process")
    local_reached = [False] * len(inputs)
    out = all_average(_local_task_gradients(losses, inputs, batched=batched,
                                            reached=local_reached))
    if reached is not None:
        flags = all_sum(torch.tensor(local_reached, dtype=torch.float32, device=out.device))
        reached[:] = [bool(f > 0) for f in flags.tolist()]
    return out


def _local_task_gradients(losses: Sequence[Tensor], inputs: Sequence[Tensor], *,
                          batched: bool, reached: list[bool] | None) -> Tensor:
    """:func:`task_gradients` on this process's batch."""
    n_tasks = len(losses)
    sizes = [x.numel() for x in inputs]
    device = inputs[0].device if inputs else losses[0].device
    live = [t for t, loss in enumerate(losses) if loss.grad_fn is not None]
    if reached is not None:
        reached[:] = [False] * len(inputs)
    if not live or not inputs:
        return torch.zeros(n_tasks, sum(sizes), device=device, dtype=torch.float32)
    out = torch.empty(n_tasks, sum(sizes), device=device, dtype=torch.float32)  # (T, N)
    for t in range(n_tasks):
        if t not in live:
            out[t].zero_()
    if batched:
        stacked = torch.stack([losses[t] for t in live])  # (T',)
        eye = torch.eye(len(live), device=stacked.device, dtype=stacked.dtype)  # (T', T')
        grads = torch.autograd.grad(stacked, list(inputs), grad_outputs=eye, retain_graph=True,
                                    allow_unused=True, is_grads_batched=True)
        rows = torch.tensor(live, device=device)
        offset = 0
        for i, (g, n) in enumerate(zip(grads, sizes, strict=True)):
            if g is not None:  # (T', *x.shape)
                out[rows, offset:offset + n] = g.reshape(len(live), n).float()
                if reached is not None:
                    reached[i] = True
            else:
                out[rows, offset:offset + n] = 0.0
            offset += n
        return out
    for t in live:  # no graph behind a task's loss (e.g. no labels): its row stays 0
        grads = torch.autograd.grad(losses[t], list(inputs), retain_graph=True,
                                    allow_unused=True)
        offset = 0
        for i, (g, n) in enumerate(zip(grads, sizes, strict=True)):
            if g is not None:
                out[t, offset:offset + n] = g.reshape(n)
                if reached is not None:
                    reached[i] = True
            else:
                out[t, offset:offset + n].zero_()
            offset += n
    return out


def unflatten(flat: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split an ``(N,)`` vector into tensors shaped (and typed) like ``like``."""
    parts, offset = [], 0
    for x in like:
        n = x.numel()
        parts.append(flat[offset:offset + n].view(x.shape).to(x.dtype))
        offset += n
    if offset != flat.numel():
        raise InputError(f"flat gradient has {flat.numel()} numbers, the tensors {offset}")
    return parts


def accumulate_gradients(params: Sequence[nn.Parameter], flat: Tensor,
                         reached: Sequence[bool] | None = None) -> None:
    """Add an ``(N,)`` flat gradient into ``.grad`` of ``params`` (never overwrites).

    A parameter without a gradient gets a fresh tensor in its own memory format (channels-last
    convolution weights stay channels-last). Parameters flagged False in ``reached`` (see
    :func:`task_gradients`) are left alone.
    """
    for i, (p, g) in enumerate(zip(params, unflatten(flat, params), strict=True)):
        if reached is not None and not reached[i]:
            continue
        if p.grad is None:
            p.grad = torch.empty_like(p, memory_format=torch.preserve_format).copy_(g)
        else:
            p.grad = p.grad + g


def non_shared_parameters(model: nn.Module, shared: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """Trainable parameters of ``model`` outside ``shared`` (heads, and anything reached by a
    subset of the tasks), in registration order."""
    skip = {id(p) for p in shared}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in skip]


def representation_frontier(rep: Sequence[Tensor]) -> list[int]:
    """Indices of the representation tensors no other one is computed from.

    ``Outputs.rep`` may list every stage of an encoder (shallow to deep). The gradient of a
    loss with respect to a shallow stage includes the path back through the deeper stages, so
    balancing it as well would count that path twice; balancers act on the frontier: the
    tensors that are not an ancestor of another listed one (for a sequential encoder, its
    deepest output). Found by a walk over the autograd graph (each node visited once).

    Args:
        rep: The shared representation tensors of one forward pass.

    Returns:
        Sorted indices into ``rep``; every tensor without a graph is on the frontier.
    """
    return _walk_representation(rep)[0]


def _walk_representation(rep: Sequence[Tensor]) -> tuple[list[int], set[int]]:
    """The frontier of ``rep`` and the ids of the leaves (parameters) its graph reaches."""
    keys = {}
    for i, r in enumerate(rep):
        if r.grad_fn is not None:
            keys[(r.grad_fn, r.output_nr)] = i
    ancestors: set[int] = set()
    leaves: set[int] = set()
    seen: set[object] = set()
    stack = [edge for r in rep if r.grad_fn is not None for edge in r.grad_fn.next_functions]
    while stack:
        node, nr = stack.pop()
        if node is None:
            continue
        if (node, nr) in keys:
            ancestors.add(keys[(node, nr)])
        if node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if variable is not None:
            leaves.add(id(variable))
        stack.extend(node.next_functions)
    return [i for i in range(len(rep)) if i not in ancestors], leaves


@dataclass(frozen=True)
class RepresentationSplit:
    """Where one step's graph is cut at the shared representation.

    Attributes:
        frontier: Indices into ``rep`` of the tensors balancers act on (see
            :func:`representation_frontier`).
        downstream: Trainable parameters between the frontier and the losses (the heads, and
            shared layers after the representation), reached from the losses without passing
            through the frontier.
        clean: True when the losses reach the rest of the network only through the frontier:
            no other ``rep`` tensor and no parameter below the frontier is read directly. Then
            the per-task pass over the heads also yields the heads' gradients, and the encoder
            needs a single backward from the frontier.
    """

    frontier: list[int]
    downstream: list[nn.Parameter]
    clean: bool


def split_at_representation(losses: Sequence[Tensor],
                            rep: Sequence[Tensor]) -> RepresentationSplit:
    """Cut the graph of ``losses`` at the frontier of ``rep`` (two walks over autograd nodes).

    Args:
        losses: The T scalar losses of the step.
        rep: The model's shared representation tensors.
    """
    frontier, upstream = _walk_representation(rep)
    stops = {(rep[i].grad_fn, rep[i].output_nr) for i in frontier if rep[i].grad_fn is not None}
    others = {(r.grad_fn, r.output_nr) for i, r in enumerate(rep)
              if i not in frontier and r.grad_fn is not None}
    downstream: list[nn.Parameter] = []
    clean = True
    seen: set[object] = set()
    stack = [(loss.grad_fn, 0) for loss in losses if loss.grad_fn is not None]
    while stack:
        node, nr = stack.pop()
        if node is None or (node, nr) in stops:
            continue
        if (node, nr) in others:
            clean = False
        if node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad: a leaf tensor
        if variable is not None:
            if id(variable) in upstream:
                clean = False
            elif variable.requires_grad:
                downstream.append(variable)
        stack.extend(node.next_functions)
    return RepresentationSplit(frontier, downstream, clean)


def scale_factor(scale: Callable[[Tensor], Tensor] | None, like: Tensor) -> Tensor | None:
    """The AMP loss-scale factor as a 0-d tensor on ``like``'s device, or None without AMP.

    ``scale`` is ``GradScaler.scale``: it multiplies a tensor by the current factor, so the
    factor is ``scale(1)`` (no host synchronisation).
    """
    if scale is None:
        return None
    return scale(torch.ones((), device=like.device, dtype=torch.float32))


def host_values(*tensors: Tensor):
    """Bring small tensors to the host as float64 numpy arrays in one transfer.

    The small per-step solvers (min-norm, Nash bargaining, ...) work on the T x T Gram matrix;
    this is the single device-to-host synchronisation of a step, and the task weights for the
    log come back with it.
    """
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors]).cpu().numpy()
    out, offset = [], 0
    for t in tensors:
        n = t.numel()
        out.append(flat[offset:offset + n].reshape(tuple(t.shape)))
        offset += n
    return out


def live_losses(losses: Sequence[Tensor]) -> Tensor:
    """``(T,)`` bool: the losses that carry information this step.

    :func:`~taskgrouper.train.losses.task_loss` gives a task without a valid label in the batch
    a loss of exactly 0 (times its prediction); a loss may also come without a graph. Both are
    dead: methods with per-task state (learned scales, logits) leave that task's state alone
    for the step. NaN and infinite losses count as live (the trainer stops on them). Computed
    on the losses' device, without a host synchronisation.
    """
    stacked = torch.stack([loss.detach() for loss in losses])  # (T,)
    live = stacked != 0
    if not all(loss.requires_grad for loss in losses):
        graph = torch.tensor([loss.requires_grad for loss in losses], device=stacked.device)
        live = live & graph
    return live
