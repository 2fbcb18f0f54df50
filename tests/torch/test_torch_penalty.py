"""`l21_norm` and `l21_regularization`: zero groups, overflow, selection, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sparsehead.adapters.torch import (
    l21_norm,
    l21_prox,
    l21_regularization,
    select_parameters,
)
from torch import nn

import sparsehead as sh
from tests.tolerances import assert_close


def head() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))


def test_naive_norm_gives_nan_where_penalty_gives_zero():
    """Guards the conformance suite: the plain formula's gradient at a zero group is NaN, so a
    finite gradient is a property of l21_norm, not of the input."""
    w = torch.zeros(3, 4)
    w[:, 0] = torch.tensor([1.0, 2.0, 2.0])
    naive = w.clone().requires_grad_()
    naive.square().sum(0).sqrt().sum().backward()
    assert naive.grad[:, 1:].isnan().all()
    safe = w.clone().requires_grad_()
    l21_norm(safe).backward()
    torch.testing.assert_close(safe.grad[:, 0], torch.tensor([1.0, 2.0, 2.0]) / 3)
    assert (safe.grad[:, 1:] == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_large_and_tiny_weights_neither_overflow_nor_underflow(dtype):
    w = torch.full((5, 3), 1e30).to(getattr(torch, dtype))  # its square overflows float32
    w[:, 1] = 1e-30  # its square underflows float32
    w[:, 2] = 0
    w.requires_grad_()
    value = l21_norm(w)
    value.backward()
    ref = np.asarray(w.detach().float().numpy())
    assert_close(value.item(), sh.l21_norm(ref, -1), "float32")
    assert torch.isfinite(w.grad).all()
    assert_close(w.grad.float().numpy(), sh.l21_subgradient(ref, -1), dtype, atol_scale=1)


def test_float16_weights_whose_squares_overflow_float16():
    w = torch.full((8, 4), 300.0, dtype=torch.float16)  # 8 * 300**2 = 7.2e5 > 65504
    w[:, 1] = 0
    value = l21_norm(w)
    assert value.dtype == torch.float32
    assert_close(value.item(), sh.l21_norm(w.float().numpy(), -1), "float32")


def test_double_backward_is_finite():
    """Pure torch ops: second derivatives (e.g. for gradient penalties) work, NaN-free."""
    w = torch.tensor([[3.0, 0.0], [4.0, 0.0]], requires_grad=True)
    (g,) = torch.autograd.grad(l21_norm(w), w, create_graph=True)
    (h,) = torch.autograd.grad((g * torch.tensor([[1.0, 1.0], [0.0, 0.0]])).sum(), w)
    # d/dw of sum_i w_i0 / ||w_0|| over row 0 only: (e_0 - w0 w0_0 / ||w0||^2) / ||w0||
    expected = torch.tensor([[(1 - 9 / 25) / 5, 0.0], [(-12 / 25) / 5, 0.0]])
    torch.testing.assert_close(h, expected)


def test_select_parameters_by_name_glob_module_and_tensor():
    model = head()
    names = [n for n, _ in select_parameters(model, ["3", "*.weight", model[0], model[3].weight])]
    assert names == ["3.weight", "0.weight"]  # the glob skips BatchNorm's 1-D weight
    assert [n for n, _ in select_parameters(model, "3.weight")] == ["3.weight"]
    # the same parameter named twice is counted once
    assert len(select_parameters(model, ["3", "3.weight", model[3]])) == 1


def docs_model() -> nn.Module:
    """The model of docs/torch.md."""
    torch.manual_seed(0)
    return nn.ModuleDict(
        {
            "backbone": nn.Sequential(nn.Linear(20, 32), nn.ReLU()),
            "head": nn.Sequential(
                nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 8)
            ),
        }
    )


def test_glob_skips_one_dimensional_parameters_as_on_the_docs_model():
    """docs/torch.md's `"head.*.weight"` also matches the BatchNorm weight (1-D): skipped."""
    model = docs_model()
    value = l21_regularization(model, 1e-4, "head.*.weight")
    expected = 1e-4 * sum(
        sh.l21_norm(model["head"][i].weight.detach().numpy(), group_axis=-1) for i in (0, 3)
    )
    assert_close(value.item(), expected, "float32")


