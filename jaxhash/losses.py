"""The losses of semantic hashing, as pure functions of arrays.

Arponen & Bishop, "Learning to hash with semantic similarity metrics and empirical KL divergence"
(arXiv 2005.04917): a network maps an example to ``z`` in R^K, the code is ``sign(z)``, and

    loss = w_ce * CE(classes) + w_sim * L_sim + w_kl * L_KL  (+ the usual baselines' regularisers)

* ``similarity_loss`` (L_sim): relaxed Hamming distances of the batch's codes are matched to
  *relative* target distances (class hierarchy or caption embeddings).
* ``binary_kl_loss`` (L_KL): how far the outputs are from a binary code distribution (uniform
  on {-1, +1}^K by default), in one of :data:`KL_FORMS`: the paper's literal Wang-Kulkarni-Verdu
  kNN estimate ("wkv"; ill-posed with a linear hash layer: it is lowered by inflating the
  outputs) or a well-posed form ("sphere", "corner", "smoothed_prior", "marginal": the default).

Every function computes in float32 (float64 for float64 inputs; bf16 inputs are upcast), checks
its arguments at trace time (``ValueError`` naming the argument), takes an optional ``mask``
``[N]`` of valid (not padded) rows, and takes ``axis_name``: called inside ``jax.shard_map`` with
the batch split over that mesh axis, it gathers or sums what it needs so that value and
gradients equal the single-device result on the global batch. The paper's exact constants are
not public; every choice is an argument with a documented default.

Inputs that cannot be checked at trace time have a defined value: under ``jax.jit`` a batch with
too few valid rows (all masked; fewer than k + 1 for the kNN terms) or labels outside [0, C)
give NaN, which the trainer stops on, naming the term. Concrete inputs (called outside jit)
get a ValueError instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash import parallel
from jaxhash.embeddings import unit_rows
from jaxhash.knn import default_block_size, kth_neighbor_sq_distances
from jaxhash.validation import as_int, float_array

_HIGHEST = lax.Precision.HIGHEST


# ----------------------------------------------------------------------------- validation


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


# ----------------------------------------------------------------------------- distances


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


# ----------------------------------------------------------------------------- targets


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
        labels, invalid = _int_labels(
            targets.labels, "target_distances.labels", n, table.shape[0]
        )
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


# ----------------------------------------------------------------------------- L_sim


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


# ----------------------------------------------------------------------------- L_KL


class KLTerms(NamedTuple):
    """The kNN KL estimate and its two data-dependent parts (means over valid rows)."""

    estimate: jax.Array
    mean_log_nu: jax.Array  # mean log distance to the k-th nearest target sample
    mean_log_rho: jax.Array  # mean log distance to the k-th nearest other output


def _log_distance(sq_distance: jax.Array, eps: float) -> jax.Array:
    """log of a distance from its square, floored at ``eps``: duplicates give 0 distances,
    and the gradient of sqrt at 0 is never taken."""
    return 0.5 * jnp.log(jnp.maximum(sq_distance, jnp.asarray(eps * eps, sq_distance.dtype)))


def _check_k(k, w: jax.Array, axis_name) -> int:
    """``k`` as an int with 1 <= k < n (rho needs k other rows; a concrete mask: valid rows)."""
    n_global = w.shape[0] * parallel.axis_size(axis_name)
    k = as_int(k, "k")
    if not 1 <= k < n_global:
        raise ValueError(
            f"k must be an int with 1 <= k < n = {n_global} (rho needs k other rows); got {k!r}."
        )
    if axis_name is None and _concrete(w) and not k < int(np.asarray(w).sum()):
        raise ValueError(
            f"k must be < the number of valid (unmasked) rows, {int(np.asarray(w).sum())}; got "
            f"k={k}."
        )
    return k


def _log_rho(z, w, k, eps, block_size, axis_name) -> jax.Array:
    """``[n]`` log distance from each local row to its k-th nearest other valid row (global)."""
    rho2 = kth_neighbor_sq_distances(
        z,
        parallel.all_gather_batch(z, axis_name),
        k,
        exclude_self=True,
        query_offset=parallel.batch_offset(z.shape[0], axis_name),
        points_mask=parallel.all_gather_batch(w, axis_name) > 0,
        block_size=block_size,
    )
    return _log_distance(rho2, eps)


def _knn_kl_terms(x, y_all, *, k, w, eps, block_size, axis_name) -> KLTerms:
    """Wang-Kulkarni-Verdu terms for local rows ``x`` against global targets ``y_all``."""
    dim = x.shape[1]
    if y_all.shape[1] != dim:
        raise ValueError(f"x and y must have the same width; got {dim} and {y_all.shape[1]}.")
    k = _check_k(k, w, axis_name)
    if k > y_all.shape[0]:
        raise ValueError(f"k must be <= m = {y_all.shape[0]} target samples; got k={k}.")
    log_rho = _log_rho(x, w, k, eps, block_size, axis_name)
    nu2 = kth_neighbor_sq_distances(x, y_all.astype(x.dtype), k, block_size=block_size)
    log_nu = _log_distance(nu2, eps)
    n_valid = parallel.global_sum(jnp.sum(w), axis_name)
    mean_log_nu = _masked_mean(log_nu, w, axis_name)
    mean_log_rho = _masked_mean(log_rho, w, axis_name)
    estimate = (
        dim * (mean_log_nu - mean_log_rho) + math.log(y_all.shape[0]) - jnp.log(n_valid - 1.0)
    )
    estimate = _defined(estimate, w, axis_name, min_rows=k + 1)
    return KLTerms(estimate, mean_log_nu, mean_log_rho)


def knn_kl_divergence(
    x: jax.Array,
    y: jax.Array,
    *,
    k: int = 1,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
) -> jax.Array:
    """k-nearest-neighbour estimate of KL(P_x || P_y) (Wang, Kulkarni & Verdu 2009):

        D = (d / n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1))

    rho_k(i): Euclidean distance from x_i to its k-th nearest neighbour among the other x's;
    nu_k(i): to its k-th nearest among the y's. It is the Kozachenko-Leonenko entropy estimate
    minus a kNN cross-entropy estimate, and consistent for continuous densities. Neighbours are
    chosen without gradient and their distances recomputed exactly (jaxhash.knn); distances are
    floored at ``eps`` inside the log, so duplicate rows and ``x == y`` give finite values and
    gradients.

    Args:
      x: ``[n, d]`` samples of P (the outputs).
      y: ``[m, d]`` samples of Q (the targets).
      k: neighbour order, ``1 <= k <= n - 1`` and ``k <= m``.
      mask: ``[n]`` bool; False rows of x are neither samples nor neighbours.
      eps: floor on distances inside the log.
      block_size: query rows scored at once (memory O(block_size (n + m))); None picks it
        per backend (jaxhash.knn.default_block_size).
      axis_name: mesh axis inside ``jax.shard_map``; x and y are this device's shards of the
        global samples, gathered so the estimate is the global-batch one (its bias depends on n,
        so a per-device estimate would change with the device count).

    Returns:
      Scalar estimate in nats (can be negative: the estimator is unbiased only asymptotically).
    """
    x = float_array(x, "x", 2)
    y = float_array(y, "y", 2)
    w = _mask_weights(mask, x.shape[0], x.dtype)
    y_all = parallel.all_gather_batch(y, axis_name)
    return _knn_kl_terms(
        x, y_all, k=k, w=w, eps=eps, block_size=block_size, axis_name=axis_name
    ).estimate


# The forms of the KL term. Each maps ``[N, K]`` outputs to a scalar; all but the literal "wkv"
# are in nats per bit (divided by K), so one weight means the same at 16, 32 or 64 bits.
KL_FORMS = ("wkv", "sphere", "corner", "smoothed_prior", "marginal")
DEFAULT_KL_FORM = "marginal"
_SAMPLING_FORMS = ("wkv", "sphere")  # forms that draw target samples (they need a key)
# Forms whose value never drops when a batch with every |z_ik| >= 1 (at or beyond the corners)
# is scaled up by s >= 1; tested in tests/test_losses.py. "wkv" fails this by construction.
SCALE_SAFE_KL_FORMS = ("sphere", "marginal")


def _check_key(key, form: str) -> jax.Array:
    if key is None:
        raise ValueError(
            f"kl form {form!r} draws target samples: pass key=jax.random.key(seed) (a fresh key "
            "each step), or use a form without sampling ('corner', 'smoothed_prior', 'marginal')."
        )
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    if not (typed or (key.dtype == jnp.uint32 and key.shape == (2,))):
        raise ValueError(
            f"key must be a PRNG key (jax.random.key(seed) or jax.random.PRNGKey(seed)); got an "
            f"array of dtype {key.dtype} and shape {key.shape}."
        )
    return key


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a number > 0; got {value!r}.")
    return float(value)


def _binary_targets(key, m: int, dim: int, p_one: float, dtype) -> jax.Array:
    """``[m, dim]`` samples of the binary code distribution: each bit +1 with prob. ``p_one``."""
    bits = jax.random.bernoulli(key, p_one, (m, dim))
    return jnp.where(bits, 1.0, -1.0).astype(dtype)


def _sign_corner(z: jax.Array) -> jax.Array:
    """The nearest corner of {-1, +1}^K: +1 where z > 0 (the bit of ``pack_codes``), else -1."""
    return lax.stop_gradient(jnp.where(z > 0, 1.0, -1.0).astype(z.dtype))


def _log_corner_mass(z: jax.Array, p_one: float) -> jax.Array:
    """``[n]`` log probability of each row's nearest corner under independent bits."""
    return jnp.sum(jnp.where(z > 0, math.log(p_one), math.log1p(-p_one)), axis=1)


