"""Argument checks shared by the array functions: each failure is a ValueError naming the
argument and, where there is one, the fix."""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp


def float_array(x, name: str, ndim: int) -> jax.Array:
    """``x`` as a float32 array of rank ``ndim`` with at least one row (float64 stays float64;
    bf16 and f16 are upcast), else a ValueError naming ``name``."""
    x = jnp.asarray(x)
    if x.ndim != ndim:
        raise ValueError(f"{name} must have rank {ndim}; got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be a floating-point array; got dtype {x.dtype}. Cast it, e.g. "
            f"{name}.astype(jnp.float32)."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): need at least one row.")
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def as_int(value, name: str) -> int:
    """A Python int from any integral value (int, numpy integer); else a ValueError."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer; got {value!r}.") from None
