"""The projector alternatives of reference/heads.py, each tested for what makes it that method
(each test fails when the head is replaced by the default MLP), on the backend KERAS_BACKEND
selects: no projector (`identity`), `linear`, DirectCLR, the top-k activation-sparse head.
Then their checks (framework-free), a training step with each method, and the grid."""

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

from keras import ops  # noqa: E402

import sparsehead  # noqa: E402
from reference.backbones import build_backbone  # noqa: E402
from reference.checks import check_config, default_l21, resolve  # noqa: E402
from reference.cli import config_from_args  # noqa: E402
from reference.errors import UsageError  # noqa: E402
from reference.evaluate import encode  # noqa: E402
from reference.heads import (  # noqa: E402
    DirectCLR,
    TopKHead,
    build_head,
    regularized_kernel,
    top_k_mask,
    top_k_sparse,
)
from reference.methods import BYOL, BarlowTwins, SimCLR, mlp_predictor  # noqa: E402
from reference.names import HEADLESS, HEADS, METHODS, REPRESENTATION_DIMS  # noqa: E402
from reference.reproduce import main as reproduce  # noqa: E402
from tests.conformance.keras_seam import value_and_grad  # noqa: E402
from tests.reference.test_grid_checks import _guarded, trained  # noqa: E402, F401

pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI

ROOT = Path(__file__).resolve().parents[2]
D = 12  # representation dimension of the tests' pass-through backbone


def _np(x) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)


def _passthrough(d: int = D) -> keras.Model:
    """A backbone without weights, `f(r) = r`: the loss is then a function of `r` alone."""
    inputs = keras.Input((d,))
    return keras.Model(inputs, keras.layers.Activation("linear")(inputs))


def _model(method: str, kind: str, d0: int = 5, k: int | None = None) -> keras.Model:
    """`method` on the pass-through backbone with head `kind` (hidden 16, m = d0), built."""
    head = lambda: build_head(kind, 16, d0, 0.0, k=k)  # noqa: E731
    if method == "simclr":
        model = SimCLR(_passthrough(), head())
    elif method == "barlow-twins":
        model = BarlowTwins(_passthrough(), head())
    else:
        dim = D if kind == "identity" else d0
        model = BYOL(_passthrough(), head(), mlp_predictor(16, dim), _passthrough(), head())
        model.build((None, D))
        return model
    model(np.zeros((2, D), np.float32))  # built as training._build does
    return model


def _loss(model: keras.Model, r: np.ndarray) -> float:
    """The method's training loss on the batch `r = [r^1; r^2]` (training mode)."""
    x = ops.convert_to_tensor(r)
    return float(_np(model.compute_loss(x=x, y_pred=model(x, training=True))))


def _batch(n: int = 8, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2 * n, d)).astype(np.float32)


# -- no projector ------------------------------------------------------------------------------
def test_identity_head_has_no_weights_and_the_loss_is_on_the_representation():
    model = _model("simclr", "identity")
    assert model.head.weights == [] and regularized_kernel(model.head) is None
    r = _batch()
    # InfoNCE (Eq. 2) on the representation itself, by the NumPy core
    assert _loss(model, r) == pytest.approx(sparsehead.info_nce(r[:8], r[8:], 0.5), rel=1e-5)
    model = _model("barlow-twins", "identity")
    expected = sparsehead.barlow_twins_loss(r[:8], r[8:], 5e-3)
    assert _loss(model, r) == pytest.approx(expected, rel=1e-4)


def test_identity_head_with_byol_keeps_the_predictor_and_regresses_the_target_representation():
    """BYOL without a projector: `p = q(r)` of width d regresses the target's `r'` (= `r` here:
    the pass-through target has no weights)."""
    model = _model("byol", "identity")
    assert model.head.weights == [] and model.predictor.weights
    r = _batch()
    out = model(ops.convert_to_tensor(r), training=True)
    p, zt = _np(out["p"]), _np(out["zt"])
    np.testing.assert_allclose(zt, r, rtol=1e-6)
    expected = sparsehead.byol_loss(p[:8], r[8:]) + sparsehead.byol_loss(p[8:], r[:8])
    assert float(_np(model.compute_loss(y_pred=out))) == pytest.approx(expected, rel=1e-5)