def _corner_terms(z, w, *, k, p_one, floor, eps, block_size, axis_name) -> dict:
    """Nearest-corner WKV: nu is the distance to the nearest of all 2^K corners, in closed form.

    With the target a point mass 2^-K on each corner (uniform bits), the WKV density estimate of
    Q at x is mass(c*) / (V_K nu^K), c* the nearest corner, nu = ||x - c*||; so

        D = (1/n) sum_i [K (log nu_i - log rho_k(i)) - log mass(c*_i)] + log k - log(n - 1)

    with nu_i^2 = ||z_i - sign z_i||^2 + floor^2 (a point mass has no density: the floor keeps
    the log finite and sets the smallest distance worth paying for). Returns D / K.
    """
    dim = z.shape[1]
    k = _check_k(k, w, axis_name)
    corner = _sign_corner(z)
    nu2 = jnp.sum((z - corner) ** 2, axis=1) + floor * floor
    log_nu = 0.5 * jnp.log(nu2)
    log_rho = _log_rho(z, w, k, eps, block_size, axis_name)
    per_row = dim * (log_nu - log_rho) - _log_corner_mass(z, p_one)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    estimate = _masked_mean(per_row, w, axis_name) + math.log(k) - jnp.log(n - 1.0)
    return {
        "kl": _defined(estimate / dim, w, axis_name, min_rows=k + 1),
        "kl_log_nu": _masked_mean(log_nu, w, axis_name),
        "kl_log_rho": _masked_mean(log_rho, w, axis_name),
    }


