"""`--hoyer`, `--budget`, `--target-sparsity` in the reference runs (reference/variants.py):
each reaches the head's last kernel, alone, on the backend KERAS_BACKEND selects."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("sklearn")

import sparsehead  # noqa: E402
from reference.cli import config_from_args  # noqa: E402
from reference.reproduce import beyond_settings, settings  # noqa: E402
from reference.training import run, spectra_title  # noqa: E402
from sparsehead.controller import PI_DEFAULTS  # noqa: E402
from tests.reference.test_train import tiny  # noqa: E402

pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI


def _kernel(out) -> np.ndarray:
    import h5py

    with h5py.File(out / "checkpoints" / "final.weights.h5") as f:
        found = []
        f.visititems(lambda name, obj: found.append(np.asarray(obj)) if "output" in name
                     and "vars/0" in name and obj.ndim == 2 else None)  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def test_budget_leaves_exactly_keep_groups_and_no_l21(tmp_path):
    cfg = tiny("simclr", tmp_path, epochs=2, budget=5)
    res = run(cfg, verbose=0)
    assert res["config"]["l21"] == 0.0  # the budget replaces the paper's default 1e-4
    head = res["metrics"]["trained"]["head_sparsity"]
    assert head["groups"] == 32 and head["groups"] - head["zero_groups"] == 5
    history = json.loads((tmp_path / "history.json").read_text())
    # 4 steps per epoch, schedule from step 0 to 2/3 of 8 steps: the final budget by epoch 2.
    assert [h["budget"] for h in history] == [
        sparsehead.budget_schedule(s, 32, 5, 0, 5) for s in (4, 8)
    ]


def test_hoyer_is_the_kernel_regularizer_and_lowers_the_measure(tmp_path):
    base = run(tiny("simclr", tmp_path / "base", epochs=2, l21=0.0), verbose=0)
    hoyer = run(tiny("simclr", tmp_path / "hoyer", epochs=2, hoyer=1.0), verbose=0)
    assert hoyer["config"]["l21"] == 0.0
    hs = [sparsehead.group_hoyer(_kernel(tmp_path / d)) for d in ("base", "hoyer")]
    assert hs[1] < hs[0]  # a strong Hoyer term concentrates the energy in fewer groups
    assert base["metrics"]["trained"]["head_sparsity"]["zero_groups"] == 0


def test_target_sparsity_adapts_l21_with_the_prox(tmp_path):
    cfg = tiny("simclr", tmp_path, epochs=2, target_sparsity=0.25, proximal=True, l21=1e-4)
    run(cfg, verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert all("adaptive_l21" in h for h in history)
    # Dense head at start (measure above 0.25): the multiplicative dual step raises λ.
    assert history[-1]["adaptive_l21"] > 1e-4


def test_dual_lr_and_per_epoch_updates_reach_adaptive_l21(tmp_path):
    cfg = tiny("simclr", tmp_path, epochs=2, target_sparsity=0.25, proximal=True, l21=1e-4,
               dual_lr=0.5, adaptive_every=0)  # fmt: skip
    run(cfg, verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    # One update per epoch, from the measure logged at that epoch: λ_e = λ_{e-1} e^{0.5 (s_e - f)}
    lam = 1e-4
    for h in history:
        lam *= np.exp(0.5 * (h["adaptive_measure"] - 0.25))
        assert h["adaptive_l21"] == pytest.approx(lam, rel=1e-5)  # λ is a float32 variable


def test_controller_pi_reaches_adaptive_l21(tmp_path):
    # λ0 = 1 makes the tiny head's measure move between epochs (0.72, 0.28, 0.12, 0.34 here);
    # a constant measure would make PI and the dual step agree
    cfg = tiny("simclr", tmp_path, epochs=4, target_sparsity=0.25, proximal=True, l21=1.0,
               dual_lr=0.5, adaptive_every=0, controller="pi")  # fmt: skip
    run(cfg, verbose=0)
    history = json.loads((tmp_path / "history.json").read_text())
    # νPI on the averaged measure, once per epoch (sparsehead/controller.py's docstring):
    # s̄_e = β s̄_{e-1} + (1-β) s_e (s̄_1 = s_1), e_e = s̄_e - f, ξ_e = ν ξ_{e-1} + (1-ν) e_e
    # (ξ_0 = e_1), log λ_e = log λ_{e-1} + η (e_e + K_P (ξ_e - ξ_{e-1}))
    kp, nu, beta = (PI_DEFAULTS[k] for k in ("kp", "nu", "smoothing"))
    assert len({h["adaptive_measure"] for h in history}) > 2
    log_lam, s_bar, xi = 0.0, None, None
    for h in history:
        s = h["adaptive_measure"]
        s_bar = s if s_bar is None else beta * s_bar + (1 - beta) * s
        e = s_bar - 0.25
        xi_prev = e if xi is None else xi
        xi = nu * xi_prev + (1 - nu) * e
        log_lam += 0.5 * (e + kp * (xi - xi_prev))
        assert h["adaptive_l21"] == pytest.approx(np.exp(log_lam), rel=1e-5)  # float32 λ
    assert len(history) == 4


def test_flags_parse_and_bad_combinations_are_refused(tmp_path):
    cfg = config_from_args("simclr", ["--budget", "0.25", "--budget-steps", "10", "20"])
    assert cfg["budget"] == 0.25 and cfg["budget_steps"] == [10, 20]
    assert config_from_args("simclr", ["--budget", "16"])["budget"] == 16
    cfg = config_from_args("simclr", ["--target-sparsity", "0.25", "--dual-lr", "0.3",
                                      "--adaptive-every", "0"])  # fmt: skip
    assert (cfg["dual_lr"], cfg["adaptive_every"]) == (0.3, 0)
    cfg = config_from_args("simclr", ["--target-sparsity", "0.25", "--controller", "pi"])
    assert cfg["controller"] == "pi"
    assert config_from_args("simclr", [])["controller"] == "dual"
    with pytest.raises(SystemExit):
        config_from_args("simclr", ["--budget", "many"])
    for bad, match in (
        ({"hoyer": 1e-3, "budget": 4}, "choose one"),
        ({"hoyer": 1e-3, "l21": 1e-4}, "hoyer replaces"),
        ({"budget": 4, "proximal": True}, "does not combine"),
        ({"budget": 1.5}, "--budget must be"),
        ({"budget": 0}, "whole head"),
        ({"target_sparsity": 1.0}, "--target-sparsity must be"),
        ({"budget_steps": [0, 10]}, "needs --budget"),
        ({"dual_lr": 0.5}, "need --target-sparsity"),
        ({"adaptive_every": 2}, "need --target-sparsity"),
        ({"controller": "pi"}, "need --target-sparsity"),
        ({"target_sparsity": 0.25, "proximal": True, "controller": "PI"}, "--controller must"),
        ({"target_sparsity": 0.25, "proximal": True, "dual_lr": 0.0}, "--dual-lr must be"),
        ({"target_sparsity": 0.25, "proximal": True, "adaptive_every": -1}, "--adaptive-every"),
    ):
        with pytest.raises(ValueError, match=match):
            run(tiny("simclr", tmp_path, **bad), verbose=0)


def test_reproduce_settings_and_titles():
    extra = beyond_settings([1e-3], [0.25], [0.3])
    labels = [label for label, _ in settings([1e-4], True, True, extra, [1e-2])]
    assert labels == ["baseline", "SparseHead penalty λ=0.0001", "SparseHead proximal λ=0.01",
                      "group Hoyer 0.001", "budget keep=0.25", "adaptive λ target=0.3"]  # fmt: skip
    base = {"method": "simclr", "l21": 0.0, "proximal": False}
    assert "Hoyer" in spectra_title({**base, "hoyer": 1e-3})
    assert "budget keep=16" in spectra_title({**base, "budget": 16})
    assert "adaptive" in spectra_title({**base, "target_sparsity": 0.3, "proximal": True})