# -- linear ------------------------------------------------------------------------------------
def test_linear_head_is_one_bias_free_dense_without_activation():
    head = build_head("linear", 16, 5, 1e-4)
    r = _batch()  # negative entries too: a ReLU would zero some outputs
    z = _np(head(r))
    assert [w.path for w in head.weights] == [head.kernel.path]  # one kernel, no bias
    np.testing.assert_allclose(z, r.astype(np.float64) @ _np(head.kernel), rtol=1e-5, atol=1e-6)
    assert (z < 0).any()
    assert regularized_kernel(head) is head.kernel
    assert head.kernel.regularizer is not None  # SparseHead's L21 on W


# -- DirectCLR ---------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_directclr_loss_sees_exactly_the_first_d0_features(method):
    d0 = 5
    model = _model(method, "directclr", d0=d0)
    assert model.head.weights == [] and regularized_kernel(model.head) is None
    r = _batch()
    base = _loss(model, r)
    for j, changes in ((d0, False), (D - 1, False), (d0 - 1, True), (0, True)):
        bumped = r.copy()
        bumped[:, j] += np.linspace(1.0, 3.0, len(r), dtype=np.float32)
        loss = _loss(model, bumped)
        if changes:
            assert abs(loss - base) > 1e-3, (method, j)
        else:
            assert loss == pytest.approx(base, rel=1e-6, abs=1e-7), (method, j)


def test_directclr_embedding_is_the_leading_sub_vector():
    head = build_head("directclr", 16, 5, 0.0)
    r = _batch()
    np.testing.assert_array_equal(_np(head(r)), r[:, :5])
    _, z = encode(_passthrough(), head, r)  # what the probes of the embedding read
    np.testing.assert_array_equal(z, r[:, :5])
    full = DirectCLR(D)  # d0 = d: the whole representation
    np.testing.assert_array_equal(_np(full(r)), r)


def test_directclr_refuses_a_bad_d0():
    with pytest.raises(ValueError, match=r"d0 \(13\) must not exceed the representation"):
        DirectCLR(D + 1)(_batch())
    with pytest.raises(ValueError, match="d0 must be >= 1"):
        DirectCLR(0)
    with pytest.raises(TypeError, match="d0 must be an int"):
        DirectCLR(2.0)
    with pytest.raises(ValueError, match="l21 must be 0 with head 'directclr'"):
        build_head("directclr", 16, 5, 1e-4)


# -- top-k -------------------------------------------------------------------------------------
MASK_CASES = [
    (np.random.default_rng(1).normal(size=(6, 10)), 3),  # distinct values
    (np.ones((3, 40)), 5),  # 40 tied values per row: still exactly k kept
    (np.array([[2.0, 2, 2, 1, 0, 2], [0, 0, 0, 0, 0, 0], [-1, -3, -2, -1, -5, -1]]), 2),
    (np.random.default_rng(2).normal(size=(3, 7)), 7),  # k = n: all kept
]


@pytest.mark.parametrize(("a", "k"), MASK_CASES)
def test_top_k_mask_keeps_exactly_k_largest_per_sample(a, k):
    mask = _np(top_k_mask(ops.convert_to_tensor(a.astype(np.float32)), k))
    assert set(np.unique(mask)) <= {0.0, 1.0}
    np.testing.assert_array_equal(mask.sum(axis=1), k)  # per sample (row), ties included
    for row, m in zip(a, mask, strict=True):
        kept, dropped = row[m == 1], row[m == 0]
        assert dropped.size == 0 or kept.min() >= dropped.max()  # the k largest
        if len(np.unique(row)) == len(row):  # no ties: the same set as a brute-force sort
            assert set(np.flatnonzero(m)) == set(np.argsort(-row)[:k])


def test_top_k_masking_passes_the_gradient_through_kept_units_only():
    """Plain masking: d/da sum(c * (m ⊙ a)) = c * m(a) (straight-through would give c)."""
    a = np.random.default_rng(3).normal(size=(4, 9)).astype(np.float32)
    c = np.random.default_rng(4).uniform(1, 2, size=a.shape).astype(np.float32)
    ct = ops.convert_to_tensor(c)
    _, grad = value_and_grad(lambda x: ops.sum(ct * top_k_sparse(x, 3)), ops.convert_to_tensor(a))
    mask = _np(top_k_mask(ops.convert_to_tensor(a), 3))
    np.testing.assert_allclose(_np(grad), c * mask, rtol=1e-6)


