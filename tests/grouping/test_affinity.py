"""Task affinity: the lookahead worked by hand, the recorder inside training, the loss model,
and the evaluation statistics (Spearman, adjusted Rand index, regret)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from taskgrouper.config import ExperimentConfig
from taskgrouper.grouping.affinity import (
    affinity_matrix,
    calibration_pairs,
    fit_affinity_model,
    predict_losses,
)
from taskgrouper.grouping.candidates import Candidate
from taskgrouper.grouping.evaluation import (
    adjusted_rand_index,
    evaluate_strategies,
    planted_agreement,
    spearman,
)
from taskgrouper.train.affinity import AffinityRecorder, lookahead_affinity


class TwoTaskLine(nn.Module):
    """Both tasks predict ``w * x`` with one shared weight ``w`` (x = 1): task a wants 1,
    task b wants -1, so ``L_a = (w - 1)^2`` and ``L_b = (w + 1)^2``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.other = nn.Parameter(torch.ones(()))  # a task-specific parameter: never moved

    def shared_parameters(self):
        yield self.w

    def losses(self) -> dict[str, torch.Tensor]:
        pred = self.w * 1.0
        return {"a": (pred - 1.0) ** 2 * self.other, "b": (pred + 1.0) ** 2}


def _measure(model: TwoTaskLine, optimizer) -> list[list[float]]:
    losses = model.losses()
    grads = [torch.autograd.grad(losses[t], [model.w], retain_graph=True) for t in "ab"]

    def again():
        return [float(v) for v in model.losses().values()]

    z, before = lookahead_affinity(model, optimizer, [model.w], grads, again)
    assert before == pytest.approx([1.0, 1.0])
    return z


def test_lookahead_by_hand_with_plain_sgd():
    # w = 0: L_a = L_b = 1; g_a = 2(w - 1) = -2, g_b = 2(w + 1) = 2.
    # Step on a with lr 0.1: w = 0.2, L_a = 0.64, L_b = 1.44:
    #   Z(a->a) = 1 - 0.64 = 0.36, Z(a->b) = 1 - 1.44 = -0.44; b is the mirror image.
    model = TwoTaskLine()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    z = _measure(model, opt)
    assert z == [pytest.approx([0.36, -0.44]), pytest.approx([-0.44, 0.36])]
    assert model.w.item() == 0.0 and model.other.item() == 1.0  # restored; other never moved


def test_lookahead_uses_the_optimisers_momentum():
    # SGD momentum 0.9 with a buffer of 1.0 from earlier steps: buf = 0.9 * 1 + g.
    # a: buf = 0.9 - 2 = -1.1, w = 0.11: L_a = 0.89^2 = 0.7921, L_b = 1.11^2 = 1.2321
    #   Z(a->a) = 0.2079, Z(a->b) = -0.2321
    # b: buf = 0.9 + 2 = 2.9, w = -0.29: L_a = 1.29^2 = 1.6641, L_b = 0.71^2 = 0.5041
    #   Z(b->a) = -0.6641, Z(b->b) = 0.4959
    model = TwoTaskLine()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.state[model.w]["momentum_buffer"] = torch.tensor(1.0)
    z = _measure(model, opt)
    assert z[0] == pytest.approx([0.2079, -0.2321])
    assert z[1] == pytest.approx([-0.6641, 0.4959])
    assert float(opt.state[model.w]["momentum_buffer"]) == 1.0  # state restored


def test_lookahead_uses_adams_update():
    # Adam's first step moves by lr * g / (|g| + eps) = 0.1 * sign(g) (bias-corrected):
    # a: w = 0.1, L_a = 0.81, L_b = 1.21: Z(a->a) = 0.19, Z(a->b) = -0.21 (plain SGD: 0.36)
    model = TwoTaskLine()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    z = _measure(model, opt)
    assert z[0] == pytest.approx([0.19, -0.21], abs=1e-6)
    assert z[1] == pytest.approx([-0.21, 0.19], abs=1e-6)
    assert model.w not in opt.state  # the lookahead's first-step state was removed again


def test_recorder_averages_both_estimators_and_keeps_grads():
    model = TwoTaskLine()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = AffinityRecorder(model, ["a", "b"], every=2)
    assert [rec.due(s) for s in range(5)] == [True, False, True, False, True]
    losses = model.losses()
    grads = rec.task_gradients(losses)
    (losses["a"] + losses["b"]).backward()
    kept = model.w.grad.clone()
    rec.record(grads, opt, lambda: [float(v) for v in model.losses().values()])
    assert torch.equal(model.w.grad, kept)  # the training gradient survives the lookahead
    out = rec.result()
    assert out["steps"] == 1 and out["tasks"] == ["a", "b"]
    # g_a = -2, g_b = 2: opposite gradients, cosine -1
    assert out["gradcos"] == [pytest.approx([1.0, -1.0]), pytest.approx([-1.0, 1.0])]
    assert out["lookahead"][0] == pytest.approx([0.36, -0.44])


