"""The optax adapter on parameters sharded over 2 (forced) CPU devices.

`run(kind, out)` starts `python sharded_worker.py KIND OUT.npz` with
`XLA_FLAGS=--xla_force_host_platform_device_count=2` (the flag must be set before jax starts,
hence a separate process). The worker saves, for rows and for columns split over the devices,
a penalty's value and gradient and one SGD step through a transform, and how each result was
laid out:

- `l21`: `l21_norm` and `proximal_l21` (test_optax_sharded.py);
- `beyond`: `group_hoyer` and `group_budget(keep())`, with a tie at the budget's
  boundary (test_optax_beyond.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

LR, LAM = 0.1, 15.0


def weights(kind: str = "l21") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 6)).astype(np.float32)
    w[[1, 6]] = 0  # two exactly-zero groups (rows), one on each device when rows are split
    g = rng.normal(size=w.shape).astype(np.float32)
    if kind == "beyond":
        w[5], g[5] = -w[2], -g[2]  # a tie: rows 2 and 5 have the same norm before and after
    return w, g


def keep() -> int:
    """A budget that splits the tie: row 2 is the last group kept, row 5 the first dropped."""
    w, g = weights("beyond")
    norms = np.linalg.norm(w - np.float32(LR) * g, axis=1)
    return int((norms > norms[2]).sum()) + 1


def run(kind: str, out: Path) -> dict[str, np.ndarray]:
    """Run the worker for `kind` in a 2-device process; its saved results."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, __file__, kind, str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(out))


def main(kind: str, out: str) -> None:
    import jax
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P
    from sparsehead.adapters import optax as sho

    assert len(jax.devices()) == 2, jax.devices()
    penalty, transform = {
        "l21": (sho.l21_norm, lambda: sho.proximal_l21(LR, LAM)),
        "beyond": (sho.group_hoyer, lambda: sho.group_budget(keep())),
    }[kind]
    mesh = jax.make_mesh((2,), ("x",))
    w, g = weights(kind)
    tx = optax.chain(optax.sgd(LR), transform())

    @jax.jit
    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates)

    results = {}
    # rows split: each device holds whole groups; columns split: every group norm needs a
    # sum across the two devices (and the budget's ranking sees all groups)
    for name, spec in (("rows", P("x", None)), ("cols", P(None, "x"))):
        sharding = NamedSharding(mesh, spec)
        ws, gs = jax.device_put(w, sharding), jax.device_put(g, sharding)
        value, grad = jax.jit(jax.value_and_grad(lambda x: penalty(x, -2)))(ws)
        new = step(ws, gs, tx.init(ws))
        for key, arr in (("value", value), ("grad", grad), ("new", new)):
            results[f"{name}_{key}"] = np.asarray(arr)
        results[f"{name}_devices"] = np.array(len(new.sharding.device_set))
        results[f"{name}_shard_shape"] = np.array(new.addressable_shards[0].data.shape)
        results[f"{name}_grad_devices"] = np.array(len(grad.sharding.device_set))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