def _smoothed_prior_terms(z, w, *, k, p_one, sigma, eps, block_size, axis_name) -> dict:
    """A finite KL to the smoothed binary prior Q_s = prod_k [(1-p) N(-1, s^2) + p N(1, s^2)].

    KL(P || Q_s) = -H(P) + CE(P, Q_s), estimated by the Kozachenko-Leonenko entropy

        H = psi(n) - psi(k) + log V_K + (K/n) sum_i log rho_k(i),   V_K = pi^(K/2) / Gamma(K/2 + 1)

    (Kozachenko & Leonenko 1987; Kraskov et al. 2004, eq. 20) and the exact cross-entropy
    CE = -(1/n) sum_i log Q_s(z_i), with per bit

        log Q_s(z) = -(z^2 + 1) / (2 s^2) - log(2 pi s^2) / 2 + log((1-p) e^(-z/s^2) + p e^(z/s^2)).

    No target samples, no floor; the scale of z is pinned (at the corners, scaling the batch by
    t lowers -H by K log t while CE grows like K (t - 1)^2 / (2 s^2)). Returns values per bit.
    """
    dim = z.shape[1]
    k = _check_k(k, w, axis_name)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    log_rho = _log_rho(z, w, k, eps, block_size, axis_name)
    log_unit_ball = 0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1.0)
    entropy = (
        jax.scipy.special.digamma(n)
        - jax.scipy.special.digamma(float(k))
        + log_unit_ball
        + dim * _masked_mean(log_rho, w, axis_name)
    )
    inv = 1.0 / (sigma * sigma)
    log_q = (
        -0.5 * (z * z + 1.0) * inv
        - 0.5 * math.log(2.0 * math.pi * sigma * sigma)
        + jnp.logaddexp(math.log1p(-p_one) - z * inv, math.log(p_one) + z * inv)
    )
    cross_entropy = -_masked_mean(jnp.sum(log_q, axis=1), w, axis_name)
    return {
        "kl": _defined((cross_entropy - entropy) / dim, w, axis_name, min_rows=k + 1),
        "kl_entropy": entropy / dim,
        "kl_cross_entropy": cross_entropy / dim,
    }


