"""One set of test bodies for the tensor operations, run on every backend (`backend` fixture).

Each body compares a backend with the independent float64 reference (`reference.py`) on
Hypothesis weights (random shapes, group axes, scales over many decades, exactly-zero groups),
within the dtype's tolerance (`tests/tolerances.py`): group norms and the L2,1 value, its
gradient (the minimum-norm subgradient: exactly 0 on zero groups, never NaN), NaN/inf
propagation, the prox, the L2,0 projection (ties to the lower index with more than 16 tied
groups; NaN ranks above inf above finite norms) and the group Hoyer value and gradient.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from tests.tolerances import assert_close, rtol

from . import assert_same_nonfinite, ranking_is_clear
from . import reference as ref
from .backends import as_dtype


def check(backend, *strategies, pins=()):
    """Run `body(*drawn)` as a Hypothesis property with `backend`'s example budget; `pins`
    are explicit examples (tuples of arguments), kept where the backend has their dtype."""

    def run(body):
        test = given(*strategies)(body)
        for pin in pins:
            if pin[0][2] in backend.dtypes:
                test = example(*pin)(test)
        backend.settings()(test)()

    return run


def result_dtype(dtype: str) -> str:
    """Norms, the L2,1 value and the Hoyer value: float32 for half and float32, else float64."""
    return "float64" if dtype == "float64" else "float32"


def tiny(dtype: str) -> float:
    """The smallest normal number of `dtype`."""
    return float(np.finfo(as_dtype(np.zeros(1), dtype).dtype).tiny)


def group_index(w, group_axis, chosen) -> tuple:
    index = [slice(None)] * np.ndim(w)
    index[group_axis] = chosen
    return tuple(index)


def test_group_norms_and_l21_value(backend):
    @check(backend, backend.weights())
    def body(case):
        w, group_axis, dtype = case
        expected = ref.group_norms(w, group_axis)
        norms = backend.group_norms(w, group_axis)
        assert norms.dtype == result_dtype(dtype) and norms.value.shape == expected.shape
        assert_close(norms.value, expected, result_dtype(dtype))
        value, _ = backend.l21_value_and_grad(w, group_axis)
        assert value.dtype == result_dtype(dtype) and np.ndim(value.value) == 0
        assert_close(value.value, expected.sum(), result_dtype(dtype))


def test_l21_gradient_is_the_min_norm_subgradient(backend):
    @check(backend, backend.weights())
    def body(case):
        w, group_axis, dtype = case
        g = ref.group_norms(w, group_axis)
        # The chain rule passes through each group's largest entry: below the accumulation
        # dtype's smallest normal number XLA on CPU flushes it to 0 (a documented limit).
        rows = np.abs(np.moveaxis(np.asarray(w, np.float64), group_axis, 0))
        peaks = rows.reshape(rows.shape[0], -1).max(axis=1)
        assume(((peaks == 0) | (peaks >= tiny(result_dtype(dtype)))).all())
        _, grad = backend.l21_value_and_grad(w, group_axis)
        assert grad.dtype == dtype and grad.value.shape == np.shape(w)
        assert np.isfinite(grad.value).all()
        # |subgradient| <= 1 entrywise, stored in the weight's dtype: one rounding each side
        assert_close(grad.value, ref.l21_subgradient(w, group_axis), dtype, atol_scale=1.0)
        assert (grad.value[group_index(w, group_axis, g == 0)] == 0).all()  # exactly 0


def test_nan_and_inf_propagate_and_zero_groups_keep_a_zero_gradient(backend):
    """Adapters: a NaN group has norm NaN, an inf group norm inf (never 0), and so has the
    L2,1 value; the gradient stays exactly 0 on exact-zero groups and equals the subgradient
    on finite groups. The core refuses such a weight, naming it."""

    @check(backend, backend.nonfinite())
    def body(case):
        w, group_axis, dtype = case
        if not backend.propagates_nonfinite:
            with pytest.raises(ValueError, match="finite"):
                backend.group_norms(w, group_axis)
            with pytest.raises(ValueError, match="finite"):
                backend.l21_value_and_grad(w, group_axis)
            return
        expected = ref.group_norms(w, group_axis)
        norms = backend.group_norms(w, group_axis).value
        assert_same_nonfinite(norms, expected)
        finite = np.isfinite(expected)
        assert_close(norms[finite], expected[finite], result_dtype(dtype))
        value, grad = backend.l21_value_and_grad(w, group_axis)
        assert_same_nonfinite(value.value, expected.sum())
        grad = np.moveaxis(grad.value, group_axis, 0)
        clean = np.moveaxis(np.asarray(w, np.float64), group_axis, 0).copy()
        clean[~finite] = 0
        assert_close(grad[finite], ref.l21_subgradient(clean, 0)[finite], dtype, atol_scale=1.0)
        assert (grad[expected == 0] == 0).all()


def test_l21_prox(backend):
    @check(backend, backend.weights(), st.floats(0.0, 1.5))
    def body(case, frac):
        w, group_axis, dtype = case
        norms = ref.group_norms(w, group_axis)
        t = float(frac * norms.max())  # thresholds across the range of group norms, 0 included
        out = backend.l21_prox(w, t, group_axis)
        assert out.dtype == dtype and out.value.shape == np.shape(w)
        # A group whose norm ties with t within rounding may be kept with a factor of about
        # eps: rtol * max|w| absolutely covers it; results in the subnormal range are rounded
        # to the subnormal spacing (the floor tiny / rtol gives them `tiny`).
        w64 = np.asarray(w, np.float64)
        scale = max(float(np.abs(w64).max()), tiny(dtype) / rtol(dtype))
        assert_close(out.value, ref.l21_prox(w64, t, group_axis), dtype, atol_scale=scale)
        inside = norms <= t * (1 - 1e-3)  # clearly inside the threshold: exactly 0
        assert (out.value[group_index(w, group_axis, inside)] == 0).all()


def test_l20_project_keeps_the_largest_groups(backend):
    @check(backend, backend.weights(), st.data())
    def body(case, data):
        w, group_axis, dtype = case
        groups = np.shape(w)[group_axis]
        k = data.draw(st.integers(1, groups), label="keep")
        assume(ranking_is_clear(ref.group_norms(w, group_axis), k))
        out = backend.l20_project(w, k, group_axis)
        assert out.dtype == dtype and out.value.shape == np.shape(w)
        np.testing.assert_array_equal(out.value, ref.l20_project(w, k, group_axis))


# Base groups (columns of a 2 x G weight) whose sign flips and swaps give exactly equal norms:
# sqrt(5) twice, 1 twice, 0, and the non-finite ones (NaN, +inf, -inf, NaN beside inf).
TIE_BASE = np.array(
    [
        [1.0, 2.0],
        [2.0, -1.0],
        [0.0, 1.0],
        [-1.0, 0.0],
        [0.0, 0.0],
        [0.5, 0.25],
        [np.nan, 1.0],
        [np.inf, 0.0],
        [1.0, -np.inf],
        [np.nan, np.inf],
    ]
).T
FINITE_LEVELS = 6


@st.composite
def tied_groups(draw, dtypes, nonfinite: bool):
    """`(w, group_axis, dtype)`: a `(2, 44)` weight (or its transpose) with a block of 17 to
    40 groups of one norm (more than torch's 16-element unstable-sort threshold) among others
    drawn from a few levels, finite or not (one shape: one compilation on the jit backends)."""
    levels = len(TIE_BASE[0]) if nonfinite else FINITE_LEVELS
    tied = draw(st.integers(0, levels - 1), label="tied level")
    block = [tied] * draw(st.integers(17, 40), label="tied groups")
    others = draw(
        st.lists(st.integers(0, levels - 1), min_size=44 - len(block), max_size=44 - len(block))
    )
    order = draw(st.permutations(block + others))
    signs = draw(st.lists(st.booleans(), min_size=len(order), max_size=len(order)))
    w = np.stack([TIE_BASE[:, v] * (1 if s else -1) for v, s in zip(order, signs, strict=True)], 1)
    dtype = draw(st.sampled_from(dtypes))
    group_axis = draw(st.sampled_from([-1, 0]))
    if group_axis == 0:
        w = w.T
    return as_dtype(w, dtype), group_axis, dtype


@pytest.mark.parametrize("nonfinite", [False, True], ids=["finite", "nan-inf"])
def test_l20_project_ties_go_to_the_lower_index(backend, nonfinite):
    """More than 16 exactly tied groups: the lower index wins, as in the reference ranking
    (NaN, then +inf, then finite norms descending). The core refuses no NaN here: a projection
    never hides a NaN."""
    pins = []
    if nonfinite:  # the case: room for one of [inf, 1, nan, 3] keeps the NaN group
        w = np.array([[np.inf, 1.0, np.nan, 3.0]])
        pins = [((as_dtype(w, d), -1, d), 1) for d in backend.dtypes]

    @check(backend, tied_groups(backend.dtypes, nonfinite), st.integers(1, 44), pins=pins)
    def body(case, keep):
        w, group_axis, _ = case
        k = min(keep, np.shape(w)[group_axis])
        out = backend.l20_project(w, k, group_axis)
        np.testing.assert_array_equal(out.value, ref.l20_project(w, k, group_axis))


def test_group_hoyer_value_and_gradient(backend):
    # a float16 gradient of 3e-7 is subnormal, where float16's ulp is 2**-24 (found in CI)
    pin = ((np.array([[1000.0], [750.0]], np.float16), -2, "float16"),)

    @check(backend, backend.weights(), pins=[pin])
    def body(case):
        w, group_axis, dtype = case
        w64 = np.asarray(w, np.float64)
        g = ref.group_norms(w64, group_axis)
        expected = ref.group_hoyer_gradient(w64, group_axis)
        # The gradient grows as 1 / (largest norm): beyond the dtype's range for weights of
        # subnormal size (inf is then its correct rounding); and a group below tiny * the
        # largest entry gets 0, its chain rule underflowing (both documented limits).
        finfo = np.finfo(as_dtype(np.zeros(1), dtype).dtype)
        assume(np.abs(expected).max() < float(finfo.max))
        assume(((g == 0) | (g >= float(finfo.tiny) * np.abs(w64).max())).all())
        value, grad = backend.hoyer_value_and_grad(w, group_axis)
        assert value.dtype == result_dtype(dtype) and grad.dtype == dtype
        assert_close(value.value, ref.group_hoyer(w64, group_axis), result_dtype(dtype))
        assert np.isfinite(grad.value).all()
        # each of the gradient's two terms is at most 2 S/Q / max g; they cancel (exactly, for
        # one non-zero group), so the error is relative to that scale
        scale = ref.hoyer_term_scale(w64, group_axis)
        assert_close(grad.value, expected, dtype, atol_scale=scale)
        assert (grad.value[group_index(w, group_axis, g == 0)] == 0).all()
