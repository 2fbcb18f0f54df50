"""Run as a script under some KERAS_BACKEND: build a model with L21 and ProjectionHead, save it
to the `.keras` file named by argv[1], and print its regularization losses as JSON."""

from __future__ import annotations

import json
import sys

import keras
import numpy as np
from sparsehead.adapters.keras import L21, ProjectionHead


def build() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    h = keras.layers.Dense(10, kernel_regularizer=L21(3e-2), name="dense")(inputs)
    z = ProjectionHead(12, 5, l21=7e-3, name="head")(h)
    return keras.Model(inputs, z)


if __name__ == "__main__":
    model = build()
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:  # deterministic weights, one group exactly zero
        w = rng.normal(size=v.shape).astype("float32")
        if len(v.shape) == 2:
            w[1] = 0
        v.assign(w)
    model.save(sys.argv[1])
    losses = [float(keras.ops.convert_to_numpy(x)) for x in model.losses]
    print(json.dumps({"backend": keras.backend.backend(), "losses": losses}))
