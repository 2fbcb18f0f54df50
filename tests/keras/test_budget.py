"""GroupBudget: the keras.ops projection and schedule against the core, and exact budgets in a
real `fit` on every backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sparsehead.adapters.keras import BudgetSchedule, GroupBudget, l20_project

import sparsehead as sh
from tests.conformance.keras_seam import jit, run, tensor, to_numpy
from tests.tolerances import assert_close

from .strategies import backend_settings, grouped_weights


def nonzero_groups(w, group_axis=-2) -> int:
    return int(np.count_nonzero(sh.group_norms(np.asarray(w, np.float64), group_axis)))


def robust_order(norms: np.ndarray, k: int) -> bool:
    """True when float32 norms must rank the k-th and (k+1)-th groups as float64 ones do:
    equal (a tie, same values in the same order) or more than 1e-5 apart relative."""
    if k in (0, norms.size):
        return True
    desc = np.sort(norms)[::-1]
    a, b = desc[k - 1], desc[k]
    return a == b or a - b > 1e-5 * a


@backend_settings
@given(grouped_weights(), st.data())
def test_projection_with_traced_budget_matches_core(case, data):
    w, group_axis, dtype = case
    n_groups = w.shape[group_axis]
    k = data.draw(st.integers(1, n_groups))  # keep=0 is refused
    assume(robust_order(sh.group_norms(w, group_axis), k))
    got = to_numpy(
        run(lambda x, kk: l20_project(x, kk, group_axis), tensor(w, dtype), tensor([k], "int32")[0])
    )
    want = sh.l20_project(w, k, group_axis).astype(np.float64)
    np.testing.assert_array_equal(got, want)  # kept groups copied, dropped ones exactly 0


def test_ties_go_to_the_lower_index_under_jit():
    v = np.array([0.6, -0.8, 0.3])
    w = np.stack([v, -v, 2 * v, v * [1, 1, -1], np.zeros(3), -v])  # norms 1,1,2,1,0,1
    project = jit(lambda x, k: l20_project(x, k))
    for k in range(1, 7):  # keep=0 is refused
        got = to_numpy(project(tensor(w, "float32"), tensor([k], "int32")[0]))
        np.testing.assert_array_equal(got, sh.l20_project(w.astype(np.float32), k))
    kept = sh.group_norms(to_numpy(project(tensor(w, "float32"), tensor([3], "int32")[0]))) > 0
    assert kept.tolist() == [True, True, True, False, False, False]


@pytest.mark.parametrize(
    ("groups", "keep", "t0", "t1"),
    [(8, 2, 2, 7), (28, 1, 5, 8), (9, 1, 0, 2), (5, 5, 0, 3), (6, 1, 3, 3)],
)
def test_schedule_in_graph_matches_core(groups, keep, t0, t1):
    schedule = BudgetSchedule(groups, keep, begin_step=t0, end_step=t1)
    budget = jit(lambda t: schedule(t))
    for t in range(t1 + 4):
        got = int(to_numpy(budget(tensor([t], "int32")[0])))
        assert got == sh.budget_schedule(t, groups, keep, t0, t1), t


class KernelRecorder(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.kernels = []

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # on JAX this syncs the training state back into the variables
        self.kernels.append(to_numpy(self.layer.kernel))


def _model(optimizer, seed=0, groups=8):
    keras.utils.set_random_seed(seed)
    layer = keras.layers.Dense(3, use_bias=False)
    model = keras.Sequential([keras.Input((groups,)), layer])
    model.compile(optimizer=optimizer, loss="mse")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(16, groups)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    return model, layer, x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_follows_the_schedule_and_ends_with_exactly_keep_groups(optimizer):
    model, layer, x, y = _model(optimizer)
    budget = GroupBudget(2, layer, begin_step=2, end_step=7)
    record = KernelRecorder(layer)
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0, callbacks=[budget, record])
    expected = [sh.budget_schedule(n, 8, 2, 2, 7) for n in range(1, 11)]  # one step per epoch
    assert history.history["budget"] == expected
    assert [nonzero_groups(k) for k in record.kernels] == expected
    kernel = to_numpy(layer.kernel)
    assert nonzero_groups(kernel) == 2
    np.testing.assert_array_equal(sh.l20_project(kernel, 2), kernel)
    assert layer.kernel.constraint is None  # removed after fit


def test_one_sgd_step_then_projection_matches_core():
    model, layer, x, y = _model(keras.optimizers.SGD(0.1))
    w0 = to_numpy(layer.kernel).astype(np.float64)
    model.fit(
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
        shuffle=False,
        callbacks=[GroupBudget(0.5, layer, begin_step=0, end_step=1)],
    )
    xd, yd = x.astype(np.float64), y.astype(np.float64)
    w1 = w0 - 0.1 * 2.0 * xd.T @ (xd @ w0 - yd) / yd.size
    assert robust_order(sh.group_norms(w1), 4)
    want = sh.l20_project(w1, 4)
    got = to_numpy(layer.kernel)
    assert_close(got, want, "float32", atol_scale=1)
    assert (
        nonzero_groups(got) == 4
        and (sh.group_norms(got) > 0).tolist() == (sh.group_norms(want) > 0).tolist()
    )


def test_every_projects_after_multiples_of_every_only():
    model, layer, x, y = _model("sgd")
    record = KernelRecorder(layer)
    history = model.fit(
        x,
        y,
        epochs=9,
        batch_size=16,
        verbose=0,
        callbacks=[GroupBudget(1, layer, begin_step=0, end_step=7, every=3), record],
    )
    counts = [nonzero_groups(k) for k in record.kernels]
    for n, count in enumerate(counts, start=1):
        if n % 3 == 0:  # sparsehead.schedule.is_due: after steps 3, 6, 9 only
            assert count == sh.budget_schedule(n, 8, 1, 0, 7), n
        else:
            assert count == 8, n  # not projected: the zeroed groups got a gradient back
    assert history.history["budget"][-1] == 1


def test_end_step_none_holds_the_budget_from_begin_step_on():
    model, layer, x, y = _model("sgd")
    history = model.fit(
        x, y, epochs=3, batch_size=8, verbose=0, callbacks=[GroupBudget(3, layer, begin_step=3)]
    )  # 2 steps per epoch: G up to step 2, keep from step 3 on (no ramp)
    assert history.history["budget"] == [8, 3, 3]
    assert nonzero_groups(to_numpy(layer.kernel)) == 3
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # no callback: nothing projected
    assert nonzero_groups(to_numpy(layer.kernel)) == 8


def test_ramp_continues_across_two_fits_with_the_callback():
    # Steps are counted over the whole training: the second fit goes on from step 4 along the
    # same cubic schedule (8 -> 2 groups over steps 0..12), never restarting or jumping.
    model, layer, x, y = _model("sgd")
    budget = GroupBudget(2, layer, begin_step=0, end_step=12)
    record = KernelRecorder(layer)
    first = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[budget, record])
    second = model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[budget, record])
    expected = [sh.budget_schedule(n, 8, 2, 0, 12) for n in (2, 4, 6, 8, 10, 12)]
    assert expected == [6, 4, 3, 3, 3, 2]  # the ramp is still going when the first fit ends
    assert first.history["budget"] + second.history["budget"] == expected
    assert [nonzero_groups(k) for k in record.kernels] == expected


def test_argument_and_setup_errors():
    layer = keras.layers.Dense(2)
    for bad in (-1, 0, 0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="keep"):
            GroupBudget(bad, layer)
    for bad in (True, "3", None):
        with pytest.raises(TypeError, match="keep"):
            GroupBudget(keep=bad, targets=layer)
    with pytest.raises(ValueError, match="end_step"):
        GroupBudget(1, layer, begin_step=5, end_step=4)
    with pytest.raises(ValueError, match="begin_step"):
        GroupBudget(1, layer, begin_step=-1)
    with pytest.raises(ValueError, match="every"):
        GroupBudget(1, layer, every=0)
    with pytest.raises(ValueError, match="targets"):
        GroupBudget(1, [])
    model, layer, x, y = _model("sgd")
    with pytest.raises(ValueError, match="keep"):  # more groups than the kernel has
        model.fit(x, y, verbose=0, callbacks=[GroupBudget(9, layer, end_step=3)])
    layer = keras.layers.Dense(2, kernel_constraint="non_neg")
    model = keras.Sequential([keras.Input((6,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="constraint"):
        model.fit(x[:, :6], y[:, :2], verbose=0, callbacks=[GroupBudget(1, layer, end_step=3)])


def test_top_level_name():
    assert sh.GroupBudget is GroupBudget


def test_old_argument_order_warns_and_keeps_working():
    layer = keras.layers.Dense(2)
    with pytest.warns(DeprecationWarning, match="keep first"):
        old = GroupBudget(layer, 3, 1, 5, 2)
    assert (old.keep, old.targets, old.begin_step, old.end_step, old.every) == (3, [layer], 1, 5, 2)
    with pytest.warns(DeprecationWarning, match="keep first"):
        assert GroupBudget(layer, keep=0.5).keep == 0.5


def test_l20_project_refuses_keep_zero():
    with pytest.raises(ValueError, match="keep"):
        l20_project(tensor(np.ones((3, 2)), "float32"), 0)
