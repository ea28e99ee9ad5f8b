"""Pallas kernel: index of the k-th nearest point of each query, no ``[Q, P]`` matrix in memory.

The score of point ``j`` for query ``q`` is ``||p_j||^2 - 2 q.p_j`` (the squared distance less
``||q||^2``), exactly as :func:`jaxhash.knn.kth_neighbor_indices` forms it. A program holds a
block of ``bq`` queries and the k best ``(score, index)`` pairs of each, sorted by score then
index; for each block of ``bp`` points it forms the ``[bq, bp]`` scores in registers (or VMEM),
takes the block's k best by k rounds of (row minimum, lowest column at it) and inserts them into
the running list. The k-th entry is the k-th smallest score with ties to the lower index, the
rule of the XLA path's "flat" and "top_k" selections (and of every selection at k = 1).

Forward only: callers recompute the chosen distances exactly, which is where gradients flow.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from jaxhash.kernels import check_variant, interpret_default, next_power_of_2, round_up

_NO_INDEX = 2**31 - 1  # index of an empty slot of the running list: after every real index


def _insert(best_s, best_i, s, i):
    """Insert the candidate ``(s, i)`` into the sorted lists ``best_s``, ``best_i`` (k arrays
    each, ascending by (score, index)); the largest entry falls off the end."""
    new_s, new_i = [], []
    for bs, bi in zip(best_s, best_i, strict=True):
        before = (s < bs) | ((s == bs) & (i < bi))
        new_s.append(jnp.where(before, s, bs))
        new_i.append(jnp.where(before, i, bi))
        s, i = jnp.where(before, bs, s), jnp.where(before, bi, i)
    return new_s, new_i


def _merge_block(best_s, best_i, scores, first_col, k):
    """Merge the k best ``(score, first_col + column)`` of ``scores [bq, bp]`` into the lists.

    Column ids are compared as float32 (exact below 2^24 columns a block), which every backend
    reduces natively.
    """
    cols = lax.broadcasted_iota(jnp.int32, scores.shape, 1).astype(jnp.float32)
    past = float(scores.shape[1])
    for r in range(k):
        low = jnp.min(scores, axis=1, keepdims=True)
        col = jnp.min(jnp.where(scores == low, cols, past), axis=1, keepdims=True)
        if r + 1 < k:
            scores = jnp.where(cols == col, jnp.inf, scores)
        best_s, best_i = _insert(best_s, best_i, low, first_col + col.astype(jnp.int32))
    return best_s, best_i


def _scores(q, p, norms, rows, first_col, precision):
    """``norms[j] - 2 q.p_j`` for a ``[bq, D]`` x ``[bp, D]`` block; the query's own point
    (``rows``, ``[bq, 1]``) is +inf."""
    dots = lax.dot_general(q, p, (((1,), (1,)), ((), ())), precision=precision)
    scores = norms - 2.0 * dots
    cols = first_col + lax.broadcasted_iota(jnp.int32, scores.shape, 1)
    return jnp.where(cols == rows, jnp.inf, scores)


def _triton_kernel(q_ref, p_ref, n_ref, r_ref, o_ref, *, k, block_points, precision):
    """One program per query block; a loop over the point blocks (GPUs)."""
    q = q_ref[...]
    rows = r_ref[...][:, None]
    num_blocks = p_ref.shape[0] // block_points

    def body(b, best):
        start = pl.multiple_of(b * block_points, block_points)
        p = p_ref[pl.ds(start, block_points), :]
        norms = n_ref[pl.ds(start, block_points)][None, :]
        scores = _scores(q, p, norms, rows, start, precision)
        best_s, best_i = _merge_block(list(best[0]), list(best[1]), scores, start, k)
        return tuple(best_s), tuple(best_i)

    shape = (q.shape[0], 1)
    init = (
        tuple(jnp.full(shape, jnp.inf, jnp.float32) for _ in range(k)),
        tuple(jnp.full(shape, _NO_INDEX, jnp.int32) for _ in range(k)),
    )
    best = lax.fori_loop(0, num_blocks, body, init)
    o_ref[...] = best[1][k - 1][:, 0]


def _mosaic_kernel(q_ref, p_ref, n_ref, r_ref, s_ref, i_ref, *, k, precision):
    """Grid (query blocks, point blocks); the running lists live in the output blocks (TPUs)."""
    j = pl.program_id(1)
    block_points = p_ref.shape[0]

    @pl.when(j == 0)
    def _():
        s_ref[...] = jnp.full(s_ref.shape, jnp.inf, jnp.float32)
        i_ref[...] = jnp.full(i_ref.shape, _NO_INDEX, jnp.int32)

    start = j * block_points
    scores = _scores(q_ref[...], p_ref[...], n_ref[...], r_ref[...], start, precision)
    best_s = [s_ref[:, c : c + 1] for c in range(k)]
    best_i = [i_ref[:, c : c + 1] for c in range(k)]
    best_s, best_i = _merge_block(best_s, best_i, scores, start, k)
    for c in range(k):
        s_ref[:, c : c + 1] = best_s[c]
        i_ref[:, c : c + 1] = best_i[c]


def kth_neighbor_indices(
    queries: jax.Array,
    points: jax.Array,
    k: int,
    row_ids: jax.Array,
    sq_norms: jax.Array,
    *,
    precision=lax.Precision.HIGHEST,
    variant: str | None = None,
    interpret: bool | None = None,
    block_queries: int | None = None,
    block_points: int | None = None,
) -> jax.Array:
    """Index of the k-th smallest ``sq_norms[j] - 2 q_i.p_j`` per query, ties to the lower index.

    Args:
      queries: float32 ``[Q, D]``.
      points: float32 ``[P, D]``.
      k: static, 1 <= k; the caller keeps at least k finite candidates per query.
      row_ids: int32 ``[Q]``, the point each query must skip (its own row), -1 for none.
      sq_norms: float32 ``[P]``, ``||p_j||^2``, +inf for points that are never neighbours.
      precision: of the ``q.p`` products (HIGHEST: IEEE float32 on GPUs).
      variant: "triton" (GPUs) or "mosaic" (TPUs); None: the default backend's.
      interpret: run in Pallas's interpreter; None: where there is no GPU or TPU.
      block_queries, block_points: block sizes (None: 64 x 64 for Triton, 256 x 512 for Mosaic).

    Returns:
      int32 ``[Q]``.
    """
    variant = check_variant(variant)
    interpret = interpret_default() if interpret is None else interpret
    num_queries, dim = queries.shape
    num_points = points.shape[0]
    if variant == "triton":  # power-of-two blocks, at least 16 wide for tl.dot
        bq = block_queries or min(64, max(16, next_power_of_2(num_queries)))
        bp = block_points or min(64, max(16, next_power_of_2(num_points)))
        dim_padded = max(16, next_power_of_2(dim))
    else:  # sublane (8) and lane (128) multiples
        bq = block_queries or min(256, round_up(num_queries, 8))
        bp = block_points or min(512, round_up(num_points, 128))
        dim_padded = dim
    q_rows, p_rows = round_up(num_queries, bq), round_up(num_points, bp)
    queries = jnp.pad(queries, ((0, q_rows - num_queries), (0, dim_padded - dim)))
    points = jnp.pad(points, ((0, p_rows - num_points), (0, dim_padded - dim)))
    sq_norms = jnp.pad(sq_norms, (0, p_rows - num_points), constant_values=jnp.inf)
    row_ids = jnp.pad(row_ids, (0, q_rows - num_queries), constant_values=-1)
    if variant == "triton":
        from jax.experimental.pallas import triton as plgpu

        out = pl.pallas_call(
            functools.partial(_triton_kernel, k=k, block_points=bp, precision=precision),
            out_shape=jax.ShapeDtypeStruct((q_rows,), jnp.int32),
            grid=(q_rows // bq,),
            in_specs=[
                pl.BlockSpec((bq, dim_padded), lambda i: (i, 0)),
                pl.BlockSpec((p_rows, dim_padded), lambda i: (0, 0)),
                pl.BlockSpec((p_rows,), lambda i: (0,)),
                pl.BlockSpec((bq,), lambda i: (i,)),
            ],
            out_specs=pl.BlockSpec((bq,), lambda i: (i,)),
            compiler_params=plgpu.CompilerParams(num_warps=4, num_stages=2),
            interpret=interpret,
            name="kth_neighbor_triton",
        )(queries, points, sq_norms, row_ids)
        return out[:num_queries]
    from jax.experimental.pallas import tpu as pltpu

    _, out = pl.pallas_call(
        functools.partial(_mosaic_kernel, k=k, precision=precision),
        out_shape=(
            jax.ShapeDtypeStruct((q_rows, k), jnp.float32),
            jax.ShapeDtypeStruct((q_rows, k), jnp.int32),
        ),
        grid=(q_rows // bq, p_rows // bp),
        in_specs=[
            pl.BlockSpec((bq, dim_padded), lambda i, j: (i, 0)),
            pl.BlockSpec((bp, dim_padded), lambda i, j: (j, 0)),
            pl.BlockSpec((1, bp), lambda i, j: (0, j)),
            pl.BlockSpec((bq, 1), lambda i, j: (i, 0)),
        ],
        out_specs=(
            pl.BlockSpec((bq, k), lambda i, j: (i, 0)),
            pl.BlockSpec((bq, k), lambda i, j: (i, 0)),
        ),
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
        interpret=interpret,
        name="kth_neighbor_mosaic",
    )(queries, points, sq_norms[None, :], row_ids[:, None])
    return out[:num_queries, k - 1]
