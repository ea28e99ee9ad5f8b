"""jaxhash.losses.regularizers: the quantization and bit-balance losses against NumPy."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from tests.losses.loss_checks import (
    bit_balance_loss,
    check_sharded,
    hashing_inputs,
    quantization_loss,
    random_codes,
    random_mask,
)


def np_quant(codes, mask):
    return np.mean((np.abs(np.asarray(codes, np.float64)[mask]) - 1) ** 2)


def np_balance(codes, mask):
    return np.mean(np.asarray(codes, np.float64)[mask].mean(0) ** 2)


@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
def test_regularizers_match_numpy(masked):
    """The quantization and bit balance losses equal their NumPy formulas."""
    n = 20
    codes = 1.5 * random_codes(70, n, 6)
    mask = random_mask(73, n) if masked else np.ones(n, bool)
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
    codes = random_codes(74, 6, 4)
    with pytest.raises(ValueError, match="codes"):
        quantization_loss(codes[0])
    with pytest.raises(ValueError, match="mask"):
        bit_balance_loss(codes, mask=jnp.ones(5, bool))


def test_regularizers_sharded(mesh4):
    """bit_balance_loss and quantization_loss over 4 devices."""
    n = 32
    codes = hashing_inputs(97, n)[0]
    mask = jnp.asarray(random_mask(98, n))
    spec = (P("data"),) * 3

    def bal(codes, mask, axis_name):
        return bit_balance_loss(codes, mask=mask, axis_name=axis_name)

    def quant(codes, mask, axis_name):
        return quantization_loss(codes, mask=mask, axis_name=axis_name)

    check_sharded(mesh4, bal, (codes, mask), spec[:2])
    check_sharded(mesh4, quant, (codes, mask), spec[:2])
