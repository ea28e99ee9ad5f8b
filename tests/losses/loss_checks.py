"""Inputs and checks shared by the loss tests: seeded random codes, masks and hashing-loss
inputs, jit with static names, and the sharded-equals-single-device check."""

import functools

import jax
import numpy as np
from jax.sharding import PartitionSpec as P


def jit_static(fn, *static):
    return jax.jit(fn, static_argnames=static)


def seeded_rng(seed):
    return np.random.default_rng(seed)


def random_codes(seed, n, k=8):
    return seeded_rng(seed).standard_normal((n, k)).astype(np.float32)


def random_mask(seed, n, frac=0.25):
    m = seeded_rng(seed).random(n) >= frac
    m[:2] = True
    m[-1] = False
    return m


def hashing_inputs(seed, n, k=8, c=5):
    r = seeded_rng(seed)
    codes = r.standard_normal((n, k)).astype(np.float32)
    logits = 2 * r.standard_normal((n, c)).astype(np.float32)
    labels = r.integers(0, c, n).astype(np.int32)
    cd = r.random((c, c)) + 0.2
    cd = ((cd + cd.T) / 2).astype(np.float32)
    np.fill_diagonal(cd, 0.0)
    return codes, logits, labels, cd


def check_sharded(mesh, fn, args, in_specs, argnums=(0,), has_aux=False):
    """fn(*args, axis_name=...) under shard_map equals the single-device call (value, grads)."""
    single = jax.value_and_grad(functools.partial(fn, axis_name=None), argnums, has_aux=has_aux)
    sharded = jax.shard_map(
        functools.partial(fn, axis_name="data"), mesh=mesh, in_specs=in_specs, out_specs=P()
    )
    sharded = jax.value_and_grad(sharded, argnums, has_aux=has_aux)
    (v1, g1), (v4, g4) = jax.jit(lambda *a: (single(*a), sharded(*a)))(*args)  # one compilation
    for a, b in zip(jax.tree.leaves(v4), jax.tree.leaves(v1), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    for a, b in zip(g4, g1, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    return v1
