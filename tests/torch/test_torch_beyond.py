"""Beyond the paper in PyTorch against the NumPy core: group Hoyer, the L2,0 budget, adaptive λ.

Values, gradients and projections are compared with `sparsehead.group_hoyer`,
`group_hoyer_gradient`, `l20_project` and `budget_schedule` on Hypothesis weights (shapes,
group axes, scales from 1e-30 to 1e30, exactly-zero groups), within `tests.tolerances`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from sparsehead.adapters.torch import (
    AdaptiveL21,
    GroupBudget,
    ProximalL21,
    group_hoyer,
    hoyer_regularization,
    l20_project,
    l20_project_,
)
from torch import nn

import sparsehead as sh
from tests.conformance import hoyer_gradient_scale as gradient_scale
from tests.conformance import ranking_is_clear
from tests.tolerances import assert_close

from .strategies import grouped_weights
from .test_torch_conformance import numpy, tensor


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only contend with the other processes of a busy CI
    machine (measured 50x slower on 2 loaded cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def group_index(w: np.ndarray, group_axis: int, chosen: np.ndarray) -> tuple:
    index = [slice(None)] * w.ndim
    index[group_axis] = chosen
    return tuple(index)


# ---------------------------------------------------------------- group Hoyer


def test_hoyer_of_subnormal_float32_weight_keeps_float32_precision():
    # all entries subnormal (7.4e-43 has ~10 significant bits): norms taken in absolute units
    # round there (HS was off by 2.7e-5 relative, found by Hypothesis)
    w = np.array([[0.0, 7.37e-43], [7.37e-43, 7.37e-43]], np.float32)
    value = group_hoyer(torch.from_numpy(w), -1)
    assert_close(numpy(value), sh.group_hoyer(w, -1), "float32")


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_hoyer_all_zero_weight_gives_zero_and_zero_gradient(dtype):
    x = torch.zeros(5, 7, dtype=getattr(torch, dtype), requires_grad=True)
    value = group_hoyer(x)
    value.backward()
    assert value.item() == 0.0
    assert (x.grad == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("scale", [1e30, 1e-30])
def test_hoyer_extreme_scales(dtype, scale):
    # columns of norms 5, 5, 0: HS = 100 / 50 = 2, at any scale; naive squares overflow at
    # 1e30 (1e60 > 3.4e38) and underflow at 1e-30
    w = torch.tensor([[3.0, 0.0, 0.0], [4.0, 5.0, 0.0]]) * scale
    x = w.to(getattr(torch, dtype)).requires_grad_()
    value = group_hoyer(x)
    value.backward()
    assert value.item() == pytest.approx(2.0, rel=1e-2 if dtype == "bfloat16" else 1e-6)
    assert torch.isfinite(x.grad).all() and (x.grad[:, 2] == 0).all()
    expected = sh.group_hoyer_gradient(x.detach().double().numpy(), -1)
    assert_close(numpy(x.grad), expected, dtype, atol_scale=2 / scale)


def test_hoyer_under_autocast_is_float32_and_equals_core():
    torch.manual_seed(0)
    w = torch.randn(6, 9)
    w[:, 3] = 0
    w.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = group_hoyer(w)
    value.backward()
    assert value.dtype == torch.float32
    w64 = w.detach().double().numpy()
    assert_close(value.item(), sh.group_hoyer(w64, -1), "float32")
    expected = sh.group_hoyer_gradient(w64, -1)
    assert_close(numpy(w.grad), expected, "float32", atol_scale=gradient_scale(w64, -1))


def test_hoyer_regularization_sums_chosen_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4))
    with torch.no_grad():
        model[2].weight[:, 1] = 0
    got = hoyer_regularization(model, 0.5, ["0", "2.weight"])
    ws = [model[i].weight.detach().double().numpy() for i in (0, 2)]
    assert_close(got.item(), 0.5 * sum(sh.group_hoyer(w, -1) for w in ws), "float32")
    got.backward()
    assert (model[2].weight.grad[:, 1] == 0).all() and model[0].bias.grad is None
    rows = hoyer_regularization(model, 1.0, "2", group_axis=0)  # groups are rows here
    assert_close(rows.item(), sh.group_hoyer(ws[1], 0), "float32")
    with pytest.raises(ValueError, match="hoyer"):
        hoyer_regularization(model, -1.0, "2")
    with pytest.raises(TypeError, match="hoyer"):
        hoyer_regularization(model, "1e-3", "2")
    with pytest.raises(ValueError, match="targets"):
        hoyer_regularization(model, 1.0, "nothing")


# ---------------------------------------------------------------- L2,0 projection


@given(grouped_weights(), st.data())
def test_project_equals_core(case, data):
    w, group_axis, dtype = case
    k = data.draw(st.integers(1, w.shape[group_axis]))
    assume(ranking_is_clear(sh.group_norms(np.asarray(w, np.float64), group_axis), k))
    x = tensor(w, dtype)
    out = l20_project(x, k, group_axis)
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_array_equal(numpy(out), sh.l20_project(w, k, group_axis))
    np.testing.assert_array_equal(numpy(x), np.asarray(w, np.float64))  # x untouched
    assert l20_project_(x, k, group_axis) is x
    np.testing.assert_array_equal(numpy(x), numpy(out))


def test_project_by_hand_fraction_and_errors():
    # column norms 1, 1, 1, 2, 1: keep the 2, then the lowest indices
    w = torch.tensor([[1.0, 0.0, 0.6, 0.0, -1.0], [0.0, 1.0, 0.8, 2.0, 0.0]])
    np.testing.assert_array_equal(l20_project(w, 3).numpy(), (w * torch.tensor([1, 1, 0, 1, 0])))
    assert (l20_project(w, 0.5).abs().sum(0) > 0).sum() == 3  # ceil(0.5 * 5)
    for bad in (-1, 6, 0.0, 1.5):
        with pytest.raises(ValueError, match="keep"):
            l20_project(w, bad)
    with pytest.raises(TypeError, match="keep"):
        l20_project(w, True)
    nan = torch.tensor([[1.0, float("nan"), 3.0, 0.5]])
    assert l20_project(nan, 1)[0, 1].isnan() and l20_project(nan, 1)[0, 2] == 0  # not hidden
    with pytest.raises(ValueError, match="2 dimensions"):
        l20_project(torch.ones(3), 1)


# ---------------------------------------------------------------- GroupBudget


def test_budget_follows_core_schedule_in_training_loop():
    """SGD on a regression whose every input matters: after each step the weight is the
    core's projection of the plain SGD step with `budget_schedule(t)` groups, and exactly
    `keep` groups are non-zero from `end_step` on (the gradient keeps reviving the others)."""
    torch.manual_seed(0)
    layer = nn.Linear(16, 3)
    x = torch.randn(64, 16)
    y = x @ torch.randn(16, 3)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    budget = GroupBudget(opt, 0.25, layer, begin_step=3, end_step=13, every=2)
    ks = []
    for t in range(1, 21):
        opt.zero_grad()
        (layer(x) - y).square().mean().backward()
        opt.step()
        before = layer.weight.detach().double().numpy().copy()
        budget.step()
        k = sh.budget_schedule(t, 16, 0.25, 3, 13)
        projected = t % 2 == 0 and k < 16  # after steps every, 2 * every, ... (core is_due)
        expected = sh.l20_project(before, k, -1) if projected else before
        np.testing.assert_array_equal(layer.weight.detach().double().numpy(), expected)
        assert budget.current_keep == [k]
        ks.append(budget.nonzero_groups()[0])
        if t >= 13 and t % 2 == 0:
            assert ks[-1] == 4  # ceil(0.25 * 16), exactly
    assert ks[:3] == [16] * 3 and ks[-1] == 4


@given(
    st.integers(1, 12),
    st.data(),
    st.integers(0, 6),
    st.integers(0, 12),
    st.integers(1, 4),
)
def test_budget_schedule_equals_core(groups, data, t0, span, every):
    """No training, distinct column norms: groups only leave, so after step `t` the weight
    has `budget_schedule(t')` non-zero groups, `t'` the last step that projected (a multiple
    of `every`)."""
    keep = data.draw(st.integers(1, groups) | st.floats(0.01, 1.0))
    t1 = t0 + span
    weight = nn.Parameter(torch.arange(groups, 0, -1, dtype=torch.float32).repeat(2, 1))
    opt = torch.optim.SGD([weight], lr=0.1)
    budget = GroupBudget(opt, keep, weight, begin_step=t0, end_step=t1, every=every)
    last = 0
    for t in range(1, t1 + 4):
        budget.step()
        if t % every == 0:
            last = t
        assert budget.current_keep == [sh.budget_schedule(t, groups, keep, t0, t1)]
        projected = sh.budget_schedule(last, groups, keep, t0, t1) if last else groups
        assert budget.nonzero_groups() == [projected]


def test_budget_attach_end_step_none_and_state():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    budget = GroupBudget(opt, 3, [model[0], model[2]], begin_step=2)  # all at once from 2
    handle = budget.attach()
    x = torch.randn(32, 6)
    for t in range(1, 5):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
        assert budget.step_count == t
        assert budget.nonzero_groups() == ([6, 8] if t == 1 else [3, 3])
    handle.remove()
    assert budget.state_dict() == {"step_count": 4}
    budget.load_state_dict({"step_count": 0})
    assert budget.current_keep == [6, 8]


def test_budget_bad_arguments():
    layer = nn.Linear(4, 2)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="keep"):
        GroupBudget(opt, 5, layer)
    with pytest.raises(ValueError, match="end_step"):
        GroupBudget(opt, 2, layer, begin_step=4, end_step=3)
    with pytest.raises(ValueError, match="every"):
        GroupBudget(opt, 2, layer, every=0)
    with pytest.raises(ValueError, match="not in any parameter group"):
        GroupBudget(opt, 2, nn.Linear(4, 2))
    with pytest.raises(TypeError, match="optimizer"):
        GroupBudget("sgd", 2, layer)
    with pytest.raises(ValueError, match="2 dimensions"):
        GroupBudget(opt, 1, layer.bias)


# ---------------------------------------------------------------- AdaptiveL21


def test_adaptive_update_is_the_multiplicative_dual_step():
    w = torch.zeros(3, 10)
    w[:, :4] = torch.tensor([4.0, 3.0, 2.0, 1.0])  # energies 16, 9, 4, 1 of 30
    # 95 % of 30 = 28.5 needs 16 + 9 + 4 = 29: three of ten groups, s = 0.3
    adaptive = AdaptiveL21(0.1, w, l21=1e-3, dual_lr=2.0, every=1)
    adaptive.step()
    assert adaptive.measure_value == pytest.approx(0.3)
    assert adaptive.l21 == pytest.approx(1e-3 * math.exp(2.0 * 0.2))  # denser: λ grows
    below = AdaptiveL21(0.9, w, measure="frac_below_1pct", l21=1e-3, dual_lr=1.0)
    below.update()  # 6 of 10 groups are 0, below 1 % of the largest: s = 0.6 < 0.9
    assert below.l21 == pytest.approx(1e-3 * math.exp(0.3))  # not sparse enough: λ grows
    floor = AdaptiveL21(0.99, w, l21=1e-3, dual_lr=50.0, min_l21=1e-6)
    floor.update()
    assert floor.l21 == 1e-6
    cap = AdaptiveL21(0.01, w, l21=1e-3, dual_lr=50.0, max_l21=1e-2)
    with pytest.warns(RuntimeWarning, match="max_l21"):
        cap.update()  # s = 0.3 > 0.01: λ would grow by exp(14.5)
    assert cap.l21 == 1e-2
    assert adaptive.penalty().item() == pytest.approx(adaptive.l21 * sh.l21_norm(w.numpy(), -1))


def test_adaptive_bad_arguments():
    w = torch.ones(3, 4)
    with pytest.raises(ValueError, match="measure"):
        AdaptiveL21(0.5, w, measure="groups")
    for bad in (1.5, 1.0, 0.0):  # target in the open interval (0, 1)
        with pytest.raises(ValueError, match="target"):
            AdaptiveL21(bad, w)
    with pytest.raises(ValueError, match="l21"):
        AdaptiveL21(0.5, w, l21=0.0)
    with pytest.raises(ValueError, match="dual_lr"):
        AdaptiveL21(0.5, w, dual_lr=-1.0)
    with pytest.raises(ValueError, match="every"):
        AdaptiveL21(0.5, w, every=0)
    with pytest.raises(ValueError, match="max_l21"):
        AdaptiveL21(0.5, w, min_l21=1e-3, max_l21=1e-4)


def regression(seed: int = 0):
    """Least squares `y = x A` with 20 inputs whose true column norms fall geometrically, and
    `x` whitened, so the L2,1 solution is the core's prox of `A` at `λ` (group soft
    thresholding): `s(λ)` is known in closed form."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 20))
    x = np.linalg.qr(x)[0] * np.sqrt(200)  # x.T x / n = I
    a = rng.normal(size=(20, 3))
    a *= (0.9 ** np.arange(20) / np.linalg.norm(a, axis=1))[:, None]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(x @ a, dtype=torch.float32), a


