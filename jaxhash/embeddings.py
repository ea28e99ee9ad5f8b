"""Real-valued embeddings ``[N, D]``: the one input check and the one unit-row normalisation
that retrieval, the metrics and the losses share."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# Floor of a squared row norm: as torch.nn.functional.normalize (norms floored at 1e-12), so an
# all-zero row stays zero with finite value and gradient.
NORM_EPS = 1e-24


def unit_rows(x: jax.Array) -> jax.Array:
    """``x / max(||x||, 1e-12)`` along the last axis: unit rows; all-zero rows stay zero (cosine
    distance 1 to everything), with no NaN in value or gradient."""
    return x * lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), NORM_EPS))


def check_embeddings(x, name: str) -> jax.Array:
    """``x`` as float32 ``[N, D]`` real-valued embeddings, else a ValueError naming it."""
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty matrix [N, D]; got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(
            f"{name} must be real-valued (floating point) for a Euclidean or cosine ranking; got "
            f"dtype {x.dtype}."
        )
    x = x.astype(jnp.float32)
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return x
