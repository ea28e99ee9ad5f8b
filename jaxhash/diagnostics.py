"""Diagnostics of the outputs z during training: are codes binary, balanced and class-clustered?

Cheap (O(N K + C K)) statistics of a batch, logged at every log step beside the loss terms. They
tell apart what the KL term's value alone cannot (docs/method.md): an estimate lowered by
inflating the outputs shows as a growing ``z_norm`` without ``z_sign_cos`` approaching 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxhash import parallel
from jaxhash.validation import float_array


def code_diagnostics(
    z: jax.Array,
    labels: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    num_classes: int | None = None,
    axis_name: parallel.AxisName = None,
) -> dict[str, jax.Array]:
    """Batch statistics of the outputs ``z`` ``[N, K]`` and their codes ``b = sign(z)``.

    * ``z_norm``: mean ``||z_i|| / sqrt(K)`` (1 at the corners of {-1, +1}^K);
    * ``z_sign_cos``: mean ``cos(z_i, b_i) = ||z_i||_1 / (sqrt(K) ||z_i||)`` (1: already binary);
    * ``bit_imbalance``: mean over bits of ``|mean_i b_ik|`` (0: every bit half on);
    * with ``labels`` ``[N]`` (int in [0, num_classes)): ``within_class_hamming`` and
      ``between_class_hamming``, the mean Hamming distance / K of the codes over pairs i != j of
      the same class and of different classes (0 when the batch has no such pair), from class
      sums: ``sum_{i != j, same class} b_i.b_j = sum_c ||S_c||^2 - N K``.

    ``b_ik = +1`` where ``z_ik > 0`` (the bit of ``pack_codes``), else -1. ``mask`` ``[N]`` bool
    leaves padding out; under ``axis_name`` the statistics are those of the global batch.
    """
    z = float_array(z, "z", 2)
    n_local, dim = z.shape
    w = jnp.ones((n_local,), z.dtype) if mask is None else jnp.asarray(mask).astype(z.dtype)
    z = jax.lax.stop_gradient(z)
    b = jnp.where(z > 0, 1.0, -1.0).astype(z.dtype)
    count = parallel.global_sum(jnp.sum(w), axis_name)

    def mean(values):
        return parallel.global_sum(jnp.sum(w * values), axis_name) / jnp.maximum(count, 1.0)

    norm = jnp.sqrt(jnp.sum(z * z, axis=1))
    l1 = jnp.sum(jnp.abs(z), axis=1)
    bit_sums = parallel.global_sum(jnp.sum(w[:, None] * b, axis=0), axis_name)
    out = {
        "z_norm": mean(norm) / jnp.sqrt(float(dim)),
        "z_sign_cos": mean(l1 / jnp.maximum(norm, 1e-12)) / jnp.sqrt(float(dim)),
        "bit_imbalance": jnp.mean(jnp.abs(bit_sums)) / jnp.maximum(count, 1.0),
    }
    if labels is None:
        return out
    if num_classes is None:
        raise ValueError("num_classes is needed with labels (the number of classes C).")
    onehot = jax.nn.one_hot(jnp.asarray(labels), num_classes, dtype=z.dtype) * w[:, None]
    class_sums = parallel.global_sum(jnp.dot(onehot.T, b), axis_name)  # [C, K]
    class_counts = parallel.global_sum(jnp.sum(onehot, axis=0), axis_name)
    same_dot = jnp.sum(class_sums * class_sums) - count * dim  # sum over i != j, same class
    all_dot = jnp.sum(bit_sums * bit_sums) - count * dim  # sum over i != j
    same_pairs = jnp.sum(class_counts * class_counts) - count
    other_pairs = count * (count - 1.0) - same_pairs

    def hamming(dot_sum, pairs):  # mean of (1 - b_i.b_j / K) / 2 over the pairs
        return jnp.where(pairs > 0, 0.5 * (1.0 - dot_sum / (dim * jnp.maximum(pairs, 1.0))), 0.0)

    out["within_class_hamming"] = hamming(same_dot, same_pairs)
    out["between_class_hamming"] = hamming(all_dot - same_dot, other_pairs)
    return out
