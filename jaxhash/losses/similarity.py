"""The similarity term L_sim: relaxed Hamming distances matched to semantic target distances.

Arponen & Bishop (arXiv 2005.04917); docs/method.md, section 2. Targets come from class labels
and a class-distance table, from embeddings (e.g. captions) or as a dense matrix; the p = 2
loss is computed in closed form from ``[K, K]`` moments, never from ``[N, N]`` distances.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxhash import parallel
from jaxhash.embeddings import unit_rows
from jaxhash.knn import default_block_size
from jaxhash.losses.common import (
    _HIGHEST,
    _defined,
    _int_labels,
    _mask_weights,
    _rowdot,
    _safe_div,
)
from jaxhash.validation import float_array


def relaxed_hamming(a: jax.Array, b: jax.Array | None = None) -> jax.Array:
    """Relaxed normalised Hamming distance ``(1 - cos(a_i, b_j)) / 2``.

    On codes in {-1, +1}^K this is exactly ``hamming(a_i, b_j) / K`` (cos = 1 - 2 H / K), so it
    is the natural differentiable stand-in (docs/method.md, section 2). All-zero rows have
    cosine 0 with everything (distance 0.5), without NaN in value or gradient.

    Args:
      a: ``[N, K]``.
      b: ``[M, K]``; ``None`` means ``a``.

    Returns:
      ``[N, M]`` float32 in [0, 1].
    """
    a = float_array(a, "a", 2)
    unit_a = unit_rows(a)
    if b is None:
        unit_b = unit_a
    else:
        b = float_array(b, "b", 2)
        if b.shape[1] != a.shape[1]:
            raise ValueError(f"a and b must have the same width; got {a.shape} and {b.shape}.")
        unit_b = unit_rows(b)
    return 0.5 * (1.0 - jnp.dot(unit_a, unit_b.T, precision=_HIGHEST))


class ClassTargets(NamedTuple):
    """Targets from class labels: ``D_ij = class_distances[labels_i, labels_j]``.

    ``labels``: ``[N]`` int class index per row. ``class_distances``: ``[C, C]`` (e.g. one minus
    a WordNet similarity). Never materialises the ``[N, N]`` matrix: the squared-error loss is
    computed from per-class sums of the codes.
    """

    labels: jax.Array
    class_distances: jax.Array


class EmbeddingTargets(NamedTuple):
    """Targets from embeddings (e.g. caption sentence embeddings): ``D_ij = (1 - cos(e_i, e_j))/2``.

    ``embeddings``: ``[N, E]``. The squared-error loss is computed from ``[K, E]`` and ``[E, E]``
    moment matrices, never from ``[N, N]`` ones.
    """

    embeddings: jax.Array


Targets = jax.Array | ClassTargets | EmbeddingTargets


class _RowStats(NamedTuple):
    """Per local row i, sums over the valid partners j != i of the global batch."""

    pairs: jax.Array  # n_i: number of partners
    d: jax.Array  # sum_j d_ij
    dd: jax.Array  # sum_j d_ij^2
    t: jax.Array  # sum_j D_ij
    tt: jax.Array  # sum_j D_ij^2
    dt: jax.Array  # sum_j d_ij D_ij


def _check_targets(targets, n: int, axis_name) -> tuple[Targets, jax.Array | int]:
    """Validated targets for ``n`` local rows (never carrying gradients), and the number of
    labels out of range (traced ClassTargets labels; see :func:`_int_labels`)."""
    if isinstance(targets, ClassTargets):
        table = float_array(targets.class_distances, "target_distances.class_distances", 2)
        if table.shape[0] != table.shape[1]:
            raise ValueError(
                f"target_distances.class_distances must be square [C, C]; got {table.shape}."
            )
        labels, invalid = _int_labels(targets.labels, "target_distances.labels", n, table.shape[0])
        return ClassTargets(labels, lax.stop_gradient(table)), invalid
    if isinstance(targets, EmbeddingTargets):
        emb = float_array(targets.embeddings, "target_distances.embeddings", 2)
        if emb.shape[0] != n:
            raise ValueError(
                f"target_distances.embeddings must have {n} rows (one per code); got {emb.shape}."
            )
        return EmbeddingTargets(lax.stop_gradient(emb)), 0
    dense = float_array(targets, "target_distances", 2)
    global_n = n * parallel.axis_size(axis_name)
    if dense.shape != (n, global_n):
        where = "" if axis_name is None else f" (this device's rows of the [{global_n}] batch)"
        raise ValueError(
            f"target_distances must have shape [{n}, {global_n}]{where}; got {dense.shape}. "
            "Pass a [N, N] matrix, ClassTargets(labels, class_distances) or "
            "EmbeddingTargets(embeddings)."
        )
    return lax.stop_gradient(dense), 0


def _row_stats(unit: jax.Array, w: jax.Array, targets: Targets, axis_name) -> _RowStats:
    """Closed-form per-row sums of d, d^2, D, D^2 and d*D, in O(N K^2) plus the targets' cost.

    With c_i = w_i u_i (u the unit codes) and g_ij = u_i.u_j, d_ij = (1 - g_ij)/2, and
        sum_j w_j g_ij   = c_i . s,             s = sum_j c_j
        sum_j w_j g_ij^2 = c_i^T M c_i,         M = sum_j c_j c_j^T  ([K, K])
        sum_j w_j g_ij D_ij = c_i . T_i,        T_i = sum_j D_ij c_j
    each less its j = i term. T_i comes from class sums (ClassTargets), moment matrices
    (EmbeddingTargets) or one [n, N] x [N, K] product (dense targets).
    """
    c = unit * w[:, None]
    n_valid = parallel.global_sum(jnp.sum(w), axis_name)
    s = parallel.global_sum(jnp.sum(c, axis=0), axis_name)
    m = parallel.global_sum(jnp.dot(c.T, c, precision=_HIGHEST), axis_name)
    self_g = _rowdot(c, c)  # w_i g_ii: 1 for valid non-zero rows, else 0
    pairs = w * (n_valid - 1.0)
    g_sum = _rowdot(c, s) - self_g
    g2_sum = _rowdot(jnp.dot(c, m, precision=_HIGHEST), c) - self_g * self_g

    if isinstance(targets, ClassTargets):
        labels, table = targets
        onehot = jax.nn.one_hot(labels, table.shape[0], dtype=c.dtype) * w[:, None]
        counts = parallel.global_sum(jnp.sum(onehot, axis=0), axis_name)
        class_sums = parallel.global_sum(jnp.dot(onehot.T, c, precision=_HIGHEST), axis_name)
        rows = table[labels]
        diag = jnp.diagonal(table)[labels]
        t_all = jnp.dot(rows, counts, precision=_HIGHEST)
        tt_all = jnp.dot(rows * rows, counts, precision=_HIGHEST)
        weighted = jnp.dot(table, class_sums, precision=_HIGHEST)[labels]
    elif isinstance(targets, EmbeddingTargets):
        e = unit_rows(targets.embeddings)
        ew = e * w[:, None]
        e_sum = parallel.global_sum(jnp.sum(ew, axis=0), axis_name)
        e_moment = parallel.global_sum(jnp.dot(ew.T, ew, precision=_HIGHEST), axis_name)
        cross = parallel.global_sum(jnp.dot(c.T, e, precision=_HIGHEST), axis_name)
        e_dot_sum = jnp.dot(e, e_sum, precision=_HIGHEST)
        diag = 0.5 * (1.0 - _rowdot(e, e))
        t_all = 0.5 * (n_valid - e_dot_sum)
        e2_sum = _rowdot(jnp.dot(e, e_moment, precision=_HIGHEST), e)
        tt_all = 0.25 * (n_valid - 2.0 * e_dot_sum + e2_sum)
        weighted = 0.5 * (s[None, :] - jnp.dot(e, cross.T, precision=_HIGHEST))
    else:
        n_local = targets.shape[0]
        w_all = parallel.all_gather_batch(w, axis_name)
        c_all = parallel.all_gather_batch(c, axis_name)
        columns = parallel.batch_offset(n_local, axis_name) + jnp.arange(n_local)
        diag = jnp.take_along_axis(targets, columns[:, None], axis=1)[:, 0]
        t_all = jnp.dot(targets, w_all, precision=_HIGHEST)
        tt_all = jnp.dot(targets * targets, w_all, precision=_HIGHEST)
        weighted = jnp.dot(targets, c_all, precision=_HIGHEST)

    t = w * (t_all - w * diag)
    tt = w * (tt_all - w * diag * diag)
    gt_sum = _rowdot(c, weighted) - self_g * diag
    return _RowStats(
        pairs=pairs,
        d=0.5 * (pairs - g_sum),
        dd=0.25 * (pairs - 2.0 * g_sum + g2_sum),
        t=t,
        tt=tt,
        dt=0.5 * (t - gt_sum),
    )


def _target_block(targets: Targets, rows: jax.Array, axis_name) -> jax.Array:
    """Rows ``rows`` (local indices) of the target matrix against the global batch: [b, N]."""
    if isinstance(targets, ClassTargets):
        labels_all = parallel.all_gather_batch(targets.labels, axis_name)
        return targets.class_distances[targets.labels[rows]][:, labels_all]
    if isinstance(targets, EmbeddingTargets):
        e = unit_rows(targets.embeddings)
        e_all = parallel.all_gather_batch(e, axis_name)
        return 0.5 * (1.0 - jnp.dot(e[rows], e_all.T, precision=_HIGHEST))
    return targets[rows]


def similarity_loss(
    codes: jax.Array,
    target_distances: Targets,
    *,
    normalize: str = "mean",
    power: float = 2.0,
    mask: jax.Array | None = None,
    detach_scale: bool = False,
    method: str = "auto",
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
) -> jax.Array:
    """Relative distance matching between codes and semantic targets (docs/method.md, sec. 2).

    With d = relaxed_hamming(codes), D the target distances and pairs (i, j), i != j, both rows
    valid (P of them):

        "mean": (1/P) sum |d_ij / mean(d) - D_ij / mean(D)|^p   (means over all pairs; default)
        "row":  the same with the means taken per row i
        "none": (1/P) sum |d_ij - D_ij|^p

    "mean" is the default: it matches the *relative* geometry, so it is invariant to the scale
    of D (e.g. WordNet heights vs path lengths) and of the codes. Apply ``tanh`` to the codes
    first for the tanh relaxation.

    Args:
      codes: ``[N, K]`` real outputs.
      target_distances: a dense ``[N, N]`` matrix, :class:`ClassTargets` or
        :class:`EmbeddingTargets` (the structured forms avoid ``[N, N]`` work). Constant: no
        gradient flows into targets. Under ``axis_name`` a dense matrix is this device's rows
        ``[n_local, N_global]``.
      normalize: "mean", "row" or "none".
      power: p > 0; 2 (default, a squared error) or 1 (robust). For p < 1 the gradient of a
        pair whose error is exactly 0 is undefined (infinite slope).
      mask: ``[N]`` bool; False rows (padding) take part in no pair.
      detach_scale: stop the gradient through mean(d) (the value is unchanged).
      method: "gram" computes the p = 2 loss in closed form from K x K moments, never forming
        [N, N] distances (O(N K^2) for structured targets; the expansion leaves an absolute
        rounding error near 1e-8 in float32, which matters only for losses below about
        1e-5); "blocked" forms distances ``block_size`` rows at a time (any p; memory
        O(block_size N); None picks it per backend); "auto" picks "gram" for p = 2.
      axis_name: mesh axis of the batch inside ``jax.shard_map`` (global-batch loss).

    Returns:
      Scalar float32.
    """
    codes = float_array(codes, "codes", 2)
    n = codes.shape[0]
    if normalize not in ("mean", "row", "none"):
        raise ValueError(f"normalize must be 'mean', 'row' or 'none'; got {normalize!r}.")
    if not isinstance(power, int | float) or not power > 0:
        raise ValueError(f"power must be a number > 0; got {power!r}.")
    if method == "auto":
        method = "gram" if power == 2 else "blocked"
    if method not in ("gram", "blocked"):
        raise ValueError(f"method must be 'auto', 'gram' or 'blocked'; got {method!r}.")
    if method == "gram" and power != 2:
        raise ValueError(f"method='gram' needs power=2; got power={power}. Use 'blocked'.")
    if block_size is None:
        block_size = default_block_size(n * parallel.axis_size(axis_name))
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int or None; got {block_size!r}.")
    w = _mask_weights(mask, n, codes.dtype)
    targets, invalid = _check_targets(target_distances, n, axis_name)

    unit = unit_rows(codes)
    stats = _row_stats(unit, w, targets, axis_name)
    num_pairs = parallel.global_sum(jnp.sum(stats.pairs), axis_name)
    if normalize == "none":
        scale_d = scale_t = jnp.ones((), codes.dtype)
    elif normalize == "mean":
        scale_d = _safe_div(num_pairs, parallel.global_sum(jnp.sum(stats.d), axis_name))
        scale_t = _safe_div(num_pairs, parallel.global_sum(jnp.sum(stats.t), axis_name))
    else:
        scale_d = _safe_div(stats.pairs, stats.d)
        scale_t = _safe_div(stats.pairs, stats.t)
    if detach_scale:
        scale_d = lax.stop_gradient(scale_d)

    if method == "gram":
        per_row = scale_d**2 * stats.dd - 2.0 * scale_d * scale_t * stats.dt + scale_t**2 * stats.tt
        # A sum of squares expanded into moments: clamp the rounding (about 1e-9) below 0.
        total = jnp.maximum(jnp.sum(per_row), 0.0)
    else:
        total = _blocked_sum(unit, w, targets, scale_d, scale_t, power, block_size, axis_name)
    loss = _safe_div(parallel.global_sum(total, axis_name), num_pairs)
    return _defined(loss, w, axis_name, min_rows=2, invalid=invalid)


def _blocked_sum(unit, w, targets, scale_d, scale_t, power, block_size, axis_name):
    """sum over this device's pairs of |a_i d_ij - b_i D_ij|^p, ``block_size`` rows at a time."""
    n = unit.shape[0]
    unit_all = parallel.all_gather_batch(unit, axis_name)
    w_all = parallel.all_gather_batch(w, axis_name)
    offset = parallel.batch_offset(n, axis_name)
    scale_d = jnp.broadcast_to(scale_d, (n,))
    scale_t = jnp.broadcast_to(scale_t, (n,))
    block = min(block_size, n)
    num_blocks = math.ceil(n / block)

    @jax.checkpoint  # recompute each [block, N] tile in the backward pass: memory stays bounded
    def block_sum(rows):
        valid = rows < n
        rows = jnp.minimum(rows, n - 1)
        d = 0.5 * (1.0 - jnp.dot(unit[rows], unit_all.T, precision=_HIGHEST))
        t = _target_block(targets, rows, axis_name)
        columns = jnp.arange(unit_all.shape[0])
        pair = (w[rows] * valid)[:, None] * w_all[None, :]
        pair = jnp.where(columns[None, :] == (offset + rows)[:, None], 0.0, pair)
        err = jnp.abs(scale_d[rows][:, None] * d - scale_t[rows][:, None] * t)
        if power == 2:
            return jnp.sum(pair * err * err)
        # Excluded pairs (i == j: err 0) must not reach the power: its slope is infinite at 0
        # for p < 1, and 0 * inf would poison the gradient.
        return jnp.sum(pair * jnp.where(pair > 0, err, 1.0) ** power)

    all_rows = jnp.arange(num_blocks * block).reshape(num_blocks, block)
    if num_blocks == 1:
        return block_sum(all_rows[0])
    return jnp.sum(lax.map(block_sum, all_rows))
