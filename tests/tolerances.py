"""The one table of tolerances for every conformance test (core, Keras, PyTorch, optax).

A result is compared with the float64 NumPy core as `|a - b| <= rtol * |b| + atol * scale`.

- float64: 1e-10. Reductions of a few thousand terms lose at most ~1e3 ulps (2.2e-13).
- float32: 1e-5. eps = 1.19e-7; a float32 reduction over n terms has a typical error of
  sqrt(n) eps and a worst case of n eps; 1e-5 (~84 eps) covers n up to a few thousand with the
  pairwise/blocked sums every backend uses, and is what the issues ask for.
- float16 / bfloat16 inputs accumulate in float32, so a float32 *result* keeps 1e-5; a result
  stored in the half dtype is off by its final rounding: 2 ulps, 2**-10 * 2 (float16) and
  2**-7 * 2 (bfloat16) relative.
- Below the smallest normal number an ulp is no longer relative. A float16 result there is
  subnormal, with spacing 2**-24 (a float16 gradient of 3e-7 has 2-3 significant bits): 2 of
  those are allowed, absolutely. A float32, bfloat16 or float64 result there may also be
  flushed to zero (XLA on CPU flushes subnormals): its smallest normal number is allowed,
  absolutely (1.2e-38 for float32).
"""

from __future__ import annotations

import numpy as np

RTOL = {
    "float64": 1e-10,
    "float32": 1e-5,
    "float16": 2 * 2.0**-10,
    "bfloat16": 2 * 2.0**-7,
}


FLOOR = {  # the absolute resolution at the bottom of each dtype (see above)
    "float64": 2.0**-1022,
    "float32": 2.0**-126,
    "float16": 2 * 2.0**-24,
    "bfloat16": 2.0**-126,
}


def rtol(dtype) -> float:
    """Relative tolerance for a result stored in `dtype` (a numpy dtype or its name)."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    return RTOL[name]


def assert_close(actual, expected, dtype, atol_scale: float = 0.0, err_msg: str = "") -> None:
    """`actual` within `rtol(dtype)` of `expected`; `atol_scale` sets the absolute floor
    `rtol * atol_scale` for entries near 0 (e.g. the largest magnitude in the result)."""
    tol = rtol(dtype)
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64),
        np.asarray(expected, dtype=np.float64),
        rtol=tol,
        atol=max(tol * atol_scale, FLOOR[name]),
        err_msg=err_msg,
    )
