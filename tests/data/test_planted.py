"""Planted task families: structure, planted correlations, few labels, files and the truth."""

import json

import numpy as np
import pytest

from taskgrouper.data.arrays import load_arrays
from taskgrouper.data.base import SPLITS, DataError
from taskgrouper.data.planted import (
    TRUTH_FILE,
    _cluster_sizes,
    planted_family,
    planted_functions,
    read_truth,
    write_planted,
)

SMALL = {"n_train": 60, "n_val": 20, "n_test": 30}


def _assert_same_data(a, b):
    assert list(a.tasks) == list(b.tasks)
    for split in SPLITS:
        np.testing.assert_array_equal(a.split(split).x, b.split(split).x)
        for task in a.tasks:
            # assert_array_equal treats NaN == NaN (the missing labels)
            np.testing.assert_array_equal(a.split(split).targets[task],
                                          b.split(split).targets[task])


def _noiseless(n_tasks=12, n=20000, **kwargs):
    functions = planted_functions(n_tasks, **kwargs)
    x = np.random.default_rng(123).standard_normal((n, functions.n_features))
    return functions, x, functions(x)


def test_shapes_names_and_groups():
    data, truth = planted_family(12, few_label=0.05, **SMALL)
    # 11 tasks in clusters (one is the conflict task): floor(11 / 4 + 0.5) = 3 clusters of
    # near-equal size 4, 4, 3, then the conflict task t11 alone.
    names = [f"t{i:02d}" for i in range(12)]
    assert list(data.tasks) == names and truth["tasks"] == names
    assert data.name == "planted-12"
    assert truth["groups"] == [names[0:4], names[4:8], names[8:11], ["t11"]]
    # 3 blocks of 8 features + 4 nuisance features = 28 columns.
    assert data.train.x.shape == (60, 28) and data.train.x.dtype == np.float32
    assert data.val.x.shape == (20, 28) and data.test.x.shape == (30, 28)
    assert truth["feature_blocks"] == {"0": [0, 8], "1": [8, 16], "2": [16, 24]}
    assert truth["nuisance_features"] == [24, 28]
    for name in names:
        assert data.train.targets[name].shape == (60,)
        assert data.train.targets[name].dtype == np.float32
        assert data.tasks[name].kind == "regression" == truth["kinds"][name]
        assert name in truth["groups"][truth["cluster_of"][name]]
    # The last task of every cluster of >= 3 is the few-label task.
    assert [t for t, r in truth["roles"].items() if r == "few_label"] == ["t03", "t07", "t10"]
    assert truth["roles"]["t11"] == "conflict" and truth["roles"]["t00"] == "member"
    # By default no task is few-label.
    _, default = planted_family(12, **SMALL)
    assert set(default["roles"].values()) == {"member", "conflict"}


def test_cluster_counts_and_sizes():
    # clusters=3 over 10 tasks without conflict: 10 = 4 + 3 + 3.
    _, truth = planted_family(10, clusters=3, conflict=False, **SMALL)
    assert [len(g) for g in truth["groups"]] == [4, 3, 3]
    assert truth["params"]["clusters"] == [4, 3, 3]
    # Explicit sizes, conflict task last: 2 + 5 + 1 = 8.
    _, truth = planted_family(8, clusters=[2, 5], **SMALL)
    assert [len(g) for g in truth["groups"]] == [2, 5, 1]
    # Default sizes stay within 3..5 over the whole range, with or without conflict task.
    for n in range(4, 41):
        for conflict in (True, False):
            sizes = _cluster_sizes(n, None, conflict)
            assert sum(sizes) == n - conflict, (n, sizes)
            assert 3 <= min(sizes) and max(sizes) <= 5, (n, sizes)


def test_same_seed_same_data_other_seed_differs():
    a, truth_a = planted_family(6, seed=3, **SMALL)
    b, truth_b = planted_family(6, seed=3, **SMALL)
    _assert_same_data(a, b)
    assert truth_a == truth_b
    c, _ = planted_family(6, seed=4, **SMALL)
    assert not np.array_equal(a.train.x, c.train.x)
    assert not np.allclose(a.val.targets["t00"], c.val.targets["t00"])
    # The truth's params rebuild the family.
    again, _ = planted_family(**truth_a["params"])
    _assert_same_data(a, again)


@pytest.mark.parametrize("n_tasks", [3, 41])
def test_task_count_outside_the_range(n_tasks):
    with pytest.raises(ValueError, match=r"4\.\.40 tasks.*got " + str(n_tasks)):
        planted_family(n_tasks)


