"""The plumbing every per-task-gradient balancer shares: gradients in, one update out.

A :class:`GradientBalancer` turns one step's losses into the (T, N) matrix of per-task
gradients, hands it to the method (:meth:`GradientBalancer.combine_gradients`), and writes the
result into ``.grad`` by accumulation:

* on the **shared parameters** (default): rows of the matrix are the gradients of each task's
  loss with respect to ``model.shared_parameters()`` together with the other trainable
  parameters (one backward per task); the shared part gets the method's combined direction,
  the rest (heads, layers a subset of tasks reach) ``sum_t h_t * grad L_t`` with the method's
  head weights ``h``;
* on the **shared representation** (``rep=True``, the methods' cheap variant): rows are the
  gradients with respect to the representation frontier (see
  :func:`~taskgrouper.balancing.gradients.representation_frontier`); each task's pass visits
  only its own head, which also yields the heads' gradients, and the encoder gets one backward
  from the frontier with the combined direction. When a head reads the network below the
  frontier directly, the step falls back to one full backward of ``sum_t h_t L_t`` in which a
  hook replaces the frontier's gradient by the combined one.

Tasks without a label in a batch: :func:`~taskgrouper.train.losses.task_loss` gives such a
task a loss of 0 times its prediction, so its row of the matrix is exactly zero. A zero row is
*dead*: the Gram-matrix methods are solved on the live rows only
(:meth:`GradientBalancer.solve_live`), the dead tasks get shared, head and logged weights of 0,
and a step whose rows are all dead writes a zero update. Rows that are not finite stay live, so
an AMP overflow or a diverging loss still reaches the grad scaler and the trainer's check.

AMP: the losses are multiplied by the grad scaler's factor before differentiation, so every
gradient written is scaled like the trainer's other gradients; the solvers see the Gram matrix
divided by the squared factor (unscaled), which matters for the methods that are not
scale-invariant (Nash-MTL).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from taskgrouper.balancing.base import Balancer
from taskgrouper.balancing.gradients import (
    accumulate_gradients,
    host_values,
    non_shared_parameters,
    scale_factor,
    split_at_representation,
    task_gradients,
    unflatten,
)
from taskgrouper.errors import InputError

__all__ = ["GradientBalancer"]


class GradientBalancer(Balancer):
    """Base of the balancers that combine per-task gradients (MGDA, PCGrad, CAGrad, ...).

    Subclasses implement :meth:`combine_gradients`; the many that only need the T x T Gram
    matrix implement :meth:`solve` instead, which is called on the live tasks only (see
    :meth:`solve_live`).

    Args:
        rep: Work on gradients with respect to the shared representation (``Outputs.rep``)
            instead of the shared parameters.
        batched: Compute the per-task gradients in one vectorised backward
            (``is_grads_batched``) instead of one backward per task.
    """

    #: True when the method may only run on the representation (``mgda_ub``, ``graddrop``).
    rep_only = False

    def __init__(self, rep: bool = False, batched: bool = False) -> None:
        super().__init__()
        if not isinstance(rep, bool):
            raise InputError(f"balancer '{self.name}': option 'rep' must be true or false, "
                             f"not {rep!r}")
        if not isinstance(batched, bool):
            raise InputError(f"balancer '{self.name}': option 'batched' must be true or false, "
                             f"not {batched!r}")
        self.rep = rep or self.rep_only
        self.batched = batched
        #: Indices into ``tasks`` of the tasks the current :meth:`solve` call sees, while it
        #: sees a subset (None: all of them).
        self.solving: np.ndarray | None = None

    # --- what a method implements -------------------------------------------------------
    def combine_gradients(self, grads: Tensor, losses: Tensor, factor: Tensor | None,
                          inputs: Sequence[Tensor]
                          ) -> tuple[Tensor | None, Tensor, list[float]]:
        """Combine the per-task gradients.

        Args:
            grads: ``(T, N)`` per-task gradients (scaled by ``factor`` under AMP).
            losses: ``(T,)`` unscaled losses, detached.
            factor: The AMP loss-scale factor (0-d tensor) or None.
            inputs: The tensors the columns of ``grads`` belong to (parameters or
                representation tensors, in order).

        Returns:
            ``direction``: ``(N,)`` the combined gradient (scaled like ``grads``), or None when
            it is ``heads @ grads``; ``heads``: ``(T,)`` the weight of each task's loss on its
            own (non-shared) parameters; ``log``: the task weights to report, as floats.
        """
        gram, values = host_values(grads @ grads.T / _square(factor), losses)  # (T, T), (T,)
        weights, heads, log = self.solve_live(gram, values)
        w = torch.as_tensor(weights, dtype=grads.dtype).to(grads.device, non_blocking=True)
        h = torch.as_tensor(heads, dtype=grads.dtype).to(grads.device, non_blocking=True)
        return w @ grads, h, [float(v) for v in log]

    def solve(self, gram, losses):
        """Gram-matrix methods: ``(T, T)`` unscaled Gram matrix and ``(T,)`` losses (numpy
        float64) -> shared weights, head weights and logged weights (each ``(T,)``): the
        shared parameters get ``sum_t w_t g_t``.

        Called through :meth:`solve_live`, so ``T`` counts the live tasks of the step, which
        are ``self.tasks[i]`` for ``i`` in :attr:`solving` (all tasks when it is None); methods
        with per-task state or options read it."""
        raise NotImplementedError

    def solve_live(self, gram, losses):
        """:meth:`solve` on the live tasks only, its weights scattered back to all tasks.

        A task is dead when its row is exactly zero (``gram[t, t] == 0``: no valid label in
        the batch); it gets 0 for every weight. With every row live this is :meth:`solve`
        itself; with every row dead, :meth:`solve` is not called and all weights are 0. NaN
        and infinite rows count as live.

        Returns:
            Shared, head and logged weights, each ``(T,)``.
        """
        live = np.diag(gram) != 0.0  # NaN != 0: a non-finite row stays live
        n = live.shape[0]
        if live.all():
            return self.solve(gram, losses)
        out = (np.zeros(n), np.zeros(n), np.zeros(n))
        if not live.any():
            return out
        self.solving = np.flatnonzero(live)
        try:
            parts = self.solve(gram[np.ix_(self.solving, self.solving)], losses[self.solving])
        finally:
            self.solving = None
        for full, part in zip(out, parts, strict=True):
            full[live] = np.asarray(part, dtype=np.float64)
        return out

    # --- the lifecycle ------------------------------------------------------------------
    def backward(self, losses: Mapping[str, Tensor],
                 scale: Callable[[Tensor], Tensor] | None = None,
                 rep: Sequence[Tensor] | None = None) -> dict[str, float]:
        own = [losses[t] for t in self.tasks]
        stacked = torch.stack(own)  # (T,)
        factor = scale_factor(scale, stacked)
        # one graph per task (never index a stacked tensor: see task_gradients)
        scaled = [loss * factor for loss in own] if factor is not None else own
        if self.rep:
            log = self._backward_rep(stacked, scaled, factor, rep)
        else:
            log = self._backward_params(stacked, scaled, factor)
        return dict(zip(self.tasks, log, strict=True))

    def _shared(self) -> list[nn.Parameter]:
        model = self._model()
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if not shared:
            raise InputError(f"balancer '{self.name}' needs per-task gradients of shared "
                             f"parameters, but the model shares none; use a loss-weighting "
                             f"balancer or an architecture with a shared encoder")
        return shared

    def _model(self) -> nn.Module:
        if self.model is None:
            raise RuntimeError(f"balancer '{self.name}': call setup(tasks, model) first")
        return self.model

    def _backward_params(self, stacked: Tensor, scaled: list[Tensor],
                         factor: Tensor | None) -> list[float]:
        shared = self._shared()
        others = non_shared_parameters(self._model(), shared)
        reached: list[bool] = []
        grads = task_gradients(scaled, shared + others, batched=self.batched,
                               reached=reached)  # (T, Ps + Po)
        n_shared = sum(p.numel() for p in shared)
        direction, heads, log = self.combine_gradients(grads[:, :n_shared], stacked.detach(),
                                                       factor, shared)
        if direction is None:
            direction = heads @ grads[:, :n_shared]
        accumulate_gradients(shared, direction, reached[:len(shared)])
        if others:
            accumulate_gradients(others, heads @ grads[:, n_shared:], reached[len(shared):])
        return log

    def _backward_rep(self, stacked: Tensor, scaled: list[Tensor], factor: Tensor | None,
                      rep: Sequence[Tensor] | None) -> list[float]:
        if rep is None:
            raise InputError(f"balancer '{self.name}' works on the shared representation, but "
                             f"the model's outputs carry none (Outputs.rep is None); use an "
                             f"architecture with a shared encoder, or set rep: false")
        split = split_at_representation(scaled, rep)
        front = [rep[i] for i in split.frontier if rep[i].requires_grad]
        if not front:
            raise InputError(f"balancer '{self.name}': the shared representation does not "
                             f"require gradients (a frozen encoder?); set rep: false")
        n_rep = sum(r.numel() for r in front)
        if split.clean:
            inputs = front + split.downstream
            grads = task_gradients(scaled, inputs, batched=self.batched)  # (T, R + Pd)
            direction, heads, log = self.combine_gradients(grads[:, :n_rep], stacked.detach(),
                                                           factor, front)
            if direction is None:
                direction = heads @ grads[:, :n_rep]
            if split.downstream:
                accumulate_gradients(split.downstream, heads @ grads[:, n_rep:])
            torch.autograd.backward(front, grad_tensors=unflatten(direction, front))
            return log
        grads = task_gradients(scaled, front, batched=self.batched)  # (T, R)
        direction, heads, log = self.combine_gradients(grads, stacked.detach(), factor, front)
        total = (heads * torch.stack(scaled)).sum()
        if direction is None:  # the direction is what this backward propagates anyway
            total.backward()
            return log
        handles = [r.register_hook(lambda _g, new=new: new)
                   for r, new in zip(front, unflatten(direction, front), strict=True)]
        try:
            total.backward()
        finally:
            for handle in handles:
                handle.remove()
        return log


def _square(factor: Tensor | None) -> Tensor | float:
    return 1.0 if factor is None else factor * factor
