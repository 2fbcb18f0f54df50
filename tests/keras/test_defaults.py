"""The default `group_axis` of the Keras building blocks is -2: the rows of a Dense kernel
`(in, out)`, one group per input feature (design.md's table)."""

from __future__ import annotations

import numpy as np
from sparsehead.adapters.keras import group_norms

import sparsehead as sh
from tests.conformance.keras_seam import tensor, to_numpy
from tests.tolerances import assert_close


def test_group_norms_default_is_the_rows():
    w = np.random.default_rng(0).normal(size=(5, 3))  # (in, out), non-square
    got = to_numpy(group_norms(tensor(w, "float32")))
    assert got.shape == (5,)  # one norm per input feature, not per output column (3,)
    assert_close(got, sh.group_norms(w, group_axis=-2), "float32")