def _marginal_terms(z, w, *, p_one, decorrelation, axis_name) -> dict:
    """Per-bit 1-D Wasserstein-2 to the binary marginal, plus optional decorrelation.

    Each bit's empirical distribution (n atoms) is matched to (1-p) delta_{-1} + p delta_{+1}
    by the monotone (optimal) coupling: with r the 0-based rank of z_ik among the valid rows
    of bit k, a fraction a = clip(n (1-p) - r, 0, 1) of the atom's mass goes to -1, so

        W2^2 = (1/(n K)) sum_{i,k} [a_ik (z_ik + 1)^2 + (1 - a_ik) (z_ik - 1)^2]

    (bi-half hashing, Li & van Gemert, AAAI 2021, uses the same sort-order assignment). It pulls
    outputs to the corners and balances every bit; it has no neighbour repulsion. The optional
    decorrelation ``||Z^T Z / n - I||_F^2 / K^2`` spreads codes over bits jointly. Ranks are
    taken over the global batch (no gradient); the value is the sum of both parts.
    """
    n_local, dim = z.shape
    z_all = lax.stop_gradient(parallel.all_gather_batch(z, axis_name))
    w_all = parallel.all_gather_batch(w, axis_name)
    n = parallel.global_sum(jnp.sum(w), axis_name)
    keyed = jnp.where(w_all[:, None] > 0, z_all, jnp.inf)  # padding sorts last
    order = jnp.argsort(keyed, axis=0, stable=True)
    ranks_all = jnp.zeros_like(order).at[order, jnp.arange(dim)[None, :]].set(
        jnp.arange(order.shape[0])[:, None]
    )
    ranks = lax.dynamic_slice_in_dim(ranks_all, parallel.batch_offset(n_local, axis_name), n_local)
    to_minus = jnp.clip(n * (1.0 - p_one) - ranks.astype(z.dtype), 0.0, 1.0)
    cost = to_minus * (z + 1.0) ** 2 + (1.0 - to_minus) * (z - 1.0) ** 2
    w2 = _masked_mean(jnp.mean(cost, axis=1), w, axis_name)
    terms = {"kl_w2": w2}
    value = w2
    if decorrelation:
        zw = z * w[:, None]
        moment = parallel.global_sum(jnp.dot(zw.T, z, precision=_HIGHEST), axis_name)
        off = _safe_div(moment, n) - jnp.eye(dim, dtype=z.dtype)
        terms["kl_decorrelation"] = jnp.sum(off * off) / (dim * dim)
        value = value + decorrelation * terms["kl_decorrelation"]
    return {"kl": _defined(value, w, axis_name), **terms}


