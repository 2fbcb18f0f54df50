"""Issue 18 in the torch adapter: the bugs found by planted mutants and the shared edges.

Each test here failed on the bug (or the planted mutant) it names before the fix.
"""

from __future__ import annotations

import math

import pytest
import torch
from sparsehead.adapters.torch import (
    AdaptiveL21,
    GroupBudget,
    ProximalL21,
    group_hoyer,
    group_norms,
    hoyer_regularization,
    l20_project,
    l20_project_,
    l21_norm,
    l21_prox,
    l21_regularization,
)
from torch import nn

import sparsehead as sh
from sparsehead.controller import DualAscent, measure_fraction
from sparsehead.schedule import is_due

# ---------------------------------------------------------------- l20_project ranking


# ---------------------------------------------------------------- AdaptiveL21 vs the core


def _loop(measure: str, every: int, steps: int):
    """A tiny least-squares head under SGD, with the prox and `AdaptiveL21` attached; yields
    after each optimizer step the step, the weight (after prox and update) and `λ`."""
    torch.manual_seed(0)
    layer = nn.Linear(12, 3, bias=False)
    x = torch.randn(48, 12)
    y = x[:, :4] @ torch.randn(4, 3)  # 4 of 12 inputs matter
    opt = torch.optim.SGD(layer.parameters(), lr=0.2)
    prox = ProximalL21(opt, 1.0, layer, precondition="lr")
    adaptive = AdaptiveL21(0.5, measure=measure, l21=3e-2, dual_lr=1.5, every=every, prox=prox)
    prox.attach()
    adaptive.attach(opt)
    for t in range(1, steps + 1):
        opt.zero_grad()
        (layer(x) - y).square().mean().backward()
        before = adaptive.l21
        opt.step()
        yield t, layer.weight.detach().double().numpy().copy(), before, adaptive


@pytest.mark.parametrize(
    "measure", ["groups_95_energy", "frac_below_1pct", "frac_below_0p1pct", "zero_groups"]
)
def test_adaptive_updates_on_the_core_schedule_with_the_core_rule(measure):
    """Step by step with `every=3`: λ moves exactly after steps 3, 6, 9, ... (`is_due`), by the
    core's `DualAscent.update` on the core's `measure_fraction` of the weight after the prox
    (every measure a fraction of the groups, `zero_groups` included)."""
    rule = DualAscent(0.5, measure=measure, dual_lr=1.5, every=3)
    expected = 3e-2
    updates = []
    for t, w, before, adaptive in _loop(measure, every=3, steps=13):
        assert before == pytest.approx(expected, rel=1e-12)
        if is_due(t, 3):
            s = measure_fraction(w, -1, measure)
            assert 0.0 <= s <= 1.0
            expected = rule.update(expected, s)
            assert adaptive.measure_value == pytest.approx(s, rel=1e-12)
            updates.append(t)
        assert adaptive.l21 == pytest.approx(expected, rel=1e-12), t
        assert adaptive.prox.l21 == adaptive.l21
    assert updates == [3, 6, 9, 12]
    assert [step for step, _, _ in adaptive.history] == [3, 6, 9, 12]


def test_adaptive_zero_groups_is_a_fraction_of_the_groups():
    """6 of 10 groups exactly zero: `s = 0.6`, not 6 (a count would send λ to its floor or cap)."""
    w = torch.zeros(3, 10)
    w[:, :4] = 1.0
    adaptive = AdaptiveL21(0.5, w, measure="zero_groups", l21=1e-3, dual_lr=1.0, every=1)
    adaptive.step()
    assert adaptive.measure_value == pytest.approx(0.6)
    assert adaptive.l21 == pytest.approx(1e-3 * math.exp(-(0.6 - 0.5)))  # sparser: λ shrinks


# ---------------------------------------------------------------- the shared edges

OPS = {
    "group_norms": lambda w: group_norms(w),
    "l21_norm": lambda w: l21_norm(w),
    "l21_prox": lambda w: l21_prox(w, 0.1),
    "l20_project": lambda w: l20_project(w, 1),
    "l20_project_": lambda w: l20_project_(w, 1),
    "group_hoyer": lambda w: group_hoyer(w),
}


def test_an_integer_parameter_chosen_by_a_penalty_names_it():
    model = nn.Sequential(nn.Linear(3, 2))
    model.register_buffer("unused", torch.ones(1))
    model[0].weight = nn.Parameter(torch.ones(2, 3, dtype=torch.int64), requires_grad=False)
    with pytest.raises(TypeError, match=r"parameter '0\.weight': weight must be floating point"):
        l21_regularization(model, 1e-3, "0")


# ---------------------------------------------------------------- targets: the one resolver


def test_optimizer_bound_entries_refuse_names_with_a_type_error_naming_targets():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = torch.optim.SGD(model.named_parameters(), lr=0.1)
    prox = ProximalL21(opt, 1e-3, model[2])
    for call in (
        lambda: ProximalL21(opt, 1e-3, "2"),
        lambda: GroupBudget(opt, 1, ["2.weight"]),
        lambda: AdaptiveL21(0.5, "2.*"),
        lambda: AdaptiveL21(0.5, [model[2], "0"], prox=prox),
    ):
        with pytest.raises(TypeError, match=r"targets: '.*' is a name.*pass the module"):
            call()


def test_every_entry_infers_the_group_axis_from_the_module():
    """A Conv2d's groups are its input channels (axis 1) in every entry, not the kernel width."""
    conv = nn.Conv2d(3, 5, 2)
    w = conv.weight.detach().double().numpy()
    opt = torch.optim.SGD(conv.parameters(), lr=0.5)
    assert l21_regularization(conv, 1.0, conv).item() == pytest.approx(sh.l21_norm(w, 1))
    assert hoyer_regularization(conv, 1.0, "weight").item() == pytest.approx(sh.group_hoyer(w, 1))
    assert ProximalL21(opt, 1.0, conv)._axes == [1]
    assert GroupBudget(opt, 2, conv)._axes == [1]
    assert AdaptiveL21(0.5, conv)._axes == [1]
    assert AdaptiveL21(0.5, prox=ProximalL21(opt, 1.0, conv))._axes == [1]


def test_old_orders_and_names_warn_and_mean_the_same():
    layer = nn.Linear(4, 3)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    with pytest.warns(DeprecationWarning, match="pass target first"):
        old = AdaptiveL21(layer, 0.4, "zero_groups", 1e-2)
    new = AdaptiveL21(0.4, layer, measure="zero_groups", l21=1e-2)
    assert (old.target, old.measure, old.l21, old._axes) == (0.4, "zero_groups", 1e-2, [1])
    assert (new.target, new.measure, new.l21) == (old.target, old.measure, old.l21)
    with pytest.warns(DeprecationWarning, match="pass target first"):
        assert AdaptiveL21(layer, target=0.3).target == 0.3
    with pytest.warns(DeprecationWarning, match="pass l21 first"):
        assert ProximalL21(opt, layer, 0.2).l21 == 0.2
    with pytest.warns(DeprecationWarning, match="params="):
        assert ProximalL21(opt, 0.2, params=layer).targets == [layer.weight]
    with pytest.warns(DeprecationWarning, match="use l21_norm"):
        from sparsehead.adapters.torch import l21_penalty

        assert l21_penalty(layer.weight).item() == l21_norm(layer.weight).item()
    with pytest.warns(DeprecationWarning, match="use group_hoyer"):
        from sparsehead.adapters.torch import group_hoyer_penalty

        assert group_hoyer_penalty(layer.weight).item() == group_hoyer(layer.weight).item()
