"""Beyond the paper in optax: group Hoyer at the extremes, the L2,0 budget in optax chains.

The Hoyer value and gradient and `l20_project` (ties, NaN/inf) against the reference, for
every backend, are in the one conformance suite (`tests/conformance`).
"""

from __future__ import annotations

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sparsehead.adapters.optax import (
    GroupBudgetState,
    group_budget,
    group_hoyer,
    group_hoyer_penalty,
    l20_project,
    l21_norm,
    l21_penalty,
)

import sparsehead as sh
from tests.conformance import hoyer_gradient_scale as gradient_scale
from tests.tolerances import assert_close

from . import sharded_worker


def numpy(x) -> np.ndarray:
    """A jax array as NumPy (half precision widened to float32)."""
    return np.asarray(jnp.asarray(x, jnp.float32 if x.dtype != jnp.float64 else x.dtype))


@partial(jax.jit, static_argnames=("group_axis",))
def hoyer_and_grad(x, group_axis):
    return jax.value_and_grad(lambda w: group_hoyer(w, group_axis))(x)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_hoyer_all_zero_and_extreme_scales(dtype):
    value, grad = hoyer_and_grad(jnp.zeros((5, 4), dtype), group_axis=-2)
    assert float(value) == 0.0 and not np.asarray(grad, np.float32).any()
    # rows of norms 5, 5, 0: HS = 100 / 50 = 2 at any scale; at 1e30 naive squares overflow
    for scale in (1e30, 1e-30) if dtype != jnp.float16 else (1e2, 1e-2):
        x = (jnp.asarray([[3.0, 4.0], [0.0, 5.0], [0.0, 0.0]]) * scale).astype(dtype)
        value, grad = hoyer_and_grad(x, group_axis=-2)
        assert float(value) == pytest.approx(2.0, rel=1e-2 if dtype != jnp.float32 else 1e-6)
        grad = numpy(grad)
        assert np.isfinite(grad).all() and (grad[2] == 0).all()
        expected = sh.group_hoyer_gradient(np.asarray(x, np.float64), -2)
        assert_close(grad, expected, jnp.dtype(dtype).name, atol_scale=2 / scale)


# ---------------------------------------------------------------- L2,0 budget


def project_once(w: np.ndarray, keep, group_axis: int) -> np.ndarray:
    """One jitted update with a zero incoming update: `P_k(p + 0) - p`, applied."""
    tx = group_budget(keep, group_axis=group_axis)
    p = jnp.asarray(w)
    updates, state = jax.jit(tx.update)(jnp.zeros_like(p), tx.init(p), p)
    assert isinstance(state, GroupBudgetState) and int(state.count) == 1
    new = optax.apply_updates(p, updates)
    assert new.dtype == p.dtype
    return numpy(new)


