"""The optax adapter on parameters sharded over two CPU devices (forced with XLA_FLAGS)."""

from __future__ import annotations

import numpy as np

import sparsehead as sh
from tests.tolerances import assert_close

from . import sharded_worker


def test_sharded_penalty_gradient_and_prox_equal_core(tmp_path):
    got = sharded_worker.run("l21", tmp_path / "sharded.npz")
    w, g = sharded_worker.weights()
    lr, lam = sharded_worker.LR, sharded_worker.LAM
    expected_new = sh.l21_prox(w - lr * g, lr * lam, group_axis=-2)
    assert (sh.group_norms(expected_new, -2) == 0).sum() > 2  # the prox zeroes more groups
    for name, shard_shape in (("rows", (4, 6)), ("cols", (8, 3))):
        assert got[f"{name}_devices"] == 2 and got[f"{name}_grad_devices"] == 2
        assert tuple(got[f"{name}_shard_shape"]) == shard_shape  # it stayed sharded
        assert_close(got[f"{name}_value"], sh.l21_norm(w, -2), "float32")
        grad = got[f"{name}_grad"]
        assert np.isfinite(grad).all() and (grad[[1, 6]] == 0).all()
        assert_close(grad, sh.l21_subgradient(w, -2), "float32", atol_scale=1)
        assert_close(got[f"{name}_new"], expected_new, "float32", atol_scale=np.abs(w).max())
        np.testing.assert_array_equal(
            sh.group_norms(got[f"{name}_new"], -2) == 0, sh.group_norms(expected_new, -2) == 0
        )