def test_topk_head_keeps_k_hidden_activations_and_the_output_reads_only_them():
    k = 3
    head = build_head("topk", 16, 5, 1e-4, k=k)
    r = _batch(n=16)
    head.build(r.shape)
    assert isinstance(head, TopKHead) and regularized_kernel(head) is head.kernel
    masked = _np(head.hidden_activations(r, training=True))
    dense = _np(head.relu(head.batchnorm(head.hidden(r), training=True)))
    nonzero = (masked != 0).sum(axis=1)
    assert (nonzero <= k).all()
    # where the ReLU leaves at least k units on, exactly k stay: the k largest
    full = (dense > 0).sum(axis=1) >= k
    assert full.sum() >= 8
    np.testing.assert_array_equal(nonzero[full], k)
    np.testing.assert_array_equal(masked[masked != 0], dense[masked != 0])
    # z = W2 (m ⊙ a) + b2, not W2 a + b2
    w2, b2 = _np(head.output_layer.kernel), _np(head.output_layer.bias)
    np.testing.assert_allclose(_np(head(r, training=True)), masked @ w2 + b2, rtol=1e-4,
                               atol=1e-5)  # fmt: skip
    assert not np.allclose(masked @ w2, dense @ w2, atol=1e-3)


def test_topk_head_refuses_a_bad_k():
    with pytest.raises(ValueError, match=r"k must be in \[1, hidden_dim = 16\]; got 17"):
        TopKHead(16, 5, 17)
    with pytest.raises(ValueError, match="k must be in"):
        TopKHead(16, 5, 0)
    with pytest.raises(TypeError, match="k must be an int"):
        TopKHead(16, 5, 2.0)
    with pytest.raises(ValueError, match="head 'topk' needs k"):
        build_head("topk", 16, 5, 0.0)
    with pytest.raises(ValueError, match="k is the top-k head's"):
        build_head("mlp", 16, 5, 0.0, k=3)


# -- every head with every method: one short fit -----------------------------------------------
def _flat_backbone(name: str, input_shape, dtype=None) -> keras.Model:
    """A backbone without weights, `r = flatten(x)`: the run's wiring, without a CNN's cost."""
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, keras.layers.Flatten()(inputs), name=f"flat_{name}")


@pytest.mark.parametrize("method", METHODS)
def test_every_head_trains_with_every_method(method, monkeypatch):
    """`training._build`'s model for each head (the MLP: every other reference test) takes
    a training step: finite loss, the head's kernel moves, L21 in the loss where it has one."""
    import reference.training as training

    monkeypatch.setattr(training, "build_backbone", _flat_backbone)
    for kind in [k for k in HEADS if k != "mlp"]:
        flags = ["--head", kind, "--head-hidden", "16", "--head-dim", "8"]
        flags += ["--head-topk", "4"] if kind == "topk" else []
        cfg = resolve(config_from_args(method, flags))
        check_config(cfg)
        cfg["total_steps"] = 1
        keras.utils.set_random_seed(0)
        model, head = training._build(cfg, (4, 4, 2))  # d = 32
        kernel = regularized_kernel(head)
        before = None if kernel is None else _np(kernel)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)  # no tracing
        x = np.random.default_rng(0).random((16, 4, 4, 2)).astype(np.float32)  # one step
        hist = model.fit(x, epochs=1, batch_size=16, verbose=0, shuffle=False)
        assert np.isfinite(hist.history["loss"][0]), (method, kind)
        assert (kind in HEADLESS) == (kernel is None) == (head.weights == [])
        m = _np(model(x[:4], training=False)).shape[-1]  # the embedding (BYOL: online)
        assert m == {"identity": 32, "directclr": 8}.get(kind, 8), (method, kind)
        if kernel is not None:
            assert not np.allclose(_np(kernel), before), (method, kind)  # the head trains
            assert model.losses  # SparseHead's L21 at the default 1e-4


# -- checks: before a framework is imported ----------------------------------------------------
def _cfg(**overrides) -> dict:
    cfg = config_from_args("simclr", ["--dataset", "digits"])
    cfg.update(overrides)
    return resolve(cfg)


