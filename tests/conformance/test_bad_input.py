"""One bad-input table, run against every adapter entry that takes the argument.

A row is `(argument, bad value, exception type, message fragment)`; an entry is a call of one
public API with everything else valid. A wrong type is a `TypeError`, a wrong value a
`ValueError`, and the message names the argument with the same words in every framework (the
core's checkers, `sparsehead/_validation.py`, write them all). Keras entries run on this
process's backend (`KERAS_BACKEND`).

Not errors, but the same edges: optax `targets=None` skips a bias vector (it selects the
leaves with at least 2 dimensions), and a leaf that explicitly chosen targets cannot take is
refused by its path (`test_optax_default_targets_skip_bias_vectors`).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest


class Row(NamedTuple):
    id: str
    argument: str
    bad: object
    error: type[Exception]
    fragment: str


# ---------------------------------------------------------------- the entries, per framework


def _need(*modules: str) -> None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"the package {module!r} is not installed")


def _torch():
    _need("torch")
    import torch
    from sparsehead.adapters import torch as adapter

    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    return torch, adapter, model, torch.optim.SGD(model.parameters(), lr=0.1)


def _keras():
    _need("keras")
    import keras
    from sparsehead.adapters import keras as adapter

    layer = keras.layers.Dense(3)
    layer.build((None, 4))
    return keras, adapter, layer


def _optax():
    _need("jax", "optax")
    import jax.numpy as jnp
    from sparsehead.adapters import optax as adapter

    return jnp, adapter


def _core():
    import sparsehead as sh

    return sh


def _lightning():
    _need("torch", "lightning")
    from sparsehead.adapters import lightning as adapter

    return adapter


def _keras_tensor(w):
    keras, _, _ = _keras()
    return keras.ops.convert_to_tensor(w)


def _torch_tensor(w):
    torch, *_ = _torch()
    return torch.from_numpy(np.array(w))


def _jax_array(w):
    jnp, _ = _optax()
    return jnp.asarray(w)


# Weight-taking ops: (framework, op) -> call(w, group_axis=...). Arguments other than `w` are
# valid for the (3, 2) float weight of the rows.
def _ops(framework: str, tensor: Callable, module: Callable):
    def op(name, *args):
        return lambda w, **kw: getattr(module(), name)(tensor(w), *args, **kw)

    return {
        f"{framework}.group_norms": op("group_norms"),
        f"{framework}.l21_prox": op("l21_prox", 0.1),
        f"{framework}.l20_project": op("l20_project", 1),
        f"{framework}.group_hoyer": op("group_hoyer"),
    }


WEIGHT_OPS: dict[str, Callable] = {
    **_ops("core", np.asarray, _core),
    "core.l21_norm": lambda w, **kw: _core().l21_norm(w, **kw),
    **_ops("keras", _keras_tensor, lambda: _keras()[1]),
    "keras.L21": lambda w, **kw: _keras()[1].L21(1.0, **kw)(_keras_tensor(w)),
    "keras.GroupHoyer": lambda w, **kw: _keras()[1].GroupHoyer(1.0, **kw)(_keras_tensor(w)),
    **_ops("torch", _torch_tensor, lambda: _torch()[1]),
    "torch.l21_norm": lambda w, **kw: _torch()[1].l21_norm(_torch_tensor(w), **kw),
    **_ops("optax", _jax_array, lambda: _optax()[1]),
    "optax.l21_norm": lambda w, **kw: _optax()[1].l21_norm(_jax_array(w), **kw),
}
ADAPTER_WEIGHT_OPS = {k: v for k, v in WEIGHT_OPS.items() if not k.startswith("core.")}
# the core refuses NaN/inf in the values it reports (the adapters propagate them instead);
# its projection ranks NaN first instead (never hiding it)
CORE_FINITE_OPS = {
    k: v for k, v in WEIGHT_OPS.items() if k.startswith("core.") and "l20_project" not in k
}


def _torch_budget(**kw):
    _, a, model, opt = _torch()
    return a.GroupBudget(opt, kw.pop("keep", 1), [model[0]], **kw)


def _keras_budget(**kw):
    _, a, layer = _keras()
    return a.GroupBudget(kw.pop("keep", 1), [layer], **kw)


def _optax_budget(**kw):
    return _optax()[1].group_budget(kw.pop("keep", 1), **kw)


def _l20(framework, tensor, module):
    return lambda keep: module().l20_project(tensor(np.ones((3, 2), np.float32)), keep)


KEEP_ENTRIES = {
    "core.l20_project": _l20("core", np.asarray, _core),
    "keras.l20_project": _l20("keras", _keras_tensor, lambda: _keras()[1]),
    "torch.l20_project": _l20("torch", _torch_tensor, lambda: _torch()[1]),
    "optax.l20_project": _l20("optax", _jax_array, lambda: _optax()[1]),
    "core.BudgetSchedule": lambda keep: _core().BudgetSchedule(3, keep),
    "keras.BudgetSchedule": lambda keep: _keras()[1].BudgetSchedule(3, keep),
    "keras.GroupBudget": lambda keep: _keras_budget(keep=keep),
    "torch.GroupBudget": lambda keep: _torch_budget(keep=keep),
    "optax.group_budget": lambda keep: _optax_budget(keep=keep),
}


def _keras_adaptive(**kw):
    _, a, layer = _keras()
    return a.AdaptiveL21(kw.pop("target", 0.5), [layer], **kw)


def _torch_adaptive(**kw):
    _, a, model, _ = _torch()
    return a.AdaptiveL21(kw.pop("target", 0.5), [model[0]], **kw)


def _dual_ascent(**kw):
    return _core().DualAscent(kw.pop("target", 0.5), **kw)


EVERY_ENTRIES = {
    "core.BudgetSchedule": lambda every: _core().BudgetSchedule(3, 1, every=every),
    "keras.BudgetSchedule": lambda every: _keras()[1].BudgetSchedule(3, 1, every=every),
    "keras.GroupBudget": lambda every: _keras_budget(every=every),
    "torch.GroupBudget": lambda every: _torch_budget(every=every),
    "optax.group_budget": lambda every: _optax_budget(every=every),
    "core.DualAscent": lambda every: _dual_ascent(every=every),
    "keras.AdaptiveL21": lambda every: _keras_adaptive(every=every),
    "torch.AdaptiveL21": lambda every: _torch_adaptive(every=every),
}

TARGET_ENTRIES = {
    "core.DualAscent": lambda target: _dual_ascent(target=target),
    "keras.AdaptiveL21": lambda target: _keras_adaptive(target=target),
    "torch.AdaptiveL21": lambda target: _torch_adaptive(target=target),
}

MEASURE_ENTRIES = {
    "core.DualAscent": lambda measure: _dual_ascent(measure=measure),
    "core.measure_fraction": lambda measure: __import__(
        "sparsehead.controller", fromlist=["measure_fraction"]
    ).measure_fraction(np.ones((3, 2)), -2, measure),
    "keras.AdaptiveL21": lambda measure: _keras_adaptive(measure=measure),
    "torch.AdaptiveL21": lambda measure: _torch_adaptive(measure=measure),
}

CONTROLLER_ENTRIES = {
    "core.adaptive_controller": lambda controller: __import__(
        "sparsehead.controller", fromlist=["adaptive_controller"]
    ).adaptive_controller(
        object, None, ["w"], 0.5, "groups_95_energy", 1.0, 1, 1e-12, 1.0, controller=controller
    ),
    "keras.AdaptiveL21": lambda controller: _keras_adaptive(controller=controller),
    "torch.AdaptiveL21": lambda controller: _torch_adaptive(controller=controller),
}

KP_ENTRIES = {  # a gain of the PI rule
    "core.DampedPI": lambda kp: __import__("sparsehead.controller", fromlist=["DampedPI"]).DampedPI(
        0.5, kp=kp
    ),
    "keras.AdaptiveL21": lambda kp: _keras_adaptive(controller="pi", kp=kp),
    "torch.AdaptiveL21": lambda kp: _torch_adaptive(controller="pi", kp=kp),
}


def _torch_l21(name):
    def call(l21):
        _, a, model, opt = _torch()
        if name == "ProximalL21":
            return a.ProximalL21(opt, l21, [model[0]])
        return a.l21_regularization(model, l21, ["0"])

    return call


def _keras_prox(l21):
    _, a, layer = _keras()
    return a.ProximalL21(l21, [layer])


L21_ENTRIES = {
    "keras.L21": lambda l21: _keras()[1].L21(l21),
    "keras.ProximalL21": _keras_prox,
    "torch.ProximalL21": _torch_l21("ProximalL21"),
    "torch.l21_regularization": _torch_l21("l21_regularization"),
    "lightning.SparseHead": lambda l21: _lightning().SparseHead(l21, ["0"]),
    "optax.proximal_l21": lambda l21: _optax()[1].proximal_l21(0.1, l21),
    "optax.adamw_proximal_l21": lambda l21: _optax()[1].adamw_proximal_l21(0.1, l21),
}


def _torch_hoyer(hoyer):
    _, a, model, _ = _torch()
    return a.hoyer_regularization(model, hoyer, ["0"])


HOYER_ENTRIES = {
    "keras.GroupHoyer": lambda hoyer: _keras()[1].GroupHoyer(hoyer),
    "torch.hoyer_regularization": _torch_hoyer,
}


# ---------------------------------------------------------------- the table


def _with_axis(op: Callable) -> Callable:
    return lambda bad: op(FLOAT, group_axis=bad)


FLOAT = np.ones((3, 2), np.float32)
NAN = np.array([[1.0, np.nan], [0.0, 1.0], [2.0, 2.0]], np.float32)

TABLE: list[tuple[Row, dict[str, Callable]]] = [
    (
        Row("int-weight", "w", np.ones((3, 2), np.int32), TypeError, "w must be floating point"),
        ADAPTER_WEIGHT_OPS,
    ),
    (
        Row("bool-weight", "w", np.ones((3, 2), bool), TypeError, "w must be floating point"),
        ADAPTER_WEIGHT_OPS,
    ),
    (
        Row(
            "complex-weight",
            "w",
            np.ones((3, 2), np.complex64),
            TypeError,
            "w must be floating point",
        ),
        ADAPTER_WEIGHT_OPS,
    ),
    (
        Row("empty-weight", "w", np.ones((0, 3), np.float32), ValueError, "w must not be empty"),
        WEIGHT_OPS,
    ),
    (
        Row("empty-columns", "w", np.ones((3, 0), np.float32), ValueError, "w must not be empty"),
        WEIGHT_OPS,
    ),
    (
        Row("empty-3d", "w", np.ones((2, 0, 4), np.float32), ValueError, "w must not be empty"),
        WEIGHT_OPS,
    ),
    (
        Row("nan-weight", "w", NAN, ValueError, "w must be finite"),
        CORE_FINITE_OPS,
    ),
    (
        Row("group-axis-range", "group_axis", 5, ValueError, "group_axis=5 is out of range"),
        {k: _with_axis(f) for k, f in WEIGHT_OPS.items()},
    ),
    (
        Row("group-axis-float", "group_axis", 1.0, TypeError, "group_axis must be an int"),
        {k: _with_axis(f) for k, f in WEIGHT_OPS.items()},
    ),
    (
        Row("keep-0", "keep", 0, ValueError, "keep must be >= 1 or a fraction in (0, 1]"),
        KEEP_ENTRIES,
    ),
    (
        Row("keep-1.5", "keep", 1.5, ValueError, "keep must be >= 1 or a fraction in (0, 1]"),
        KEEP_ENTRIES,
    ),
    (
        Row("keep-bool", "keep", True, TypeError, "keep must be an int or a float fraction"),
        KEEP_ENTRIES,
    ),
    (Row("every-0", "every", 0, ValueError, "every must be >= 1"), EVERY_ENTRIES),
    (Row("every-bool", "every", True, TypeError, "every must be an int"), EVERY_ENTRIES),
    (Row("target-1", "target", 1.0, ValueError, "target must be in (0, 1)"), TARGET_ENTRIES),
    (Row("target-bool", "target", True, TypeError, "target must be a real number"), TARGET_ENTRIES),
    (
        Row("measure-unknown", "measure", "zeros", ValueError, "measure must be one of"),
        MEASURE_ENTRIES,
    ),
    (
        Row("controller-unknown", "controller", "pid", ValueError, "controller must be one of"),
        CONTROLLER_ENTRIES,
    ),
    (
        Row("controller-type", "controller", object, TypeError, "controller must be a str"),
        CONTROLLER_ENTRIES,
    ),
    (Row("kp-negative", "kp", -1.0, ValueError, "kp must be >= 0"), KP_ENTRIES),
    (Row("kp-bool", "kp", True, TypeError, "kp must be a real number"), KP_ENTRIES),
    (Row("l21-negative", "l21", -1.0, ValueError, "l21 must be >= 0"), L21_ENTRIES),
    (Row("l21-bool", "l21", True, TypeError, "l21 must be a real number"), L21_ENTRIES),
    (Row("hoyer-negative", "hoyer", -1.0, ValueError, "hoyer must be >= 0"), HOYER_ENTRIES),
    (Row("hoyer-bool", "hoyer", True, TypeError, "hoyer must be a real number"), HOYER_ENTRIES),
]


def _cases():
    for row, entries in TABLE:
        for entry, call in entries.items():
            yield pytest.param(row, call, id=f"{row.id}-{entry}")


@pytest.mark.parametrize(("row", "call"), _cases())
def test_bad_input_is_refused_with_the_same_words_everywhere(row, call):
    with pytest.raises(row.error, match=re.escape(row.fragment)) as info:
        call(row.bad)
    assert str(info.value).startswith(row.argument), "the message must start with the argument"


def test_every_row_runs_against_every_framework_that_has_the_argument():
    """No silent hole in the table: each row reaches each adapter that takes its argument."""
    for row, entries in TABLE:
        frameworks = {e.split(".")[0] for e in entries}
        if row.argument == "w" and row.id != "nan-weight":
            assert {"keras", "torch", "optax"} <= frameworks, row.id
        if row.argument in ("keep", "every"):
            assert {"core", "keras", "torch", "optax"} <= frameworks, row.id
        if row.argument in ("target", "measure"):
            assert {"core", "keras", "torch"} <= frameworks, row.id
        if row.argument == "l21":
            assert {"keras", "torch", "lightning", "optax"} <= frameworks, row.id


def test_optax_default_targets_skip_bias_vectors():
    """`targets=None` selects the leaves with at least 2 dimensions: a bias vector is left as
    it is (by `proximal_l21` and `group_budget`); chosen targets that include one are refused
    with the leaf's path in the message."""
    jnp, a = _optax()
    import jax
    import optax

    params = {
        "dense": {"kernel": jnp.array([[3.0, 0.0], [0.1, 0.0], [0.0, 4.0]]), "bias": jnp.ones(2)}
    }
    for tx in (a.proximal_l21(1.0, 0.5), a.group_budget(1)):
        state = tx.init(params)
        zero = jax.tree.map(jnp.zeros_like, params)
        updates, _ = tx.update(zero, state, params)
        new = optax.apply_updates(params, updates)
        np.testing.assert_array_equal(new["dense"]["bias"], params["dense"]["bias"])
        assert not np.array_equal(new["dense"]["kernel"], params["dense"]["kernel"])
    chosen = {"dense": {"kernel": True, "bias": True}}
    for make in (
        lambda: a.proximal_l21(1.0, 0.5, targets=chosen),
        lambda: a.group_budget(1, chosen),
    ):
        tx = make()
        with pytest.raises(ValueError, match="bias"):
            tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
