"""ProjectionHead: the paper's Linear -> BN -> ReLU -> Linear with L2,1 on the last kernel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import L21, ProjectionHead, info_nce

import sparsehead as sh
from tests.conformance.keras_seam import to_numpy
from tests.tolerances import assert_close


def test_structure_and_only_last_kernel_is_regularized():
    head = ProjectionHead(hidden_dim=16, output_dim=8, l21=1e-2)
    z = head(np.random.default_rng(0).normal(size=(4, 10)).astype("float32"))
    assert tuple(z.shape) == (4, 8)
    assert tuple(head.kernel.shape) == (16, 8)
    regularized = [v for v in head.trainable_weights if v.regularizer is not None]
    assert len(regularized) == 1 and regularized[0] is head.kernel
    assert isinstance(head.kernel.regularizer, L21) and head.kernel.regularizer.l21 == 1e-2
    assert head.output_bn is None  # no BatchNorm after the regularized layer by default
    (loss,) = head.losses
    assert_close(to_numpy(loss), 1e-2 * sh.l21_norm(to_numpy(head.kernel)), "float32")


def test_zero_factor_has_no_regularizer_and_output_bn_is_opt_in():
    head = ProjectionHead(8, 4, l21=0.0, output_batchnorm=True)
    head.build((None, 5))
    assert head.losses == [] and head.output_bn is not None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"hidden_dim": 0}, ValueError),
        ({"output_dim": 2.5}, TypeError),
        ({"l21": -1.0}, ValueError),
        ({"hidden_dim": True}, TypeError),
    ],
)
def test_bad_arguments_raise_value_or_type_error(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        ProjectionHead(**kwargs)


def test_config_round_trip():
    head = ProjectionHead(12, 6, l21=3e-3, use_bias=False, name="proj")
    clone = ProjectionHead.from_config(head.get_config())
    assert clone.get_config() == head.get_config()
    assert keras.saving.get_registered_name(ProjectionHead) == "sparsehead>ProjectionHead"


class _TwoViewModel(keras.Model):
    """A minimal SimCLR: a Dense encoder, the head, InfoNCE on two noisy views."""

    def __init__(self):
        super().__init__(name="two_view")
        self.encoder = keras.layers.Dense(12, activation="relu")
        self.head = ProjectionHead(16, 8, l21=1e-2)

    def call(self, x, training=False):
        return self.head(self.encoder(x), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        noise = keras.random.normal(keras.ops.shape(x), stddev=0.1, seed=self.seed_gen)
        z1 = y_pred
        z2 = self(x + noise, training=training)
        total = info_nce(z1, z2)
        for loss in self.losses:  # the head's L2,1 penalty
            total = total + loss
        return total

    def build(self, input_shape):
        self.seed_gen = keras.random.SeedGenerator(0)
        super().build(input_shape)


def test_simclr_style_fit_runs_a_few_steps():
    keras.utils.set_random_seed(0)
    model = _TwoViewModel()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(0).normal(size=(32, 10)).astype("float32")
    history = model.fit(x, epochs=2, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(to_numpy(model.head.kernel)).all()