def binary_kl_terms(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    p_one: float = 0.5,
    sigma: float = 0.5,
    floor: float = 0.1,
    decorrelation: float = 1.0,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
) -> dict[str, jax.Array]:
    """The KL term of ``form`` and its parts: ``{"kl": value, "kl_<part>": ...}``.

    See :func:`binary_kl_loss` for the forms and arguments. Parts, by form: "wkv", "sphere" and
    "corner" give ``kl_log_nu`` and ``kl_log_rho`` (mean log distances); "smoothed_prior" gives
    ``kl_entropy`` and ``kl_cross_entropy`` (per bit); "marginal" gives ``kl_w2`` and, with
    decorrelation, ``kl_decorrelation``.
    """
    if form not in KL_FORMS:
        raise ValueError(f"unknown kl form {form!r}; known forms: {list(KL_FORMS)}.")
    codes = float_array(codes, "codes", 2)
    if not (isinstance(p_one, int | float) and 0.0 < p_one < 1.0):
        raise ValueError(f"p_one must lie in (0, 1); got {p_one!r}.")
    w = _mask_weights(mask, codes.shape[0], codes.dtype)
    if form == "marginal":
        if isinstance(decorrelation, bool) or not (
            isinstance(decorrelation, int | float) and decorrelation >= 0
        ):
            raise ValueError(f"decorrelation must be a number >= 0; got {decorrelation!r}.")
        return _marginal_terms(
            codes, w, p_one=p_one, decorrelation=float(decorrelation), axis_name=axis_name
        )
    knn = dict(k=k, eps=eps, block_size=block_size, axis_name=axis_name)
    if form == "corner":
        return _corner_terms(codes, w, p_one=p_one, floor=_positive(floor, "floor"), **knn)
    if form == "smoothed_prior":
        return _smoothed_prior_terms(codes, w, p_one=p_one, sigma=_positive(sigma, "sigma"), **knn)
    key = _check_key(key, form)
    n_global = codes.shape[0] * parallel.axis_size(axis_name)
    m = n_global if num_targets is None else num_targets
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"num_targets must be a positive int or None; got {num_targets!r}.")
    # The same key on every device gives every device the same m global target samples.
    targets = _binary_targets(key, m, codes.shape[1], p_one, codes.dtype)
    scale = 1.0
    if form == "sphere":
        codes = math.sqrt(codes.shape[1]) * unit_rows(codes)
        scale = 1.0 / codes.shape[1]
    terms = _knn_kl_terms(codes, targets, w=w, **knn)
    return {
        "kl": terms.estimate * scale,
        "kl_log_nu": terms.mean_log_nu,
        "kl_log_rho": terms.mean_log_rho,
    }


