"""`proximal_l21`: an optax GradientTransformation for the proximal step, in `optax.chain`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sparsehead.adapters.optax import adamw_proximal_l21, l21_norm, l21_prox, proximal_l21

import sparsehead as sh
from tests.tolerances import assert_close


def params_and_grads():
    rng = np.random.default_rng(0)
    params = {
        "head": {"kernel": rng.normal(size=(6, 3)).astype(np.float32), "bias": np.ones(3, "f")},
        "proj": {"kernel": rng.normal(size=(4, 6)).astype(np.float32)},
    }
    grads = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    return jax.tree.map(jnp.asarray, params), jax.tree.map(jnp.asarray, grads)


def threshold_between_norms(kernel: np.ndarray, k: int) -> float:
    """A threshold halfway between the k-th and (k+1)-th smallest group norm: no ties."""
    norms = np.sort(sh.group_norms(kernel, -2))
    return float(norms[k - 1] + norms[k]) / 2


def test_chain_gives_prox_of_the_plain_step_on_masked_leaves_only():
    params, grads = params_and_grads()
    lr = 0.1
    step = np.asarray(params["head"]["kernel"] - lr * grads["head"]["kernel"])
    lam = threshold_between_norms(step, 3) / lr  # zeroes 3 of the 6 groups
    mask = {"head": {"kernel": True, "bias": False}, "proj": {"kernel": False}}
    tx = optax.chain(optax.sgd(lr), proximal_l21(lr, lam, targets=mask))
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    kernel = np.asarray(new["head"]["kernel"])
    assert_close(kernel, sh.l21_prox(step, lr * lam, -2), "float32", atol_scale=1)
    assert (sh.group_norms(kernel, -2) == 0).sum() == 3  # exactly 0 after apply_updates
    for path in (("head", "bias"), ("proj", "kernel")):  # plain SGD elsewhere
        got, p, g = (t[path[0]][path[1]] for t in (new, params, grads))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(p - lr * g))


def test_schedule_and_callable_mask_over_several_jitted_steps():
    params, _ = params_and_grads()
    schedule = optax.exponential_decay(0.2, transition_steps=1, decay_rate=0.5)
    lam = 8.0  # thresholds sum to 2.8 over the 3 steps: the weakest groups reach 0

    def kernels_only(tree):
        return jax.tree.map(lambda x: x.ndim == 2, tree)

    tx = optax.chain(optax.sgd(schedule), proximal_l21(schedule, lam, targets=kernels_only))

    def loss(p):
        return sum(jnp.sum(jnp.sin(x)) for x in jax.tree.leaves(p))

    @jax.jit
    def train_step(p, state):
        updates, state = tx.update(jax.grad(loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    state = tx.init(params)
    expected = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    for k in range(3):
        params, state = train_step(params, state)
        lr = 0.2 * 0.5**k
        for name in ("head", "proj"):
            w = expected[name]["kernel"]
            expected[name]["kernel"] = sh.l21_prox(w - lr * np.cos(w), lr * lam, -2)
        expected["head"]["bias"] = expected["head"]["bias"] - lr * np.cos(expected["head"]["bias"])
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected), strict=True):
        assert_close(np.asarray(got), want, "float32", atol_scale=1)
    assert (sh.group_norms(np.asarray(params["proj"]["kernel"]), -2) == 0).any()


def test_penalty_gradient_in_a_jitted_adam_step_is_finite_at_zero_groups():
    params, _ = params_and_grads()
    params["head"]["kernel"] = params["head"]["kernel"].at[2].set(0)
    tx = optax.chain(
        optax.adam(1e-2),
        proximal_l21(
            1e-2,
            1.0,
            targets=lambda p: {"head": {"kernel": True, "bias": False}, "proj": {"kernel": False}},
        ),
    )

    @jax.jit
    def train_step(p, state):
        def loss(p):
            out = jnp.ones((1, 4)) @ p["proj"]["kernel"] @ p["head"]["kernel"] + p["head"]["bias"]
            return jnp.sum(out**2) + 1e-2 * l21_norm(p["head"]["kernel"])

        grads = jax.grad(loss)(p)
        updates, state = tx.update(grads, state, p)
        return optax.apply_updates(p, updates), state, grads

    _, _, grads = train_step(params, tx.init(params))
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))


def test_hyperparameters_can_be_injected_and_changed_between_steps():
    params, _ = params_and_grads()
    kernel = {"head": {"kernel": params["head"]["kernel"]}}
    inject = optax.inject_hyperparams(proximal_l21, static_args=("group_axis",))
    tx = inject(learning_rate=0.1, l21=0.0)
    state = tx.init(kernel)
    zeros = jax.tree.map(jnp.zeros_like, kernel)
    updates, state = jax.jit(tx.update)(zeros, state, kernel)  # lam = 0: the prox is identity
    np.testing.assert_array_equal(np.asarray(updates["head"]["kernel"]), 0.0)
    state.hyperparams["l21"] = jnp.asarray(5.0)
    updates, state = jax.jit(tx.update)(zeros, state, kernel)
    new = np.asarray(optax.apply_updates(kernel, updates)["head"]["kernel"])
    w = np.asarray(kernel["head"]["kernel"])
    assert_close(new, sh.l21_prox(w, 0.5, -2), "float32", atol_scale=1)


def test_bfloat16_leaves_are_thresholded_in_float32_and_zeros_are_exact():
    w = jnp.asarray([[3.0, 4.0], [0.5, 0.5], [0.0, 0.0]], jnp.bfloat16)
    tx = proximal_l21(1.0, 1.0)
    updates, _ = tx.update(jnp.zeros_like(w), tx.init(w), w)
    new = optax.apply_updates(w, updates)
    assert new.dtype == jnp.bfloat16
    expected = sh.l21_prox(np.asarray(w, np.float32), 1.0, -2)  # [[2.4, 3.2], [0, 0], [0, 0]]
    assert_close(np.asarray(new, np.float32), expected, "bfloat16")
    assert (np.asarray(new, np.float32)[1:] == 0).all()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: proximal_l21(0.1, -1.0), ValueError, "l21 must be >= 0"),
        (lambda: proximal_l21(0.1, "a"), TypeError, "l21 must be a real"),
        (lambda: proximal_l21(0.1, True), TypeError, "l21 must be a real"),
        (lambda: proximal_l21(jnp.ones(2), 0.1), TypeError, "learning_rate must be a real"),
        (lambda: proximal_l21(-0.1, 1.0), ValueError, "learning_rate must be >= 0"),
        (lambda: proximal_l21(0.1, float("nan")), ValueError, "l21 must be finite"),
        (lambda: proximal_l21(0.1, 1.0, group_axis=0.5), TypeError, "group_axis must be an int"),
    ],
)
def test_bad_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_update_needs_params_and_none_targets_skip_vectors():
    params, grads = params_and_grads()
    tx = proximal_l21(0.1, 1.0)
    state = tx.init(params)
    with pytest.raises(ValueError, match="needs the params"):
        tx.update(grads, state)
    # targets=None: every leaf with >= 2 dimensions, the same as choosing the two kernels
    mask = {"head": {"kernel": True, "bias": False}, "proj": {"kernel": True}}
    for make in (proximal_l21, adamw_proximal_l21):
        a, b = (
            tx.update(grads, tx.init(params), params)[0]
            for tx in (make(0.1, 1.0), make(0.1, 1.0, mask))
        )
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert not np.array_equal(
            np.asarray(a["head"]["kernel"]), np.asarray(grads["head"]["kernel"])
        )


@pytest.mark.parametrize("make", [proximal_l21, adamw_proximal_l21])
@pytest.mark.parametrize(
    ("leaf", "error", "match"),
    [
        (jnp.ones(3), ValueError, r"params\['head'\]\['bias'\] must have at least 2 dimensions"),
        (jnp.ones((3, 2), jnp.int32), TypeError, r"\['bias'\] must be floating point"),
        (jnp.ones((0, 2)), ValueError, r"params\['head'\]\['bias'\] must not be empty"),
    ],
)  # fmt: skip
def test_a_refused_leaf_is_named_by_its_path(make, leaf, error, match):
    params, grads = params_and_grads()
    params["head"]["bias"], grads["head"]["bias"] = leaf, leaf
    tx = make(0.1, 1.0, jax.tree.map(lambda _: True, params))
    with pytest.raises(error, match=match):
        tx.init(params)
    valid = jax.tree.map(lambda x: x, params)
    valid["head"]["bias"] = jnp.ones((3, 2))
    with pytest.raises(error, match=match):  # and at update, under jit
        jax.jit(tx.update)(grads, tx.init(valid), params)


def test_adamw_proximal_l21_threshold_matches_closed_form_after_one_step():
    """After one Adam step from a known gradient g: v_hat = g**2, so the preconditioner of
    group j is d_j = mean(|g| + eps) over the group and t_j = lr * lam / d_j."""
    params, grads = params_and_grads()
    scale = jnp.asarray([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])[:, None]  # rows are the groups
    grads["head"]["kernel"] = grads["head"]["kernel"] * scale
    lr, lam, eps = 0.01, 1e-2, 1e-8
    mask = {"head": {"kernel": True, "bias": False}, "proj": {"kernel": False}}
    tx = adamw_proximal_l21(lr, lam, targets=mask, eps=eps, weight_decay=0.0)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)

    g = np.asarray(grads["head"]["kernel"], np.float64)
    w1 = np.asarray(params["head"]["kernel"], np.float64) - lr * g / (np.abs(g) + eps)
    t = lr * lam / (np.abs(g) + eps).mean(axis=1)
    expected = np.concatenate([sh.l21_prox(w1[j : j + 1], t[j], -2) for j in range(6)])
    kernel = np.asarray(new["head"]["kernel"])
    assert_close(kernel, expected, "float32", atol_scale=np.abs(w1).max())
    assert (kernel[0] == 0).all()  # t_0 = 1 > its norm, where lr * lam = 1e-4 would keep it
    assert sh.group_norms(w1, -2)[0] > lr * lam
    adamw = optax.adamw(lr, eps=eps, weight_decay=0.0)
    plain = optax.apply_updates(params, adamw.update(grads, adamw.init(params), params)[0])
    for path in (("head", "bias"), ("proj", "kernel")):  # plain AdamW where the mask is False
        got, want = (np.asarray(t[path[0]][path[1]]) for t in (new, plain))
        np.testing.assert_array_equal(got, want)


def test_per_group_threshold_must_have_one_entry_per_group():
    with pytest.raises(ValueError, match="one entry per group"):
        l21_prox(jnp.ones((3, 2)), jnp.ones(2))


@pytest.mark.parametrize("make", [proximal_l21, adamw_proximal_l21])
def test_old_names_lam_and_mask_warn_and_give_identical_updates(make):
    params, grads = params_and_grads()
    mask = {"head": {"kernel": True, "bias": False}, "proj": {"kernel": False}}
    new = make(0.1, l21=0.5, targets=mask)
    with pytest.warns(DeprecationWarning) as record:
        old = make(0.1, lam=0.5, mask=mask)
    assert sorted(str(w.message).split("(")[1].split("=")[0] for w in record) == ["lam", "mask"]
    a, b = (tx.update(grads, tx.init(params), params)[0] for tx in (new, old))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(TypeError, match="both 'targets' and its deprecated name 'mask'"):
        make(0.1, 0.5, targets=mask, mask=mask)


def test_schedule_is_read_at_each_steps_count_with_some_groups_surviving():
    """Zero gradients: three steps of the chain are three prox steps with thresholds
    `lr_k * l21`, `lr_k = 0.2 * 0.5**k` (sum 0.35 l21). `l21` puts that sum between group
    norms, so some groups reach 0 and the others keep a norm that depends on every step's
    `lr_k`: a schedule read at the wrong step (e.g. always at 0: sum 0.6 l21) gives other
    weights."""
    kernel = jnp.asarray(np.random.default_rng(3).normal(size=(8, 3)).astype(np.float32))
    norms = np.sort(sh.group_norms(np.asarray(kernel, np.float64), -2))
    lam = float(norms[3] + norms[4]) / 2 / 0.35  # 4 of the 8 groups reach 0
    schedule = optax.exponential_decay(0.2, transition_steps=1, decay_rate=0.5)
    tx = optax.chain(optax.sgd(schedule), proximal_l21(schedule, lam))
    step = jax.jit(tx.update)
    params, state = kernel, tx.init(kernel)
    expected = np.asarray(kernel, np.float64)
    for k in range(3):
        updates, state = step(jnp.zeros_like(params), state, params)
        params = optax.apply_updates(params, updates)
        expected = sh.l21_prox(expected, 0.2 * 0.5**k * lam, -2)
    got_norms = sh.group_norms(np.asarray(params, np.float64), -2)
    assert (got_norms == 0).sum() == 4 and (got_norms > 0).sum() == 4
    assert_close(np.asarray(params), expected, "float32", atol_scale=np.abs(expected).max())