def test_group_axis_is_inferred_from_the_module_type_and_explicit_overrides():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten(), nn.Linear(5 * 2 * 2, 4))
    conv, lin = (model[i].weight.detach().numpy() for i in (0, 2))
    # Conv2d (out, in, kh, kw): groups are the 3 input channels, not the kernel width
    assert_close(l21_regularization(model, 1.0, "0").item(), sh.l21_norm(conv, 1), "float32")
    assert_close(l21_regularization(model, 1.0, model[0]).item(), sh.l21_norm(conv, 1), "float32")
    assert_close(l21_regularization(model, 1.0, "2").item(), sh.l21_norm(lin, -1), "float32")
    both = l21_regularization(model, 1.0, "*.weight").item()
    assert_close(both, sh.l21_norm(conv, 1) + sh.l21_norm(lin, -1), "float32")
    explicit = l21_regularization(model, 1.0, "0", group_axis=-1).item()
    assert_close(explicit, sh.l21_norm(conv, -1), "float32")


def test_old_keyword_lam_warns_and_gives_the_same_value():
    model = head()
    with pytest.warns(DeprecationWarning, match="lam"):
        old = l21_regularization(model, lam=0.3, targets="3")
    assert old.item() == l21_regularization(model, l21=0.3, targets="3").item()
    with pytest.raises(TypeError, match="both 'l21' and its deprecated name 'lam'"):
        l21_regularization(model, 0.3, "3", lam=0.3)


def test_regularization_is_lam_times_sum_of_norms_and_unwraps_compile():
    model = head()
    value = l21_regularization(torch.compile(model), 1e-2, ["3", "0"])
    expected = 1e-2 * sum(
        sh.l21_norm(model[i].weight.detach().numpy(), group_axis=-1) for i in (0, 3)
    )
    assert_close(value.item(), expected, "float32")
    value.backward()
    grad = model[3].weight.grad.numpy()
    assert_close(grad, 1e-2 * sh.l21_subgradient(model[3].weight.detach().numpy(), -1), "float32")
    assert model[1].weight.grad is None  # BatchNorm was not chosen


def test_conv_weight_groups_are_input_channels():
    conv = nn.Conv2d(3, 5, 2)
    w = conv.weight.detach().numpy()  # (out, in, kh, kw)
    value = l21_regularization(conv, 1.0, conv)
    assert_close(value.item(), sh.l21_norm(w, group_axis=1), "float32")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: l21_norm(np.ones((2, 2))), TypeError, "w must be a torch.Tensor"),
        (lambda: l21_norm(torch.ones(2, 2, dtype=torch.int64)), TypeError, "floating"),
        (lambda: l21_norm(torch.ones(3)), ValueError, "at least 2 dimensions"),
        (lambda: l21_norm(torch.ones(0, 3)), ValueError, "must not be empty"),
        (lambda: l21_norm(torch.ones(2, 2), 2), ValueError, "group_axis=2 is out of range"),
        (lambda: l21_norm(torch.ones(2, 2), 1.0), TypeError, "group_axis must be an int"),
        (lambda: l21_prox(torch.ones(2, 2), -0.1), ValueError, "threshold must be >= 0"),
        (lambda: l21_prox(torch.ones(2, 2), "a"), TypeError, "threshold must be a real"),
        (lambda: l21_prox(torch.ones(2, 3), torch.ones(2)), ValueError, "one entry per group"),
        (lambda: l21_regularization(head(), -1.0, "3"), ValueError, "l21 must be >= 0"),
        (lambda: l21_regularization(head(), 1.0, "nope"), ValueError, "'nope' names no"),
        (lambda: l21_regularization(head(), 1.0, nn.Linear(2, 2)), ValueError, "not in the model"),
        (lambda: l21_regularization(head(), 1.0, [3]), TypeError, "targets must hold"),
        (lambda: l21_regularization(head(), 1.0, []), ValueError, "at least one"),
        (lambda: l21_regularization(head(), 1.0, "2"), ValueError, "has no `weight`"),
        (lambda: l21_regularization(head(), 1.0, 5), TypeError, "targets must be .* got int"),
        (lambda: l21_regularization(head(), 1.0, "*.bias"), ValueError, "only 1-D .*0.bias"),
        (lambda: l21_regularization(head(), 1.0, "1.weight"), ValueError, "'1.weight': weight"),
        (lambda: l21_regularization(head(), 1.0, "3", group_axis=2), ValueError, "'3.weight'"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