def binary_kl_loss(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    p_one: float = 0.5,
    sigma: float = 0.5,
    floor: float = 0.1,
    decorrelation: float = 1.0,
    mask: jax.Array | None = None,
    eps: float = 1e-6,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
) -> jax.Array:
    """The KL term: how far the outputs are from a binary code distribution (docs/method.md).

    The target is independent bits, +1 with probability ``p_one`` (default 1/2: uniform on
    {-1, +1}^K, the maximum-entropy code distribution). The paper's intent: outputs at the
    corners (little lost by ``sign``) and every code used evenly. ``form``:

    * ``"wkv"``: the literal Wang-Kulkarni-Verdu estimate ``knn_kl_divergence(codes, y)`` with
      ``y`` ``[m, K]`` drawn fresh from ``key`` (m = ``num_targets``, default the global batch),
      in nats (not per bit). Kept for the record and for reproduction: with a linear hash layer
      it is unbounded below; scaling every output up lowers it until <z, y*> = K, without
      moving anything to a corner, and its -log rho part repels same-class neighbours.
    * ``"sphere"``: the same estimate on outputs projected to the sphere of radius sqrt(K) (where
      the corners lie), per bit: scale-free by construction (a KoLeo-like spread, as in
      spreading vectors, Sablayrolles et al. 2019), with only a weak pull to the corners.
    * ``"corner"``: WKV with nu the distance to the nearest of all 2^K corners in closed form
      (no sampling), floored at ``floor``; per bit. Pins the scale near |z| = 1 and binarises
      strongly; the -log rho repulsion remains.
    * ``"smoothed_prior"``: a finite KL to prod_k [(1-p) N(-1, sigma^2) + p N(1, sigma^2)]:
      Kozachenko-Leonenko entropy plus the closed-form cross-entropy; per bit.
    * ``"marginal"`` (default): per-bit 1-D Wasserstein-2 distance to the binary marginal plus
      ``decorrelation`` x ||Z^T Z / n - I||^2 / K^2: bounded below by 0, balances every bit and
      pulls to the corners without neighbour repulsion.

    The default is the form that measured best (README, "Reproduction on CIFAR-100"); "sphere"
    and "marginal" never drop when a batch at or beyond the corners is scaled up.

    Args:
      codes: ``[N, K]`` outputs z.
      key: PRNG key; needed by the sampling forms ("wkv", "sphere"). Pass the same key on every
        device under ``axis_name``.
      form: one of :data:`KL_FORMS`.
      k: neighbour order of the kNN estimates (1 <= k < N).
      num_targets, p_one: the number of target samples (sampling forms) and the bit probability.
      sigma: the smoothed prior's standard deviation (> 0).
      floor: the corner form's floor on the distance to the corner (> 0).
      decorrelation: the marginal form's decorrelation weight (>= 0; 0 turns it off).
      mask: ``[N]`` bool; False rows (padding) take no part.
      eps: floor on kNN distances inside the log (duplicate rows stay finite).
      block_size: query rows scored at once by the kNN search (None: per backend).
      axis_name: mesh axis inside ``jax.shard_map``: the value is the global-batch one.

    Returns:
      Scalar float32.
    """
    return binary_kl_terms(
        codes,
        key,
        form=form,
        k=k,
        num_targets=num_targets,
        p_one=p_one,
        sigma=sigma,
        floor=floor,
        decorrelation=decorrelation,
        mask=mask,
        eps=eps,
        block_size=block_size,
        axis_name=axis_name,
    )["kl"]


# ----------------------------------------------------------------------------- other terms


def classification_loss(
    logits: jax.Array,
    labels: jax.Array,
    *,
    mask: jax.Array | None = None,
    label_smoothing: float = 0.0,
    axis_name: parallel.AxisName = None,
) -> jax.Array:
    """Mean softmax cross-entropy ``-log softmax(logits)[label]`` over valid rows.

    Args:
      logits: ``[N, C]``.
      labels: ``[N]`` int in [0, C).
      label_smoothing: weight of the uniform distribution in the target (0: none).
    """
    logits = float_array(logits, "logits", 2)
    labels, invalid = _int_labels(labels, "labels", logits.shape[0], logits.shape[1])
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1); got {label_smoothing!r}.")
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
    w = _mask_weights(mask, logits.shape[0], logits.dtype)
    return _defined(_masked_mean(nll, w, axis_name), w, axis_name, invalid=invalid)


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


# ----------------------------------------------------------------------------- the total