def test_budget_in_training_loop_follows_core_schedule_on_target_leaves_only():
    """SGD on a regression where every input matters: after each jitted step the kernel is
    the core's projection of the plain SGD step with `budget_schedule(t)` groups, exactly
    `keep` groups are non-zero from `end_step` on, and the bias is never touched."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(64, 16)), jnp.float32)
    y = x @ jnp.asarray(rng.normal(size=(16, 3)), jnp.float32)
    params = {"kernel": jnp.asarray(rng.normal(size=(16, 3)), jnp.float32), "bias": jnp.ones(3)}
    lr = 0.05
    budget = group_budget(0.25, {"kernel": True, "bias": False}, begin_step=3, end_step=13)
    tx = optax.chain(optax.sgd(lr), budget)
    sgd_only = optax.sgd(lr)

    def loss(p):
        return jnp.mean(jnp.square(x @ p["kernel"] + p["bias"] - y))

    @jax.jit
    def step(p, state):
        grads = jax.grad(loss)(p)
        plain = optax.apply_updates(p, sgd_only.update(grads, sgd_only.init(p))[0])
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, plain

    state = tx.init(params)
    for t in range(1, 21):
        params, state, plain = step(params, state)
        k = sh.budget_schedule(t, 16, 0.25, 3, 13)
        expected = sh.l20_project(np.asarray(plain["kernel"]), k, -2)
        kernel = np.asarray(params["kernel"])
        # kept groups: p + ((p + u) - p) may round differently from p + u, by an ulp
        assert_close(kernel, expected, "float32", atol_scale=np.abs(expected).max())
        np.testing.assert_array_equal(kernel == 0, expected == 0)  # zeroed: exactly 0
        np.testing.assert_array_equal(np.asarray(params["bias"]), np.asarray(plain["bias"]))
        nonzero = int(np.count_nonzero(sh.group_norms(np.asarray(params["kernel"]), -2)))
        assert nonzero == k
        if t >= 13:
            assert nonzero == 4  # ceil(0.25 * 16), exactly


@pytest.mark.parametrize(
    ("groups", "keep", "t0", "t1"), [(9, 1, 0, 2), (28, 1, 5, 8), (10, 3, 2, 30)]
)
def test_schedule_equals_core_at_every_count(groups, keep, t0, t1):
    """With zero incoming updates the groups only ever leave: after `t` updates exactly
    `budget_schedule(t)` groups (all distinct norms) are non-zero."""
    w = jnp.asarray(np.arange(1.0, groups + 1)[::-1, None] * np.ones((1, 2)), jnp.float32)
    tx = group_budget(keep, begin_step=t0, end_step=t1)

    def body(carry, _):
        p, state = carry
        updates, state = tx.update(jnp.zeros_like(p), state, p)
        p = optax.apply_updates(p, updates)
        return (p, state), jnp.sum(jnp.any(p != 0, axis=1))

    _, counts = jax.jit(lambda p: jax.lax.scan(body, (p, tx.init(p)), length=t1 + 3))(w)
    expected = [sh.budget_schedule(t, groups, keep, t0, t1) for t in range(1, t1 + 4)]
    assert np.asarray(counts).tolist() == expected


def test_group_budget_bad_arguments():
    for bad in (-1, 0, 0.0, 1.5):
        with pytest.raises(ValueError, match="keep must be"):
            group_budget(bad)
    with pytest.raises(TypeError, match="keep"):
        group_budget(True)
    with pytest.raises(ValueError, match="end_step must be >= 4"):
        group_budget(2, begin_step=4, end_step=3)
    with pytest.raises(ValueError, match="begin_step must be >= 0"):
        group_budget(2, begin_step=-1)
    with pytest.raises(ValueError, match="every must be >= 1"):
        group_budget(2, every=0)
    with pytest.raises(TypeError, match="every must be an int"):
        group_budget(2, every=2.0)
    with pytest.raises(TypeError, match="group_axis"):
        group_budget(2, group_axis="rows")
    tx = group_budget(5)
    p = {"kernel": jnp.ones((4, 2))}
    with pytest.raises(ValueError, match=r"keep must be <= 4 .*params\['kernel'\]"):
        tx.init(p)  # 5 > 4 groups, named by the leaf
    with pytest.raises(ValueError, match=r"keep must be <= 4 .*params\['kernel'\]"):
        tx.update(p, GroupBudgetState(jnp.zeros([], jnp.int32)), p)
    with pytest.raises(ValueError, match="params"):
        tx.update(p, tx.init({"kernel": jnp.ones((5, 2))}))
    for leaf, error, match in [
        (jnp.ones(3), ValueError, r"params\['b'\] must have at least 2 dimensions"),
        (jnp.ones((5, 2), jnp.int32), TypeError, r"params\['b'\] must be floating point"),
        (jnp.ones((5, 0)), ValueError, r"params\['b'\] must not be empty"),
    ]:
        tx = group_budget(2, {"a": False, "b": True})
        with pytest.raises(error, match=match):
            tx.init({"a": jnp.ones(3), "b": leaf})


def test_l20_project_bad_arguments():
    with pytest.raises(ValueError, match=r"keep must be >= 1 or a fraction in \(0, 1\]"):
        l20_project(jnp.ones((4, 2)), 0)
    with pytest.raises(TypeError, match="w must be floating point"):
        l20_project(jnp.ones((4, 2), jnp.int32), 1)
    with pytest.raises(ValueError, match="w must not be empty"):
        l20_project(jnp.ones((0, 2)), 1)
    with pytest.raises(ValueError, match="w must have at least 2 dimensions"):
        l20_project(jnp.ones(4), 1)


def test_targets_none_skips_vectors_and_equals_choosing_the_kernels():
    params = {"kernel": jnp.asarray(np.arange(12.0).reshape(6, 2)), "bias": jnp.ones(2)}
    updates = jax.tree.map(jnp.zeros_like, params)
    auto, chosen = group_budget(2), group_budget(2, {"kernel": True, "bias": False})
    a, b = (tx.update(updates, tx.init(params), params)[0] for tx in (auto, chosen))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    new = optax.apply_updates(params, a)
    assert np.asarray(new["kernel"]).any(axis=1).tolist() == [False] * 4 + [True] * 2
    np.testing.assert_array_equal(np.asarray(new["bias"]), np.ones(2))  # not a 1-group leaf


@pytest.mark.parametrize("every", [1, 3])
@pytest.mark.parametrize(("t0", "t1"), [(2, 11), (4, None)])
def test_every_and_end_step_follow_the_core_schedule_step_by_step(every, t0, t1):
    """Zero incoming updates on distinct norms: after update t the non-zero groups are
    `keep_at(t)` of the core's BudgetSchedule when `due(t)`, else unchanged (every > 1
    exposes a period shifted by one step; `end_step=None` a ramp where there is none)."""
    groups = 12
    sched = sh.BudgetSchedule(groups, 3, begin_step=t0, end_step=t1, every=every)
    w = jnp.asarray(np.arange(1.0, groups + 1)[::-1, None] * np.ones((1, 2)), jnp.float32)
    tx = group_budget(3, begin_step=t0, end_step=t1, every=every)
    step = jax.jit(tx.update)
    p, state, expected = w, tx.init(w), groups
    for t in range(1, 16):
        updates, state = step(jnp.zeros_like(p), state, p)
        p = optax.apply_updates(p, updates)
        if sched.due(t):
            expected = sched.keep_at(t)
        assert int(jnp.sum(jnp.any(p != 0, axis=1))) == expected, t


def test_old_positional_order_and_old_names_warn_once_each():
    w = jnp.asarray(np.arange(1.0, 7.0)[:, None] * np.ones((1, 3)))
    with pytest.warns(DeprecationWarning, match="group_axis, begin_step by position"):
        old = group_budget(2, None, -1, 0)
    new = group_budget(2, None, group_axis=-1, begin_step=0)
    a, b = (tx.update(jnp.zeros_like(w.T), tx.init(w.T), w.T)[0] for tx in (old, new))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for alias, fn in ((l21_penalty, l21_norm), (group_hoyer_penalty, group_hoyer)):
        with pytest.warns(DeprecationWarning, match=f"{alias.__name__} is deprecated"):
            value = alias(w)
        assert float(value) == float(fn(w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names do not warn
        l21_norm(w), group_hoyer(w), group_budget(2, None, group_axis=-1)


def test_l20_project_never_hides_nan_under_jit():
    """Bug 6 of issue 18: groups [inf, 1, nan, 3], room for one: the NaN group is kept (it
    ranks first, then inf, then finite norms, ties to the lower index), as in the core."""
    w = np.array([[np.inf, 0.0], [1.0, 0.0], [np.nan, 1.0], [0.0, 3.0]], np.float32)
    project = jax.jit(l20_project, static_argnums=(1, 2))
    for keep in range(1, 5):
        got = np.asarray(project(jnp.asarray(w), keep, -2))
        np.testing.assert_array_equal(got, sh.l20_project(w, keep, -2))
    np.testing.assert_array_equal(
        project(jnp.asarray(w), 1, -2), [[0, 0], [0, 0], [np.nan, 1], [0, 0]]
    )
    got = project_once(w, 1, -2)  # through group_budget: the NaN group is kept there too
    assert np.isnan(got[2, 0]) and got[2, 1] == 1 and not got[[1, 3]].any()
    # (the inf group's update is 0 - inf: apply_updates turns it into NaN, visible as well)


def test_sharded_hoyer_and_budget_equal_core(tmp_path):
    """Row- and column-sharded kernels over two forced CPU devices (as in
    test_optax_sharded.py): same value, gradient and projection as the core, still sharded."""
    got = sharded_worker.run("beyond", tmp_path / "sharded.npz")
    w, g = sharded_worker.weights("beyond")
    lr, keep = sharded_worker.LR, sharded_worker.keep()
    step = w - np.float32(lr) * g
    expected_new = sh.l20_project(step, keep, -2)
    norms = sh.group_norms(step, -2)
    assert norms[2] == norms[5] and expected_new[2].any() and not expected_new[5].any()  # tie
    for name, shard_shape in (("rows", (4, 6)), ("cols", (8, 3))):
        assert got[f"{name}_devices"] == 2 and got[f"{name}_grad_devices"] == 2
        assert tuple(got[f"{name}_shard_shape"]) == shard_shape  # it stayed sharded
        assert_close(got[f"{name}_value"], sh.group_hoyer(w, -2), "float32")
        grad = got[f"{name}_grad"]
        assert np.isfinite(grad).all() and (grad[[1, 6]] == 0).all()
        assert_close(
            grad, sh.group_hoyer_gradient(w, -2), "float32", atol_scale=gradient_scale(w, -2)
        )
        new = got[f"{name}_new"]
        np.testing.assert_array_equal(new == 0, expected_new == 0)
        assert_close(new, expected_new, "float32", atol_scale=np.abs(step).max())
