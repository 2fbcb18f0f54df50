"""The probes of `reference/evaluate.py` (Sec. 7.1), on constructed data whose answer is known.

Every expected accuracy below follows from the construction (symmetry, angles, counts), not
from running the code: the linear probe is multinomial logistic regression fitted on the
training split and scored on the test split; the k-NN is a majority vote (ties to the
smaller label) of the k = 5 training points nearest under cosine distance.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("keras")  # reference.evaluate imports keras (for `encode`)
sklearn_neighbors = pytest.importorskip("sklearn.neighbors")

from reference.evaluate import diagnostics, knn_accuracy, linear_probe_accuracy, probe  # noqa: E402

pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI


def polar(degrees, radius=1.0) -> np.ndarray:
    """Points of the plane at the given angles (degrees) and radii, shape `(n, 2)`."""
    a = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), a.shape)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


def brute_force_knn(train_x, train_y, test_x, k: int) -> np.ndarray:
    """Independent k-NN: cosine distance `1 - <a, b> / (|a| |b|)`, majority vote, ties to the
    smaller label (as scikit-learn's uniform vote)."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    dist = 1.0 - b @ a.T
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    votes = train_y[nearest]
    return np.array([np.bincount(v, minlength=train_y.max() + 1).argmax() for v in votes])


# -- linear probe --------------------------------------------------------------------------
def mirror_clusters():
    """Two classes that a linear probe fitted on the training split separates by the sign of
    the first feature, and a test split on which its error rate is known: 8/10.

    Training split: class 0 at `(-2, x1)`, class 1 at `(2, x1)`, `x1` in `{-1, 1}` for each
    class. The set is symmetric under `x1 -> -x1` (labels kept) and under `x -> -x` (labels
    swapped); the regularised logistic loss is strictly convex, so its unique minimiser has
    `w1 = 0` and `b = 0`: the prediction is class 1 exactly when `x0 > 0`.

    Test split: 4 points `(-2, 0)` labelled 0 and 4 points `(2, 0)` labelled 1 (right), and
    2 points `(2, 5)` labelled 0: predicted 1, wrong. Accuracy 8/10. Fitting on the test
    labels instead (they are linearly separable, e.g. `x0 - x1 > 0`) gives another score,
    and so does scoring on the training split (accuracy 1).
    """
    train_x = np.array([[-2.0, -1.0], [-2.0, 1.0], [2.0, -1.0], [2.0, 1.0]]).repeat(5, axis=0)
    train_y = np.array([0, 0, 1, 1]).repeat(5)
    test_x = np.array([[-2.0, 0.0]] * 4 + [[2.0, 0.0]] * 4 + [[2.0, 5.0]] * 2)
    test_y = np.array([0] * 4 + [1] * 4 + [0] * 2)
    return train_x, train_y, test_x, test_y


def test_linear_probe_on_mirror_symmetric_clusters_has_the_known_error_rate():
    train_x, train_y, test_x, test_y = mirror_clusters()
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(0.8)


def test_linear_probe_on_separated_clusters_misses_exactly_the_mislabelled_points():
    """Three clusters of radius 0.05 around centres 10 apart: any reasonable linear probe
    classifies every point near a centre by that centre's class, so the test accuracy is
    the fraction of test points whose label is their cluster's: 1 - 7/60 here."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 8.66]])

    def around(cluster, n):
        return centres[cluster] + rng.uniform(-0.05, 0.05, size=(n, 2))

    train_y = np.repeat([0, 1, 2], 30)
    train_x = np.concatenate([around(c, 30) for c in range(3)])
    test_y = np.repeat([0, 1, 2], 20)
    test_x = np.concatenate([around(c, 20) for c in range(3)])
    wrong = rng.choice(60, size=7, replace=False)
    test_y_noisy = test_y.copy()
    test_y_noisy[wrong] = (test_y[wrong] + 1) % 3
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == 1.0
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y_noisy) == pytest.approx(
        1 - 7 / 60
    )


# -- k-NN ----------------------------------------------------------------------------------
# Around each query direction, training points at +1..+7 degrees labelled, by rank of cosine
# distance: 0, 0, 1, 1, 1, 0, 0. The majority of the k nearest is 0 for k = 1, 2, 3, 4 (2:2,
# tie to the smaller label), 6 (3:3) and 7 (4:3), and 1 only for k = 5. The class-1 points lie
# at radius 3, the others at radius 1 like the query: under Euclidean distance the four
# class-0 points come first and the 5-NN vote is 0 (cosine ignores the radius).
_OFFSETS = np.arange(1.0, 8.0)
_LABELS = np.array([0, 0, 1, 1, 1, 0, 0])
_RADII = np.where(_LABELS == 1, 3.0, 1.0)
_QUERIES = np.array([0.0, 90.0, 180.0, 270.0])  # neighbourhoods 80 degrees apart


def knn_construction():
    train_x = np.concatenate([polar(q + _OFFSETS, _RADII) for q in _QUERIES])
    train_y = np.tile(_LABELS, len(_QUERIES))
    test_x = polar(_QUERIES)
    test_y = np.array([1, 1, 1, 0])  # 5-NN predicts 1 for each query: 3 of 4 right
    return train_x, train_y, test_x, test_y


def test_knn_five_neighbours_disagree_with_one_three_and_seven_by_construction():
    train_x, train_y, test_x, test_y = knn_construction()
    for k in (1, 2, 3, 4, 6, 7):  # every query predicted 0: only the last one is right
        assert knn_accuracy(train_x, train_y, test_x, test_y, k=k) == pytest.approx(0.25)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=5) == pytest.approx(0.75)
    assert knn_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(0.75)  # k = 5
    # The brute-force k-NN agrees on the construction.
    np.testing.assert_array_equal(brute_force_knn(train_x, train_y, test_x, 5), [1, 1, 1, 1])
    np.testing.assert_array_equal(brute_force_knn(train_x, train_y, test_x, 1), [0, 0, 0, 0])


def test_knn_uses_the_cosine_distance_not_the_euclidean():
    train_x, train_y, test_x, test_y = knn_construction()
    euclid = sklearn_neighbors.KNeighborsClassifier(n_neighbors=5).fit(train_x, train_y)
    assert euclid.score(test_x, test_y) == pytest.approx(0.25)  # the construction's premise
    assert knn_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(0.75)
    # Scaling a feature vector does not change its cosine neighbours.
    scaled = train_x * np.linspace(0.5, 4.0, len(train_x))[:, None]
    assert knn_accuracy(scaled, train_y, test_x * 7.0, test_y) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_matches_scikit_learn_and_brute_force_on_random_data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 6))
    train_y = rng.integers(0, 3, size=80)
    test_y = rng.integers(0, 3, size=50)
    train_x = centres[train_y] + rng.normal(scale=1.5, size=(80, 6))
    test_x = centres[test_y] + rng.normal(scale=1.5, size=(50, 6))
    got = knn_accuracy(train_x, train_y, test_x, test_y)
    ours = np.mean(brute_force_knn(train_x, train_y, test_x, 5) == test_y)
    ref = sklearn_neighbors.KNeighborsClassifier(n_neighbors=5, metric="cosine")
    theirs = ref.fit(train_x, train_y).score(test_x, test_y)
    assert got == pytest.approx(ours, abs=1e-12)
    assert got == pytest.approx(theirs, abs=1e-12)
    assert 0.0 < got < 1.0  # neither trivial end: the comparison has something to check


# -- probe: both spaces, both probes -------------------------------------------------------
def xor_directions():
    """Cosine-separable but not linearly separable: class 0 near 0 and 180 degrees and at
    91.5 and 271.5 degrees (14 training points), class 1 near 90 and 270 degrees (8). The set
    is symmetric under `x -> -x` with labels kept, so the logistic probe's unique minimiser
    has `w = 0`: it predicts the majority class 0 everywhere (test accuracy 6/10).

    5-NN finds each test point's own class (accuracy 1): around 90 degrees the 4 class-1
    points outvote the class-0 point at 91.5 degrees. 1-NN misses the test points at 91 and
    271 degrees, whose nearest training point is that class-0 one (accuracy 8/10).
    """
    jitter = np.array([-6.0, -4.0, -2.0, 2.0, 4.0, 6.0])
    jitter1 = np.array([-4.0, -2.0, 2.0, 4.0])
    train_x = np.concatenate(
        [
            polar(jitter),
            polar(180 + jitter),
            polar([91.5, 271.5]),
            polar(90 + jitter1),
            polar(270 + jitter1),
        ]
    )
    train_y = np.array([0] * 14 + [1] * 8)
    test_x = np.concatenate(
        [polar([1.0, 181.0, -1.0, 179.0, 0.5, 180.5]), polar([91, 271, 89, 269])]
    )
    test_y = np.array([0] * 6 + [1] * 4)
    return train_x, train_y, test_x, test_y


def test_each_probe_alone_on_the_xor_directions():
    train_x, train_y, test_x, test_y = xor_directions()
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(0.6)
    assert knn_accuracy(train_x, train_y, test_x, test_y) == pytest.approx(1.0)
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=1) == pytest.approx(0.8)
    got = brute_force_knn(train_x, train_y, test_x, 5)
    np.testing.assert_array_equal(got, test_y)


def test_probe_reports_each_space_and_probe_under_its_own_key():
    """Representation: mirror clusters (linear 0.8, 5-NN 0.8: the two test points (2, 5) are
    nearest in angle to class 1). Embedding: the XOR directions (linear 0.6, 5-NN 1.0, and
    1-NN 0.8). Four different pairs of numbers, so a swapped space, a swapped probe or a
    1-NN in `probe` changes a value."""
    xr, yr, tr, ty = xor_directions()
    # Mirror clusters with the XOR labels' counts: class 0 (14 points) at x0 = -2 and class 1
    # (8) at x0 = 2, x1 in {-1, 1} equally often within each class (w1 = 0 by symmetry); the
    # boundary is not at x0 = 0 (14 vs 8), but it lies between -2 and 2.
    rep_train = np.concatenate(
        [
            np.array([[-2.0, -1.0], [-2.0, 1.0]]).repeat(7, 0),
            np.array([[2.0, -1.0], [2.0, 1.0]]).repeat(4, 0),
        ]
    )
    # Test labels (6 zeros, 4 ones): 4 zeros at (-2, 0), 2 zeros at (2, 5) (wrong), 4 ones at
    # (2, 0).
    rep_test = np.array([[-2.0, 0.0]] * 4 + [[2.0, 5.0]] * 2 + [[2.0, 0.0]] * 4)
    out = probe((rep_train, xr), (rep_test, tr), yr, ty)
    assert set(out) == {
        "linear_representation",
        "knn5_representation",
        "linear_embedding",
        "knn5_embedding",
    }
    assert out["linear_representation"] == pytest.approx(0.8)
    assert out["knn5_representation"] == pytest.approx(0.8)
    assert out["linear_embedding"] == pytest.approx(0.6)
    assert out["knn5_embedding"] == pytest.approx(1.0)


def test_diagnostics_record_the_head_kernel_scale_and_its_groups():
    # rows (input features) are the groups of a Keras kernel: norms 5 and 13, one zero group
    kernel = np.array([[3.0, 4.0], [0.0, 0.0], [5.0, 12.0]])
    rng = np.random.default_rng(0)
    metrics, spectra = diagnostics(rng.normal(size=(40, 6)), rng.normal(size=(40, 3)), kernel)
    assert metrics["head_frobenius"] == pytest.approx(np.sqrt(9 + 16 + 25 + 144), rel=1e-12)
    assert metrics["head_sparsity"]["l21"] == pytest.approx(5 + 13, rel=1e-12)
    assert metrics["head_sparsity"]["zero_groups"] == 1
    assert list(spectra["group_norms"]) == pytest.approx([13, 5, 0], rel=1e-12)
