"""Planted task families: vector datasets whose best task grouping is known by construction.

A family of ``n_tasks`` regression (or binary) tasks on standard-normal vector inputs, built
so that the tasks fall into clusters that should share a network, plus optionally one conflict
task that should be trained alone. Tests use them to check that a grouping search recovers the
planted groups, and they scale the search to tens of tasks (4 to 40), which the image datasets
cannot.

Construction (every draw from one ``numpy.random.Generator`` seeded by ``seed``)::

    x      = [block_0 | block_1 | ... | block_{K-1} | nuisance]        standard normal, float32
    h_k    = whiten(|W_k @ block_k|)                                    (latent,) per cluster k
    y_t    = standardise(l_t . h_k) + noise * N(0, 1)                   task t in cluster k
    l_t    = sqrt(correlation) * a_k + sqrt(1 - correlation) * e_t      |a_k| = |e_t| = 1,
                                                                         e_t orthogonal to a_k
    y_conf = standardise(sum_k cos(FREQ * u_k @ block_k)) + noise * N(0, 1)

- Each cluster reads one disjoint block of ``features_per_cluster`` input columns; ``W_k`` has
  orthonormal rows. The latent factors are the absolute values of ``latent`` projections: even
  functions with no linear part, so a network must build them from hidden units (two ReLUs
  each) and the tasks of a cluster can share them. A network of one cluster's tasks needs
  ``2 * latent`` hidden units, one mixing two clusters twice that: which tasks share a network
  decides its loss. They are whitened on a reference sample, so the noiseless targets of two
  tasks of a cluster correlate at ``correlation + (1 - correlation) * e_t . e_u``. The own
  directions ``e_t`` of a cluster are orthonormal when it has at most ``latent - 1`` tasks, so
  every pair then correlates at ``correlation``; a larger cluster (every default cluster with
  ``latent=3``) draws random unit ``e_t`` and its pairs fall within ``[2 * correlation - 1,
  1]``. Tasks of different clusters read independent features and are independent.
- The conflict task needs every block but shares no latent factor: its direction ``u_k`` in
  each block is orthogonal to the rows of ``W_k`` (``latent < features_per_cluster``), so under
  the Gaussian inputs it is independent of every cluster task. It competes for capacity
  wherever it is trained with others and is best alone.
- Few-label tasks (``few_label > 0``): in each cluster of three or more tasks, the last one
  keeps its label on only a ``few_label`` fraction of the training samples (NaN elsewhere);
  val and test are fully labelled. It gains from its cluster partners but, with small
  networks, can cost them more than it gains (measured below), so none is planted by default.
- ``binary_every=k``: tasks k, 2k, ... (1-based, the conflict task excepted) become ``binary``
  with label ``y > 0``.

Task names are ``t00``, ``t01``, ...; clusters take consecutive names and the conflict task
is the last one. :func:`planted_family` returns the data and the *truth*, a JSON-serialisable
dict with the planted groups, every task's role and kind, the feature blocks, the measured
correlations and every generation parameter; :func:`write_planted` saves both in the array
layout (:mod:`taskgrouper.data.arrays`) with the truth as ``planted.json``, so a folder says how
it was made. :func:`planted_functions` rebuilds the noiseless target functions, for checks.

The defaults were checked with the ``mlp`` backbone of one 8-unit hidden layer (``model.hidden:
[8]``; adam, lr 0.01, batch 64, 30 epochs, constant rate; see ``configs/search_planted.yaml``)
on a 6-task family in two clusters (seed 0, no conflict task): the two planted networks summed
a validation L1 of 1.80, the next best split into two networks of three 2.50, six full-width
single-task networks 2.23 and six half-width ones 4.17. With ``few_label=0.2`` the few-label
tasks gained from their cluster (L1 0.90 -> 0.76 and 0.78 -> 0.69) but their partners lost
(0.38 -> 0.51, 0.37 -> 0.63), and the planted split was no longer the best.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from taskgrouper.data.base import SPLITS, DataError, MultiTaskData, Split
from taskgrouper.errors import InputError
from taskgrouper.tasks import TaskSpec

__all__ = [
    "MAX_TASKS",
    "MIN_TASKS",
    "SAMPLES_PER_FEATURE",
    "TRUTH_FILE",
    "VERSION",
    "PlantedFunctions",
    "planted_family",
    "planted_functions",
    "read_truth",
    "write_planted",
]

#: The family sizes accepted (inclusive).
MIN_TASKS, MAX_TASKS = 4, 40
#: The truth file written beside ``tasks.yaml``.
TRUTH_FILE = "planted.json"
#: Bumped whenever the construction changes, so a folder's truth says which one made it.
VERSION = "planted-v2"

#: Frequency of the conflict task's ``cos`` ridges (one per block). At 1 an 8-unit MLP learns
#: the task alone but much less beside any other task; at 2 it was barely learnable at all.
FREQ = 1.0
#: Samples of the reference draw that fixes whitening and standardisation constants.
_REFERENCE = 8192


@dataclass(frozen=True)
class PlantedFunctions:
    """The noiseless target functions of a planted family.

    Attributes:
        sizes: Tasks per cluster.
        conflict: Whether the last task is the conflict task.
        blocks: ``[start, stop)`` input columns of each cluster's feature block.
        n_features: Input columns in all (blocks, then nuisance features).
        projections: Per cluster, ``(latent, features_per_cluster)`` orthonormal rows.
        centres: Per cluster, the mean of ``|projection|`` on the reference sample.
        whiteners: Per cluster, ``(latent, latent)`` inverse square root of its covariance.
        loadings: ``(n_tasks_in_clusters, latent)``, the ``l_t`` of the module docstring.
        directions: ``(K, features_per_cluster)`` unit vectors ``u_k`` of the conflict task.
        means: Per task, the mean of its raw signal on the reference sample.
        stds: Per task, the standard deviation of its raw signal on the reference sample.
    """

    sizes: tuple[int, ...]
    conflict: bool
    blocks: tuple[tuple[int, int], ...]
    n_features: int
    projections: tuple[np.ndarray, ...]
    centres: tuple[np.ndarray, ...]
    whiteners: tuple[np.ndarray, ...]
    loadings: np.ndarray
    directions: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @property
    def n_tasks(self) -> int:
        return sum(self.sizes) + int(self.conflict)

    def latents(self, x: np.ndarray) -> list[np.ndarray]:
        """Whitened latent factors ``h_k`` of every cluster, each ``(N, latent)``."""
        x = np.asarray(x, dtype=np.float64)
        out = []
        for (start, stop), w, centre, white in zip(self.blocks, self.projections, self.centres,
                                                   self.whiteners, strict=True):
            raw = np.abs(x[:, start:stop] @ w.T)  # (N, latent)
            out.append((raw - centre) @ white)
        return out

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Unstandardised noiseless signals, ``(N, n_tasks)`` in task order."""
        x = np.asarray(x, dtype=np.float64)
        columns = []
        row = 0
        for h, size in zip(self.latents(x), self.sizes, strict=True):
            columns.append(h @ self.loadings[row:row + size].T)  # (N, size)
            row += size
        if self.conflict:
            ridge = np.zeros(x.shape[0])
            for (start, stop), u in zip(self.blocks, self.directions, strict=True):
                ridge += np.cos(FREQ * (x[:, start:stop] @ u))
            columns.append(ridge[:, None])
        return np.concatenate(columns, axis=1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Noiseless standardised targets ``(N, n_tasks)`` of inputs ``x`` ``(N, n_features)``."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(f"planted inputs must be (N, {self.n_features}), got {x.shape}")
        return (self.raw(x) - self.means) / self.stds


def _task_names(n_tasks: int) -> list[str]:
    return [f"t{i:02d}" for i in range(n_tasks)]


def _check_n_tasks(n_tasks) -> int:
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, (int, np.integer)):
        raise InputError(f"n_tasks must be an integer in {MIN_TASKS}..{MAX_TASKS}, got "
                         f"{n_tasks!r}")
    if not MIN_TASKS <= n_tasks <= MAX_TASKS:
        raise InputError(f"a planted family has {MIN_TASKS}..{MAX_TASKS} tasks (inclusive), "
                         f"got {n_tasks}; choose a task count in that range")
    return int(n_tasks)


