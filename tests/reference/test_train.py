"""End-to-end tiny runs of the reference scripts (sklearn digits, 1-2 epochs) on the backend
that KERAS_BACKEND selects, plus the augmentation, CLI and head checks they rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from reference import rundir  # noqa: E402
from reference.augment import Augment  # noqa: E402
from reference.cli import config_from_args  # noqa: E402
from reference.errors import UsageError  # noqa: E402
from reference.presets import DEFAULTS, PRESETS  # noqa: E402
from reference.training import run  # noqa: E402

pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI

ROOT = Path(__file__).resolve().parents[2]
ACCURACIES = ("linear_representation", "knn5_representation", "linear_embedding", "knn5_embedding")


def tiny(method: str, out: Path, **overrides) -> dict:
    """A run that takes seconds: digits, 256 training images, batch 64, 1 epoch."""
    cfg = config_from_args(method, ["--dataset", "digits", "--out", str(out), "--quiet"])
    cfg.update(train_size=256, test_size=100, batch_size=64, epochs=1, head_hidden=32)
    cfg.update(head_dim=8)
    cfg.update(overrides)
    return cfg


# -- augmentation ------------------------------------------------------------------------
def test_augment_identity_parameters_return_the_input():
    rng = np.random.default_rng(0)
    x = rng.random((5, 9, 7, 3), dtype=np.float32)
    plain = Augment((1, 1), (1, 1), flip_p=0, jitter_p=0, grayscale_p=0)
    np.testing.assert_allclose(plain(x, rng), x, atol=1e-6)
    flip = Augment((1, 1), (1, 1), flip_p=1, jitter_p=0, grayscale_p=0)
    np.testing.assert_allclose(flip(x, rng), x[:, :, ::-1], atol=1e-6)
    gray = Augment((1, 1), (1, 1), flip_p=0, jitter_p=0, grayscale_p=1)
    y = gray(x, rng)
    np.testing.assert_allclose(y, (x @ np.array([0.299, 0.587, 0.114]))[..., None].repeat(3, -1),
                               atol=1e-6)  # fmt: skip


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_keeps_range_shape_and_constant_images(channels):
    rng = np.random.default_rng(1)
    x = rng.random((64, 12, 12, channels), dtype=np.float32)
    y = Augment()(x, rng)
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= 0 and y.max() <= 1
    # Crops and flips of a constant image are constant (bilinear weights sum to 1); without
    # colour jitter the value is unchanged.
    c = np.full((8, 10, 10, channels), 0.3, dtype=np.float32)
    out = Augment(jitter_p=0, grayscale_p=0)(c, rng)
    np.testing.assert_allclose(out, c, atol=1e-6)


def test_augment_is_deterministic_in_the_generator_and_views_differ():
    x = np.random.default_rng(2).random((16, 10, 10, 3), dtype=np.float32)
    a = Augment()(x, np.random.default_rng(5))
    b = Augment()(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, Augment()(x, np.random.default_rng(6)))


def test_augment_rejects_bad_input():
    with pytest.raises(ValueError, match="crop_scale"):
        Augment(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="images"):
        Augment()(np.zeros((4, 4, 4, 2), np.float32), np.random.default_rng(0))


# -- command line ------------------------------------------------------------------------
def test_presets_carry_the_paper_settings_and_flags_override_them():
    cfg = config_from_args("simclr", ["--preset", "paper-cifar10"])
    assert (cfg["backbone"], cfg["lr"], cfg["epochs"], cfg["temperature"], cfg["l21"]) == (
        "resnet18", 3e-3, 1000, 0.5, 1e-4)  # fmt: skip
    assert cfg["weight_decay"] == 1e-6 and cfg["batch_size"] == 512
    stl = PRESETS["paper-stl10"]
    assert (stl["lr"], stl["epochs"], stl["head_dim"]) == (2e-3, 2000, 128)
    assert PRESETS["paper-tiny-imagenet"]["lr"] == 2e-3
    cfg = config_from_args("simclr", ["--preset", "paper-cifar10", "--epochs", "3", "--l21", "0"])
    assert cfg["epochs"] == 3 and cfg["l21"] == 0.0
    assert config_from_args("byol", [])["dataset"] == DEFAULTS["dataset"] == "fashion-mnist-10k"


def test_bad_settings_raise_usage_errors_before_touching_out(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="--l21 must be 0 with --head identity"):
        run(tiny("simclr", out, head="identity", l21=1e-4))
    with pytest.raises(UsageError, match="--batch-size must be an int >= 1"):
        run(tiny("simclr", out, batch_size=0))
    with pytest.raises(UsageError, match="--resume: no interrupted run"):
        run(tiny("simclr", out, resume=True))
    assert list(tmp_path.iterdir()) == []


# -- end-to-end --------------------------------------------------------------------------
def test_simclr_tiny_run_writes_results_plots_and_checkpoints(tmp_path):
    res = run(tiny("simclr", tmp_path), verbose=0)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["backend"] == keras.backend.backend()
    assert saved["environment"].get("KERAS_BACKEND") == os.environ.get("KERAS_BACKEND")
    assert saved["epochs_completed"] == 1 and len(saved["history"]) == 1
    for key in ACCURACIES:
        for which in ("trained", "random_init"):
            assert 0.0 <= saved["metrics"][which][key] <= 1.0
    trained = res["metrics"]["trained"]
    assert 1.0 <= trained["effective_rank_embedding"] <= 8
    assert trained["head_sparsity"]["groups"] == 32  # rows of the (32, 8) last kernel
    assert res["timing"]["train_images_per_second"] > 0
    for name in ("spectra.png", "group_norms.png", "history.json", "config.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "checkpoints" / "final.weights.h5").exists()


@pytest.mark.parametrize(("preset", "expected"), [(None, "1"), ("0", "0")])
def test_reference_turns_tensorflows_onednn_kernels_on_unless_told(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if preset is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = preset
    code = "import os, reference; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == expected


class _Crash(keras.callbacks.Callback):
    """Stops the process-level run after `at` epochs, as a kill would (after the backup)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.at:
            raise KeyboardInterrupt("simulated interruption")


