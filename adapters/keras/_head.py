"""The paper's projection head (Sec. 7.1): Linear -> BN -> ReLU -> Linear, L2,1 on the last."""

from __future__ import annotations

import keras

from sparsehead._validation import check_int, check_nonnegative

from ._penalty import L21

__all__ = ["ProjectionHead"]


@keras.saving.register_keras_serializable(package="sparsehead")
class ProjectionHead(keras.layers.Layer):
    """SparseHead's projection head `h(r) = W2 ReLU(BN(W1 r + b1)) (+ b2)`.

    Two fully connected layers with BatchNorm and ReLU between them, as in the paper's
    experiments (Sec. 7.1), and `L21(l21)` on the last kernel `W2` of shape
    `(hidden_dim, output_dim)`: a group is a row of `W2`, i.e. one hidden feature, and a zero
    group switches that feature off for the loss (the contrastive loss then lives in a
    subspace, Sec. 6).

    Caveats (see docs/keras.md):

    - no BatchNorm follows the regularized layer by default (`output_batchnorm=False`): with
      one, `BN(c W2 h) = BN(W2 h)` and the penalty is paid by shrinking `W2` as a whole;
    - InfoNCE and BYOL use cosine similarity, which is blind to a uniform rescaling of `W2`
      too; the penalty then mostly shrinks the layer. For exact zeros use `ProximalL21` on
      `head.kernel`, and read `SparsityMonitor`'s scale-free measures.

    Args:
        hidden_dim: width of the hidden layer (the number of groups of `W2`).
        output_dim: embedding dimension `m`.
        l21: the L2,1 factor `lambda` on `W2` (the paper: 1e-4); 0 disables the regularizer.
        use_bias: whether the last layer has a bias.
        output_batchnorm: add a BatchNorm after the last layer (not recommended; see above).
        **kwargs: passed to `keras.layers.Layer` (name, dtype, ...).

    Input shape `(batch, d)`; output shape `(batch, output_dim)`.
    """

    def __init__(
        self,
        hidden_dim: int = 512,
        output_dim: int = 128,
        l21: float = 1e-4,
        use_bias: bool = True,
        output_batchnorm: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", low=1)
        self.output_dim = check_int(output_dim, "output_dim", low=1)
        self.l21 = check_nonnegative(l21, "l21")
        self.use_bias = bool(use_bias)
        self.output_batchnorm = bool(output_batchnorm)
        self.hidden = keras.layers.Dense(self.hidden_dim, use_bias=False, name="hidden")
        self.batchnorm = keras.layers.BatchNormalization(name="batchnorm")
        self.relu = keras.layers.ReLU(name="relu")
        self.output_layer = keras.layers.Dense(
            self.output_dim,
            use_bias=self.use_bias,
            kernel_regularizer=L21(self.l21) if self.l21 > 0 else None,
            name="output",
        )
        self.output_bn = (
            keras.layers.BatchNormalization(name="output_batchnorm")
            if self.output_batchnorm
            else None
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        hidden_shape = (*tuple(input_shape)[:-1], self.hidden_dim)
        self.batchnorm.build(hidden_shape)
        self.output_layer.build(hidden_shape)
        if self.output_bn is not None:
            self.output_bn.build((*tuple(input_shape)[:-1], self.output_dim))

    def call(self, inputs, training=None):
        h = self.relu(self.batchnorm(self.hidden(inputs), training=training))
        z = self.output_layer(h)
        if self.output_bn is not None:
            z = self.output_bn(z, training=training)
        return z

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.output_dim)

    @property
    def kernel(self):
        """The regularized kernel `W2`, shape `(hidden_dim, output_dim)`, groups on axis -2."""
        return self.output_layer.kernel

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            output_dim=self.output_dim,
            l21=self.l21,
            use_bias=self.use_bias,
            output_batchnorm=self.output_batchnorm,
        )
        return config
