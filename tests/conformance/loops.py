"""The loop-driven part of the seam: each framework's budget and adaptive-λ entries driven
through that framework's real training loop, observed after every optimizer step.

`budget_counts(...)` returns the number of non-zero groups of an 8-group weight after each
optimizer step, under a loss whose gradient is the same non-zero constant on every entry (so
a group zeroed by a projection is non-zero again after the next plain step: the counts show
exactly which steps projected, and onto how many groups). Keras runs its steps as two `fit`
calls of 5 and 7 steps (the second continues the step count).

`adaptive_trace(...)` returns, after each optimizer step, `λ` as the adapter holds it and the
weight as the adapter reads it (a penalty-only loss: the groups shrink at the rate `λ`).
`rule` are `AdaptiveL21`'s controller keywords (`controller`, `kp`, `nu`, `smoothing`); with
`restart=True` the steps after the fifth are taken by a new `AdaptiveL21` loaded from the
first one's `state_dict()` (a checkpoint), instead of by the same object.
"""

from __future__ import annotations

import numpy as np

from . import keras_seam as kseam

GROUPS, OUT = 8, 3
# row norms spread over decades, two rows exactly zero: every measure has something to read
_NORMS = np.array([1.0, 0.6, 0.3, 0.1, 0.02, 0.004, 0.0, 0.0])


def initial_kernel() -> np.ndarray:
    """`(GROUPS, OUT)`: group j (a row) of norm `_NORMS[j]`."""
    rows = np.random.default_rng(0).normal(size=(GROUPS, OUT))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows * _NORMS[:, None]).astype(np.float32)


def nonzero_groups(kernel: np.ndarray, group_axis: int) -> int:
    x = np.moveaxis(np.asarray(kernel), group_axis, 0)
    return int(np.count_nonzero(np.abs(x.reshape(x.shape[0], -1)).sum(axis=1)))


# ---------------------------------------------------------------- Keras


def _keras_model(regularizer=None):
    import keras

    layer = keras.layers.Dense(OUT, use_bias=False, kernel_regularizer=regularizer)
    model = keras.Sequential([keras.Input((GROUPS,)), layer])
    layer.kernel.assign(initial_kernel())
    return keras, layer, model


def _keras_recorder(keras, layer, read):
    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_train_batch_end(self, batch, logs=None):
            _ = self.model  # JAX: sync the state into the variables
            self.seen.append(read())

    return Recorder()


def _two_fits(model, steps: int, callbacks) -> None:
    """`steps` optimizer steps as two `fit` calls of 5 and `steps - 5` batches: the second
    continues the count, and 5 is no multiple of any period tested."""
    for n in (5, steps - 5):
        x, y = np.ones((4 * n, GROUPS), "float32"), np.zeros((4 * n, OUT), "float32")
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=callbacks)


def keras_budget_counts(keep, begin_step, end_step, every, steps: int) -> list[int]:
    from sparsehead.adapters.keras import GroupBudget

    keras, layer, model = _keras_model()
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=lambda y, p: keras.ops.mean(p))
    budget = GroupBudget(keep, [layer], begin_step=begin_step, end_step=end_step, every=every)
    record = _keras_recorder(keras, layer, lambda: nonzero_groups(kseam.to_numpy(layer.kernel), -2))
    _two_fits(model, steps, [budget, record])
    return record.seen


def keras_adaptive_trace(target, measure, l21, every, steps: int, restart=False, **rule):
    from sparsehead.adapters.keras import L21, AdaptiveL21

    keras, layer, model = _keras_model(L21(l21))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=lambda y, p: 0.0 * keras.ops.mean(p))

    def make():
        return AdaptiveL21(
            target, [layer], measure=measure, l21=l21, dual_lr=1.0, every=every, **rule
        )

    held = [make()]
    record = _keras_recorder(
        keras,
        layer,
        lambda: (held[-1].value(), kseam.to_numpy(layer.kernel).astype(np.float64)),
    )
    if not restart:
        _two_fits(model, steps, [held[0], record])
    else:  # the two fits of _two_fits, the second by a new callback from the checkpoint
        for n, fresh in ((5, False), (steps - 5, True)):
            if fresh:
                held.append(make())
                held[-1].load_state_dict(held[0].state_dict())
            x, y = np.ones((4 * n, GROUPS), "float32"), np.zeros((4 * n, OUT), "float32")
            model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[held[-1], record])
    return [s[0] for s in record.seen], [s[1] for s in record.seen], -2


# ---------------------------------------------------------------- PyTorch


def _torch_model():
    import torch

    model = torch.nn.Linear(GROUPS, OUT, bias=False)  # weight (out, in): groups are columns
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(initial_kernel().T.copy()))
    return torch, model


def torch_budget_counts(keep, begin_step, end_step, every, steps: int) -> list[int]:
    from sparsehead.adapters.torch import GroupBudget

    torch, model = _torch_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    GroupBudget(opt, keep, [model], begin_step=begin_step, end_step=end_step, every=every).attach()
    counts = []
    for _ in range(steps):
        opt.zero_grad()
        model(torch.ones(4, GROUPS)).mean().backward()
        opt.step()
        counts.append(nonzero_groups(model.weight.detach().numpy(), -1))
    return counts


def torch_adaptive_trace(target, measure, l21, every, steps: int, restart=False, **rule):
    from sparsehead.adapters.torch import AdaptiveL21

    torch, model = _torch_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def make():
        return AdaptiveL21(
            target, [model], measure=measure, l21=l21, dual_lr=1.0, every=every, **rule
        )

    adaptive = make()
    handle = adaptive.attach(opt)
    lams, weights = [], []
    for t in range(steps):
        if restart and t == 5:  # a checkpoint after step 5, loaded into a new object
            state = adaptive.state_dict()
            handle.remove()
            adaptive = make()
            adaptive.load_state_dict(state)
            handle = adaptive.attach(opt)
        opt.zero_grad()
        adaptive.penalty().backward()
        opt.step()
        lams.append(adaptive.l21)
        weights.append(model.weight.detach().numpy().astype(np.float64))
    return lams, weights, -1


# ---------------------------------------------------------------- optax


def optax_budget_counts(keep, begin_step, end_step, every, steps: int) -> list[int]:
    import jax
    import jax.numpy as jnp
    import optax
    from sparsehead.adapters.optax import group_budget

    params = {"kernel": jnp.asarray(initial_kernel()), "bias": jnp.zeros(OUT)}
    tx = optax.chain(
        optax.sgd(0.01),
        group_budget(keep, begin_step=begin_step, end_step=end_step, every=every),
    )
    state = tx.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.tree.map(lambda p: jnp.full_like(p, 1.0 / p.size), params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    counts = []
    for _ in range(steps):
        params, state = step(params, state)
        counts.append(nonzero_groups(np.asarray(params["kernel"]), -2))
    return counts


BUDGET = {
    "keras": keras_budget_counts,
    "torch": torch_budget_counts,
    "optax": optax_budget_counts,
}
ADAPTIVE = {"keras": keras_adaptive_trace, "torch": torch_adaptive_trace}