def test_recorder_refuses_a_model_without_shared_parameters():
    class Separate(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(1, 1)

        def shared_parameters(self):
            return iter(())

    with pytest.raises(ValueError, match="cross_stitch.*shares|has none.*hard_sharing"):
        AffinityRecorder(Separate(), ["a", "b"], 1, "cross_stitch")


TINY = {
    "data": {"kind": "synthetic", "n_train": 16, "n_val": 8, "n_test": 8, "resolution": 32,
             "cache": False},
    "tasks": ["s", "d"], "model": {"backbone": "xception", "width": 0.25},
    "train": {"epochs": 2, "batch_size": 8, "device": "cpu", "threads": 1},
}


def test_recording_run_trains_the_same_network(tmp_path):
    """Lookahead steps restore parameters, optimiser state, batch-norm statistics and the
    random generators: the recording run ends with exactly the plain run's losses."""
    from taskgrouper.train import train

    plain = train(ExperimentConfig.model_validate(TINY), tmp_path / "plain", progress=False,
                  log=lambda *_: None)
    cfg = {**TINY, "train": {**TINY["train"], "affinity_every": 1}}
    rec = train(ExperimentConfig.model_validate(cfg), tmp_path / "rec", progress=False,
                log=lambda *_: None)
    assert rec.val_losses == plain.val_losses and rec.test_losses == plain.test_losses
    aff = rec.extra["affinity"]
    assert aff["steps"] == 4 and aff["tasks"] == ["s", "d"]  # 2 epochs x 2 steps, every step
    assert aff["gradcos"][0][0] == pytest.approx(1.0)
    assert all(math.isfinite(v) for row in aff["lookahead"] for v in row)
    assert "affinity" not in plain.extra
    # recording changes nothing of the run: the same curve and the same reason to stop
    assert plain.extra["val_curve"] == rec.extra["val_curve"]
    assert plain.extra["stopped"] == rec.extra["stopped"] == "epoch_cap"


# -- the loss model ---------------------------------------------------------------------

A = {"a": {"a": 0.0, "b": 0.2, "c": 0.0},
     "b": {"a": 0.4, "b": 0.0, "c": -0.2},
     "c": {"a": 0.0, "b": 0.0, "c": 0.0}}
SINGLE = {"a": 1.0, "b": 2.0, "c": 4.0}


def test_fit_by_hand():
    # mean affinity onto each task in the all-task network (mates of a: b, c):
    #   a_a = (A[b][a] + A[c][a]) / 2 = (0.4 + 0) / 2 = 0.2
    #   a_b = (0.2 + 0) / 2 = 0.1,   a_c = (0 - 0.2) / 2 = -0.1
    # all-task losses chosen so that r_t = L_t(all)/L_t(1) - 1 = 0.1 - a_t:
    #   r = (-0.1, 0.0, 0.2) -> L(all) = (0.9, 2.0, 4.8)
    # every row has x = 1, so c and b have the same column and, with the same ridge
    # lam = n = 3, come out equal: c = b = u / 2, penalty 3 (c^2 + b^2) = 1.5 u^2.
    # normal equations in (u, s) (columns 1 and -a; sums over the rows):
    #   (3 + 1.5) u - (sum a) s = sum r    ->  4.5 u - 0.2 s = 0.1
    #   (sum a) u - (sum a^2) s = sum a r  ->  0.2 u - 0.06 s = -0.04
    #   det = 4.5 (-0.06) + 0.2 (0.2) = -0.23
    #   u = (0.1 (-0.06) - 0.2 (0.04)) / -0.23 = 14/230 -> c = b = 7/230
    #   s = (4.5 (-0.04) - 0.2 (0.1)) / -0.23 = 20/23
    fit = fit_affinity_model(A, SINGLE, {"a": 0.9, "b": 2.0, "c": 4.8})
    assert fit.s == pytest.approx(20 / 23)
    assert fit.c == pytest.approx(7 / 230) and fit.b == pytest.approx(7 / 230)
    # pair {a, b}: |N| = 2 of T = 3 -> share 1/2, so c + b/2 = 21/460; a_a = 0.4, a_b = 0.2
    #   L_a = 1 * (1 + 21/460 - (20/23) 0.4) = 1 + (21 - 160)/460 = 321/460
    #   L_b = 2 * (1 + 21/460 - (20/23) 0.2) = 2 (1 + (21 - 80)/460) = 802/460
    nets = [Candidate(("a", "b")), Candidate(("a",)), Candidate(("a",), 0.5)]
    measured = {"a": {"a": 1.0}, "a@0.5": {"a": 1.3}}
    pred = predict_losses(A, fit, SINGLE, nets, measured)
    assert pred["ab"] == {"a": pytest.approx(321 / 460), "b": pytest.approx(802 / 460)}
    assert pred["a"] == {"a": 1.0} and pred["a@0.5"] == {"a": 1.3}  # measured, unchanged


def test_fit_with_a_calibration_pair_by_hand():
    # the all-task rows of test_fit_by_hand (1, x = 1, -a, r) for a = (0.2, 0.1, -0.1),
    # r = (-0.1, 0.0, 0.2), plus the pair {a, b}: x = 1/2, a_a = A[b][a] = 0.4,
    # a_b = A[a][b] = 0.2, losses 0.7 and 1.8 -> r = (-0.3, -0.1). Normal equations in
    # (c, b, s) over the columns (1, x, -a) with ridge 3 on c and b:
    #   c: (5 + 3) c + (3 + 1/2 + 1/2) b - (0.2 + 0.6) s = 0.1 - 0.4
    #   b: 4 c + (3 + 1/4 + 1/4 + 3) b - (0.2 + 0.3) s = 0.1 - 0.2
    #   s: -0.8 c - 0.5 b + (0.06 + 0.16 + 0.04) s = -(-0.04 - 0.12 - 0.02) = 0.18
    #   i.e. 8c + 4b - 0.8s = -0.3;  4c + 6.5b - 0.5s = -0.1;  -0.8c - 0.5b + 0.26s = 0.18
    # solution c = 13/400, b = 3/100, s = 17/20 (check the first: 0.26 + 0.12 - 0.68 = -0.3)
    fit = fit_affinity_model(A, SINGLE, {"a": 0.9, "b": 2.0, "c": 4.8},
                             [(("a", "b"), {"a": 0.7, "b": 1.8})])
    assert fit.s == pytest.approx(17 / 20)
    assert fit.c == pytest.approx(13 / 400) and fit.b == pytest.approx(3 / 100)
    # the measured pair keeps its measured losses; the others are predicted
    nets = [Candidate(("a", "b")), Candidate(("a", "c"))]
    pred = predict_losses(A, fit, SINGLE, nets, {"ab": {"a": 0.7, "b": 1.8}})
    assert pred["ab"] == {"a": 0.7, "b": 1.8}
    # {a, c}: share 1/2, a_a = A[c][a] = 0, a_c = A[a][c] = 0
    #   L = L(1) (1 + 13/400 + (3/100) / 2) = L(1) * 419/400
    assert pred["ac"] == {"a": pytest.approx(419 / 400), "c": pytest.approx(4 * 419 / 400)}


def test_calibration_pairs_by_hand():
    # mutual affinities: a-b 0.3 + 0.2 = 0.5, a-c 0.0 + 0.1 = 0.1, b-c 0.1 + 0.2 = 0.3
    m = {"a": {"a": 0.0, "b": 0.3, "c": 0.0},
         "b": {"a": 0.2, "b": 0.0, "c": 0.1},
         "c": {"a": 0.1, "b": 0.2, "c": 0.0}}
    # k = 1: a -> b, b -> a, c -> b: {a, b} once, and {b, c}
    assert calibration_pairs(m, ["a", "b", "c"], 1) == [("a", "b"), ("b", "c")]
    # k = 2: every pair
    assert calibration_pairs(m, ["a", "b", "c"], 2) == [("a", "b"), ("a", "c"), ("b", "c")]
    # ties go to the earlier task: with all zeros, a -> b, b -> a, c -> a
    zero = {u: {t: 0.0 for t in "abc"} for u in "abc"}
    assert calibration_pairs(zero, ["a", "b", "c"], 1) == [("a", "b"), ("a", "c")]


def test_symmetric_family_puts_the_transfer_on_affinity():
    # every task sees mean affinity 0.25 in the all-task network and gains 10% there:
    # r = -0.1 for all; s a = 0.1 fits every row exactly at no penalty, which any c or b
    # would add to: c = b = 0 and s = -(-0.1) / 0.25 = 0.4
    sym = {u: {t: (0.0 if u == t else 0.25) for t in "abc"} for u in "abc"}
    fit = fit_affinity_model(sym, SINGLE, {t: 0.9 * v for t, v in SINGLE.items()})
    assert fit.s == pytest.approx(0.4)
    assert fit.c == pytest.approx(0.0, abs=1e-12) and fit.b == pytest.approx(0.0, abs=1e-12)


def test_negative_fitted_slope_is_held_at_zero():
    # all-task ratios rise with affinity (r = a = (0.2, 0.1, -0.1)): the fitted s is -1,
    # held at 0; then c = b = u / 2 (same column x = 1, same ridge 3, as in
    # test_fit_by_hand) with (3 + 1.5) u = sum r = 0.2 -> c = b = 0.1 / 4.5 = 1/45
    fit = fit_affinity_model(A, SINGLE, {"a": 1.2, "b": 2.2, "c": 3.6})
    assert fit.s == 0.0
    assert fit.c == pytest.approx(1 / 45) and fit.b == pytest.approx(1 / 45)


def test_nan_affinity_is_a_clear_error():
    result = {"tasks": ["a", "b"], "lookahead": [[0.1, float("nan")], [0.2, 0.3]],
              "gradcos": [[1.0, 0.5], [0.5, 1.0]]}
    with pytest.raises(ValueError, match=r"run 'ab-a5' produced a non-finite lookahead "
                                         r"affinity for a->b.*kept in the store"):
        affinity_matrix(result, "lookahead", ["a", "b"], "ab-a5")
    assert affinity_matrix(result, "gradcos", ["a", "b"], "ab-a5")["a"]["b"] == 0.5
    with pytest.raises(ValueError, match="unknown affinity method"):
        affinity_matrix(result, "cosine", ["a", "b"])


# -- evaluation statistics ------------------------------------------------------------------

def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x = (1, 2, 3), y = (1, 3, 2): d = (0, -1, 1), rho = 1 - 6 * 2 / (3 * 8) = 0.5
    assert spearman([1, 2, 3], [5, 9, 7]) == pytest.approx(0.5)
    assert math.isnan(spearman([1, 2], [1, 2]))


def test_adjusted_rand_index_by_hand():
    assert adjusted_rand_index([0, 0, 1, 1], ["x", "x", "y", "y"]) == pytest.approx(1.0)
    # a = {0,0,1,1}, b = {0,1,0,1}: contingency all ones -> index 0; sum_a = sum_b = 2,
    # expected = 2 * 2 / 6 = 2/3, max = 2: ARI = (0 - 2/3) / (2 - 2/3) = -0.5
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    # a = (0,0,0,1,1,1), b = (0,0,1,1,1,1): pairs within a: 3 + 3 = 6; within b: 1 + 6 = 7;
    # joint cells (0,0)=2 (0,1)=1 (1,1)=3: index 1 + 0 + 3 = 4; expected 6*7/15 = 2.8;
    # max 6.5: ARI = (4 - 2.8) / (6.5 - 2.8) = 0.3243...
    assert adjusted_rand_index([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 1, 1]) == \
        pytest.approx(1.2 / 3.7)


def test_planted_agreement_reads_assignments():
    sels = [{"budget": 2.0, "networks": ["ab", "cd"],
             "assignment": {"a": "ab", "b": "ab", "c": "cd", "d": "cd"}},
            {"budget": 1.0, "networks": [], "assignment": {}}]
    out = planted_agreement(sels, [["a", "b"], ["c", "d"]])
    assert out[0] == {"budget": 2.0, "ari": pytest.approx(1.0), "networks": 2}
    assert out[1]["ari"] is None


def test_evaluate_strategies_by_hand():
    # exhaustive: test totals 2.0 and 4.0; cheap: 2.1 and 4.0 -> regret 5% and 0, mean 2.5%
    strategies = {
        "exhaustive": {"estimation_compute": {"wall_s": 100.0, "train_samples": 1000,
                                              "runs": 10},
                       "selections": [{"test_total": 2.0}, {"test_total": 4.0}]},
        "cheap": {"estimation_compute": {"wall_s": 4.0, "train_samples": 50, "runs": 2},
                  "selections": [{"test_total": 2.1}, {"test_total": 4.0}]},
    }
    truth = {"ab": {"a": 1.0, "b": 2.0}, "ac": {"a": 3.0, "c": 1.0}, "a": {"a": 9.0}}
    estimates = {"exhaustive": truth,
                 "cheap": {"ab": {"a": 0.5, "b": 2.5}, "ac": {"a": 0.4, "c": 0.1},
                           "a": {"a": 9.0}}}
    out = evaluate_strategies(strategies, estimates, truth)["rows"]
    cheap = out["cheap"]
    assert cheap["compute_fraction"] == pytest.approx(0.04)
    assert cheap["samples_fraction"] == pytest.approx(0.05)
    assert cheap["regret"] == [pytest.approx(0.05), pytest.approx(0.0)]
    assert cheap["mean_regret"] == pytest.approx(0.025)
    # multi-task pairs only (the single "a" is left out): true (1, 2, 3, 1) vs predicted
    # (0.5, 2.5, 0.4, 0.1): ranks true (1.5, 3, 4, 1.5), predicted (3, 4, 2, 1) -> rho 0.2108
    assert cheap["pairs"] == 4
    assert cheap["spearman"] == pytest.approx(spearman([1, 2, 3, 1], [0.5, 2.5, 0.4, 0.1]))
    assert out["exhaustive"]["spearman"] == pytest.approx(1.0)
    assert evaluate_strategies({"cheap": strategies["cheap"]}, estimates, truth) is None
