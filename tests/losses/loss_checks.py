"""Inputs and checks shared by the loss tests: seeded random codes, masks and hashing-loss
inputs, the library's losses under jit with their static names, the float64 kNN KL oracle,
and the sharded-equals-single-device check."""

import functools

import jax
import numpy as np
from jax.sharding import PartitionSpec as P
from scipy.spatial import cKDTree

from jaxhash import losses


def jit_static(fn, *static):
    return jax.jit(fn, static_argnames=static)


# Library calls go through jax.jit: on the CPU one compilation per configuration is several times
# faster than eager dispatch of every op. Trace-time ValueErrors are raised all the same.
KL_STATIC = ("form", "k", "num_targets", "sigma", "floor", "decorrelation", "axis_name")
similarity_loss = jit_static(
    losses.similarity_loss, "normalize", "power", "detach_scale", "axis_name"
)
binary_kl_loss = jit_static(losses.binary_kl_loss, *KL_STATIC)
knn_kl_divergence = jit_static(losses.knn_kl_divergence, "k", "axis_name")
classification_loss = jit_static(losses.classification_loss, "axis_name")
quantization_loss = jit_static(losses.quantization_loss, "axis_name")
bit_balance_loss = jit_static(losses.bit_balance_loss, "axis_name")
hashing_loss = jit_static(
    losses.hashing_loss, "weights", "kl_form", "k", "normalize", "power", "axis_name"
)


def kl_oracle(x, y, k, mask=None):
    """Wang-Kulkarni-Verdu estimate with scipy's cKDTree in float64."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if mask is not None:
        x = x[np.asarray(mask)]
    n, d = x.shape
    rho = cKDTree(x).query(x, k=[k + 1])[0][:, -1]
    nu = cKDTree(y).query(x, k=[k])[0][:, -1]
    return d * np.mean(np.log(nu / rho)) + np.log(y.shape[0] / (n - 1)), np.log(nu), np.log(rho)


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
