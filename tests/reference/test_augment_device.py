"""Device augmentation (`--augment device`): the same random parameters, the same pixels.

- `Augment.draw` makes the documented generator calls in the documented order (so the random
  streams per `(seed, epoch, batch)`, and with them resume and the host path's numbers, are
  those of the NumPy path before the split into draw + apply), and the drawn parameters follow
  the specification (Kolmogorov-Smirnov and binomial tests).
- `augment_ops.apply_ops` (keras.ops, on the backend KERAS_BACKEND selects) equals the NumPy
  `Augment.apply` for the same parameters, and a batch of the real `TwoViews` made on the
  device equals the host's.

Tolerance of the pixel comparison, from float32: values lie in [0, 1]; the resample is two
matmuls whose rows hold at most two non-zero weights (the NumPy path sums the same four
products in another order: a few roundings of 2^-24), then about 15 elementwise steps
(factors <= 1.4, a mean over the image in another summation order, a 3x3 matrix product),
each adding at most ~1 ulp at values <= 2: an error of order 30 * 2^-23 ~ 4e-6 at worst.
`ATOL = 1e-5` leaves a factor ~2 above that bound, and is ~1000x below the smallest change
a planted bug makes (a pixel level is 1/255 ~ 4e-3).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

keras = pytest.importorskip("keras")

from reference.augment import Augment, AugmentParams, to_float  # noqa: E402
from reference.augment_ops import apply_ops, two_views_ops  # noqa: E402
from reference.checks import check_config  # noqa: E402
from reference.errors import UsageError  # noqa: E402
from reference.training import TwoViews  # noqa: E402

pytestmark = pytest.mark.keras_backend  # keras.ops on the backend KERAS_BACKEND selects

ATOL = 1e-5
ALPHA = 1e-3  # per statistical test; the seed below was fixed once, not searched
N_DRAW = 20_000


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _images(n, h, w, c, seed=0) -> np.ndarray:
    """uint8 images over the whole range [0, 255] (so that the jitter clips), with structure
    (wrapped gradients) and noise, so that a wrong sample shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = yy[..., None] * 29 + xx[..., None] * 17 + np.arange(c) * 50
    noise = rng.integers(0, 60, size=(n, h, w, c))
    return ((base[None] + noise) % 256).astype(np.uint8)


def _edge_params(n: int, h: int, w: int, c: int) -> AugmentParams:
    """Grids that run past both edges (clamped reads), flipped or not, and strong colour."""
    p = Augment(jitter_p=1.0, grayscale_p=0.5).draw(n, h, w, c, np.random.default_rng(5))
    sy = np.linspace(-3.0, h + 2.0, h, dtype=np.float32)[None].repeat(n, 0)
    sx = np.linspace(-1.7, w + 0.3, w, dtype=np.float32)[None].repeat(n, 0)
    sx[::2] = sx[::2, ::-1]  # every other image flipped
    return AugmentParams(**{**p.as_dict(), "sy": sy, "sx": sx})


# ---------------------------------------------------------------- pixels: device == host


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize(
    "params",
    ["paper", "full-crop", "jitter-gray", "edges"],
)
def test_apply_ops_equals_numpy_apply(c, params):
    n, h, w = 24, 12, 10  # h != w: rows and columns cannot be swapped unnoticed
    images = _images(n, h, w, c)
    kw = {"paper": {}, "full-crop": {"crop_scale": (1.0, 1.0)},
          "jitter-gray": {"jitter_p": 1.0, "grayscale_p": 0.5}}  # fmt: skip
    if params == "edges":
        p = _edge_params(n, h, w, c)
    else:
        p = Augment(**kw[params]).draw(n, h, w, c, np.random.default_rng(11))
    want = Augment.apply(to_float(images), p)
    got = _np(apply_ops(images, p.as_dict()))  # uint8 in: the conversion on the device too
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    # float input takes the same path
    np.testing.assert_allclose(_np(apply_ops(to_float(images), p.as_dict())), want, atol=ATOL)


@pytest.mark.parametrize("c", [1, 3])
def test_device_views_equal_host_views_of_two_views(c):
    images = _images(40, 16, 16, c, seed=3)
    augment = Augment(crop_scale=(0.2, 1.0))
    host = TwoViews(to_float(images), 16, augment, seed=7, epoch=2)
    device = TwoViews(images, 16, augment, seed=7, epoch=2, device=True)
    for i in (0, 1):
        batch = device[i]
        assert batch["images"].dtype == np.uint8 and batch["images"].shape == (16, 16, 16, c)
        assert batch["sy"].shape == (32, 16)  # both views' parameters, view 1 first
        np.testing.assert_allclose(_np(two_views_ops(batch)), host[i], rtol=0, atol=ATOL)


