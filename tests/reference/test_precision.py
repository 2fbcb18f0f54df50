"""`--precision mixed`: the backbone computes in bfloat16 with float32 variables; the head, the
loss, the L2,1 penalty and the optimizer stay float32; the float32 default is the build it was
before the flag existed; nothing leaks into a later build; a run records and resumes its
precision (reference/backbones.py, `DTYPE_POLICIES`).

Tiny models (16x16 grey images, head 32 -> 8): the Keras tests take seconds per backend.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from reference.checks import check, check_config, resolve  # noqa: E402
from reference.cli import config_from_args  # noqa: E402
from reference.errors import UsageError  # noqa: E402
from reference.grid import plan  # noqa: E402
from reference.presets import DEFAULTS  # noqa: E402

SHAPE = (16, 16, 1)  # small-cnn: four stride-2 stages, 16 -> 1 pixel
METHODS = ("simclr", "byol", "barlow-twins")
BF16_U = 2.0**-8  # bfloat16's unit roundoff: 8 significant bits (7 stored), round to nearest

# sha256 (first 16 hex digits) of the weights right after `_build` with seed 0, float32, the
# default settings with head 32 -> 8 on SHAPE, computed with the code before `--precision`
# existed (commit bbaa753): the default build must stay bit-identical. Barlow Twins and SimCLR
# build the same network.
PRE_CHANGE_INIT = {
    ("jax", "simclr"): "20e37cce82d7b925",
    ("jax", "byol"): "7fec26ec2ac94f51",
    ("torch", "simclr"): "8d3a4b3b5aae7c2d",
    ("torch", "byol"): "21bfb9b48c927482",
    ("tensorflow", "simclr"): "d14f96a9ad133788",
    ("tensorflow", "byol"): "63dfaf39fcb19a03",
}


def _cfg(method: str = "simclr", precision: str | None = "mixed", **overrides) -> dict:
    cfg = {**DEFAULTS, "method": method, "out": "unused", "head_hidden": 32, "head_dim": 8}
    if precision is None:
        del cfg["precision"]
    else:
        cfg["precision"] = precision
    cfg = resolve({**cfg, **overrides})
    cfg["total_steps"] = 10
    return cfg


def _build(cfg: dict, seed: int = 0):
    from reference.training import _build as build

    keras.utils.set_random_seed(seed)
    return build(cfg, SHAPE)


def _digest(weights) -> str:
    h = hashlib.sha256()
    for v in weights:
        h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(v)).tobytes())
    return h.hexdigest()[:16]


def _dtype(x) -> str:
    return keras.backend.standardize_dtype(x.dtype)


def _views(n: int = 16, seed: int = 0) -> np.ndarray:
    """`[x^1; x^2]`: `n` images and a noisy second view of each (float32 in [0, 1])."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE), dtype=np.float32)
    x2 = np.clip(x + 0.05 * rng.standard_normal(x.shape, dtype=np.float32), 0, 1)
    return np.concatenate([x, x2])


def _compute_layers(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]


def _backbones(model):
    return [model.backbone] + ([model.target_backbone] if hasattr(model, "target_backbone") else [])


# -- the Keras side: every backend ------------------------------------------------------------
@pytest.mark.keras_backend
@pytest.mark.parametrize("method", METHODS)
def test_mixed_backbone_computes_in_bfloat16_with_float32_variables(method):
    model, _ = _build(_cfg(method))
    x = _views()
    for backbone in _backbones(model):
        convs = _compute_layers(backbone)
        assert len(convs) == 4, [c.name for c in convs]
        for layer in convs:
            assert [_dtype(v) for v in layer.weights] == ["float32"] * len(layer.weights)
        # what the layers really output, not what their policy says
        probe = keras.Model(backbone.input, [c.output for c in convs])
        outputs = probe(x)
        assert [_dtype(t) for t in outputs] == ["bfloat16"] * len(convs), backbone.name
        # the representation r is the float32 mean of the bfloat16 feature map
        assert _dtype(backbone(x)) == "float32"


@pytest.mark.keras_backend
@pytest.mark.parametrize("method", METHODS)
def test_mixed_head_loss_penalty_and_optimizer_are_float32(method):
    model, head = _build(_cfg(method))
    x = _views()
    y_pred = model(x, training=True)
    outputs = list(y_pred.values()) if isinstance(y_pred, dict) else [y_pred]
    assert [_dtype(t) for t in outputs] == ["float32"] * len(outputs)
    assert _dtype(head(model.backbone(x), training=False)) == "float32"
    penalties = model.losses
    assert len(penalties) == 1 and _dtype(penalties[0]) == "float32"  # lambda ||W||_{2,1}
    assert _dtype(model.compute_loss(x=x, y_pred=y_pred)) == "float32"
    for layer in [head, *head._flatten_layers(include_self=False)]:
        assert layer.compute_dtype == "float32", layer.name
    optimizer = keras.optimizers.Adam(1e-3)  # its state (moments) as `fit` builds it
    optimizer.build(model.trainable_variables)
    floats = [v for v in optimizer.variables if "float" in _dtype(v)]
    assert len(floats) >= 2 * len(model.trainable_variables)
    assert all(_dtype(v) == "float32" for v in floats)


