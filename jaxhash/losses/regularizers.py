"""The usual hashing baselines' regularisers on the outputs: quantization and bit balance."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxhash import parallel
from jaxhash.losses.common import _defined, _mask_weights, _masked_mean, _safe_div
from jaxhash.validation import float_array


def quantization_loss(
    codes: jax.Array, *, mask: jax.Array | None = None, axis_name: parallel.AxisName = None
) -> jax.Array:
    """Mean over valid rows and bits of ``(|z| - 1)^2``: the usual pull to +-1 (e.g. DPSH)."""
    codes = float_array(codes, "codes", 2)
    w = _mask_weights(mask, codes.shape[0], codes.dtype)
    value = _masked_mean(jnp.mean((jnp.abs(codes) - 1.0) ** 2, axis=1), w, axis_name)
    return _defined(value, w, axis_name)


def bit_balance_loss(
    codes: jax.Array, *, mask: jax.Array | None = None, axis_name: parallel.AxisName = None
) -> jax.Array:
    """Mean over bits of the squared batch mean, ``mean_k (mean_i z_ik)^2``: 0 for balanced bits."""
    codes = float_array(codes, "codes", 2)
    w = _mask_weights(mask, codes.shape[0], codes.dtype)
    total = parallel.global_sum(jnp.sum(w[:, None] * codes, axis=0), axis_name)
    bit_means = _safe_div(total, parallel.global_sum(jnp.sum(w), axis_name))
    return _defined(jnp.mean(bit_means**2), w, axis_name)