@pytest.mark.parametrize("method", ["simclr", "byol", "barlow-twins"])
def test_every_method_reads_device_batches(method):
    """Each method's `call` (what the train step runs) makes the views from the device batch:
    the same model and weights give the outputs of the host batch (BYOL: the online
    prediction and the target network's embedding, both read the views)."""
    from reference.presets import DEFAULTS
    from reference.training import _build

    images = _images(8, 12, 12, 3, seed=4)
    augment = Augment(crop_scale=(0.2, 1.0))
    host = TwoViews(to_float(images), 8, augment, seed=1)[0]
    device = TwoViews(images, 8, augment, seed=1, device=True)[0]
    cfg = dict(DEFAULTS, method=method, penalty=1e-4, head_hidden=16, head_dim=8)
    keras.utils.set_random_seed(0)
    model, _ = _build(cfg, images.shape[1:])
    start = model.get_weights()
    out_host = keras.tree.map_structure(_np, model(host, training=True))
    model.set_weights(start)  # BYOL's call moves its target; BatchNorm its statistics
    out_device = keras.tree.map_structure(_np, model(device, training=True))
    for got, want in zip(keras.tree.flatten(out_device), keras.tree.flatten(out_host), strict=True):
        assert want.shape[0] == 16 and np.ptp(want) > 0
        # views within ATOL move the batch-normalised outputs by about ATOL / std
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- the random parameters


def _crop(p: AugmentParams, h: int, w: int):
    """Crop height and width (fractions of the side), top-left corner, and flip, read back
    from the sampling grids: `sy[:, i] = (y0 + ch (i + 0.5) / h) h - 0.5`."""
    ch = (p.sy[:, -1] - p.sy[:, 0]).astype(np.float64) / (h - 1)
    dx = (p.sx[:, -1] - p.sx[:, 0]).astype(np.float64)
    cw, flip = np.abs(dx) / (w - 1), dx < 0
    y0 = (p.sy[:, 0] + 0.5) / h - ch * 0.5 / h
    x0 = (np.where(flip, p.sx[:, -1], p.sx[:, 0]) + 0.5) / w - cw * 0.5 / w
    return ch, cw, y0, x0, flip


def test_draw_makes_the_documented_generator_calls():
    """The order of the generator calls decides every view of every run: pin it."""
    n, h, w = 64, 9, 7
    for c in (3, 1):
        rng = np.random.default_rng(21)
        p = Augment().draw(n, h, w, c, rng)
        g = np.random.default_rng(21)
        area = g.uniform(0.2, 1.0, n)
        log_r = g.uniform(math.log(3 / 4), math.log(4 / 3), n)
        uy, ux = g.uniform(0, 1, n), g.uniform(0, 1, n)
        flip = g.random(n) < 0.5
        on = g.random(n) < 0.8
        bf, cf = g.uniform(0.6, 1.4, n), g.uniform(0.6, 1.4, n)
        ch, cw, y0, x0, flip_seen = _crop(p, h, w)
        want_cw = np.minimum(np.sqrt(area * np.exp(log_r)), 1)
        want_ch = np.minimum(np.sqrt(area / np.exp(log_r)), 1)
        np.testing.assert_allclose(cw, want_cw, atol=1e-5)
        np.testing.assert_allclose(ch, want_ch, atol=1e-5)
        np.testing.assert_allclose(y0, uy * (1 - want_ch), atol=1e-5)
        np.testing.assert_allclose(x0, ux * (1 - want_cw), atol=1e-5)
        np.testing.assert_array_equal(flip_seen, flip)
        np.testing.assert_array_equal(p.brightness, np.where(on, bf, 1).astype(np.float32))
        np.testing.assert_array_equal(p.contrast, np.where(on, cf, 1).astype(np.float32))
        if c == 1:  # nothing more is drawn; the rest is the identity
            assert rng.random() == g.random()
            assert (p.saturation == 1).all() and (p.hue_sin == 0).all()
            assert (p.hue_cos == 1).all() and (p.grayscale == 0).all()
            continue
        sf, hue = g.uniform(0.6, 1.4, n), g.uniform(-0.1, 0.1, n)
        gray = g.random(n) < 0.1
        theta = np.where(on, hue, 0) * 2 * np.pi
        np.testing.assert_array_equal(p.saturation, np.where(on, sf, 1).astype(np.float32))
        np.testing.assert_array_equal(p.hue_cos, np.cos(theta).astype(np.float32))
        np.testing.assert_array_equal(p.hue_sin, np.sin(theta).astype(np.float32))
        np.testing.assert_array_equal(p.grayscale, gray.astype(np.float32))
        assert rng.random() == g.random()  # and nothing else was drawn


