"""Evaluation of frozen features (Sec. 7.1) and the spectrum / sparsity diagnostics.

- Linear probe (Eq. 3): multinomial logistic regression (scikit-learn, L-BFGS) on standardised
  frozen features, fitted on the training split, scored on the test split.
- 5-NN: majority vote of the 5 nearest training features under cosine distance.
- Diagnostics, all from the NumPy core (`sparsehead`): eigenvalue spectra (Fig. 1, 3),
  effective rank, RankMe, the mean min-max distance ratio of the embeddings (Eq. 9) and the
  head's scale-free group sparsity.
"""

from __future__ import annotations

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import sparsehead

__all__ = ["diagnostics", "encode", "knn_accuracy", "linear_probe_accuracy", "probe"]


def encode(backbone, head, images: np.ndarray, batch_size: int = 512):
    """Representation `r = f(x)` and embedding `z = h(r)` (inference mode), as float64."""
    r = np.asarray(backbone.predict(images, batch_size=batch_size, verbose=0))
    z = r
    if not isinstance(head, keras.layers.Identity):  # DirectCLR's slice has no weights either
        z = np.concatenate(
            [
                keras.ops.convert_to_numpy(head(r[i : i + batch_size], training=False))
                for i in range(0, len(r), batch_size)
            ]
        )
    return r.astype(np.float64), z.astype(np.float64)


# One BLAS / OpenMP thread: on a shared 2-core machine, OpenBLAS with 2 threads made
# L-BFGS 20x slower (threads spin waiting for a busy core); one thread loses little on idle.
_THREADS = 1


def linear_probe_accuracy(train_x, train_y, test_x, test_y, max_iter: int = 1000) -> float:
    """Test accuracy of multinomial logistic regression (Eq. 3) on standardised features."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with threadpool_limits(_THREADS):
        clf.fit(train_x, train_y)
        return float(clf.score(test_x, test_y))


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 5) -> float:
    """Test accuracy of the k-NN classifier (k = 5 in the paper) under cosine distance."""
    clf = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    with threadpool_limits(_THREADS):
        clf.fit(train_x, train_y)
        return float(clf.score(test_x, test_y))


def probe(train: tuple, test: tuple, train_y, test_y) -> dict[str, float]:
    """Linear and 5-NN accuracy on the representation and on the embedding.

    `train` and `test` are `(r, z)` pairs from `encode`.
    """
    out = {}
    for i, space in enumerate(("representation", "embedding")):
        out[f"linear_{space}"] = linear_probe_accuracy(train[i], train_y, test[i], test_y)
        out[f"knn5_{space}"] = knn_accuracy(train[i], train_y, test[i], test_y)
    return out


@threadpool_limits.wrap(limits=_THREADS)
def diagnostics(r: np.ndarray, z: np.ndarray, kernel, ratio_rows: int = 1000, seed: int = 0):
    """Spectra, effective rank, RankMe, min-max distance ratio and head sparsity.

    Returns `(metrics, spectra)`: a JSON-ready dict, and the spectra and sorted group norms
    as arrays for the plots.
    """
    spectra = {
        "representation": sparsehead.eigenvalue_spectrum(r),
        "embedding": sparsehead.eigenvalue_spectrum(z),
    }
    metrics: dict = {}
    for space, x in (("representation", r), ("embedding", z)):
        metrics[f"effective_rank_{space}"] = sparsehead.effective_rank(x)
        metrics[f"rankme_{space}"] = sparsehead.rankme(x)
    rows = np.random.default_rng(seed).permutation(len(z))[:ratio_rows]
    ratio = sparsehead.min_max_distance_ratio(z[rows])
    metrics["min_max_ratio_embedding"] = float(np.mean(ratio[np.isfinite(ratio)]))
    if kernel is not None:
        w = np.asarray(kernel, dtype=np.float64)
        metrics["head_sparsity"] = sparsehead.sparsity_summary(w, group_axis=-2)
        # the layer's scale: what a penalty can shrink without selecting any feature
        metrics["head_frobenius"] = float(np.sqrt(np.sum(np.square(w))))
        spectra["group_norms"] = np.sort(sparsehead.group_norms(w, group_axis=-2))[::-1]
    return metrics, spectra
