"""jaxhash.validation: float arrays keep float64, upcast half precision, and every bad input is
one ValueError naming the argument; integers come from any integral type."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash.validation import as_int, float_array


def test_float_array_dtypes_and_errors():
    assert float_array(np.ones((2, 3), np.float16), "x", 2).dtype == jnp.float32
    assert float_array(jnp.ones((2, 3), jnp.bfloat16), "x", 2).dtype == jnp.float32
    with jax.enable_x64(True):
        assert float_array(np.ones((2, 3)), "x", 2).dtype == jnp.float64
    with pytest.raises(ValueError, match="codes must have rank 2"):
        float_array(np.ones(3), "codes", 2)
    with pytest.raises(ValueError, match=r"codes must be a floating-point .*astype"):
        float_array(np.ones((2, 3), np.int32), "codes", 2)
    with pytest.raises(ValueError, match="codes is empty"):
        float_array(np.ones((0, 3)), "codes", 2)


def test_as_int():
    assert as_int(np.int64(7), "k") == 7 and type(as_int(np.int32(3), "k")) is int
    with pytest.raises(ValueError, match=r"k must be an integer; got 2\.5"):
        as_int(2.5, "k")
