"""Group Hoyer and the group budget on parameters sharded over 2 (forced) CPU devices.

Run by `test_optax_beyond.py` as `python sharded_beyond_worker.py OUT.npz` with
`XLA_FLAGS=--xla_force_host_platform_device_count=2` (set before jax starts, hence a separate
process). Saves the results, and how each result was laid out, for the test.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sparsehead.adapters.optax import group_budget, group_hoyer_penalty

LR = 0.1


def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 6)).astype(np.float32)
    w[[1, 6]] = 0  # two exactly-zero groups (rows), one on each device when rows are split
    w[5] = -w[2]  # a tie: rows 2 and 5 have the same norm
    g = rng.normal(size=w.shape).astype(np.float32)
    g[5] = -g[2]
    return w, g


def keep() -> int:
    """A budget that splits the tie: row 2 is the last group kept, row 5 the first dropped."""
    w, g = weights()
    norms = np.linalg.norm(w - np.float32(LR) * g, axis=1)
    return int((norms > norms[2]).sum()) + 1


def main(out: str) -> None:
    assert len(jax.devices()) == 2, jax.devices()
    mesh = jax.make_mesh((2,), ("x",))
    w, g = weights()
    tx = optax.chain(optax.sgd(LR), group_budget(keep()))

    @jax.jit
    def step(params, grads, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates)

    results = {}
    # rows split: each device holds whole groups; columns split: every group norm needs a
    # sum across the two devices, and the ranking sees all groups
    for name, spec in (("rows", P("x", None)), ("cols", P(None, "x"))):
        sharding = NamedSharding(mesh, spec)
        ws, gs = jax.device_put(w, sharding), jax.device_put(g, sharding)
        value, grad = jax.jit(jax.value_and_grad(lambda x: group_hoyer_penalty(x, -2)))(ws)
        new = step(ws, gs, tx.init(ws))
        for key, arr in (("value", value), ("grad", grad), ("new", new)):
            results[f"{name}_{key}"] = np.asarray(arr)
        results[f"{name}_devices"] = np.array(len(new.sharding.device_set))
        results[f"{name}_shard_shape"] = np.array(new.addressable_shards[0].data.shape)
        results[f"{name}_grad_devices"] = np.array(len(grad.sharding.device_set))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
