"""Measuring task affinity during one all-task training run.

With ``train.affinity_every: k``, at the first and every k-th training step the trainer asks an
:class:`AffinityRecorder` for each task's gradient on the shared parameters ``theta_s``
(``model.shared_parameters()``) before its backward pass, and, after the backward pass and
before the real update, has it measure two estimators:

- **lookahead** (inter-task affinity, Fifty et al., NeurIPS 2021): for each task ``i``, the
  update the run's own optimiser would make from task ``i``'s gradient alone (its momentum or
  Adam moments, weight decay and learning rate included: the real ``optimizer.step()`` on a
  gradient that is ``g_i`` on ``theta_s`` and absent elsewhere), then the loss of every task
  ``j`` on the same batch: ``Z(i->j) = 1 - L_j(theta_s after i's step) / L_j(theta_s)``.
  Positive: a step for ``i`` lowers ``j``'s loss. Parameters, optimiser state, batch-norm
  statistics and the random number generators are restored after each lookahead, so a run
  that records trains exactly the network it would train without recording.
- **gradcos**: the cosine similarity of ``g_i`` and ``g_j`` (flattened over ``theta_s``).

``g_i`` is the gradient of task ``i``'s loss as trained (deep supervision included), without
the balancer's weight. Over the recorded steps, ``gradcos`` is the mean cosine and
``lookahead`` is ``1 - sum L_j(after) / sum L_j(before)``: the per-step ratios weighted by
``L_j(before)``. (The plain mean of per-step ratios, as in Fifty et al., is dominated by the
batches where a task with few labels has a loss near 0: measured on planted families, single
steps gave ``Z`` of -50 for such a task.) Entries undefined at a step (a loss of 0 before the
lookahead, a zero gradient) are left out, and an entry undefined at every step is NaN.
:meth:`AffinityRecorder.result` is what a run stores under ``extra["affinity"]``;
:mod:`taskgrouper.grouping.affinity` turns it into predicted losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from taskgrouper.errors import InputError

__all__ = ["AffinityRecorder", "lookahead_affinity"]

#: Key of a run's ``extra`` dict that holds the recorder's result.
EXTRA_KEY = "affinity"


def _rng_state(device: torch.device) -> tuple:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _set_rng_state(device: torch.device, state: tuple) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def lookahead_affinity(model: nn.Module, optimizer: torch.optim.Optimizer,
                       shared: Sequence[nn.Parameter], grads: Sequence[Sequence[Tensor | None]],
                       losses_fn: Callable[[], Sequence[float]]) -> tuple[list[list[float]],
                                                                        list[float]]:
    """One lookahead measurement: ``Z[i][j]`` for every pair of tasks.

    Args:
        model: The network (its buffers are restored after each forward).
        optimizer: The run's optimiser; its ``step()`` makes the lookahead update, and its state
            for ``shared`` is restored afterwards.
        shared: The shared parameters the lookahead moves.
        grads: ``grads[i][k]``: task ``i``'s gradient for ``shared[k]`` (None: unreached).
        losses_fn: Every task's loss on the batch at the current parameters, without grad.

    Returns:
        ``(Z, before)``: the matrix (NaN where ``L_j`` before is 0 or not finite) and the
        losses before.
    """
    device = shared[0].device if shared else torch.device("cpu")
    rng = _rng_state(device)
    buffers = [b.detach().clone() for b in model.buffers()]

    def evaluate() -> list[float]:
        _set_rng_state(device, rng)  # the same dropout masks for every evaluation
        with torch.no_grad():
            out = [float(v) for v in losses_fn()]
        for b, saved in zip(model.buffers(), buffers, strict=True):
            b.copy_(saved)  # a train-mode forward moved the batch-norm statistics
        return out

    before = evaluate()
    saved_params = [p.detach().clone() for p in shared]
    saved_state = {id(p): {k: (v.clone() if isinstance(v, Tensor) else v)
                           for k, v in optimizer.state[p].items()} if p in optimizer.state
                   else None for p in shared}
    others = [p for g in optimizer.param_groups for p in g["params"]]
    stashed = [p.grad for p in others]
    for p in others:
        p.grad = None  # only the shared parameters move
    matrix: list[list[float]] = []
    try:
        for task_grads in grads:
            for p, g in zip(shared, task_grads, strict=True):
                p.grad = None if g is None else g.detach().clone()
            optimizer.step()
            after = evaluate()
            with torch.no_grad():
                for p, saved in zip(shared, saved_params, strict=True):
                    p.copy_(saved)
                    p.grad = None
                    state = saved_state[id(p)]
                    if state is None:
                        optimizer.state.pop(p, None)
                    else:
                        optimizer.state[p] = {k: (v.clone() if isinstance(v, Tensor) else v)
                                              for k, v in state.items()}
            matrix.append([1.0 - a / b if (b != 0 and math.isfinite(a) and math.isfinite(b))
                           else math.nan for a, b in zip(after, before, strict=True)])
    finally:
        for p, g in zip(others, stashed, strict=True):
            p.grad = g
        _set_rng_state(device, rng)
    return matrix, before


class AffinityRecorder:
    """Averages lookahead and gradient-cosine affinities over the recorded steps.

    Args:
        model: A network with ``shared_parameters()``.
        tasks: Task names, in the order of the matrices.
        every: Record at step 0 and every ``every``-th step after (counted over the run).

    Raises:
        ValueError: the architecture shares no parameters (each task has its own network, so
            neither estimator is defined); names the architecture and the fix.
    """

    def __init__(self, model: nn.Module, tasks: Sequence[str], every: int,
                 architecture: str = "") -> None:
        shared = [p for p in model.shared_parameters() if p.requires_grad] \
            if hasattr(model, "shared_parameters") else []
        if not shared:
            raise InputError(f"train.affinity_every needs parameters shared by every task, but "
                             f"architecture '{architecture or type(model).__name__}' has none "
                             f"(one network per task); record affinities with hard_sharing, "
                             f"mtan, padnet, papnet or mtinet")
        if every < 1:
            raise InputError(f"train.affinity_every must be at least 1, got {every}")
        self.model, self.tasks, self.every, self.shared = model, list(tasks), every, shared
        n = len(self.tasks)
        self._sum = {"lookahead": [[0.0] * n for _ in range(n)],
                     "gradcos": [[0.0] * n for _ in range(n)]}
        self._count = {k: [[0] * n for _ in range(n)] for k in self._sum}
        self._before = [[0.0] * n for _ in range(n)]
        self.steps = 0

    def due(self, step: int) -> bool:
        """Whether the run's ``step`` (0-based, counted over epochs) is a recorded one."""
        return step % self.every == 0

    def task_gradients(self, losses: Mapping[str, Tensor]) -> list[list[Tensor | None]]:
        """Each task's gradient on the shared parameters; call before the backward pass frees
        the graph (``losses`` still attached to it). Leaves ``.grad`` untouched."""
        return [list(torch.autograd.grad(losses[t], self.shared, retain_graph=True,
                                         allow_unused=True)) for t in self.tasks]

    def record(self, grads: Sequence[Sequence[Tensor | None]],
               optimizer: torch.optim.Optimizer,
               losses_fn: Callable[[], Sequence[float]]) -> None:
        """Measure both estimators at the current step, after its backward pass and before
        its optimiser step (the gradients in ``.grad`` are kept).

        Args:
            grads: From :meth:`task_gradients` at this step.
            optimizer: The run's optimiser, before this step's update.
            losses_fn: Recomputes every task's loss on this step's batch (in task order).
        """
        flat = []
        for task_grads in grads:
            parts = [(g if g is not None else torch.zeros_like(p)).detach().reshape(-1).double()
                     for g, p in zip(task_grads, self.shared, strict=True)]
            flat.append(torch.cat(parts))
        norms = [float(v.norm()) for v in flat]
        n = len(self.tasks)
        for i in range(n):
            for j in range(n):
                if norms[i] > 0 and norms[j] > 0 and math.isfinite(norms[i] * norms[j]):
                    self._add("gradcos", i, j, float(flat[i] @ flat[j]) / (norms[i] * norms[j]))
        z, before = lookahead_affinity(self.model, optimizer, self.shared, grads, losses_fn)
        for i in range(n):
            for j in range(n):
                if math.isfinite(z[i][j]) and before[j] > 0:
                    # accumulated as sums of L_j before and after (see result())
                    self._sum["lookahead"][i][j] += before[j] * (1.0 - z[i][j])
                    self._before[i][j] += before[j]
                    self._count["lookahead"][i][j] += 1
        self.steps += 1

    def _add(self, key: str, i: int, j: int, value: float) -> None:
        if math.isfinite(value):
            self._sum[key][i][j] += value
            self._count[key][i][j] += 1

    def result(self) -> dict[str, Any]:
        """The averages: ``{"tasks", "steps", "every", "lookahead", "gradcos"}``; ``lookahead``
        is indexed ``[i][j]`` = effect of task i's step on task j (NaN: never defined)."""
        out: dict[str, Any] = {"tasks": list(self.tasks), "steps": self.steps,
                               "every": self.every}
        out["gradcos"] = [[s / c if c else math.nan for s, c in zip(row, counts, strict=True)]
                          for row, counts in zip(self._sum["gradcos"], self._count["gradcos"],
                                                 strict=True)]
        out["lookahead"] = [[1.0 - a / b if c and b > 0 else math.nan
                             for a, b, c in zip(after, before, counts, strict=True)]
                            for after, before, counts in zip(self._sum["lookahead"], self._before,
                                                             self._count["lookahead"],
                                                             strict=True)]
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"sum": self._sum, "count": self._count, "before": self._before,
                "steps": self.steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._sum = {k: [list(r) for r in v] for k, v in state["sum"].items()}
        self._count = {k: [list(r) for r in v] for k, v in state["count"].items()}
        self._before = [list(r) for r in state["before"]]
        self.steps = int(state["steps"])
