"""The three self-supervised objectives as Keras models that train with `fit`.

Every model is called on a batch that holds both views, `x = [x^1; x^2]` of shape
`(2N, H, W, C)` (so BatchNorm sees all 2N images, as in SimCLR), and overrides
`compute_loss` to split the result into the two views. `fit` then adds the head's `L21`
penalty (`self.losses`), so the objective is Eq. 12: `loss + lambda * ||W||_{2,1}`.

- `SimCLR`: InfoNCE (Eq. 2) on `z = h(f(x))` with temperature `tau`.
- `BYOL`: online `q(h(f(x)))` regresses the target network's `h'(f'(x))` of the other view
  (`2 - 2 cos`, symmetrised); the target is an exponential moving average of the online
  network, updated inside the training call so that it works on every backend (on JAX the
  update flows out of the stateless call like BatchNorm's moving statistics).
- `BarlowTwins`: cross-correlation loss on `z`.

With `--augment device` the batch is instead a dict of uint8 images and the two views' drawn
augmentation parameters; `call` makes `[x^1; x^2]` from it first (`augment_ops`), inside the
compiled train step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
from keras import ops
from sparsehead.adapters.keras import barlow_twins_loss, byol_loss, info_nce

from .augment_ops import two_views_ops
from .names import METHODS

__all__ = ["BYOL", "METHODS", "BarlowTwins", "SimCLR", "cosine_tau"]


def _views(x):
    """`[x^1; x^2]`: `x` itself, or made on the device from the uint8 images and the drawn
    parameters that `TwoViews` yields with `--augment device` (a dict)."""
    return two_views_ops(x) if isinstance(x, Mapping) else x


def _halves(z):
    n = ops.shape(z)[0] // 2
    return z[:n], z[n:]


class _TwoView(keras.Model):
    """Backbone `f` then head `h`; `encode` gives representation and embedding."""

    def __init__(self, backbone: keras.Model, head: keras.layers.Layer, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone
        self.head = head

    def call(self, x, training=False):
        x = _views(x)
        return self.head(self.backbone(x, training=training), training=training)

    def _penalty(self):
        total = 0.0
        for loss in self.losses:  # regularization losses, i.e. lambda ||W||_{2,1}
            total = total + loss
        return total


class SimCLR(_TwoView):
    """SimCLR (Chen et al., 2020) with InfoNCE at temperature `temperature` (Eq. 2)."""

    def __init__(self, backbone, head, temperature: float = 0.5, **kwargs):
        super().__init__(backbone, head, **kwargs)
        self.temperature = float(temperature)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z1, z2 = _halves(y_pred)
        return info_nce(z1, z2, self.temperature) + self._penalty()


class BarlowTwins(_TwoView):
    """Barlow Twins (Zbontar et al., 2021): on-diagonal `(1 - C_ii)^2` + `lambda_offdiag C_ij^2`."""

    def __init__(self, backbone, head, lambda_offdiag: float = 5e-3, **kwargs):
        super().__init__(backbone, head, **kwargs)
        self.lambda_offdiag = float(lambda_offdiag)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z1, z2 = _halves(y_pred)
        return barlow_twins_loss(z1, z2, self.lambda_offdiag) + self._penalty()


def cosine_tau(step, total_steps, tau_base: float):
    """BYOL's target decay at step `k` of `K` (Grill et al., 2020, Sec. 3.2):

    `tau_k = 1 - (1 - tau_base) * (cos(pi k / K) + 1) / 2`, from `tau_base` at `k = 0` to 1 at
    `k = K` (and 1 after). `step` may be a backend tensor (the training step counter).
    """
    k = ops.minimum(ops.cast(step, "float32"), float(total_steps))
    return 1.0 - (1.0 - tau_base) * (ops.cos(math.pi * k / float(total_steps)) + 1.0) / 2.0


class BYOL(_TwoView):
    """BYOL (Grill et al., 2020): online `f, h, q`; target `f', h'` = EMA of `f, h`.

    `target_backbone` and `target_head` must be structural copies of `backbone` and `head`
    (`keras.models.clone_model`, or built by the same function); their weights are set to the
    online ones at build; then, once per training step, the target's parameters (the
    weights the optimizer trains in the online network) follow `t <- tau_k t + (1 - tau_k) o`,
    with `tau_k = tau` (`total_steps=None`) or BYOL's cosine schedule from `tau` to 1 over
    `total_steps` steps (`cosine_tau`).

    As in BYOL's implementation (and the W-MSE code base), the target network runs in training
    mode: its BatchNorm layers normalise with the batch statistics (a frozen Keras 3
    BatchNormalization would use its moving statistics whatever `training` says; with those
    near their initial values BYOL did not learn here, see docs/reproducing.md). So the target
    layers stay trainable and only their variables are made non-trainable: the optimizer never
    sees them, and the EMA is their only update. The target's BatchNorm moving statistics,
    never used, are left to BatchNorm.
    """

    def __init__(
        self,
        backbone,
        head,
        predictor,
        target_backbone,
        target_head,
        tau: float = 0.99,
        total_steps: int | None = None,
        **kwargs,
    ):
        super().__init__(backbone, head, **kwargs)
        if not 0 <= tau < 1:
            raise ValueError(f"tau must be in [0, 1); got {tau}")
        if total_steps is not None and (isinstance(total_steps, bool) or int(total_steps) < 1):
            raise ValueError(f"total_steps must be None or a positive int; got {total_steps!r}")
        self.predictor = predictor
        self.target_backbone = target_backbone
        self.target_head = target_head
        self.tau = float(tau)
        self.total_steps = None if total_steps is None else int(total_steps)

    def build(self, input_shape):
        for net in (self.backbone, self.target_backbone):
            if not net.built:
                net.build(input_shape)
        rep_shape = (input_shape[0], self.backbone.output_shape[-1])
        for layer in (self.head, self.target_head):
            if not layer.built:
                layer.build(rep_shape)
        self.predictor.build((input_shape[0], self.head.compute_output_shape(rep_shape)[-1]))
        for v in self.target_backbone.weights + self.target_head.weights:
            v.trainable = False  # updated by the EMA only (the layers stay in training mode)
        self.step = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="ema_step", dtype="float32"
        )
        self.copy_to_target()
        self.built = True

    def _pairs(self):
        online = self.backbone.weights + self.head.weights
        target = self.target_backbone.weights + self.target_head.weights
        if [tuple(v.shape) for v in online] != [tuple(v.shape) for v in target]:
            raise ValueError("the target network must be a structural copy of the online one")
        return zip(target, online, strict=True)

    def copy_to_target(self):
        """Set the target weights to the online ones (at initialisation)."""
        for t, o in self._pairs():
            t.assign(ops.copy(o))  # a copy: JAX would share (and donate) one buffer

    def current_tau(self):
        """`tau_k` at the current step (a constant `tau` without a schedule)."""
        if self.total_steps is None:
            return self.tau
        return cosine_tau(self.step, self.total_steps, self.tau)

    def call(self, x, training=False):
        x = _views(x)
        z = super().call(x, training=training)
        if not training:
            return z
        p = self.predictor(z, training=training)
        # Training mode: the target's BatchNorm uses the batch statistics (BYOL's own code).
        zt = self.target_head(self.target_backbone(x, training=True), training=True)
        tau = self.current_tau()
        for t, o in self._pairs():
            if o.trainable:  # parameters; not BatchNorm's moving statistics
                t.assign(tau * t + (1.0 - tau) * ops.stop_gradient(o))
        self.step.assign(self.step + 1.0)
        return {"p": p, "zt": ops.stop_gradient(zt)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        p1, p2 = _halves(y_pred["p"])
        t1, t2 = _halves(y_pred["zt"])
        return byol_loss(p1, t2) + byol_loss(p2, t1) + self._penalty()


def mlp_predictor(hidden_dim: int, output_dim: int) -> keras.Sequential:
    """BYOL's predictor `q`: Linear -> BN -> ReLU -> Linear (no SparseHead on it)."""
    return keras.Sequential(
        [
            keras.layers.Dense(hidden_dim, use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(output_dim),
        ],
        name="predictor",
    )