@pytest.fixture(scope="module")
def drawn():
    h = w = 32
    return Augment(crop_scale=(0.2, 1.0)).draw(N_DRAW, h, w, 3, np.random.default_rng(2024)), h, w


def _uniform_ks(x, lo, hi) -> float:
    return stats.kstest(x, stats.uniform(lo, hi - lo).cdf).pvalue


def test_unclipped_crops_have_uniform_area_and_log_ratio():
    """With areas in [0.2, 0.75] no crop side exceeds the image (0.75 * 4/3 = 1): area and
    log aspect ratio are then read back exactly, and must be uniform (and the corner uniform
    over the free range)."""
    h = w = 32
    p = Augment(crop_scale=(0.2, 0.75)).draw(N_DRAW, h, w, 3, np.random.default_rng(7))
    ch, cw, y0, x0, _ = _crop(p, h, w)
    assert _uniform_ks(ch * cw, 0.2, 0.75) > ALPHA
    assert _uniform_ks(np.log(cw / ch), math.log(3 / 4), math.log(4 / 3)) > ALPHA
    assert _uniform_ks(y0 / (1 - ch), 0, 1) > ALPHA
    assert _uniform_ks(x0 / (1 - cw), 0, 1) > ALPHA


def _clipped_area_cdf(t: np.ndarray, lo=0.2, hi=1.0, grid=4000) -> np.ndarray:
    """P(crop area <= t) for area `a ~ U[lo, hi]`, `log r ~ U[-L, L]` (`L = log 4/3`), sides
    `min(sqrt(a r), 1)` and `min(sqrt(a / r), 1)`: with `m = min(r, 1/r) = exp(-|log r|)` the
    clipped area is `a` for `a <= m` and `sqrt(a m)` above, so `area <= t` iff `a <= t`
    (t <= m) or `a <= t^2 / m` (t > m); averaged over `|log r| ~ U[0, L]` (midpoint rule; its
    error, O(1/grid) at the two kinks, is far below the KS test's resolution)."""
    u = (np.arange(grid) + 0.5) / grid * math.log(4 / 3)
    m = np.exp(-u)[None, :]
    out = []
    for chunk in np.array_split(np.asarray(t, dtype=np.float64), max(1, len(t) // 2000)):
        tc = chunk[:, None]
        a = np.where(tc <= m, tc, tc * tc / m)
        out.append(np.clip((a - lo) / (hi - lo), 0.0, 1.0).mean(axis=1))
    return np.concatenate(out)


def test_paper_crop_areas_follow_the_clipped_specification(drawn):
    p, h, w = drawn
    ch, cw, *_ = _crop(p, h, w)
    assert stats.kstest(ch * cw, _clipped_area_cdf).pvalue > ALPHA


def test_flip_jitter_and_grayscale_rates_and_factors(drawn):
    p, h, w = drawn
    *_, flip = _crop(p, h, w)
    n = len(flip)
    assert stats.binomtest(int(flip.sum()), n, 0.5).pvalue > ALPHA
    on = p.brightness != 1  # P(a drawn factor is exactly 1) is ~0
    assert stats.binomtest(int(on.sum()), n, 0.8).pvalue > ALPHA
    for factor in (p.contrast, p.saturation):
        np.testing.assert_array_equal(factor != 1, on)  # one switch for all four
    for factor in (p.brightness, p.contrast, p.saturation):
        assert _uniform_ks(factor[on], 0.6, 1.4) > ALPHA
    turns = np.arctan2(p.hue_sin, p.hue_cos) / (2 * np.pi)
    assert (turns[~on] == 0).all()
    assert _uniform_ks(turns[on], -0.1, 0.1) > ALPHA
    assert set(np.unique(p.grayscale)) <= {0.0, 1.0}
    assert stats.binomtest(int(p.grayscale.sum()), n, 0.1).pvalue > ALPHA
    # independent switches: grayscale as often with jitter as without
    table = [[int((on & (p.grayscale == g)).sum()), int((~on & (p.grayscale == g)).sum())]
             for g in (0, 1)]  # fmt: skip
    assert stats.chi2_contingency(table).pvalue > ALPHA


def test_augment_flag_is_checked():
    from reference.presets import DEFAULTS

    cfg = {**DEFAULTS, "method": "simclr", "l21": 1e-4, "proximal": False, "augment": "gpu"}
    with pytest.raises(UsageError, match="--augment must be host or device; got 'gpu'"):
        check_config(cfg)
    check_config({**cfg, "augment": "device"})
