"""`ProjectionHead(output_batchnorm=True)` applies a BatchNorm to its output `z = W2 h + b2`."""

from __future__ import annotations

import numpy as np
from sparsehead.adapters.keras import ProjectionHead

from tests.conformance.keras_seam import to_numpy

EPS = 1e-3  # keras.layers.BatchNormalization's default epsilon


def pre_batchnorm_output(head, x, training):
    """`W2 ReLU(BN(W1 x)) + b2`, from the head's own sublayers: the output before its BN."""
    h = head.relu(head.batchnorm(head.hidden(x), training=training))
    return to_numpy(head.output_layer(h)).astype(np.float64)


def test_output_batchnorm_standardises_the_batch_in_training_and_uses_moving_stats_after():
    x = np.random.default_rng(0).normal(loc=0.5, size=(32, 10)).astype("float32")
    plain = ProjectionHead(16, 6, l21=0.0)
    with_bn = ProjectionHead(16, 6, l21=0.0, output_batchnorm=True)
    plain.build((None, 10))
    with_bn.build((None, 10))
    with_bn.set_weights(plain.get_weights() + with_bn.get_weights()[len(plain.get_weights()) :])

    u = pre_batchnorm_output(with_bn, x, training=True)
    np.testing.assert_allclose(to_numpy(plain(x, training=True)), u, rtol=1e-5, atol=1e-6)
    # The premise: without the BN the output batch is not standardised.
    assert np.abs(u.mean(axis=0)).max() > 1e-2

    # Training mode: batch statistics, gamma = 1 and beta = 0 at initialisation:
    # z = (u - mean) / sqrt(var + eps) with the biased variance.
    z = to_numpy(with_bn(x, training=True)).astype(np.float64)
    expected = (u - u.mean(axis=0)) / np.sqrt(u.var(axis=0) + EPS)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)

    # Inference mode: the moving statistics; a fresh BatchNorm (moving mean 0, variance 1)
    # gives u / sqrt(1 + eps) (the call above moved them by momentum 0.99: reset them).
    fresh = ProjectionHead(16, 6, l21=0.0, output_batchnorm=True)
    fresh.build((None, 10))
    fresh.set_weights(plain.get_weights() + fresh.get_weights()[len(plain.get_weights()) :])
    u_inf = pre_batchnorm_output(fresh, x, training=False)
    z_inf = to_numpy(fresh(x, training=False)).astype(np.float64)
    np.testing.assert_allclose(z_inf, u_inf / np.sqrt(1 + EPS), rtol=1e-5, atol=1e-6)
