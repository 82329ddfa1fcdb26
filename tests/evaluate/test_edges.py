"""The edge benchmark (BSDS protocol): thinning, one-to-one matching, ODS-F and OIS-F, worked
by hand on small maps."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from taskgrouper.evaluate.edges import (
    _thin_reference,
    benchmark_thresholds,
    edge_counts,
    match_count,
    matching_size,
    ods_ois,
    thin,
)
from taskgrouper.evaluate.metrics import MetricAccumulator, evaluate_predictions
from taskgrouper.tasks import TaskSpec

NAN = math.nan


def edge_spec(max_dist: float = 0.0075, **more: float) -> TaskSpec:
    options = (("max_dist", max_dist), *more.items())
    return TaskSpec("edge", "dense_binary", metrics=("odsf", "oisf"), options=options)


def logits(prob: np.ndarray) -> torch.Tensor:
    """(H, W) probabilities -> (1, 1, H, W) logits whose sigmoid gives them back; 0 -> -20."""
    p = torch.as_tensor(prob, dtype=torch.float64)
    out = torch.log(p / (1 - p)).where(p > 0, torch.full_like(p, -20.0))
    return out[None, None]


# ---------------------------------------------------------------- thresholds and thinning


def test_benchmark_thresholds_are_k_over_100():
    t = benchmark_thresholds(99)
    assert len(t) == 99 and t[0] == pytest.approx(0.01) and t[-1] == pytest.approx(0.99)
    assert benchmark_thresholds(3).tolist() == [0.25, 0.5, 0.75]
    with pytest.raises(ValueError, match="positive integer"):
        benchmark_thresholds(0)


def test_thinning_turns_a_three_pixel_wide_line_into_a_one_pixel_line():
    # A 3 x 10 bar (rows 3..5, columns 1..10). Each iteration peels the boundary pixels whose
    # removal keeps the shape connected (crossing number 1, 2 or 3 neighbours): the first
    # sub-iteration the north and east sides, the second the south and west sides. After one
    # iteration the middle row is left; its end pixels (columns 1 and 10) were corners of the
    # bar with 2 neighbours and were peeled too, so the line is row 4, columns 2..9. A
    # one-pixel line is stable: its inner pixels have crossing number 2 and its end points
    # only one neighbour.
    bar = np.zeros((9, 12), dtype=bool)
    bar[3:6, 1:11] = True
    before = bar.copy()
    thinned = thin(bar)
    np.testing.assert_array_equal(bar, before)  # the input is not modified
    expected = np.zeros_like(bar)
    expected[4, 2:10] = True
    np.testing.assert_array_equal(thinned, expected)
    assert (thinned.sum(axis=0) <= 1).all()  # one pixel wide
    np.testing.assert_array_equal(thin(thinned), thinned)  # stable


def test_thinning_keeps_thin_lines_points_and_crossings():
    # A one-pixel cross, a diagonal staircase and an isolated pixel are already thin.
    img = np.zeros((12, 12), dtype=bool)
    img[1:8, 3] = True
    img[4, 0:7] = True
    img[9, 9] = True
    for k in range(5):
        img[6 + k, 6 + k] = True  # touches nothing else: (6, 6) is 2 away from (4, *)
    np.testing.assert_array_equal(thin(img), img)


def test_thinning_a_stack_thins_each_map():
    a = np.zeros((2, 7, 7), dtype=bool)
    a[0, 2:5, 1:6] = True  # 3 x 5 bar -> row 3, columns 2..4
    a[1, 3, 1:6] = True  # already thin
    out = thin(a)
    assert out[0].sum() == 3 and out[0][3, 2:5].all()
    np.testing.assert_array_equal(out[1], a[1])


def test_thinning_follows_the_plain_definition_on_random_maps():
    # thin() only re-examines pixels next to a deletion; the plain version re-examines every
    # pixel at every sub-iteration. Both must agree exactly (blobs, holes, thin bits).
    rng = np.random.default_rng(1)
    for _ in range(20):
        h, w = rng.integers(5, 40, size=2)
        noise = gaussian_filter(rng.random((3, h, w)), (0, rng.uniform(0.5, 3), 1.5))
        maps = noise > np.quantile(noise, rng.uniform(0.1, 0.9))
        np.testing.assert_array_equal(thin(maps), _thin_reference(maps))


# ---------------------------------------------------------------- matching


def test_matching_size_equals_scipy_bipartite_matching_on_random_graphs():
    # The max-flow count against scipy's Hopcroft-Karp on small random graphs (where the
    # latter is fast).
    rng = np.random.default_rng(0)
    for _ in range(100):
        n_rows, n_cols = rng.integers(1, 25, size=2)
        edges = np.unique(rng.integers(0, n_rows, 60) * 100 + rng.integers(0, n_cols, 60))
        rows, cols = edges // 100, edges % 100
        graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_rows, n_cols))
        expected = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
        assert matching_size(rows, cols, n_rows, n_cols) == expected


def test_match_count_is_one_to_one():
    # predicted (0,0), (0,1), (0,2); ground truth (1,0), (1,1).
    # radius 1: pairs (0,0)-(1,0), (0,1)-(1,1) -> 2 matches (each pixel used once)
    # radius 1.5: more pairs, still at most min(3, 2) = 2
    # radius 0.5: nothing coincides -> 0
    pred = np.array([[0, 0], [0, 1], [0, 2]])
    gt = np.array([[1, 0], [1, 1]])
    assert match_count(pred, gt, 1.0) == 2
    assert match_count(pred, gt, 1.5) == 2
    assert match_count(pred, gt, 0.5) == 0
    # two predictions that can only use the same ground-truth pixel: 1 match
    assert match_count(np.array([[0, 0], [0, 2]]), np.array([[0, 1]]), 1.0) == 1
    # a maximum (not greedy) matching: p0 may take g0 or g1, p1 only g0 -> 2
    assert match_count(np.array([[0, 1], [0, -1]]), np.array([[0, 0], [0, 2]]), 1.0) == 2


# ---------------------------------------------------------------- ODS / OIS, hand cases

H = W = 8  # diagonal sqrt(8^2 + 8^2) = 11.314 pixels
COVERS_ONE = 0.1  # radius 0.1 * 11.314 = 1.13 px: a one-pixel shift matches, a diagonal not
BELOW_ONE = 0.05  # radius 0.57 px: only coinciding pixels match


def vertical_line(col: int) -> np.ndarray:
    img = np.zeros((H, W))
    img[:, col] = 1.0
    return img


def test_shifted_line_scores_one_within_tolerance_and_less_below():
    # Ground truth: column 3, 8 pixels. Prediction: column 4 with probability 0.875 (a thin
    # line, so thinning keeps it), 0 elsewhere.
    # Thresholds k/100 <= 0.875 (k = 1..87): 8 predicted pixels.
    #   radius 1.13: each (i, 4) matches (i, 3) at distance 1 -> 8 matches; P = R = 8/8 = 1,
    #   F = 1. Thresholds above 0.875 predict nothing: P = R = F = 0. ODS = OIS = 1.
    #   radius 0.57: no predicted pixel coincides with the ground truth -> F = 0.
    gt = torch.tensor(vertical_line(3), dtype=torch.float32)[None, None]
    pred = logits(vertical_line(4) * 0.875)
    out = evaluate_predictions(edge_spec(COVERS_ONE), pred, gt)
    assert out == {"odsf": pytest.approx(1.0), "oisf": pytest.approx(1.0)}
    out = evaluate_predictions(edge_spec(BELOW_ONE), pred, gt)
    assert out == {"odsf": 0.0, "oisf": 0.0}

    # Half the line on the ground truth (rows 0..3, column 3), half shifted (rows 4..7,
    # column 4): an 8-connected staircase, already thin.
    #   radius 1.13: 4 coinciding + 4 at distance 1 -> 8 matches, F = 1.
    #   radius 0.57: only the 4 coinciding pixels match: P = 4/8, R = 4/8, F = 2PR/(P+R) = 1/2.
    half = np.zeros((H, W))
    half[:4, 3] = 0.875
    half[4:, 4] = 0.875
    assert evaluate_predictions(edge_spec(COVERS_ONE), logits(half), gt)["odsf"] \
        == pytest.approx(1.0)
    out = evaluate_predictions(edge_spec(BELOW_ONE), logits(half), gt)
    assert out["odsf"] == pytest.approx(0.5) and out["oisf"] == pytest.approx(0.5)
    # the counts behind it: at threshold 0.5 (k = 50, row 49) 4 of 8 matched each way
    counts = edge_counts(half, vertical_line(3), max_dist=BELOW_ONE)
    assert counts.shape == (99, 4)
    assert counts[49].tolist() == [4, 8, 4, 8]
    assert counts[98].tolist() == [0, 0, 0, 8]  # t = 0.99: nothing predicted


def test_diagonal_neighbour_needs_a_radius_of_sqrt2():
    # Ground truth (2, 2), prediction (3, 3): sqrt(2) = 1.41 px apart, isolated pixels.
    # radius 1.13 (max_dist 0.1): no match -> P = 0/1, R = 0/1, F = 0.
    # radius 0.15 * 11.314 = 1.70: 1 match -> P = R = F = 1.
    gt = np.zeros((H, W))
    gt[2, 2] = 1.0
    pred = np.zeros((H, W))
    pred[3, 3] = 0.875
    assert edge_counts(pred, gt, max_dist=COVERS_ONE)[0].tolist() == [0, 1, 0, 1]
    assert ods_ois(edge_counts(pred, gt, max_dist=COVERS_ONE)[None]) == (0.0, 0.0)
    assert edge_counts(pred, gt, max_dist=0.15)[0].tolist() == [1, 1, 1, 1]


def test_a_missing_pixel_lowers_recall_only():
    # Prediction: rows 1..7 of the ground-truth column 3 (row 0 missing), shifted one pixel
    # right (column 4). Radius 1.13: (i, 4) matches (i, 3), 7 matches; P = 7/7, R = 7/8,
    # F = 2 * (7/8) / (1 + 7/8) = 14/15.
    gt = vertical_line(3)
    pred = np.zeros((H, W))
    pred[1:, 4] = 0.875
    counts = edge_counts(pred, gt, max_dist=COVERS_ONE)
    assert counts[0].tolist() == [7, 7, 7, 8]
    assert ods_ois(counts[None])[0] == pytest.approx(14 / 15)


def test_all_zero_prediction_scores_zero_without_warnings():
    # No predicted pixel at any threshold: P = 0/0 -> 0, R = 0/8 = 0, F = 0/0 -> 0.
    gt = torch.tensor(vertical_line(3), dtype=torch.float32)[None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = evaluate_predictions(edge_spec(), torch.full((1, 1, H, W), -30.0), gt)
        assert out == {"odsf": 0.0, "oisf": 0.0}
        # no ground truth and no prediction: also 0 (the benchmark's convention), not NaN
        empty = evaluate_predictions(edge_spec(), torch.full((1, 1, H, W), -30.0),
                                     torch.zeros(1, 1, H, W))
        assert empty == {"odsf": 0.0, "oisf": 0.0}


def test_ois_at_least_ods_on_two_images():
    # Isolated pixels (two apart, so thinning keeps them); default radius 0.085 px: only
    # coinciding pixels match. Counts are (matched, predicted) against 4 ground-truth pixels.
    # Image A: 4 edge pixels at p = 0.85 on the ground truth, 4 false ones at p = 0.45.
    #   k <= 45: (4, 8): P = 1/2, R = 1, F = 2/3;  46 <= k <= 85: (4, 4): F = 1;  k > 85: 0
    # Image B: 2 edge pixels at 0.85 and 2 at 0.35, all on the ground truth.
    #   k <= 35: (4, 4): F = 1;  36 <= k <= 85: (2, 2): P = 1, R = 1/2, F = 2/3;  k > 85: 0
    # Summed over both images (8 ground-truth pixels):
    #   k <= 35:  matched 8, predicted 12 -> P = 2/3, R = 1,   F = (4/3) / (5/3) = 4/5
    #   36..45:   matched 6, predicted 10 -> P = 3/5, R = 3/4, F = (9/10) / (27/20) = 2/3
    #   46..85:   matched 6, predicted 6  -> P = 1,   R = 3/4, F = (3/2) / (7/4) = 6/7
    # ODS = 6/7. OIS: A at k = 46 (4, 4), B at k = 1 (4, 4): matched 8 of 8 predicted and 8
    # ground truth -> OIS = 1 >= ODS.
    gt = np.zeros((2, H, W))
    gt[:, 0, 0:8:2] = 1.0
    prob = np.zeros((2, H, W))
    prob[0, 0, 0:8:2] = 0.85
    prob[0, 4, 0:8:2] = 0.45
    prob[1, 0, 0:4:2] = 0.85
    prob[1, 0, 4:8:2] = 0.35
    spec = edge_spec()
    acc = MetricAccumulator(spec)
    for i in range(2):  # streamed one image per batch
        acc.update(logits(prob[i]), torch.tensor(gt[i], dtype=torch.float32)[None, None])
    out = acc.compute()
    assert out["odsf"] == pytest.approx(6 / 7)
    assert out["oisf"] == pytest.approx(1.0)
    assert out["oisf"] >= out["odsf"]
    # the same from the counts directly
    counts = np.stack([edge_counts(prob[i], gt[i]) for i in range(2)])
    assert ods_ois(counts) == (pytest.approx(6 / 7), pytest.approx(1.0))


def test_ignored_pixels_leave_both_maps():
    # Ground truth column 3; rows 0..3 are ignored (NaN). The prediction covers column 3
    # fully plus a false pixel at (1, 6) inside the ignored rows. Only rows 4..7 count:
    # 4 predicted, 4 ground truth, 4 matched -> F = 1 (without the mask: 8 GT, 9 predicted).
    gt = torch.tensor(vertical_line(3), dtype=torch.float32)
    gt[:4] = NAN
    prob = vertical_line(3) * 0.875
    prob[1, 6] = 0.875
    out = evaluate_predictions(edge_spec(), logits(prob), gt[None, None])
    assert out["odsf"] == pytest.approx(1.0)
    valid = np.isfinite(gt.numpy())
    counts = edge_counts(prob, np.nan_to_num(gt.numpy()) >= 0.5, valid)
    assert counts[0].tolist() == [4, 4, 4, 4]


def test_thresholds_option_and_thick_prediction_is_thinned():
    # A 3-pixel-wide band over the ground-truth column 3 (columns 2..4, all 8 rows, p = 0.875)
    # is thinned to column 3, rows 1..6 (the end pixels are peeled, as in the thinning test).
    # Radius 0.57 px: 6 predicted, 6 matched, 8 ground truth -> P = 1, R = 3/4,
    # F = 2 * (3/4) / (7/4) = 6/7 at each of the 3 thresholds 0.25, 0.5, 0.75. Without
    # thinning it would be P = 8/24, R = 1, F = 1/2.
    band = np.zeros((H, W))
    band[:, 2:5] = 0.875
    counts = edge_counts(band, vertical_line(3), thresholds=3, max_dist=BELOW_ONE)
    assert counts.tolist() == [[6, 6, 6, 8]] * 3
    gt = torch.tensor(vertical_line(3), dtype=torch.float32)[None, None]
    spec = edge_spec(BELOW_ONE, thresholds=3.0)
    assert evaluate_predictions(spec, logits(band), gt) == {
        "odsf": pytest.approx(6 / 7), "oisf": pytest.approx(6 / 7)}


def test_edge_options_are_checked():
    with pytest.raises(ValueError, match="thresholds must be an integer >= 1"):
        MetricAccumulator(edge_spec(thresholds=0.0))
    with pytest.raises(ValueError, match="max_dist must be >= 0"):
        MetricAccumulator(edge_spec(-0.1))


def test_odsf_speed_on_a_64x64_image():
    # 99 thresholds on a noisy 64 x 64 probability map (the worst case: many scattered
    # pixels at every threshold) stay well under a second.
    rng = np.random.default_rng(0)
    gt = np.zeros((64, 64))
    gt[20, :] = 1.0
    gt[:, 40] = 1.0
    prob = np.clip(0.7 * gt + 0.4 * rng.random((64, 64)), 0.0, 1.0)
    start = time.perf_counter()
    counts = edge_counts(prob, gt, max_dist=0.011)
    elapsed = time.perf_counter() - start
    assert counts.shape == (99, 4)
    assert elapsed < 1.0, f"edge_counts took {elapsed:.2f}s"


def test_capped_edge_thresholds_equal_a_spec_with_that_many_thresholds():
    # The trainer's per-epoch validation caps the edge benchmark at 9 thresholds (k / 10),
    # which must score exactly like a task whose spec asks for 9.
    rng = np.random.default_rng(3)
    gt = np.zeros((2, 1, 24, 24), np.float32)
    gt[:, :, 12, 4:20] = 1.0
    noise = torch.from_numpy(rng.normal(size=gt.shape).astype(np.float32))
    logits = noise + 4 * torch.from_numpy(gt)
    full = TaskSpec("e", "dense_binary", metrics=("odsf", "oisf"))
    nine = TaskSpec("e", "dense_binary", metrics=("odsf", "oisf"), options=(("thresholds", 9),))
    capped = MetricAccumulator(full, edge_thresholds=9)
    reference = MetricAccumulator(nine)
    for acc in (capped, reference):
        acc.update(logits, torch.from_numpy(gt))
    assert capped.compute() == pytest.approx(reference.compute())