def closed_form_measure(a: np.ndarray, lam: float) -> float:
    """`s(λ)` of the minimiser of `||y - x W||^2 / (2n) + λ ||W||_{2,1}`: the prox of A."""
    s = sh.sparsity_summary(sh.l21_prox(a, lam, group_axis=0), group_axis=0)
    return s["groups_95_energy"] / 20 if s["groups_95_energy"] else 0.0


@pytest.mark.parametrize("start", [0.01, 100.0])
def test_adaptive_reaches_target_from_a_hundred_times_off(start):
    x, y, a = regression()
    target = 0.25  # 5 of 20 groups hold 95 % of the energy
    good = [lam for lam in np.geomspace(1e-4, 1, 400) if closed_form_measure(a, lam) == target]
    lam_mid = float(np.sqrt(good[0] * good[-1]))  # a λ at the target, from the closed form
    layer = nn.Linear(20, 3, bias=False)
    nn.init.zeros_(layer.weight)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    prox = ProximalL21(opt, 1.0, layer)
    adaptive = AdaptiveL21(target, l21=start * lam_mid, dual_lr=2.0, every=10, prox=prox)
    prox.attach()
    adaptive.attach(opt)
    for _ in range(500):  # 50 updates of λ; it settles after about 10
        opt.zero_grad()
        ((layer(x) - y).square().sum(1).mean() / 2).backward()
        opt.step()
    assert abs(adaptive.measure_value - target) <= 0.1 * target
    assert prox.thresholds()[0] == pytest.approx(0.5 * adaptive.l21)  # the prox follows λ
    # λ itself ends where the closed form puts the target (within 10 % of that range)
    assert good[0] * 0.9 <= adaptive.l21 <= good[-1] * 1.1