class LossWeights(NamedTuple):
    """Weights of the terms of :func:`hashing_loss`; a term of weight 0 is not computed.

    Defaults 1, 1, 1 for CE, similarity and KL (docs/method.md, section 1: the paper's weights are
    not public) and 0 for the baselines' quantization and bit-balance regularisers.
    """

    ce: float = 1.0
    sim: float = 1.0
    kl: float = 1.0
    quant: float = 0.0
    balance: float = 0.0

    @classmethod
    def create(cls, weights: LossWeights | Mapping[str, float] | None) -> LossWeights:
        """From a LossWeights, a mapping (e.g. a config dict) or None (the defaults)."""
        if weights is None:
            return cls()
        if isinstance(weights, cls):
            return weights
        unknown = set(weights) - set(cls._fields)
        if unknown:
            raise ValueError(
                f"unknown loss weight(s) {sorted(unknown)}; known: {list(cls._fields)}."
            )
        return cls(**weights)


def hashing_loss(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    logits: jax.Array | None = None,
    labels: jax.Array | None = None,
    targets: Targets | None = None,
    weights: LossWeights | Mapping[str, float] | None = None,
    kl_form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    kl_sigma: float = 0.5,
    kl_floor: float = 0.1,
    kl_decorrelation: float = 1.0,
    normalize: str = "mean",
    power: float = 2.0,
    label_smoothing: float = 0.0,
    mask: jax.Array | None = None,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The paper's total: ``ce * CE + sim * L_sim + kl * L_KL + quant * Q + balance * B``.

    Args:
      codes: ``[N, K]`` network outputs.
      key: PRNG key for the KL term's fresh target samples (needed when ``weights.kl != 0`` and
        the KL form samples: "wkv", "sphere").
      logits, labels: ``[N, C]`` and ``[N]`` for the CE term.
      targets: target distances for the similarity term (see :func:`similarity_loss`).
      weights: :class:`LossWeights` or a mapping of its fields.
      kl_form, k, num_targets, kl_sigma, kl_floor, kl_decorrelation: the KL term's ``form``,
        ``k``, ``num_targets``, ``sigma``, ``floor`` and ``decorrelation`` (:func:`binary_kl_loss`).
      normalize, power: of :func:`similarity_loss`.

    Returns:
      ``(loss, metrics)``; metrics holds "loss", each computed term unweighted ("ce", "sim",
      "kl", "quant", "balance") and, with the KL term, its parts ("kl_log_nu", ...; see
      :func:`binary_kl_terms`).
    """
    weights = LossWeights.create(weights)
    common = dict(mask=mask, axis_name=axis_name)
    metrics: dict[str, jax.Array] = {}

    def needs(term: str, **inputs) -> bool:
        weight = getattr(weights, term)
        if isinstance(weight, int | float) and weight == 0:
            return False
        missing = [name for name, value in inputs.items() if value is None]
        if missing:
            raise ValueError(
                f"the {term!r} term has weight {weight} but {', '.join(missing)} is None: pass "
                f"it, or set weights.{term} = 0."
            )
        return True

    if needs("ce", logits=logits, labels=labels):
        metrics["ce"] = classification_loss(
            logits, labels, label_smoothing=label_smoothing, **common
        )
    if needs("sim", targets=targets):
        metrics["sim"] = similarity_loss(
            codes, targets, normalize=normalize, power=power, block_size=block_size, **common
        )
    if needs("kl", **({"key": key} if kl_form in _SAMPLING_FORMS else {})):
        metrics.update(
            binary_kl_terms(
                codes,
                key,
                form=kl_form,
                k=k,
                num_targets=num_targets,
                sigma=kl_sigma,
                floor=kl_floor,
                decorrelation=kl_decorrelation,
                block_size=block_size,
                **common,
            )
        )
    if needs("quant"):
        metrics["quant"] = quantization_loss(codes, **common)
    if needs("balance"):
        metrics["balance"] = bit_balance_loss(codes, **common)
    weighted = [
        getattr(weights, term) * metrics[term] for term in LossWeights._fields if term in metrics
    ]
    if not weighted:
        raise ValueError(f"every loss weight is 0 ({weights}): nothing to optimise.")
    metrics["loss"] = sum(weighted[1:], weighted[0])
    return metrics["loss"], metrics