def _cluster_sizes(n_tasks: int, clusters, conflict: bool) -> list[int]:
    """Resolve ``clusters`` (None, a count, or explicit sizes) into a list of sizes."""
    m = n_tasks - int(conflict)
    what = f"{m} tasks in clusters ({n_tasks} tasks{' minus the conflict task' * conflict})"
    if clusters is None:
        k = max(1, math.floor(m / 4 + 0.5))  # clusters of about four: sizes 3 to 5
    elif isinstance(clusters, (int, np.integer)) and not isinstance(clusters, bool):
        k = int(clusters)
        if k < 1:
            raise InputError(f"clusters={k}: need at least one cluster")
        if 2 * k > m:
            raise InputError(f"clusters={k} needs at least {2 * k} tasks in clusters (two per "
                             f"cluster) but there are {what}; use at most {m // 2} clusters")
    elif isinstance(clusters, Sequence) and not isinstance(clusters, str):
        sizes = []
        for size in clusters:
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
                raise InputError(f"clusters={list(clusters)}: sizes must be integers")
            sizes.append(int(size))
        if not sizes:
            raise InputError("clusters=[]: give at least one cluster size")
        if min(sizes) < 2:
            raise InputError(f"clusters={sizes}: every cluster needs at least 2 tasks")
        if sum(sizes) != m:
            raise InputError(f"clusters={sizes} sum to {sum(sizes)} but there are {what}; the "
                             f"sizes must sum to {m}")
        return sizes
    else:
        raise InputError(f"clusters must be None, a number of clusters or a list of sizes, got "
                         f"{clusters!r}")
    return [m // k + (1 if i < m % k else 0) for i in range(k)]


def _check_params(correlation, noise, few_label, binary_every, features_per_cluster, latent,
                  nuisance, n_train, n_val, n_test) -> None:
    if not 0.0 <= correlation <= 1.0:
        raise InputError(f"correlation={correlation}: must be in [0, 1] (the correlation of two "
                         f"noiseless targets of a cluster)")
    if noise < 0:
        raise InputError(f"noise={noise}: must be >= 0 (standard deviation of the label noise)")
    if not 0.0 <= few_label < 1.0:
        raise InputError(f"few_label={few_label}: must be in [0, 1) (fraction of training "
                         f"labels a few-label task keeps; 0 plants no few-label task)")
    for name, value, low in (("binary_every", binary_every, 0),
                             ("features_per_cluster", features_per_cluster, 1),
                             ("latent", latent, 1), ("nuisance", nuisance, 0),
                             ("n_train", n_train, 2), ("n_val", n_val, 1),
                             ("n_test", n_test, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name}={value!r}: must be an integer >= {low}")
    for name, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if value > MAX_SAMPLES:
            raise InputError(f"{name}={value}: over {MAX_SAMPLES:,} samples a split, more than a "
                             f"planted family needs (and more memory than generating it "
                             f"takes on most machines); choose {MAX_SAMPLES:,} or fewer")
    if latent > features_per_cluster:
        raise InputError(f"latent={latent} exceeds features_per_cluster={features_per_cluster}; "
                         f"a block cannot carry more latent factors than it has features")


#: Most samples of one split of a planted family (about 0.5 GB of inputs at 60 features).
MAX_SAMPLES = 1_000_000


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _draw_functions(rng: np.random.Generator, sizes: Sequence[int], conflict: bool,
                    correlation: float, features_per_cluster: int, latent: int,
                    nuisance: int) -> PlantedFunctions:
    f = features_per_cluster
    blocks = tuple((k * f, (k + 1) * f) for k in range(len(sizes)))
    n_features = len(sizes) * f + nuisance
    # orthonormal projection rows, and the conflict direction of the block orthogonal to them
    # (latent < f), so that the conflict task is independent of every cluster task
    bases = [np.linalg.qr(rng.standard_normal((f, f)))[0] for _ in sizes]  # (f, f) each
    projections = tuple(b[:, :latent].T.copy() for b in bases)  # (latent, f)
    loadings = []
    for size in sizes:
        a = _unit(rng.standard_normal(latent))
        # a random orthonormal basis of the complement of a: columns 1.. of Q
        start = rng.standard_normal((latent, latent))
        start[:, 0] = a
        complement = np.linalg.qr(start)[0][:, 1:]  # (latent, latent - 1)
        if size <= latent - 1:  # own directions orthonormal: every pair at ``correlation``
            own = complement[:, :size].T
        else:  # more tasks than directions: random unit vectors in the complement
            own = _unit(rng.standard_normal((size, latent - 1)) @ complement.T)
        for e in own:
            loadings.append(math.sqrt(correlation) * a + math.sqrt(1.0 - correlation) * e)
    directions = np.stack([b[:, latent:] @ _unit(rng.standard_normal(f - latent))
                           for b in bases]) if latent < f else _unit(
        rng.standard_normal((len(sizes), f)))
    reference = rng.standard_normal((_REFERENCE, n_features))
    centres, whiteners = [], []
    for (start, stop), w in zip(blocks, projections, strict=True):
        raw = np.abs(reference[:, start:stop] @ w.T)
        centre = raw.mean(axis=0)
        values, vectors = np.linalg.eigh(np.cov(raw - centre, rowvar=False).reshape(latent,
                                                                                    latent))
        values = np.maximum(values, 1e-6 * values.max())
        centres.append(centre)
        whiteners.append((vectors / np.sqrt(values)) @ vectors.T)
    functions = PlantedFunctions(
        sizes=tuple(sizes), conflict=conflict, blocks=blocks, n_features=n_features,
        projections=projections, centres=tuple(centres), whiteners=tuple(whiteners),
        loadings=np.array(loadings).reshape(-1, latent), directions=directions,
        means=np.zeros(sum(sizes) + int(conflict)), stds=np.ones(sum(sizes) + int(conflict)))
    raw = functions.raw(reference)
    return replace(functions, means=raw.mean(axis=0), stds=raw.std(axis=0))


def planted_functions(n_tasks: int, *, clusters: int | Sequence[int] | None = None,
                      correlation: float = 0.8, conflict: bool = True,
                      features_per_cluster: int = 8, latent: int = 3, nuisance: int = 4,
                      seed: int = 0) -> PlantedFunctions:
    """The noiseless target functions :func:`planted_family` uses with the same arguments.

    Args are those of :func:`planted_family` (the others do not change the functions).
    """
    n_tasks = _check_n_tasks(n_tasks)
    sizes = _cluster_sizes(n_tasks, clusters, conflict)
    _check_params(correlation, 0.0, 0.0, 0, features_per_cluster, latent, nuisance, 2, 1, 1)
    return _draw_functions(np.random.default_rng(seed), sizes, conflict, correlation,
                           features_per_cluster, latent, nuisance)


def _correlations(signal: np.ndarray, sizes: Sequence[int], conflict: bool) -> dict:
    """Summary of the noiseless target correlation matrix (None where a kind of pair is absent)."""
    r = np.corrcoef(signal, rowvar=False)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    m = len(labels)
    upper = np.triu(np.ones((m, m), dtype=bool), k=1)
    same = (labels[:, None] == labels[None, :]) & upper
    other = (labels[:, None] != labels[None, :]) & upper
    clustered = r[:m, :m]

    def stat(fn, values):
        return float(fn(values)) if values.size else None

    return {
        "samples": int(signal.shape[0]),
        "mean_within": stat(np.mean, clustered[same]),
        "min_within": stat(np.min, clustered[same]),
        "max_within": stat(np.max, clustered[same]),
        "mean_across": stat(np.mean, clustered[other]),
        "max_abs_across": stat(np.max, np.abs(clustered[other])),
        "max_abs_conflict": stat(np.max, np.abs(r[m, :m])) if conflict else None,
    }


#: Default training samples per input column of a planted family.
SAMPLES_PER_FEATURE = 30


def planted_family(n_tasks: int, *, clusters: int | Sequence[int] | None = None,
                   correlation: float = 0.8, noise: float = 0.3, conflict: bool = True,
                   few_label: float = 0.0, binary_every: int = 0,
                   features_per_cluster: int = 8, latent: int = 3, nuisance: int = 4,
                   n_train: int | None = None, n_val: int = 400, n_test: int = 1000,
                   seed: int = 0) -> tuple[MultiTaskData, dict]:
    """A family of tasks in planted clusters, and the truth about it.

    Args:
        n_tasks: Tasks in all, 4 to 40 (:data:`MIN_TASKS`, :data:`MAX_TASKS`).
        clusters: None: clusters of about four tasks (3 to 5); an int: that many clusters of
            near-equal size; a sequence: the cluster sizes, each at least 2, summing to the
            tasks in clusters (``n_tasks - 1`` with a conflict task, else ``n_tasks``).
        correlation: Target correlation of two noiseless tasks of one cluster, in [0, 1].
        noise: Standard deviation of the Gaussian label noise added to the standardised
            noiseless targets (0.3: a task's best achievable R^2 is about 0.92).
        conflict: Add a conflict task (the last one) that shares nothing with the clusters
            and needs every feature block.
        few_label: Fraction of the training labels kept by the few-label task of every
            cluster of three or more (its last task); 0 plants none.
        binary_every: ``k > 0``: tasks k, 2k, ... (1-based, not the conflict task) are binary
            with label ``y > 0``; 0: every task is a regression.
        features_per_cluster: Input columns of each cluster's block.
        latent: Latent factors per cluster (at most ``features_per_cluster``).
        nuisance: Pure-noise input columns after the blocks.
        n_train: Training samples; None: :data:`SAMPLES_PER_FEATURE` per input column (600
            for 6 tasks in two clusters, 20 columns; 1800 for 30 tasks, 60 columns). A fixed
            count starves large families: with 600 samples for 60 columns, single-task
            networks of 8 hidden units overfit the other clusters' columns from the second
            epoch and ended at the constant predictor's loss.
        n_val: Validation samples (fully labelled).
        n_test: Test samples (fully labelled).
        seed: Seed of the one generator every draw comes from.

    Returns:
        ``(data, truth)``: a checked :class:`MultiTaskData` named ``planted-<n_tasks>`` and the
        truth dict (JSON-serialisable; see the module docstring and :func:`write_planted`).
        ``planted_family(**truth["params"])`` rebuilds the same family.

    Raises:
        ValueError: ``n_tasks`` outside 4..40, cluster sizes that do not fit, or another
            argument out of range; the message names it.
    """
    n_tasks = _check_n_tasks(n_tasks)
    sizes = _cluster_sizes(n_tasks, clusters, conflict)
    if n_train is None:
        n_train = SAMPLES_PER_FEATURE * (len(sizes) * features_per_cluster + nuisance)
    _check_params(correlation, noise, few_label, binary_every, features_per_cluster, latent,
                  nuisance, n_train, n_val, n_test)
    names = _task_names(n_tasks)
    rng = np.random.default_rng(seed)
    functions = _draw_functions(rng, sizes, conflict, correlation, features_per_cluster, latent,
                                nuisance)

    # groups, roles and kinds
    groups, cluster_of, roles = [], {}, {}
    start = 0
    for k, size in enumerate(sizes):
        members = names[start:start + size]
        groups.append(members)
        for name in members:
            cluster_of[name], roles[name] = k, "member"
        if size >= 3 and few_label > 0:
            roles[members[-1]] = "few_label"
        start += size
    if conflict:
        groups.append([names[-1]])
        cluster_of[names[-1]], roles[names[-1]] = len(sizes), "conflict"
    kinds = {name: "binary" if (binary_every and (i + 1) % binary_every == 0
                                and roles[name] != "conflict") else "regression"
             for i, name in enumerate(names)}

    # samples
    splits, signals = {}, []
    few_counts = {}
    for split, n in zip(SPLITS, (n_train, n_val, n_test), strict=True):
        x = rng.standard_normal((n, functions.n_features)).astype(np.float32)
        signal = functions(x)  # (n, T)
        signals.append(signal)
        y = signal + noise * rng.standard_normal(signal.shape)
        targets = {}
        for i, name in enumerate(names):
            target = y[:, i].astype(np.float32)
            if split == "train" and roles[name] == "few_label":
                keep = max(2, round(few_label * n))
                mask = np.ones(n, dtype=bool)
                mask[rng.choice(n, size=min(keep, n), replace=False)] = False
                target[mask] = np.nan
                few_counts[name] = int(min(keep, n))
            if kinds[name] == "binary":
                target = np.where(np.isnan(target), np.nan, target > 0).astype(np.float32)
            targets[name] = target
        splits[split] = Split(x, targets)
    specs = {name: TaskSpec(name=name, kind=kinds[name],
                            description=f"planted {roles[name]}, group {cluster_of[name]}")
             for name in names}
    data = MultiTaskData(specs, name=f"planted-{n_tasks}", **splits)
    data.check()

    nuisance_start = len(sizes) * features_per_cluster
    truth = {
        "version": VERSION,
        "name": data.name,
        "tasks": names,
        "groups": groups,
        "cluster_of": cluster_of,
        "roles": roles,
        "kinds": kinds,
        "few_label_counts": few_counts,
        "feature_blocks": {str(k): list(block) for k, block in enumerate(functions.blocks)},
        "nuisance_features": [nuisance_start, functions.n_features],
        "n_features": functions.n_features,
        "correlation_target": float(correlation),
        "correlation_measured": _correlations(np.concatenate(signals), sizes, conflict),
        "params": {
            "n_tasks": n_tasks, "clusters": list(sizes), "correlation": float(correlation),
            "noise": float(noise), "conflict": bool(conflict), "few_label": float(few_label),
            "binary_every": int(binary_every), "features_per_cluster": int(features_per_cluster),
            "latent": int(latent), "nuisance": int(nuisance), "n_train": int(n_train),
            "n_val": int(n_val), "n_test": int(n_test), "seed": int(seed),
        },
        "constants": {"freq": FREQ, "reference_samples": _REFERENCE},
    }
    return data, truth


def write_planted(out: str | Path, n_tasks: int, *, force: bool = False, **kwargs) -> Path:
    """Generate a planted family and save it in the array layout, with ``planted.json``.

    ``out`` gets ``tasks.yaml``, ``{train,val,test}/x.npy`` and one ``<task>.npy`` per task
    (see :func:`taskgrouper.data.arrays.save_arrays`), readable with
    :func:`taskgrouper.data.arrays.load_arrays`, and the truth of :func:`planted_family` as
    ``planted.json``. A folder written before by this function is overwritten (its old task
    files removed first); another non-empty folder is refused unless ``force``.

    Args:
        out: The dataset folder (created if needed).
        n_tasks: Tasks in the family.
        force: Write into a non-empty folder that holds no planted family.
        **kwargs: The keyword arguments of :func:`planted_family`.

    Returns:
        The folder.

    Raises:
        ValueError: a non-empty foreign folder without ``force``, or a bad argument.
    """
    from taskgrouper.data.arrays import save_arrays

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise InputError(f"'{root}' is a file; give a folder for the planted family")
    truth_path = root / TRUTH_FILE
    if root.is_dir() and any(root.iterdir()) and not truth_path.is_file() and not force:
        raise InputError(f"folder '{root}' is not empty and holds no {TRUTH_FILE}; give an "
                         f"empty or new folder, or pass --force (force=True) to write into it")
    data, truth = planted_family(n_tasks, **kwargs)
    if truth_path.is_file():
        _remove_previous(root, truth_path)
    root.mkdir(parents=True, exist_ok=True)
    # The truth goes first: a write cut short leaves a folder this function may overwrite.
    truth_path.write_text(json.dumps(truth, indent=2) + "\n")
    save_arrays(data, root)
    return root


def _remove_previous(root: Path, truth_path: Path) -> None:
    """Delete the array files of the planted family described by ``truth_path``."""
    try:
        tasks = json.loads(truth_path.read_text()).get("tasks", [])
    except (json.JSONDecodeError, OSError, AttributeError):
        return
    for split in SPLITS:
        for name in ["x", *tasks]:
            (root / split / f"{name}.npy").unlink(missing_ok=True)


def read_truth(path: str | Path) -> dict:
    """The truth of a planted family folder (``DIR/planted.json``; a path to the file works too).

    Raises:
        DataError: no truth file, or one that is not a planted truth.
    """
    path = Path(path)
    file = path if path.is_file() else path / TRUTH_FILE
    if not file.is_file():
        raise DataError(f"{file}: no planted truth; make a family with 'taskgrouper data planted "
                        f"--tasks N --out {path}'")
    try:
        truth = json.loads(file.read_text())
    except (json.JSONDecodeError, OSError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: cannot be read as JSON ({err}); write the folder again with "
                        f"'taskgrouper data planted'") from None
    if not isinstance(truth, dict) or "groups" not in truth:
        raise DataError(f"{file}: not a planted truth (no 'groups'); write the folder again "
                        f"with 'taskgrouper data planted'")
    return truth