@pytest.mark.keras_backend
def test_mixed_objective_is_float32_accurate():
    """The loss + penalty of a mixed model, from its float32 embeddings and head kernel, is
    InfoNCE (Eq. 2) + lambda ||W||_{2,1} in float64 (the NumPy core) up to float32 rounding.

    Tolerance: the loss reads z (2N = 32 rows, m = 8) through norms and dot products of m
    terms, 2N - 1 exponentials and sums: at most ~(m + 2N) float32 roundings of relative size
    2^-24 on quantities <= 1/tau = 2 in magnitude (logits) and ~3 (the loss): 72 * 6e-8 * 4
    ~ 2e-5. Rounding z to bfloat16 first (a loss computed from 16-bit embeddings) moves it by
    ~2e-4 here, so it fails.
    """
    import sparsehead
    from reference.heads import regularized_kernel

    model, head = _build(_cfg("simclr"))
    x = _views()
    z = model(x, training=True)
    loss = float(model.compute_loss(x=x, y_pred=z))
    z = keras.ops.convert_to_numpy(z).astype(np.float64)
    kernel = keras.ops.convert_to_numpy(regularized_kernel(head)).astype(np.float64)
    n = len(z) // 2
    expected = sparsehead.info_nce(z[:n], z[n:], 0.5) + 1e-4 * sparsehead.l21_norm(kernel)
    assert abs(loss - expected) <= 2e-5, (loss, expected)


