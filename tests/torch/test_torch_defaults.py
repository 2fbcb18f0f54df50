"""The default `group_axis` of the torch building blocks is -1: the columns of
`nn.Linear.weight` `(out, in)`, one group per input feature (design.md's table)."""

from __future__ import annotations

import numpy as np
import torch
from sparsehead.adapters.torch import group_norms, l21_prox_

import sparsehead as sh
from tests.tolerances import assert_close


def non_square() -> np.ndarray:
    """A `(out, in) = (5, 3)` weight: the two axes give norms of different lengths and values."""
    return np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)


def test_group_norms_default_is_the_columns():
    w = non_square()
    got = group_norms(torch.from_numpy(w)).numpy()
    assert got.shape == (3,)  # one norm per input feature, not per output row (5,)
    assert_close(got, sh.group_norms(w.astype(np.float64), group_axis=-1), "float32")


def test_in_place_prox_default_is_the_columns():
    w = non_square()
    norms = sh.group_norms(w.astype(np.float64), group_axis=-1)
    t = float(np.sort(norms)[:2].mean())  # between the two smallest column norms
    tensor = torch.from_numpy(w.copy())
    l21_prox_(tensor, t)
    expected = sh.l21_prox(w.astype(np.float64), t, group_axis=-1)
    assert_close(tensor.numpy(), expected, "float32", atol_scale=1)
    assert (sh.group_norms(tensor.numpy().astype(np.float64), group_axis=-1) == 0).sum() == 1
