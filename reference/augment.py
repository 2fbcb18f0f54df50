"""Two-view augmentation of Sec. 7.1 (as in the W-MSE code base), vectorised over a batch.

Per image, independently: random resized crop (area scale in [0.2, 1], aspect ratio in
[3/4, 4/3], bilinear, back to the input size), horizontal flip (p = 0.5), colour jitter
(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1) with p = 0.8, grayscale with p = 0.1.
For single-channel images only brightness and contrast apply (saturation, hue and grayscale
have no meaning there).

Everything is NumPy on a whole batch at once: the crop and the flip are one bilinear gather
with per-image sampling grids (a flip is a grid read backwards), and the colour operations are
per-image affine maps. Colour jitter applies its four operations in a fixed order
(brightness, contrast, saturation, hue), where torchvision draws a random order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = ["Augment", "AugmentParams", "hue_matrices", "to_float"]

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
# RGB <-> YIQ: a hue shift is a rotation of the (I, Q) chroma plane.
_RGB2YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float32
)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ).astype(np.float32)


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 `(N, H, W, C)` in [0, 255] to float32 in [0, 1]."""
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 (N, H, W, C); got dtype {images.dtype}")
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


@dataclass(frozen=True)
class Augment:
    """The SimCLR / W-MSE augmentation with the paper's parameters as defaults."""

    crop_scale: tuple[float, float] = (0.2, 1.0)
    crop_ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grayscale_p: float = 0.1

    def __post_init__(self):
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1; got {self.crop_scale}")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            p = getattr(self, name)
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be in [0, 1]; got {p}")

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment a float32 batch `(N, H, W, C)` in [0, 1]; returns a new float32 array.

        `draw` then `apply`: the random parameters first, then the pixels."""
        _check_images(images)
        n, h, w, c = images.shape
        return self.apply(images, self.draw(n, h, w, c, rng))

    def draw(self, n: int, h: int, w: int, c: int, rng: np.random.Generator) -> AugmentParams:
        """The random parameters of `n` images of shape `(h, w, c)`, drawn from `rng` in a
        fixed order (crop area, log aspect ratio, crop row and column offsets, flip, jitter
        on/off, brightness, contrast; with 3 channels also saturation, hue and grayscale)."""
        if c not in (1, 3):
            raise ValueError(f"c must be 1 or 3; got {c}")
        # -- geometry: random resized crop, flip folded into the column grid
        area = rng.uniform(*self.crop_scale, size=n)
        log_r = rng.uniform(np.log(self.crop_ratio[0]), np.log(self.crop_ratio[1]), size=n)
        ratio = np.exp(log_r)
        # Crop size as a fraction of the image side; clipped to the image (torchvision
        # retries up to 10 times and then falls back to a centre crop; clipping is simpler).
        cw = np.minimum(np.sqrt(area * ratio), 1.0)
        ch = np.minimum(np.sqrt(area / ratio), 1.0)
        y0 = rng.uniform(0, 1, size=n) * (1 - ch)
        x0 = rng.uniform(0, 1, size=n) * (1 - cw)
        flip = rng.random(n) < self.flip_p
        t_y = (np.arange(h, dtype=np.float32) + 0.5) / h
        t_x = (np.arange(w, dtype=np.float32) + 0.5) / w
        t_xf = np.where(flip[:, None], t_x[::-1][None, :], t_x[None, :])
        sy = (y0[:, None] + ch[:, None] * t_y[None, :]) * h - 0.5  # (n, h) source rows
        sx = (x0[:, None] + cw[:, None] * t_xf) * w - 0.5  # (n, w) source cols
        # -- colour: factors 1 (hue angle 0) where the jitter is off
        b, ct, s, hue = self.jitter
        on = rng.random(n) < self.jitter_p
        bf = np.where(on, rng.uniform(max(0, 1 - b), 1 + b, n), 1.0)
        cf = np.where(on, rng.uniform(max(0, 1 - ct), 1 + ct, n), 1.0)
        if c == 1:
            sf, theta, to_gray = np.ones(n), np.zeros(n), np.zeros(n, dtype=bool)
        else:
            sf = np.where(on, rng.uniform(max(0, 1 - s), 1 + s, n), 1.0)
            theta = np.where(on, rng.uniform(-hue, hue, n), 0.0) * 2 * np.pi
            to_gray = rng.random(n) < self.grayscale_p
        f32 = np.float32
        return AugmentParams(
            sy=sy.astype(f32), sx=sx.astype(f32), brightness=bf.astype(f32),
            contrast=cf.astype(f32), saturation=sf.astype(f32), hue_cos=np.cos(theta).astype(f32),
            hue_sin=np.sin(theta).astype(f32), grayscale=to_gray.astype(f32),
        )  # fmt: skip

    @staticmethod
    def apply(images: np.ndarray, params: AugmentParams) -> np.ndarray:
        """Apply drawn `params` to a float32 batch `(N, H, W, C)` in [0, 1] (a new array)."""
        _check_images(images)
        x = _bilinear(images, params.sy, params.sx)
        _colour(x, params)
        return x


@dataclass(frozen=True)
class AugmentParams:
    """The random parameters of one augmented view of `N` images (float32 arrays).

    `sy (N, H)`, `sx (N, W)`: the source row and column (pixel units, centres at integers) that
    each output row and column samples bilinearly; a flip is `sx` read backwards.
    `brightness`, `contrast`, `saturation (N,)`: jitter factors (1 where the jitter is off).
    `hue_cos`, `hue_sin (N,)`: the hue shift as a rotation of the YIQ chroma plane by
    `2 pi h`, `h` uniform in `[-hue, hue]` (cos 1, sin 0 where off). `grayscale (N,)`: 1 where
    the image becomes gray. With one channel only `sy`, `sx`, brightness and contrast act.
    """

    sy: np.ndarray
    sx: np.ndarray
    brightness: np.ndarray
    contrast: np.ndarray
    saturation: np.ndarray
    hue_cos: np.ndarray
    hue_sin: np.ndarray
    grayscale: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def concatenate(parts: list[AugmentParams]) -> AugmentParams:
        """The parameters of several batches, stacked along `N` (e.g. the two views)."""
        names = [f.name for f in fields(AugmentParams)]
        return AugmentParams(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in names})


def _check_images(images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N, H, W, C) with C in (1, 3); got {images.shape}")


def _colour(x: np.ndarray, p: AugmentParams) -> None:
    """Colour jitter in place, in a fixed order: brightness, contrast, saturation, hue (each
    clipped to [0, 1]), then grayscale."""
    n, c = x.shape[0], x.shape[-1]
    x *= p.brightness[:, None, None, None]
    np.clip(x, 0, 1, out=x)
    mean = _gray(x).mean(axis=(1, 2, 3), keepdims=True)
    x -= mean
    x *= p.contrast[:, None, None, None]
    x += mean
    np.clip(x, 0, 1, out=x)
    if c == 1:
        return
    gray = _gray(x)
    x -= gray
    x *= p.saturation[:, None, None, None]
    x += gray
    np.clip(x, 0, 1, out=x)
    y = np.matmul(x.reshape(n, -1, 3), hue_matrices(p.hue_cos, p.hue_sin)).reshape(x.shape)
    np.clip(y, 0, 1, out=x)
    to_gray = p.grayscale > 0.5
    if to_gray.any():
        x[to_gray] = _gray(x[to_gray])


def hue_matrices(cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """`(N, 3, 3)` float32 `M^T` with `M = YIQ2RGB @ R(theta) @ RGB2YIQ`: a row of RGB pixels
    times `M^T` is the hue-rotated row (`R` rotates the (I, Q) plane)."""
    n = len(cos)
    rot = np.zeros((n, 3, 3), dtype=np.float32)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    return np.einsum("ij,njk,kl->nli", _YIQ2RGB, rot, _RGB2YIQ).astype(np.float32)


def _gray(x: np.ndarray) -> np.ndarray:
    if x.shape[-1] == 1:
        return x
    return (x @ _LUMA)[..., None]


def _bilinear(images: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Sample `images[n]` at rows `sy[n]` x cols `sx[n]` (separable grid), edge-clamped."""
    n, h, w, _ = images.shape
    y0 = np.floor(sy)
    x0 = np.floor(sx)
    wy = (sy - y0)[:, :, None, None]
    wx = (sx - x0)[:, None, :, None]
    y0 = y0.astype(np.intp)
    x0 = x0.astype(np.intp)
    y1 = np.clip(y0 + 1, 0, h - 1)[:, :, None]
    x1 = np.clip(x0 + 1, 0, w - 1)[:, None, :]
    y0 = np.clip(y0, 0, h - 1)[:, :, None]
    x0 = np.clip(x0, 0, w - 1)[:, None, :]
    idx = np.arange(n)[:, None, None]
    top = images[idx, y0, x0] * (1 - wx) + images[idx, y0, x1] * wx
    bot = images[idx, y1, x0] * (1 - wx) + images[idx, y1, x1] * wx
    return (top * (1 - wy) + bot * wy).astype(np.float32)
