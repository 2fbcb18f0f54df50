"""Two-view augmentation: the NumPy host path against the device path (`--augment device`).

At CIFAR shape (32x32x3, batch 512): images/s of

- host: `to_float` + `Augment` (draw + NumPy apply), what the data loader does by default;
- device: `Augment.draw` on the host (the same generator calls) + `augment_ops.apply_ops`
  compiled as the train step would be (a tiny `keras.Model` run with `predict_on_batch`,
  compiled the way `reference.training` compiles the step: jit on JAX, a graph on
  TensorFlow, eager on torch), from the uint8 batch to float32 views.

Each Keras backend runs in its own process; the two paths are timed alternately (A B, B A,
...) and the ratio of images/s (device over host) is taken per round.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from ._harness import Row, interleaved, timed_row
from ._workers import KERAS_BACKENDS, keras_backends, run_worker, worker_main

__all__ = ["bench_augment"]

BACKENDS = KERAS_BACKENDS
_ROOT = Path(__file__).resolve().parents[1]


def bench_augment(quick: bool) -> list[Row]:
    args = ["--quick"] if quick else []
    return [r for b in keras_backends() for r in run_worker("benchmarks.augment", b, args,
            group="augment", name="device augmentation", sense=">=", limit=1.0)]  # fmt: skip


# ------------------------------------------------------------------ worker (one backend)


def _device_fn():
    """`uint8 batch + params -> float32 views`, compiled as `training._fit` compiles the step."""
    import keras

    from reference.augment_ops import apply_ops
    from reference.training import _jit

    class Views(keras.Model):
        def call(self, batch):
            return apply_ops(batch["images"], batch)

    model = Views()
    model.compile(jit_compile=_jit({}))
    return model.predict_on_batch


def _worker(backend: str, quick: bool) -> list[dict]:
    import numpy as np

    import reference  # noqa: F401  (before Keras: the reference run's environment defaults)
    from reference.augment import Augment, to_float

    batch, reps = (64, 3) if quick else (512, 15)
    shape = (32, 32, 3)
    images = np.random.default_rng(0).integers(0, 256, (batch, *shape), dtype=np.uint8)
    augment = Augment(crop_scale=(0.2, 1.0))
    device = _device_fn()

    def host_run():
        return augment(to_float(images), np.random.default_rng(1))

    def device_run():
        params = augment.draw(*images.shape, np.random.default_rng(1))
        return device({"images": images, **params.as_dict()})

    np.testing.assert_allclose(device_run(), host_run(), atol=1e-5)  # the same views
    td, th = interleaved(device_run, host_run, reps, warmup=2)
    ratios = [h / d for d, h in zip(td, th, strict=True)]  # images/s device over host
    row = timed_row("augment", f"augmentation images/s [Keras {backend}, device], CIFAR 32x32x3, "
                    f"batch {batch}", "NumPy host path", ratios, td, th, sense=">=", limit=1.0,
                    note=f"device {batch / statistics.median(td):.0f} img/s, host "
                    f"{batch / statistics.median(th):.0f} img/s")  # fmt: skip
    return [vars(row)]


def main(argv=None) -> int:
    return worker_main(_worker, argv)


if __name__ == "__main__":
    sys.exit(main())
