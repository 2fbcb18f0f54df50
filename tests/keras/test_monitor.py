"""SparsityMonitor: the history holds the core's sparsity summary of the kernel, per epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import ProjectionHead, ProximalL21, SparsityMonitor

import sparsehead as sh
from tests.conformance.keras_seam import to_numpy

KEYS = ("l21", "groups_95_energy", "frac_below_1pct", "frac_below_0p1pct", "zero_groups")


def test_history_holds_the_core_summary_of_the_final_kernel():
    keras.utils.set_random_seed(0)
    head = ProjectionHead(8, 4, l21=0.0)
    model = keras.Sequential([keras.Input((5,)), head])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")
    callbacks = [ProximalL21(1.0, head), SparsityMonitor(head, prefix="proj_")]
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=callbacks).history
    for key in KEYS:
        assert len(history["proj_" + key]) == 3
    summary = sh.sparsity_summary(to_numpy(head.kernel))
    for key in KEYS:
        assert history["proj_" + key][-1] == pytest.approx(summary[key], rel=1e-12)
    assert history["proj_zero_groups"][-1] > 0  # the prox switched groups off


def test_scale_free_measures_do_not_change_under_uniform_scaling():
    w = np.random.default_rng(1).normal(size=(10, 3)).astype("float32")
    w[2] *= 1e-3
    a = SparsityMonitor(keras.Variable(w)).summary()
    b = SparsityMonitor(keras.Variable(w * 0.01)).summary()
    for key in KEYS[1:]:
        assert a[key] == b[key]
    assert b["l21"] == pytest.approx(0.01 * a["l21"], rel=1e-5)


@pytest.mark.parametrize(("poison", "l21"), [(np.nan, np.nan), (np.inf, np.inf)])
def test_nonfinite_group_is_never_reported_as_zero_or_sparse(poison, l21):
    w = np.array([[poison, 1.0], [3.0, 4.0], [0.0, 0.0]], np.float32)
    summary = SparsityMonitor(keras.Variable(w)).summary()
    np.testing.assert_equal(summary["l21"], l21)  # NaN or inf, as sqrt(sum(w**2)) gives
    assert summary["zero_groups"] == 1  # the all-zero row only
    for key in ("groups_95_energy", "frac_below_1pct", "frac_below_0p1pct"):
        assert np.isnan(summary[key])


def test_bad_target_raises():
    with pytest.raises(ValueError, match="kernel"):
        SparsityMonitor(keras.layers.ReLU()).summary()
    with pytest.raises(TypeError, match="prefix"):
        SparsityMonitor(keras.layers.Dense(2), prefix=3)


def test_old_keyword_target_warns_and_keeps_working():
    w = keras.Variable(np.ones((3, 2), "float32"))
    with pytest.warns(DeprecationWarning, match="targets"):
        monitor = SparsityMonitor(target=w)
    assert monitor.targets is w and monitor.summary()["zero_groups"] == 0
