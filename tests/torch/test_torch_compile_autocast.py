"""The penalty under `torch.compile` (inductor) and under CPU autocast to bfloat16."""

from __future__ import annotations

import numpy as np
import torch
from sparsehead.adapters.torch import ProximalL21, l21_norm, l21_regularization
from torch import nn

import sparsehead as sh
from tests.tolerances import assert_close


def model_with_zero_groups() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4))
    with torch.no_grad():
        model[2].weight[:, [1, 5]] = 0  # two exactly-zero groups (columns)
    return model


def test_compiled_loss_matches_eager_and_stays_finite_at_zero_groups():
    model = model_with_zero_groups()
    x = torch.randn(6, 5)

    def loss_fn(x):
        return model(x).square().mean() + l21_regularization(model, 0.1, "2.weight")

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters()]

    eager_loss, eager = loss_and_grads(loss_fn)
    compiled_loss, compiled = loss_and_grads(torch.compile(loss_fn, fullgraph=True))
    assert_close(compiled_loss, eager_loss, "float32")
    for a, b in zip(compiled, eager, strict=True):
        assert torch.isfinite(a).all()
        assert_close(a.numpy(), b.numpy(), "float32", atol_scale=float(b.abs().max()))
    # the penalty's share of the gradient on the zero groups is exactly 0: with the data term
    # alone the gradient is the same there
    model.zero_grad()
    model(x).square().mean().backward()
    torch.testing.assert_close(compiled[2][:, [1, 5]], model[2].weight.grad[:, [1, 5]])


def test_autocast_bfloat16_keeps_penalty_in_float32():
    model = model_with_zero_groups()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    prox = ProximalL21(opt, 0.5, model[2])
    x = torch.randn(6, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        penalty = l21_regularization(model, 0.1, "2")
    assert out.dtype == torch.bfloat16 and penalty.dtype == torch.float32
    w = model[2].weight.detach().numpy()
    assert_close(penalty.item(), 0.1 * sh.l21_norm(w, -1), "float32")
    (out.float().square().mean() + penalty).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    prox.step()
    assert prox.zero_groups()[0] >= 2  # zero groups can only stay at zero or grow

    half = nn.Linear(8, 4).to(torch.bfloat16)  # weights stored in bfloat16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = l21_norm(half.weight)
    value.backward()
    assert value.dtype == torch.float32 and half.weight.grad.dtype == torch.bfloat16
    ref = half.weight.detach().float().numpy()
    assert_close(value.item(), sh.l21_norm(ref, -1), "float32")
    expected = sh.l21_subgradient(ref, -1)
    assert_close(half.weight.grad.float().numpy(), expected, "bfloat16", atol_scale=1)
    assert np.isfinite(half.weight.grad.float().numpy()).all()
