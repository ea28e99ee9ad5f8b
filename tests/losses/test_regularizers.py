"""jaxhash.losses.regularizers: the quantization and bit-balance losses against NumPy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxhash import losses


def _jit(fn, *static):
    return jax.jit(fn, static_argnames=static)


quantization_loss = _jit(losses.quantization_loss, "axis_name")
bit_balance_loss = _jit(losses.bit_balance_loss, "axis_name")


def np_quant(codes, mask):
    return np.mean((np.abs(np.asarray(codes, np.float64)[mask]) - 1) ** 2)


def np_balance(codes, mask):
    return np.mean(np.asarray(codes, np.float64)[mask].mean(0) ** 2)


def _rng(seed):
    return np.random.default_rng(seed)


def _codes(seed, n, k=8):
    return _rng(seed).standard_normal((n, k)).astype(np.float32)


def _mask(seed, n, frac=0.25):
    m = _rng(seed).random(n) >= frac
    m[:2] = True
    m[-1] = False
    return m


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_regularizers_match_numpy(masked):
    """The quantization and bit balance losses equal their NumPy formulas."""
    n = 20
    codes = 1.5 * _codes(70, n, 6)
    mask = _mask(73, n) if masked else np.ones(n, bool)
    kw = {"mask": jnp.asarray(mask)} if masked else {}
    cases = (
        (quantization_loss(codes, **kw), np_quant(codes, mask)),
        (bit_balance_loss(codes, **kw), np_balance(codes, mask)),
    )
    for got, want in cases:
        assert got.shape == ()
        np.testing.assert_allclose(float(got), want, rtol=1e-5)


def test_regularizers_bad_inputs():
    """Bad shapes raise ValueError naming the argument."""
    codes = _codes(74, 6, 4)
    with pytest.raises(ValueError, match="codes"):
        quantization_loss(codes[0])
    with pytest.raises(ValueError, match="mask"):
        bit_balance_loss(codes, mask=jnp.ones(5, bool))


def _hashing_inputs(seed, n, k=8, c=5):
    r = _rng(seed)
    codes = r.standard_normal((n, k)).astype(np.float32)
    logits = 2 * r.standard_normal((n, c)).astype(np.float32)
    labels = r.integers(0, c, n).astype(np.int32)
    cd = r.random((c, c)) + 0.2
    cd = ((cd + cd.T) / 2).astype(np.float32)
    np.fill_diagonal(cd, 0.0)
    return codes, logits, labels, cd


def _check_sharded(mesh, fn, args, in_specs, argnums=(0,), has_aux=False):
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


def test_regularizers_sharded(mesh4):
    """bit_balance_loss and quantization_loss over 4 devices."""
    n = 32
    codes = _hashing_inputs(97, n)[0]
    mask = jnp.asarray(_mask(98, n))
    spec = (P("data"),) * 3

    def bal(codes, mask, axis_name):
        return bit_balance_loss(codes, mask=mask, axis_name=axis_name)

    def quant(codes, mask, axis_name):
        return quantization_loss(codes, mask=mask, axis_name=axis_name)

    _check_sharded(mesh4, bal, (codes, mask), spec[:2])
    _check_sharded(mesh4, quant, (codes, mask), spec[:2])