BAD = [
    ({"head": "directclr", "l21": 1e-4}, "--l21 must be 0 with --head directclr"),
    ({"head": "identity", "l21": 1e-4}, "--l21 must be 0 with --head identity"),
    ({"head": "directclr", "proximal": True, "l21": 0.0}, "--proximal needs a head with weights"),
    ({"head": "directclr", "hoyer": 1e-3}, "--hoyer needs a head with weights; --head directclr"),
    ({"head": "directclr", "budget": 4}, "--budget needs a head with weights"),
    ({"head": "directclr", "target_sparsity": 0.25}, "--target-sparsity needs a head with"),
    ({"head": "directclr", "head_dim": 129}, "d0 and must be <= the representation dimension "
                                             "128 of --backbone small-cnn; got 129"),
    ({"head": "directclr", "head_dim": 513, "backbone": "resnet18"}, "512 of --backbone"),
    ({"head": "topk"}, "--head topk needs --head-topk K"),
    ({"head": "topk", "head_topk": 0}, "--head-topk must be an int >= 1; got 0"),
    ({"head": "topk", "head_topk": 513}, "--head-topk must be <= --head-hidden (512); got 513"),
    ({"head": "mlp", "head_topk": 8}, "--head-topk needs --head topk; got --head mlp"),
    ({"head": "none"}, "--head must be one of mlp, linear, identity, directclr, topk"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[m for _, m in BAD])
def test_senseless_head_settings_are_refused(overrides, message):
    with pytest.raises(UsageError) as exc:
        check_config(_cfg(**overrides))
    assert message in str(exc.value)


def test_good_head_settings_pass_and_headless_heads_default_to_no_l21():
    good = [
        {"head": "directclr", "head_dim": 128},  # d0 = d
        {"head": "directclr", "head_dim": 1},
        {"head": "topk", "head_topk": 512},  # k = hidden
        {"head": "topk", "head_topk": 1, "proximal": True},
        {"head": "topk", "head_topk": 8, "budget": 16},
        {"head": "linear"},
    ]
    for overrides in good:
        check_config(_cfg(**overrides))
    assert _cfg(head="directclr")["l21"] == 0.0 == default_l21({"head": "directclr"})
    assert _cfg(head="topk", head_topk=8)["l21"] == 1e-4  # a kernel: SparseHead by default


def test_representation_dims_are_the_backbones():
    """The table the checks read (ResNet-18/50's 512/2048 are fixed by their architecture)."""
    d = build_backbone("small-cnn", (28, 28, 1)).output_shape[-1]
    assert d == REPRESENTATION_DIMS["small-cnn"]


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the checks run before any framework is imported: once, in the TensorFlow pass",
)
@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--head", "directclr", "--l21", "1e-4"], "--l21 must be 0 with --head directclr"),
     (["--head-topk", "4"], "--head-topk needs --head topk")],
)  # fmt: skip
def test_script_refuses_with_one_error_line(tmp_path, flags, message):
    out = tmp_path / "run"
    script = str(ROOT / "reference" / "train_simclr.py")
    proc = subprocess.run([sys.executable, script, *flags, "--out", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr and not out.exists()


# -- the reproduce grid ------------------------------------------------------------------------
HEAD_GRID = [
    "--seeds", "0", "--no-penalty", "--no-proximal",
    "--setting", "no projector", '{"head": "identity", "l21": 0}',
    "--setting", "DirectCLR d0=32", '{"head": "directclr", "head_dim": 32, "l21": 0}',
    "--setting", "top-k 16", '{"head": "topk", "head_topk": 16, "l21": 0}',
]  # fmt: skip


def test_grid_takes_the_heads_and_refuses_a_finished_run_with_a_changed_head(
    tmp_path,
    trained,  # noqa: F811  (the fixture of test_grid_checks)
    capsys,
):
    reproduce([*HEAD_GRID, "--out", str(tmp_path)])
    got = {Path(c["out"]).name: (c["head"], c["head_dim"], c.get("head_topk")) for c in trained}
    assert got == {"baseline-seed0": ("mlp", 64, None),
                   "no-projector-seed0": ("identity", 64, None),
                   "DirectCLR-d0-32-seed0": ("directclr", 32, None),
                   "top-k-16-seed0": ("topk", 64, 16)}  # fmt: skip
    stored = json.loads((tmp_path / "simclr" / "top-k-16-seed0" / "config.json").read_text())
    assert stored["head_topk"] == 16 and stored["l21"] == 0.0
    trained.clear()
    changed = [a.replace('"head_topk": 16', '"head_topk": 8') for a in HEAD_GRID]
    code, err = _guarded([*changed, "--out", str(tmp_path)], capsys)
    assert code == 2 and trained == []
    assert "top-k-16-seed0 holds a run with other settings (head_topk 8 (was 16))" in err
    bad = [*HEAD_GRID[:4], "--setting", "x", '{"head": "directclr", "l21": 1e-4}']
    code, err = _guarded([*bad, "--out", str(tmp_path / "new")], capsys)
    assert code == 2 and "--l21 must be 0 with --head directclr" in err
