"""Run as a script with KERAS_BACKEND=jax and two host devices: train the same model with L21
on one device and under `keras.distribution.DataParallel` on two; print both as JSON."""

from __future__ import annotations

import json
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

import jax
import keras
import numpy as np
from sparsehead.adapters.keras import L21

import sparsehead as sh


def train() -> dict:
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(4, kernel_regularizer=L21(5e-2), name="dense")
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 8)).astype("float32"), rng.normal(size=(32, 4)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    (reg,) = model.losses
    devices = layer.kernel.value.sharding.device_set
    return {
        "reg_loss": float(keras.ops.convert_to_numpy(reg)),
        "core": 5e-2 * sh.l21_norm(kernel),
        "kernel": kernel.tolist(),
        "devices": len(devices),
    }


if __name__ == "__main__":
    one = train()
    cpus = jax.devices("cpu")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=cpus))
    two = train()
    print(json.dumps({"n_devices": len(cpus), "one": one, "two": two}))