@pytest.mark.keras_backend
def test_mixed_training_is_finite_and_its_loss_decreases():
    model, _ = _build(_cfg("simclr"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = _views(32)
    losses = [float(model.train_on_batch(x)) for _ in range(8)]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[-1] < losses[0] - 0.1, losses  # the same batch 8 times: it must be learned


@pytest.mark.keras_backend
def test_mixed_loss_at_init_is_the_float32_loss_up_to_bfloat16_rounding():
    """Same seed, same weights; only the backbone's activations are rounded to bfloat16.

    Bound (first order): small-cnn rounds at R = 9 points between the image and `r` (the
    input cast, then each of 4 stages' conv output and BatchNorm output; ReLU is exact and
    the pooling sums in float32), each a relative error <= u = 2^-8; with the normalising
    layers passing relative errors at gain <= 1, the embeddings differ by eps <= R u in
    relative norm. InfoNCE reads them through cosines: a unit vector moves by <= 2 eps, a
    cosine by <= 4 eps, a logit by <= 4 eps / tau, and each log-softmax term (a logit minus a
    log-sum-exp, 1-Lipschitz in the max norm) by <= 8 eps / tau. So
    |L_mixed - L_float32| <= 8 R u / tau = 0.5625 at tau = 0.5 (L is 2.3-2.7 here; measured
    differences 5e-4 to 2e-3 on the three backends: the bound is a worst case).
    Exact equality would mean the policy was not applied.
    """
    mixed, _ = _build(_cfg("simclr", "mixed"))
    plain, _ = _build(_cfg("simclr", "float32"))
    assert _digest(mixed.weights) == _digest(plain.weights)  # the same initial network
    x = _views()
    losses = [float(m.compute_loss(x=x, y_pred=m(x, training=True))) for m in (mixed, plain)]
    bound = 8 * 9 * BF16_U / 0.5
    assert 0 < abs(losses[0] - losses[1]) <= bound, losses


@pytest.mark.keras_backend
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_float32_default_is_the_pre_change_build(method):
    backend = keras.backend.backend()
    model, _ = _build(_cfg(method, precision=None))  # a config from before the flag
    assert _digest(model.weights) == PRE_CHANGE_INIT[backend, method]
    again, _ = _build(_cfg(method, "float32"))
    assert _digest(again.weights) == PRE_CHANGE_INIT[backend, method]
    policies = {layer.dtype_policy.name for layer in again._flatten_layers()}
    assert policies == {"float32"}


@pytest.mark.keras_backend
def test_mixed_build_leaves_no_global_policy_behind():
    _build(_cfg("byol", "mixed"))
    assert keras.config.dtype_policy().name == "float32"
    assert keras.layers.Dense(4).dtype_policy.name == "float32"
    model, _ = _build(_cfg("byol", "float32"))
    assert {layer.dtype_policy.name for layer in model._flatten_layers()} == {"float32"}
    assert _digest(model.weights) == PRE_CHANGE_INIT[keras.backend.backend(), "byol"]


@pytest.mark.keras_backend
def test_mixed_encode_gives_float_features():
    from reference.evaluate import encode

    model, head = _build(_cfg("simclr"))
    r, z = encode(model.backbone, head, _views(4))
    assert r.dtype == z.dtype == np.float64 and np.isfinite(r).all() and np.isfinite(z).all()


# One tiny run end to end (seconds; the TensorFlow pass): what the run writes.
def test_mixed_run_records_its_precision(tmp_path):
    from reference.training import run

    out = tmp_path / "run"
    cfg = config_from_args("simclr", ["--dataset", "digits", "--out", str(out), "--quiet",
                                      "--precision", "mixed"])  # fmt: skip
    cfg.update(train_size=128, test_size=64, batch_size=64, epochs=1, head_hidden=16, head_dim=8)
    res = run(cfg, verbose=0)
    assert res["config"]["precision"] == "mixed"
    assert json.loads((out / "config.json").read_text())["precision"] == "mixed"
    acc = res["metrics"]["trained"]
    assert all(math.isfinite(acc[k]) for k in ("linear_representation", "knn5_representation"))


# -- the checks: framework-free (run once, in the TensorFlow pass) ----------------------------
TINY = ["--dataset", "digits", "--train-size", "128", "--test-size", "64", "--batch-size", "64",
        "--epochs", "2", "--quiet"]  # fmt: skip


def _interrupted(out, stored: dict) -> None:
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps(stored))


def test_resume_takes_the_precision_of_the_interrupted_run(tmp_path):
    out = tmp_path / "run"
    stored = check(config_from_args("simclr", [*TINY, "--out", str(out), "--precision", "mixed"]))
    assert stored.cfg["precision"] == "mixed"
    _interrupted(out, stored.cfg)
    resumed = check(config_from_args("simclr", [*TINY, "--out", str(out), "--resume"]))
    assert resumed.resume and resumed.cfg["precision"] == "mixed"
    with pytest.raises(UsageError, match=r"--precision 'float32' \(was 'mixed'\) differ"):
        check(config_from_args("simclr", [*TINY, "--out", str(out), "--resume",
                                          "--precision", "float32"]))  # fmt: skip


def test_a_run_stored_before_the_flag_is_a_float32_run(tmp_path):
    out = tmp_path / "run"
    stored = dict(check(config_from_args("simclr", [*TINY, "--out", str(out)])).cfg)
    del stored["precision"]
    _interrupted(out, stored)
    resumed = check(config_from_args("simclr", [*TINY, "--out", str(out), "--resume"]))
    assert resumed.cfg["precision"] == "float32"
    with pytest.raises(UsageError, match=r"--precision 'mixed' \(was 'float32'\) differ"):
        check(config_from_args("simclr", [*TINY, "--out", str(out), "--resume",
                                          "--precision", "mixed"]))  # fmt: skip


def test_a_grid_refuses_a_finished_run_stored_before_the_flag_for_mixed(tmp_path):
    from reference.checks import stored_settings
    from reference.grid import check as check_grid

    runs = plan(["simclr"], [("baseline", {"l21": 0.0})], [0], TINY, tmp_path)
    folder = runs[0].out
    folder.mkdir(parents=True)
    stored = stored_settings(dict(runs[0].cfg))
    del stored["precision"]
    (folder / "config.json").write_text(json.dumps(stored))
    (folder / "results.json").write_text(json.dumps({"config": stored}))
    assert check_grid(runs, stored_settings) == ["skip"]  # the same (float32) run: skipped
    mixed = plan(["simclr"], [("baseline", {"l21": 0.0})], [0], [*TINY, "--precision", "mixed"],
                 tmp_path)  # fmt: skip
    with pytest.raises(UsageError, match=r"precision 'mixed' \(was 'float32'\)"):
        check_grid(mixed, stored_settings)


def test_a_bad_precision_is_a_usage_error_naming_the_flag():
    with pytest.raises(UsageError, match=r"--precision must be one of float32, mixed; got 'half'"):
        check_config(resolve({**DEFAULTS, "method": "simclr", "precision": "half"}))


def test_reproduce_passes_precision_to_every_run(tmp_path):
    runs = plan(["simclr", "byol"], [("baseline", {"l21": 0.0})], [0, 1],
                ["--precision", "mixed"], tmp_path)  # fmt: skip
    assert len(runs) == 4 and {r.cfg["precision"] for r in runs} == {"mixed"}
    default = plan(["simclr"], [("baseline", {"l21": 0.0})], [0], [], tmp_path)
    assert default[0].cfg["precision"] == "float32"


# The paper's backbones: the same policy per layer (ResNet-50 by cloning keras.applications'
# model) and the same initial weights as the float32 build. Building only (the TF pass).
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_mixed_resnets_hold_the_policy_and_the_float32_weights(name):
    from reference.backbones import DTYPE_POLICIES, build_backbone

    keras.utils.set_random_seed(0)
    plain = build_backbone(name, (32, 32, 3))
    keras.utils.set_random_seed(0)
    mixed = build_backbone(name, (32, 32, 3), dtype=DTYPE_POLICIES["mixed"])
    assert _digest(mixed.weights) == _digest(plain.weights)
    assert {layer.dtype_policy.name for layer in plain.layers} == {"float32"}
    convs = [layer for layer in mixed.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) >= 20
    assert all(c.compute_dtype == "bfloat16" and c.variable_dtype == "float32" for c in convs)
    pools = [p for p in mixed.layers if isinstance(p, keras.layers.GlobalAveragePooling2D)]
    assert [p.compute_dtype for p in pools] == ["float32"]
    assert _dtype(mixed(np.zeros((2, 32, 32, 3), dtype="float32"))) == "float32"
