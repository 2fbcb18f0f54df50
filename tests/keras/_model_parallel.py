"""Run as a script with KERAS_BACKEND=jax and four host devices: train a small head with `L21`
(penalty), `ProximalL21` (prox, Adam-aware), `GroupHoyer` (hoyer), `GroupBudget` (budget) and
`AdaptiveL21` (adaptive λ), each watched by `SparsityMonitor`, on one device and under
`keras.distribution.ModelParallel` with the head kernel sharded over the four devices by rows
and by columns; print everything as JSON."""

from __future__ import annotations

import json
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import jax
import keras
import numpy as np
from sparsehead.adapters.keras import (
    L21,
    AdaptiveL21,
    GroupBudget,
    GroupHoyer,
    ProximalL21,
    SparsityMonitor,
)

LAYOUTS = {"rows": ("model", None), "columns": (None, "model")}  # head kernel (in=8, out=4)
MODES = ("penalty", "prox", "hoyer", "budget", "adaptive")
REGULARIZERS = {
    "penalty": lambda: L21(5e-2),
    "hoyer": lambda: GroupHoyer(5e-2),
    "adaptive": lambda: L21(1e-3),
}


def train(mode: str) -> dict:
    keras.utils.set_random_seed(0)
    reg = REGULARIZERS[mode]() if mode in REGULARIZERS else None
    head = keras.layers.Dense(4, kernel_regularizer=reg, name="head")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), head])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")
    callbacks = [SparsityMonitor(head)]
    if mode == "prox":
        callbacks.append(ProximalL21(5e-2, head))
    if mode == "budget":  # 8 groups down to 3 over steps 2..8 of the 12
        callbacks.append(GroupBudget(3, head, begin_step=2, end_step=8))
    if mode == "adaptive":  # λ updated every 2 steps, a change that depends on the kernel
        callbacks.append(AdaptiveL21(0.25, head, l21=1e-3, dual_lr=1.0, every=2))
    history = model.fit(
        x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
    ).history
    sharding = head.kernel.value.sharding
    return {
        "kernel": keras.ops.convert_to_numpy(head.kernel).tolist(),
        "history": {k: [float(v) for v in vs] for k, vs in history.items()},
        "devices": len(sharding.device_set),
        "spec": str(getattr(sharding, "spec", None)),
    }


if __name__ == "__main__":
    result = {"one": {m: train(m) for m in MODES}}
    cpus = jax.devices("cpu")
    mesh = keras.distribution.DeviceMesh((1, len(cpus)), ("batch", "model"), devices=cpus)
    for name, axes in LAYOUTS.items():
        layout_map = keras.distribution.LayoutMap(mesh)
        layout_map[".*head.*kernel"] = axes
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
        )
        result[name] = {m: train(m) for m in MODES}
    keras.distribution.set_distribution(None)
    print(json.dumps({"n_devices": len(cpus), **result}))
