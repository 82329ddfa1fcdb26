"""Edge detection scores with the BSDS benchmark protocol: ODS-F and OIS-F.

The protocol (Martin et al., 2004; Arbelaez et al., 2011), as the dense-prediction survey
(Vandenhende et al., 2021) applies it to PASCAL-Context and NYUD edges:

1. The predicted edge probabilities are binarised at each of ``n`` evenly spaced thresholds
   ``t_k = k / (n + 1)``, k = 1..n (the benchmark's 99 thresholds 0.01, ..., 0.99), a pixel
   being an edge when its probability is ``>= t_k``.
2. Each binary map is thinned to one-pixel-wide lines (:func:`thin`: the algorithm of Lam, Lee
   and Suen (1992, algorithm A1) that MATLAB's ``bwmorph(..., 'thin', Inf)``, called by the
   benchmark, cites).
3. Predicted edge pixels are matched one-to-one with ground-truth edge pixels no farther apart
   than ``max_dist`` times the image diagonal (0.0075 for PASCAL-Context, 0.011 for NYUD), by
   a maximum bipartite matching (:func:`match_count`, solved as a unit-capacity maximum flow,
   see :func:`matching_size`). The benchmark's CSA assignment also prefers short matches among
   maximum ones; only the number of matches enters the scores, and it is the same.
4. Per image and threshold four counts are kept (:func:`edge_counts`): matched predicted
   pixels, predicted pixels, matched ground-truth pixels, ground-truth pixels.

From the counts of every image (:func:`ods_ois`):

* **ODS-F** (optimal dataset scale): the counts are summed over the images for each threshold,
  giving precision ``P = matched predicted / predicted`` and recall ``R = matched ground truth /
  ground truth``; ``F = 2 P R / (P + R)``; ODS-F is the best F over the thresholds.
* **OIS-F** (optimal image scale): each image's best threshold (by its own F, the first of
  equal bests, as MATLAB's ``max``) is chosen, the counts at those thresholds are summed, and
  F is taken from the summed precision and recall.

Conventions and choices:

* As in the benchmark, an undefined ratio is 0: precision with no predicted pixel, recall with
  no ground-truth pixel, F with ``P + R = 0``. An all-zero prediction therefore scores F = 0
  (never NaN), and an image with no ground-truth edge has F = 0 at every threshold, so OIS
  picks its lowest threshold, as the benchmark does.
* Ground truth is used as given (the benchmark does not thin it; PASCAL-Context and NYUD edge
  labels are already one pixel wide). Thick ground truth is matched pixel by pixel.
* Ignored pixels (NaN labels) are removed from both maps: the prediction is set to background
  there before thinning, and ignored pixels are never ground-truth edges. The diagonal is the
  full image's.
* The benchmark's ``maxF`` additionally interpolates precision and recall linearly between
  neighbouring thresholds before taking the best ODS F; this module takes the best of the
  thresholds themselves, which can only be equal or slightly lower.

Cost (one CPU core, 99 thresholds, measured on synthetic maps): about 0.1 s for a 64 x 64
image, 2.5 to 9 s for a 425 x 560 (NYUD) or 512 x 512 (PASCAL) one, depending on how many
pixels the low thresholds keep, the same order as the MATLAB benchmark. Both thinning and
matching scale with the edge pixels, so fewer thresholds (the ``thresholds`` task option) cut
the time proportionally, e.g. for validation during training.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_flow
from scipy.spatial import cKDTree

from taskgrouper.errors import InputError

__all__ = [
    "benchmark_thresholds",
    "edge_counts",
    "f_measure",
    "match_count",
    "matching_size",
    "ods_ois",
    "thin",
]

#: Column order of the per-threshold counts returned by :func:`edge_counts`.
COUNT_FIELDS = ("matched_pred", "pred", "matched_gt", "gt")


def benchmark_thresholds(n: int = 99) -> np.ndarray:
    """The ``n`` thresholds ``k / (n + 1)``, k = 1..n (the BSDS benchmark's for n = 99).

    Raises:
        ValueError: ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise InputError(f"the number of thresholds must be a positive integer, got {n!r}")
    n = int(n)
    return np.arange(1, n + 1, dtype=np.float64) / (n + 1)


# ---------------------------------------------------------------------------- thinning

# The 8 neighbours of a pixel as (row, column) offsets, numbered x1..x8 counterclockwise from
# the east as in Lam, Lee and Suen (1992): E, NE, N, NW, W, SW, S, SE (north = row - 1).
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thinning_tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables (256,) bool: may a foreground pixel with neighbour code c be deleted in
    the first / second sub-iteration.

    Bit i - 1 of the code is neighbour x_i. The conditions are those of Lam, Lee and Suen's
    algorithm A1 (after Guo and Hall, 1989), which MATLAB's ``bwmorph 'thin'`` implements:

    * G1: the crossing number ``X_H = sum_{i=1..4} b_i`` is 1, with ``b_i = 1`` when
      ``x_{2i-1} = 0`` and (``x_{2i} = 1`` or ``x_{2i+1} = 1``), ``x_9 = x_1``;
    * G2: ``2 <= min(n1, n2) <= 3`` with ``n1 = sum_k x_{2k-1} | x_{2k}`` and
      ``n2 = sum_k x_{2k} | x_{2k+1}``;
    * G3 (first sub-iteration): ``(x2 | x3 | !x8) & x1 == 0``;
      G3' (second): ``(x6 | x7 | !x4) & x5 == 0``.
    """
    codes = np.arange(256)
    x = [None] + [(codes >> i) & 1 for i in range(8)]  # x[1]..x[8], 1-based as in the paper
    x.append(x[1])  # x9 = x1
    crossing = sum(((x[2 * i - 1] == 0) & ((x[2 * i] == 1) | (x[2 * i + 1] == 1))).astype(int)
                   for i in range(1, 5))
    n1 = sum((x[2 * k - 1] | x[2 * k]) for k in range(1, 5))
    n2 = sum((x[2 * k] | x[2 * k + 1]) for k in range(1, 5))
    m = np.minimum(n1, n2)
    g12 = (crossing == 1) & (m >= 2) & (m <= 3)
    g3 = ((x[2] | x[3] | (1 - x[8])) & x[1]) == 0
    g3p = ((x[6] | x[7] | (1 - x[4])) & x[5]) == 0
    return g12 & g3, g12 & g3p


_DELETE_FIRST, _DELETE_SECOND = _thinning_tables()


def _neighbour_codes(maps: np.ndarray) -> np.ndarray:
    """(T, H, W) bool -> (T, H, W) uint8 codes of the 8 neighbours (outside = background)."""
    t, h, w = maps.shape
    padded = np.zeros((t, h + 2, w + 2), dtype=np.uint8)
    padded[:, 1:-1, 1:-1] = maps
    code = np.zeros((t, h, w), dtype=np.uint8)
    for bit, (dr, dc) in enumerate(_NEIGHBOURS):
        code |= padded[:, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w] << np.uint8(bit)
    return code


def _thin_reference(maps: np.ndarray) -> np.ndarray:
    """The same thinning done plainly: every pixel of every map at every sub-iteration, until
    nothing changes. (T, H, W) bool -> (T, H, W) bool. Slow on large maps; kept as the
    definition :func:`thin` is checked against."""
    out = np.asarray(maps, dtype=bool).copy()
    while True:
        before = out.copy()
        for table in (_DELETE_FIRST, _DELETE_SECOND):
            out &= ~table[_neighbour_codes(out)]
        if np.array_equal(out, before):
            return out


#: Largest number of (padded) pixels thinned in one pass; stacks are split into chunks.
_CHUNK_PIXELS = 1 << 22


def _thin_frames(maps: np.ndarray, max_iter: int | None) -> np.ndarray:
    """Thin a (A, h, w) bool stack by following the deletions (see :func:`thin`)."""
    a, h, w = maps.shape
    pw = w + 2
    img = np.zeros((a, h + 2, pw), dtype=np.uint8)  # one background frame around each map
    img[:, 1:-1, 1:-1] = maps
    img = img.ravel()
    offsets = np.array([dr * pw + dc for dr, dc in _NEIGHBOURS], dtype=np.intp)  # x1..x8
    fg = np.flatnonzero(img)
    # Only a pixel with a background 4-neighbour can be deleted (G1 needs an odd x_i = 0).
    inner = img[fg + 1] & img[fg - 1] & img[fg + pw] & img[fg - pw]
    border = fg[inner == 0]
    tables = (_DELETE_FIRST, _DELETE_SECOND)
    # A pixel's verdict under one table only changes when its 8-neighbour code does, i.e. when
    # a neighbour was deleted in one of the two previous sub-iterations (the last time the
    # same table ran on it): those pixels are the next candidates. The first two
    # sub-iterations (one per table) also examine every border pixel.
    none = np.zeros(0, dtype=np.intp)
    deleted: list[np.ndarray] = [none, none]  # deletions of the previous two sub-iterations
    step = 0
    while max_iter is None or step < 2 * max_iter:
        changed = np.concatenate(deleted)
        if step >= 2 and changed.size == 0:
            break
        cand = (changed[:, None] + offsets[None, :]).ravel()
        if step < 2:
            cand = np.concatenate([border, cand])
        cand = cand[img[cand] == 1]
        cand.sort()  # sorted de-duplication (faster here than np.unique's hashing)
        if cand.size > 1:
            cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))]
        if cand.size:
            code = np.zeros(cand.size, dtype=np.uint8)
            for bit, off in enumerate(offsets):
                code |= img[cand + off] << np.uint8(bit)
            gone = cand[tables[step % 2][code]]
            img[gone] = 0
        else:
            gone = cand
        deleted = [deleted[1], gone]
        step += 1
    return img.reshape(a, h + 2, pw)[:, 1:-1, 1:-1].astype(bool)


def thin(binary: np.ndarray, max_iter: int | None = None) -> np.ndarray:
    """Thin binary maps to one-pixel-wide, 8-connected lines (MATLAB's ``bwmorph 'thin'``).

    Foreground pixels are deleted in two alternating sub-iterations (see
    :func:`_thinning_tables`) until nothing changes; each sub-iteration decides its pixels in
    parallel with a table lookup on their 8-neighbour codes. Isolated pixels and line end
    points are kept; connectivity is preserved.

    The work follows the deletions: only border pixels are examined at first, then only the
    neighbours of the pixels just deleted (the only ones whose verdict can change), so the cost
    grows with the number of deleted pixels, not with iterations times area (a filled 512 x 512
    map takes 256 iterations).

    Args:
        binary: ``(H, W)`` or ``(T, H, W)`` boolean maps; a stack is thinned map by map (all
            at once, vectorised).
        max_iter: At most this many iterations (pairs of sub-iterations); None: until stable.

    Returns:
        The thinned maps, a new boolean array shaped like ``binary``.

    Raises:
        ValueError: ``binary`` is not 2- or 3-dimensional.
    """
    binary = np.asarray(binary)
    if binary.ndim not in (2, 3):
        raise InputError(f"thin: expected (H, W) or (T, H, W) maps, got shape {binary.shape}")
    maps = binary.astype(bool, copy=True)
    stack = maps if maps.ndim == 3 else maps[None]
    if not stack.any():
        return maps
    # Work inside the bounding box of every foreground pixel (outside it is background, which
    # the frame added by _thin_frames reproduces).
    rows = np.flatnonzero(stack.any(axis=(0, 2)))
    cols = np.flatnonzero(stack.any(axis=(0, 1)))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    per_map = (r1 - r0 + 2) * (c1 - c0 + 2)
    chunk = max(1, _CHUNK_PIXELS // per_map)
    for start in range(0, stack.shape[0], chunk):
        part = stack[start:start + chunk, r0:r1, c0:c1]
        stack[start:start + chunk, r0:r1, c0:c1] = _thin_frames(part, max_iter)
    return maps


# ---------------------------------------------------------------------------- matching


def matching_size(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> int:
    """The size of a maximum matching of the bipartite graph with edges ``rows[k] - cols[k]``.

    Solved as a unit-capacity maximum flow (source -> row -> column -> sink) with Dinic's
    algorithm (``scipy.sparse.csgraph.maximum_flow``), which on such networks is the
    Hopcroft-Karp algorithm, O(E sqrt(V)). ``scipy.sparse.csgraph.maximum_bipartite_matching``
    gives the same number but its depth-first phase does not mark dead ends (scipy issue
    #26147): on the layered graphs of neighbouring edge pixels it took 30 s to minutes for a
    single 425 x 560 map, where the flow takes a fraction of a second.

    Args:
        rows: ``(E,)`` row (predicted pixel) index of each edge.
        cols: ``(E,)`` column (ground-truth pixel) index of each edge.
        n_rows: Number of rows.
        n_cols: Number of columns.
    """
    if len(rows) == 0:
        return 0
    rows = np.asarray(rows, dtype=np.int32)
    cols = np.asarray(cols, dtype=np.int32)
    n = n_rows + n_cols + 2  # node 0: source, 1..n_rows: rows, then columns, n - 1: sink
    sink = n - 1
    # The CSR arrays directly, node by node: source -> every row; row i -> its columns;
    # column j -> sink; sink -> nothing.
    order = np.argsort(rows, kind="stable")
    degree = np.bincount(rows, minlength=n_rows)
    indptr = np.empty(n + 1, dtype=np.int32)
    indptr[0], indptr[1] = 0, n_rows
    np.cumsum(degree, out=indptr[2:n_rows + 2])
    indptr[2:n_rows + 2] += n_rows
    indptr[n_rows + 2:n] = indptr[n_rows + 1] + np.arange(1, n_cols + 1, dtype=np.int32)
    indptr[n] = indptr[n - 1]
    indices = np.concatenate([np.arange(1, n_rows + 1, dtype=np.int32),
                              1 + n_rows + cols[order],
                              np.full(n_cols, sink, dtype=np.int32)])
    graph = csr_matrix((np.ones(len(indices), dtype=np.int32), indices, indptr), shape=(n, n))
    return int(maximum_flow(graph, 0, sink, method="dinic").flow_value)


def match_count(pred: np.ndarray, gt: np.ndarray, radius: float,
                gt_tree: cKDTree | None = None) -> int:
    """The size of a maximum one-to-one matching of predicted and ground-truth edge pixels,
    a pair being allowed when the two pixels are at most ``radius`` apart (Euclidean, pixels).

    Args:
        pred: ``(P, 2)`` (row, column) coordinates of predicted edge pixels.
        gt: ``(G, 2)`` coordinates of ground-truth edge pixels.
        radius: Largest matching distance in pixels.
        gt_tree: A ``cKDTree`` of ``gt`` to reuse across calls (built when None).

    Returns:
        The number of matched pairs (at most ``min(P, G)``).
    """
    if len(pred) == 0 or len(gt) == 0 or radius < 0:
        return 0
    if radius < 1.0:
        # Distinct grid pixels are at least 1 apart: only coinciding pixels can match, and
        # each pixel coincides with at most one other.
        pred_ids = pred[:, 0].astype(np.int64) * (1 << 32) + pred[:, 1].astype(np.int64)
        gt_ids = gt[:, 0].astype(np.int64) * (1 << 32) + gt[:, 1].astype(np.int64)
        return int(np.isin(pred_ids, gt_ids).sum())
    tree_g = gt_tree if gt_tree is not None else cKDTree(gt)
    # every (predicted, ground truth) pair within the radius, distance 0 included
    pairs = cKDTree(pred).sparse_distance_matrix(tree_g, radius, output_type="ndarray")
    return matching_size(pairs["i"], pairs["j"], len(pred), len(gt))


def edge_counts(prob: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
                thresholds: np.ndarray | int = 99, max_dist: float = 0.0075) -> np.ndarray:
    """One image's benchmark counts at every threshold.

    Args:
        prob: ``(H, W)`` edge probabilities in [0, 1].
        gt: ``(H, W)`` ground-truth edges (bool, or numbers where ``>= 0.5`` is an edge).
        valid: ``(H, W)`` bool, False at ignored pixels (default: every pixel valid).
        thresholds: The thresholds, or their number ``n`` (see :func:`benchmark_thresholds`).
        max_dist: Matching tolerance as a fraction of the image diagonal.

    Returns:
        ``(T, 4)`` int64 counts per threshold: matched predicted pixels, predicted pixels,
        matched ground-truth pixels, ground-truth pixels (:data:`COUNT_FIELDS`).

    Raises:
        ValueError: Shapes that differ or are not 2-D, or a negative ``max_dist``.
    """
    prob = np.asarray(prob, dtype=np.float64)
    gt = np.asarray(gt)
    if prob.ndim != 2 or gt.shape != prob.shape:
        raise InputError(f"edge_counts: prob and gt must be (H, W) maps of one shape, got "
                         f"{prob.shape} and {gt.shape}")
    if not max_dist >= 0:
        raise InputError(f"edge_counts: max_dist must be >= 0 (a fraction of the image "
                         f"diagonal, e.g. 0.0075), got {max_dist}")
    if np.isscalar(thresholds):
        thresholds = benchmark_thresholds(int(thresholds))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    gt = gt >= 0.5 if gt.dtype != bool else gt.copy()
    if valid is not None:
        valid = np.asarray(valid, dtype=bool)
        if valid.shape != prob.shape:
            raise InputError(f"edge_counts: valid must be shaped like prob {prob.shape}, got "
                             f"{valid.shape}")
        gt &= valid
        prob = np.where(valid, prob, -np.inf)  # never an edge at an ignored pixel
    h, w = prob.shape
    radius = float(max_dist) * math.hypot(h, w)
    gt_coords = np.argwhere(gt)
    n_gt = len(gt_coords)
    gt_tree = cKDTree(gt_coords) if n_gt and radius >= 1.0 else None
    maps = thin(prob[None, :, :] >= thresholds[:, None, None])  # (T, H, W)
    counts = np.zeros((len(thresholds), 4), dtype=np.int64)
    counts[:, 3] = n_gt
    previous: np.ndarray | None = None
    for k in range(len(thresholds)):
        if previous is not None and np.array_equal(maps[k], maps[k - 1]):
            counts[k] = previous  # same thinned map as the threshold below: same counts
            continue
        coords = np.argwhere(maps[k])
        matched = match_count(coords, gt_coords, radius, gt_tree)
        counts[k, :3] = (matched, len(coords), matched)
        previous = counts[k]
    return counts


# ---------------------------------------------------------------------------- scores


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (the benchmark's convention), no warning."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return num / np.where(den > 0, den, 1.0)


def f_measure(precision: np.ndarray, recall: np.ndarray, beta2: float = 1.0) -> np.ndarray:
    """``(1 + beta^2) P R / (beta^2 P + R)``, 0 where the denominator is 0."""
    p = np.asarray(precision, dtype=np.float64)
    r = np.asarray(recall, dtype=np.float64)
    return _ratio((1.0 + beta2) * p * r, beta2 * p + r)


def ods_ois(counts: np.ndarray) -> tuple[float, float]:
    """ODS-F and OIS-F from per-image counts.

    Args:
        counts: ``(N, T, 4)`` counts of N images (:func:`edge_counts` stacked).

    Returns:
        ``(odsf, oisf)`` in [0, 1]; NaN for both when there is no image.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 3 or counts.shape[2] != 4:
        raise InputError(f"ods_ois: counts must be (N, T, 4), got {counts.shape}")
    if counts.shape[0] == 0 or counts.shape[1] == 0:
        return math.nan, math.nan

    def f_of(c: np.ndarray) -> np.ndarray:  # (..., 4) -> (...)
        return f_measure(_ratio(c[..., 0], c[..., 1]), _ratio(c[..., 2], c[..., 3]))

    ods = float(f_of(counts.sum(axis=0)).max())  # (T,) -> best threshold
    best = f_of(counts).argmax(axis=1)  # (N,) each image's first best threshold
    chosen = counts[np.arange(counts.shape[0]), best].sum(axis=0)  # (4,)
    ois = float(f_of(chosen))
    return ods, ois
