"""`ProximalL21`: per-group learning rates, schedulers, the hook, Adam preconditioning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sparsehead.adapters.torch import ProximalL21, select_parameters
from torch import nn

import sparsehead as sh
from tests.tolerances import assert_close


def two_layers() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4))


def weights(model) -> list[np.ndarray]:
    return [model[i].weight.detach().numpy().copy() for i in (0, 2)]


def test_threshold_is_lr_times_lam_of_each_parameter_group():
    model = two_layers()
    opt = torch.optim.SGD(
        [{"params": model[0].parameters(), "lr": 0.5}, {"params": model[2].parameters()}], lr=0.05
    )
    before = weights(model)
    norms = [sh.group_norms(w, -1) for w in before]
    sorted0 = np.sort(norms[0])
    lam = float(sorted0[1] + sorted0[2]) / 2 / 0.5  # layer 0: t between its 2nd and 3rd norm
    prox = ProximalL21(opt, lam, [model[0], model[2]])
    prox.step()  # no optimizer step: the prox alone
    for w_new, w_old, lr in zip(weights(model), before, (0.5, 0.05), strict=True):
        assert_close(w_new, sh.l21_prox(w_old, lr * lam, group_axis=-1), "float32")
    assert prox.zero_groups() == [2, int((norms[1] <= 0.05 * lam).sum())]


def test_hook_runs_after_every_step_and_follows_the_scheduler():
    model = two_layers()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    prox = ProximalL21(opt, 0.3, select_parameters(model, "2")[0][1])
    handle = prox.attach()
    x = torch.randn(7, 5)
    for step in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        expected_lr = 0.1 * 0.5**step
        w = model[2].weight.detach().numpy().copy()
        grad = model[2].weight.grad.numpy()
        opt.step()  # SGD step, then the hook applies the prox with this step's lr
        expected = sh.l21_prox(w - expected_lr * grad, expected_lr * 0.3, group_axis=-1)
        assert_close(model[2].weight.detach().numpy(), expected, "float32", atol_scale=1)
        sched.step()
    handle.remove()
    w = model[2].weight.detach().numpy().copy()
    opt.zero_grad(set_to_none=True)  # no gradients: SGD leaves w alone, and so must the prox
    opt.step()
    np.testing.assert_array_equal(model[2].weight.detach().numpy(), w)


def test_adam_preconditioned_threshold_matches_closed_form_after_one_step():
    """After one Adam step from a known gradient g: v_hat = g**2, so the group's
    preconditioner is d_j = mean(|g| + eps) over the group, and t_j = lr * lam / d_j."""
    torch.manual_seed(1)
    layer = nn.Linear(6, 3, bias=False)
    lr, lam, eps = 0.01, 1e-2, 1e-8
    opt = torch.optim.Adam(layer.parameters(), lr=lr, eps=eps)
    prox = ProximalL21(opt, lam, layer, precondition="adam")
    w0 = layer.weight.detach().double().numpy().copy()
    g = torch.randn(3, 6) * torch.tensor([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
    layer.weight.grad = g.clone()
    opt.step()
    g = g.double().numpy()
    w1 = w0 - lr * g / (np.abs(g) + eps)  # Adam's first step, bias-corrected
    d = (np.abs(g) + eps).mean(axis=0)
    t = lr * lam / d
    assert_close(torch.stack(prox.thresholds()[0:1])[0].numpy(), t, "float32")
    prox.step()
    expected = np.concatenate(
        [sh.l21_prox(w1[:, j : j + 1], t[j], group_axis=-1) for j in range(6)], axis=1
    )
    assert_close(layer.weight.detach().numpy(), expected, "float32", atol_scale=np.abs(w0).max())
    # the tiny-gradient group meets t = 1 > its norm; lr * lam = 1e-4 alone would keep it
    assert (expected[:, 0] == 0).all() and (layer.weight[:, 0] == 0).all()
    assert sh.group_norms(w1, -1)[0] > lr * lam


def test_half_precision_parameters_are_thresholded_in_float32():
    w = torch.tensor([[3.0, 0.5, 0.0], [4.0, 0.5, 0.0]], dtype=torch.bfloat16)
    p = nn.Parameter(w.clone())
    opt = torch.optim.SGD([p], lr=1.0)
    ProximalL21(opt, 1.0, p).step()
    assert p.dtype == torch.bfloat16
    expected = sh.l21_prox(w.float().numpy(), 1.0, group_axis=-1)  # [[2.4, 0, 0], [3.2, 0, 0]]
    assert_close(p.detach().float().numpy(), expected, "bfloat16")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"l21": -1.0}, ValueError, "l21 must be >= 0"),
        ({"l21": True}, TypeError, "l21 must be a real"),
        ({"precondition": "sgd"}, ValueError, "precondition must be one of"),
        ({"precondition": "adam"}, ValueError, 'precondition="adam" needs .*got SGD'),
        ({"targets": [nn.Linear(2, 2)]}, ValueError, "not in any parameter group"),
        ({"targets": []}, ValueError, "at least one"),
        ({"targets": 5}, TypeError, "targets must be .* got int"),
        ({"targets": [nn.ReLU()]}, TypeError, "has no `weight`"),
        ({"targets": [nn.BatchNorm1d(3)]}, ValueError, r"BatchNorm1d.weight\)': weight must"),
        ({"group_axis": 2}, ValueError, r"targets\[0\] \(Linear.weight\)': group_axis=2"),
        ({"optimizer": "adam"}, TypeError, "optimizer must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    model = two_layers()
    args = {"optimizer": torch.optim.SGD(model.parameters(), lr=0.1), "l21": 0.1}
    args["targets"] = [model[2]]
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ProximalL21(args.pop("optimizer"), args.pop("l21"), args.pop("targets"), **args)


def test_errors_name_the_parameter_when_the_optimizer_knows_names():
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"parameter '1\.weight': weight must have at least 2"):
        ProximalL21(opt, 0.1, model[1])


def test_auto_is_adam_aware_under_adam_and_textbook_otherwise():
    model = two_layers()
    adam = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 5)).square().mean().backward()
    adam.step()
    auto, aware = (ProximalL21(adam, 0.1, model[2], precondition=p) for p in ("auto", "adam"))
    assert auto.precondition == "adam"
    torch.testing.assert_close(auto.thresholds()[0], aware.thresholds()[0])
    assert ProximalL21(adam, 0.1, model[2], precondition="lr").thresholds() == [0.01 * 0.1]
    sgd = torch.optim.SGD(model.parameters(), lr=0.5)
    assert ProximalL21(sgd, 0.1, model[2]).thresholds() == [0.5 * 0.1]


def test_module_targets_infer_the_group_axis_and_explicit_overrides():
    conv = nn.Conv2d(2, 4, 3)
    opt = torch.optim.SGD(conv.parameters(), lr=1.0)
    w = conv.weight.detach().numpy().copy()
    t = float(np.median(sh.group_norms(w, 1)))
    ProximalL21(opt, t, conv).step()  # groups: the 2 input channels, not the kernel width
    assert_close(conv.weight.detach().numpy(), sh.l21_prox(w, t, group_axis=1), "float32")
    conv.weight.data = torch.from_numpy(w.copy())
    ProximalL21(opt, t, conv, group_axis=-1).step()
    assert_close(conv.weight.detach().numpy(), sh.l21_prox(w, t, group_axis=-1), "float32")


def test_old_names_warn_and_give_identical_results():
    results = []
    for new in (True, False):
        model = two_layers()
        opt = torch.optim.SGD(model.parameters(), lr=0.3)
        if new:
            prox = ProximalL21(opt, l21=2.0, targets=[model[2]], precondition="lr")
        else:
            with pytest.warns(DeprecationWarning) as record:
                prox = ProximalL21(opt, lam=2.0, params=[model[2]], precondition=None)
            assert len(record) == 3
            for old in ("lam=", "params=", "precondition=None"):
                assert any(old in str(w.message) for w in record), old
            assert prox.lam == 2.0 and prox.params == [model[2].weight]
        prox.step()
        results.append(model[2].weight.detach().clone())
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_adam_preconditioning_needs_adam_state():
    model = two_layers()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    prox = ProximalL21(opt, 0.1, model[2], precondition="adam")
    with pytest.raises(ValueError, match="needs Adam/AdamW state"):
        prox.step()  # before the first optimizer.step()


def test_zero_groups_never_counts_a_nonfinite_group():
    w = torch.tensor([[float("nan"), 0.0, float("inf"), 1.0], [1.0, 0.0, 0.0, 1.0]])
    p = nn.Parameter(w)
    assert ProximalL21(torch.optim.SGD([p], lr=0.1), 0.0, p).zero_groups() == [1]
