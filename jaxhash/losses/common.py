"""What every loss term shares: argument checks, row masks, and global-batch means.

Every term takes an optional ``mask`` ``[N]`` of valid rows and an ``axis_name``: inside
``jax.shard_map`` the sums below run over the global batch, so values equal the single-device
ones. What cannot be checked at trace time gets a defined value (NaN, see :func:`_defined`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash import parallel

_HIGHEST = lax.Precision.HIGHEST


def _concrete(x) -> bool:
    """True for a value known at trace time (not a tracer under jit, grad or shard_map)."""
    return not isinstance(x, jax.core.Tracer)


def _int_labels(labels, name: str, n: int, num_classes: int) -> tuple[jax.Array, jax.Array]:
    """``(labels as int32 [n], number of labels outside [0, num_classes))``.

    Concrete labels out of range raise a ValueError naming ``name``; traced ones cannot be
    checked at trace time, so the caller turns its value into NaN when the count is not 0.
    """
    labels = jnp.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape [{n}] (one per row); got {labels.shape}.")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"{name} must hold integer class indices; got dtype {labels.dtype}.")
    if _concrete(labels):
        values = np.asarray(labels)
        low, high = int(values.min()), int(values.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} must lie in [0, {num_classes}) (one of the {num_classes} classes); got "
                f"values from {low} to {high}."
            )
    labels = labels.astype(jnp.int32)
    return labels, jnp.sum((labels < 0) | (labels >= num_classes))


def _mask_weights(mask, n: int, dtype) -> jax.Array:
    """``[n]`` weights in {0, 1}: 1 for valid rows (all rows when ``mask`` is None).

    A concrete mask that selects no row is a ValueError; a traced one cannot be checked, and
    the losses return NaN when no row of the global batch is valid (see :func:`_defined`).
    """
    if mask is None:
        return jnp.ones((n,), dtype)
    mask = jnp.asarray(mask)
    if mask.shape != (n,):
        raise ValueError(f"mask must have shape [{n}] (one flag per row); got {mask.shape}.")
    if mask.dtype != jnp.bool_:
        raise ValueError(f"mask must be a bool array; got dtype {mask.dtype}.")
    if _concrete(mask) and not np.asarray(mask).any():
        raise ValueError("mask selects no row (every row is padding): pass at least one valid row.")
    return mask.astype(dtype)


def _defined(value: jax.Array, w: jax.Array, axis_name, *, min_rows: int = 1, invalid=0):
    """``value``, or NaN when the global batch has fewer than ``min_rows`` valid rows or
    ``invalid`` (a count of bad inputs, e.g. labels out of range) is not 0.

    The documented value for what cannot be checked at trace time: the trainer stops on a
    non-finite term and names it, instead of training on a plausible wrong number.
    """
    n_valid = parallel.global_sum(jnp.sum(w), axis_name)
    bad = parallel.global_sum(jnp.asarray(invalid, jnp.int32), axis_name)
    ok = (n_valid >= min_rows) & (bad == 0)
    return jnp.where(ok, value, jnp.nan)


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
    """``num / den`` where ``den > 0``, else ``num`` (used where both are then 0)."""
    return num / jnp.where(den > 0, den, 1)


def _masked_mean(values: jax.Array, w: jax.Array, axis_name) -> jax.Array:
    """Mean of ``values`` [N] over valid rows of the global batch."""
    total = parallel.global_sum(jnp.sum(w * values), axis_name)
    return _safe_div(total, parallel.global_sum(jnp.sum(w), axis_name))


def _rowdot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.sum(a * b, axis=-1)