def test_resume_continues_from_the_last_completed_epoch(tmp_path):
    out = tmp_path / "run"
    cfg = tiny("simclr", out, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callbacks=[_Crash(2)], verbose=0)
    assert not out.exists()  # the interrupted run is kept in OUT.partial
    before = json.loads((rundir.partial_dir(out) / "history.json").read_text())
    assert [h["epoch"] for h in before] == [1, 2]
    # As from the command line: no other flag; the saved settings (3 epochs, digits) are used.
    res = run(config_from_args("simclr", ["--out", str(out), "--resume", "--quiet"]))
    assert not rundir.partial_dir(out).exists() and (out / "results.json").exists()
    assert res["epochs_completed"] == 3
    assert [h["epoch"] for h in res["history"]] == [1, 2, 3]
    assert res["history"][:2] == before  # the first two epochs are kept as they were
    assert res["timing"]["epochs_this_session"] == 1


@pytest.mark.parametrize("method", ["byol", "barlow-twins"])
def test_other_methods_train(tmp_path, method):
    res = run(tiny(method, tmp_path), verbose=0)
    losses = [h["loss"] for h in res["history"]]
    assert np.isfinite(losses).all()
    assert res["method"] == method


def test_byol_target_follows_the_online_network_by_ema(tmp_path):
    from reference.training import _build

    cfg = tiny("byol", tmp_path)
    cfg["penalty"] = 0.0
    model, _ = _build(cfg, (8, 8, 1))
    online = [keras.ops.convert_to_numpy(v) for v in model.backbone.weights]
    target = [keras.ops.convert_to_numpy(v) for v in model.target_backbone.weights]
    for o, t in zip(online, target, strict=True):
        np.testing.assert_array_equal(o, t)  # copied at build
    for v in model.backbone.trainable_weights:
        v.assign(v + 1.0)
    model(np.zeros((4, 8, 8, 1), "float32"), training=True)
    # t <- tau t + (1 - tau) o, with o the online value at the time of the update.
    for (t, o), t_before in zip(model._pairs(), target + [None] * 99, strict=False):
        if t_before is None:
            break
        if not o.trainable:  # BatchNorm's moving statistics: not averaged
            continue
        expected = model.tau * t_before + (1 - model.tau) * keras.ops.convert_to_numpy(o)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(t), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(keras.ops.convert_to_numpy(model.target_backbone.weights[0]),
                           target[0])  # fmt: skip


def test_linear_head_run_and_identity_head(tmp_path):
    res = run(tiny("simclr", tmp_path, head="linear", l21=None), verbose=0)
    assert res["config"]["l21"] == 1e-4
    assert res["metrics"]["trained"]["head_sparsity"]["groups"] == 128  # small-cnn's d
    from reference.heads import build_head, regularized_kernel

    identity = build_head("identity", 32, 8, 0.0)
    x = np.ones((2, 5), "float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(identity(x)), x)
    assert regularized_kernel(identity) is None


def test_proximal_step_gives_exact_zero_groups(tmp_path):
    # A large lambda: the prox step zeroes groups exactly (the penalty alone never does).
    res = run(tiny("simclr", tmp_path, proximal=True, l21=3.0), verbose=0)
    sparsity = res["metrics"]["trained"]["head_sparsity"]
    assert 0 < sparsity["zero_groups"] <= sparsity["groups"]
    assert res["history"][-1]["head_zero_groups"] == sparsity["zero_groups"]


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="DataParallel is tested in the JAX backend's pass"
)
def test_data_parallel_on_two_forced_cpu_devices(tmp_path):
    pytest.importorskip("jax")
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    cmd = [sys.executable, str(ROOT / "reference" / "train_simclr.py"), "--dataset", "digits",
           "--train-size", "256", "--test-size", "100", "--batch-size", "64", "--epochs", "1",
           "--head-hidden", "32", "--head-dim", "8", "--distribute", "data-parallel",
           "--quiet", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["backend"] == "jax" and len(res["devices"]) == 2
    assert res["config"]["distribute"] == "data-parallel"
    assert np.isfinite(res["history"][0]["loss"])


def test_backbones_give_the_papers_representation_sizes():
    from reference.backbones import build_backbone

    assert build_backbone("small-cnn", (28, 28, 1)).output_shape == (None, 128)
    r18 = build_backbone("resnet18", (32, 32, 3))
    assert r18.output_shape == (None, 512)  # d = 512 for ResNet-18 (Sec. 4)
    assert "stem_pool" not in [layer.name for layer in r18.layers]  # CIFAR stem: no max pool
    assert "stem_pool" in [layer.name for layer in build_backbone("resnet18", (64, 64, 3)).layers]
    with pytest.raises(ValueError, match="at least 32x32"):
        build_backbone("resnet50", (28, 28, 1))
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone("vgg", (32, 32, 3))