@pytest.mark.parametrize("kwargs, message", [
    # 6 tasks with a conflict task leave 5 for the clusters, not 3 + 3.
    ({"clusters": [3, 3]}, r"sum to 6 but there are 5 tasks in clusters.*must sum to 5"),
    ({"clusters": [1, 4]}, r"at least 2 tasks"),
    # 4 clusters of at least 2 need 8 tasks; there are 6.
    ({"clusters": 4, "conflict": False}, r"clusters=4 needs at least 8 tasks.*at most 3"),
    ({"clusters": "3"}, r"clusters must be None"),
    ({"correlation": 1.5}, r"correlation=1.5"),
    ({"latent": 9}, r"latent=9 exceeds features_per_cluster=8"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        planted_family(6, **kwargs)


@pytest.mark.parametrize("correlation", [0.8, 0.5])
def test_within_cluster_correlation_follows_the_parameter(correlation):
    # With latent=6, clusters of 4, 4, 3 have at most latent - 1 = 5 tasks, so their own
    # directions e_t are orthonormal and every pair correlates at correlation + (1 - c) * 0 = c;
    # the whitening is estimated on 8192 samples and r on 20000, both off by about 0.01-0.02.
    functions, _, signal = _noiseless(12, correlation=correlation, latent=6)
    r = np.corrcoef(signal, rowvar=False)
    labels = np.repeat(np.arange(3), functions.sizes)
    for i in range(11):
        for j in range(i + 1, 11):
            if labels[i] == labels[j]:
                assert abs(r[i, j] - correlation) < 0.05, (i, j, r[i, j])
            else:  # independent feature blocks: population r = 0, sample sd about 0.007
                assert abs(r[i, j]) < 0.05, (i, j, r[i, j])
    # The conflict task reads, in every block, a direction orthogonal to the block's
    # projections: independent of every cluster task, so r is about 0.
    assert np.abs(r[11, :11]).max() < 0.05


def test_conflict_directions_are_orthogonal_to_the_projections():
    functions = planted_functions(12)
    for w, u in zip(functions.projections, functions.directions, strict=True):
        np.testing.assert_allclose(w @ w.T, np.eye(3), atol=1e-12)  # orthonormal rows
        np.testing.assert_allclose(w @ u, 0.0, atol=1e-12)
        assert abs(np.linalg.norm(u) - 1.0) < 1e-12


def test_large_cluster_pairs_stay_within_bounds():
    # 8 tasks in one cluster, more than latent - 1 = 2: e_t are random unit vectors, so a pair
    # correlates at c + (1 - c) * e_t . e_u with e_t . e_u in [-1, 1]: within [0.6, 1] for 0.8.
    _, _, signal = _noiseless(8, clusters=[8], conflict=False)
    r = np.corrcoef(signal, rowvar=False)[np.triu_indices(8, k=1)]
    assert r.min() > 0.6 - 0.03 and r.max() <= 1.0
    assert abs(r.mean() - 0.8) < 0.1


def test_cluster_targets_depend_only_on_their_block():
    functions, x, signal = _noiseless(12, n=2000)
    rng = np.random.default_rng(0)
    for k, (start, stop) in enumerate(functions.blocks):
        members = slice(sum(functions.sizes[:k]), sum(functions.sizes[:k + 1]))
        outside = x.copy()
        for column in [c for c in range(x.shape[1]) if not start <= c < stop]:
            outside[:, column] = rng.permutation(outside[:, column])
        # Shuffling every other column leaves the cluster's targets exactly as they were...
        np.testing.assert_allclose(functions(outside)[:, members], signal[:, members],
                                   atol=1e-12)
        # ... while shuffling the block's own rows breaks them (r about 0 with the original).
        inside = x.copy()
        inside[:, start:stop] = rng.permutation(inside[:, start:stop])
        r = np.corrcoef(functions(inside)[:, members.start], signal[:, members.start])[0, 1]
        assert abs(r) < 0.15
    # The conflict task needs every block: shuffling any one block changes it.
    for start, stop in functions.blocks:
        inside = x.copy()
        inside[:, start:stop] = rng.permutation(inside[:, start:stop])
        assert not np.allclose(functions(inside)[:, -1], signal[:, -1])


def test_targets_are_the_planted_functions_plus_noise():
    data, _ = planted_family(6, noise=0.0, few_label=0.0, **SMALL)
    functions = planted_functions(6)
    for split in SPLITS:
        part = data.split(split)
        np.testing.assert_allclose(np.stack([part.targets[t] for t in data.tasks], axis=1),
                                   functions(part.x), atol=1e-5)
    # With noise 0.3 the residual is N(0, 0.3^2): its sd over 5 x 1000 test labels is 0.3
    # up to about 0.003.
    noisy, _ = planted_family(6, noise=0.3, n_train=10, n_val=10, n_test=1000)
    residual = (np.stack([noisy.test.targets[t] for t in noisy.tasks], axis=1)
                - functions(noisy.test.x))
    assert abs(residual.std() - 0.3) < 0.015


def test_few_label_tasks_keep_a_fraction_of_training_labels():
    data, truth = planted_family(12, few_label=0.05, n_train=600, n_val=50, n_test=50)
    few = [t for t, role in truth["roles"].items() if role == "few_label"]
    assert few == ["t03", "t07", "t10"]
    for task in data.tasks:
        labelled = np.isfinite(data.train.targets[task]).sum()
        # 0.05 * 600 = 30 training labels for a few-label task, all 600 for the others.
        assert labelled == (30 if task in few else 600), task
        assert np.isfinite(data.val.targets[task]).all()
        assert np.isfinite(data.test.targets[task]).all()
    assert truth["few_label_counts"] == {"t03": 30, "t07": 30, "t10": 30}
    # few_label=0 plants no few-label task.
    _, none = planted_family(12, few_label=0.0, **SMALL)
    assert "few_label" not in none["roles"].values()


def test_binary_every_makes_binary_tasks():
    data, truth = planted_family(12, binary_every=3, n_train=600, n_val=50, n_test=400)
    # Tasks 3, 6, 9, 12 (1-based) are binary except the 12th, t11, the conflict task.
    binary = [t for t, spec in data.tasks.items() if spec.kind == "binary"]
    assert binary == ["t02", "t05", "t08"]
    assert truth["kinds"]["t11"] == "regression"
    for task in binary:
        for split in SPLITS:
            values = data.split(split).targets[task]
            finite = values[np.isfinite(values)]
            assert set(np.unique(finite)) == {0.0, 1.0}
        # y = standardised signal + noise is symmetric about 0: about half positive.
        assert 0.4 < data.test.targets[task].mean() < 0.6
    # t10 is both few-label and regression; make a binary few-label task: t03 with k=4.
    data, truth = planted_family(12, binary_every=4, few_label=0.05, **SMALL)
    assert truth["roles"]["t03"] == "few_label" and truth["kinds"]["t03"] == "binary"
    target = data.train.targets["t03"]
    assert np.isnan(target).sum() == 60 - 3  # max(2, round(0.05 * 60)) = 3 labels kept


def test_truth_reports_measured_correlations():
    _, truth = planted_family(12, latent=6)  # orthonormal e_t: every pair at 0.8
    measured = truth["correlation_measured"]
    assert truth["correlation_target"] == 0.8
    # 11 clustered tasks in clusters of 4, 4, 3: 3 blocks of 8 columns + 4 nuisance = 28
    # columns, 30 training samples per column by default = 840
    assert measured["samples"] == 840 + 400 + 1000
    assert abs(measured["mean_within"] - 0.8) < 0.05
    assert abs(measured["mean_across"]) < 0.05 and measured["max_abs_across"] < 0.1
    assert measured["max_abs_conflict"] < 0.1
    json.dumps(truth)  # serialisable as is


def test_write_planted_round_trip(tmp_path):
    out = tmp_path / "planted"
    root = write_planted(out, 6, binary_every=2, seed=5, **SMALL)
    assert root == out and (out / "tasks.yaml").is_file() and (out / TRUTH_FILE).is_file()
    data, truth = planted_family(6, binary_every=2, seed=5, **SMALL)
    loaded = load_arrays(out)
    _assert_same_data(data, loaded)
    assert {t: s.kind for t, s in loaded.tasks.items()} == truth["kinds"]
    assert read_truth(out) == truth
    assert read_truth(out / TRUTH_FILE) == truth


def test_write_planted_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=rf"'{tmp_path}' is not empty.*--force"):
        write_planted(tmp_path, 6, **SMALL)
    assert not (tmp_path / "tasks.yaml").exists()
    write_planted(tmp_path, 6, force=True, **SMALL)
    # 6 tasks = one cluster of 5 + the conflict task: 8 block features + 4 nuisance.
    assert load_arrays(tmp_path).train.x.shape == (60, 8 + 4)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_write_planted_overwrites_its_own_folder(tmp_path):
    write_planted(tmp_path, 8, **SMALL)
    assert (tmp_path / "train" / "t07.npy").is_file()
    # A planted folder is rewritten without force, and the old family's extra tasks go.
    write_planted(tmp_path, 5, **SMALL)
    assert not (tmp_path / "train" / "t07.npy").exists()
    assert list(load_arrays(tmp_path).tasks) == ["t00", "t01", "t02", "t03", "t04"]
    assert read_truth(tmp_path)["params"]["n_tasks"] == 5


def test_read_truth_without_a_truth_file(tmp_path):
    with pytest.raises(DataError, match=r"no planted truth.*taskgrouper data planted"):
        read_truth(tmp_path)


def test_default_training_samples_scale_with_input_columns():
    # 6 tasks in two clusters (3 + 2) + conflict -> 2 * 8 + 4 = 20 columns -> 600
    data, truth = planted_family(6, clusters=2, n_val=5, n_test=5)
    assert data.train.x.shape == (600, 20) and truth["params"]["n_train"] == 600
    # 30 tasks: 7 clusters -> 7 * 8 + 4 = 60 columns -> 1800
    data, truth = planted_family(30, n_val=5, n_test=5)
    assert data.train.x.shape == (1800, 60) and truth["params"]["n_train"] == 1800
    # an explicit count is kept
    data, _ = planted_family(30, n_train=50, n_val=5, n_test=5)
    assert data.train.x.shape[0] == 50
