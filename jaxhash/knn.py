"""Exact k-th-nearest-neighbour distances in bounded memory.

Used by the empirical KL estimate (jaxhash.losses) and shared with retrieval. Two ideas, both from
the numerics of kNN estimators (DINOv2's KoLeo loss; Wang, Kulkarni & Verdu 2009):

* **Pick without gradient, recompute exactly.** The neighbour is chosen on the score
  ``||p_j||^2 - 2 q.p_j`` (the squared distance less the query's own norm, which does not change
  the ranking), computed by a matrix product. The squared distance of the chosen pair is then
  recomputed as ``sum((q - p_j)^2)``: never negative, exact in the working precision, and the only
  part that carries gradients, so the backward pass costs O(Q D) instead of O(Q P D).
* **Blocks of queries.** Scores are formed ``block_size`` query rows at a time, so memory is
  O(block_size * P) at any number of queries.
* **A fused kernel on accelerators.** On GPUs and TPUs the neighbour is picked by a Pallas kernel
  (:mod:`jaxhash.kernels.kth_neighbor`) that scores tiles in registers and never writes a score
  matrix; the XLA path stays the reference and the CPU path (``impl``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxhash import kernels
from jaxhash.kernels import kth_neighbor as kth_neighbor_kernel
from jaxhash.validation import as_int, float_array

# Scores are reduced in tiles of this many columns: a vectorised min per tile, then a small
# argmin over the tile minima and inside the winning tiles. XLA's argmin over a long row is a
# scalar loop on CPUs; this is about 10x faster there at k = 1 and no slower on accelerators.
_TILE = 64
# Above this k, one lax.top_k pass beats k masked argmin passes.
_ITERATIVE_MAX_K = 16
# Default score-block budget, in matrix entries: cache-sized on CPUs (512 query rows against
# 4,096 points measured fastest; benchmarks/knn.py), large on accelerators to keep them busy.
_BLOCK_ENTRIES = {"cpu": 1 << 21}
_BLOCK_ENTRIES_ACCELERATOR = 1 << 27


def default_block_size(num_points: int) -> int:
    """Query rows per block for ``num_points`` candidates on the default backend."""
    budget = _BLOCK_ENTRIES.get(jax.default_backend(), _BLOCK_ENTRIES_ACCELERATOR)
    return max(8, budget // max(num_points, 1))


def _check_args(queries, points, k, exclude_self, points_mask, block_size):
    queries = float_array(queries, "queries", 2)
    points = float_array(points, "points", 2)
    if queries.shape[1] != points.shape[1]:
        raise ValueError(
            f"queries and points must have the same dimension; got {queries.shape[1]} and "
            f"{points.shape[1]}."
        )
    candidates = points.shape[0] - int(exclude_self)
    try:
        k_int = as_int(k, "k")
    except ValueError:
        k_int = 0
    if not 1 <= k_int <= candidates:
        raise ValueError(
            f"k must be an int with 1 <= k <= {candidates} (the number of candidate points"
            f"{', self excluded' if exclude_self else ''}); got k={k!r}."
        )
    if points_mask is not None:
        points_mask = jnp.asarray(points_mask)
        if points_mask.shape != (points.shape[0],):
            raise ValueError(
                f"points_mask must have shape [{points.shape[0]}] (one flag per point); got "
                f"{points_mask.shape}."
            )
        points_mask = points_mask.astype(bool)
    if block_size is None:
        block_size = default_block_size(points.shape[0])
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int or None; got {block_size!r}.")
    return queries, points, k_int, points_mask, block_size


def _kth_smallest_flat(scores: jax.Array, k: int) -> jax.Array:
    """Column of the k-th smallest entry per row of ``scores`` [B, P] (int32 [B])."""
    if k > _ITERATIVE_MAX_K:
        return lax.top_k(-scores, k)[1][:, k - 1].astype(jnp.int32)
    columns = lax.broadcasted_iota(jnp.int32, scores.shape, 1)
    for _ in range(k - 1):
        nearest = jnp.argmin(scores, axis=1).astype(jnp.int32)
        scores = jnp.where(columns == nearest[:, None], jnp.inf, scores)
    return jnp.argmin(scores, axis=1).astype(jnp.int32)


def _kth_smallest_index(scores: jax.Array, k: int, selection: str) -> jax.Array:
    """Column of the k-th smallest entry per row of ``scores`` [B, P], by tiles.

    The k smallest entries of a row lie in the k tiles with the smallest minima (a tile holding
    one of them has its minimum at or below the k-th value, and fewer than k other tiles can
    have a smaller minimum), so only those k tiles are searched exactly.
    """
    rows, width = scores.shape
    if selection == "top_k":
        return lax.top_k(-scores, k)[1][:, k - 1].astype(jnp.int32)
    if selection == "flat" or k > _ITERATIVE_MAX_K or width <= 4 * _TILE:
        return _kth_smallest_flat(scores, k)
    num_tiles = -(-width // _TILE)
    scores = jnp.pad(scores, ((0, 0), (0, num_tiles * _TILE - width)), constant_values=jnp.inf)
    tiles = scores.reshape(rows, num_tiles, _TILE)
    tile_min = jnp.min(tiles, axis=2)
    tile_ids = lax.broadcasted_iota(jnp.int32, tile_min.shape, 1)
    chosen = []
    for _ in range(k):
        best = jnp.argmin(tile_min, axis=1).astype(jnp.int32)
        chosen.append(best)
        tile_min = jnp.where(tile_ids == best[:, None], jnp.inf, tile_min)
    chosen = jnp.stack(chosen, axis=1)  # [B, k], in increasing order of tile minimum
    candidates = jnp.take_along_axis(tiles, chosen[:, :, None], axis=1).reshape(rows, k * _TILE)
    within = _kth_smallest_flat(candidates, k)
    tile = jnp.take_along_axis(chosen, (within // _TILE)[:, None], axis=1)[:, 0]
    return tile * _TILE + within % _TILE


def _resolve_impl(impl: str, dtype, k: int) -> str:
    """The implementation to run, "xla" or "pallas" (see :func:`kth_neighbor_indices`)."""
    explicit = impl == "pallas"
    impl = kernels.resolve_impl(impl)
    if impl == "xla":
        return impl
    if dtype != jnp.float32:
        if explicit:
            raise ValueError(
                f"impl='pallas' takes float32 queries and points; got {dtype}. Cast them, or "
                "pass impl='xla' (or 'auto')."
            )
        return "xla"
    return "pallas" if explicit or k <= _ITERATIVE_MAX_K else "xla"


def kth_neighbor_indices(
    queries: jax.Array,
    points: jax.Array,
    k: int,
    *,
    exclude_self: bool = False,
    query_offset: int | jax.Array = 0,
    points_mask: jax.Array | None = None,
    block_size: int | None = None,
    precision: lax.Precision | str | None = lax.Precision.HIGHEST,
    selection: str = "tiled",
    impl: str = "auto",
) -> jax.Array:
    """Index of the k-th nearest point (Euclidean) of each query; no gradient.

    Args:
      queries: ``[Q, D]``.
      points: ``[P, D]``.
      k: 1 is the nearest neighbour.
      exclude_self: query ``i`` is ``points[query_offset + i]`` and is never its own neighbour.
      query_offset: global index of the first query (traced values allowed, e.g. a device's
        offset inside ``jax.shard_map``).
      points_mask: ``[P]`` bool; False points are never neighbours. The caller keeps at least k
        valid candidates per query.
      block_size: query rows scored at once; memory is O(block_size * P). None: about 2M
        entries per block on CPUs, 128M on accelerators (:func:`default_block_size`).
      precision: of the scoring matrix product. HIGHEST by default: on GPUs and TPUs a lower
        precision (TF32, bf16) can pick a farther neighbour when the distances are small
        against the norms, as they are for codes near the hypercube corners.
      selection: how the k-th smallest score of a row is found: "tiled" (default; minima of
        64-column tiles, then an exact search of the k best tiles), "flat" (k masked argmin
        passes) or "top_k" (``lax.top_k``). Same result; speed differs by backend.
      impl: "xla" (the blocked matrix products above), "pallas" (the fused kernel; float32
        only; on a CPU it runs in Pallas's interpreter, for tests) or "auto" (the kernel on GPUs
        and TPUs for float32 inputs and k <= 16, else XLA). The kernel's ties go to the lowest
        index at every k,
        as "flat" and "top_k" do.

    Returns:
      ``int32 [Q]``. For k = 1, ties go to the lowest index; for k > 1, to one of the tied
      ("tiled") or to the lowest ("flat", "top_k", the kernel).
    """
    queries, points, k, points_mask, block_size = _check_args(
        queries, points, k, exclude_self, points_mask, block_size
    )
    if selection not in ("tiled", "flat", "top_k"):
        raise ValueError(f"selection must be 'tiled', 'flat' or 'top_k'; got {selection!r}.")
    dtype = jnp.promote_types(queries.dtype, points.dtype)
    impl = _resolve_impl(impl, dtype, k)
    queries = lax.stop_gradient(queries.astype(dtype))
    points = lax.stop_gradient(points.astype(dtype))
    sq_norms = jnp.sum(points * points, axis=1)
    if points_mask is not None:
        sq_norms = jnp.where(points_mask, sq_norms, jnp.inf)
    if impl == "pallas":
        num_queries = queries.shape[0]
        row_ids = jnp.full((num_queries,), -1, jnp.int32)
        if exclude_self:
            row_ids = query_offset + jnp.arange(num_queries, dtype=jnp.int32)
        return kth_neighbor_kernel.kth_neighbor_indices(
            queries, points, k, row_ids, sq_norms, precision=precision
        )

    num_queries = queries.shape[0]
    block = min(block_size, num_queries)
    num_blocks = math.ceil(num_queries / block)

    def score_block(query_block: jax.Array, first_row) -> jax.Array:
        scores = sq_norms[None, :] - 2.0 * jnp.dot(query_block, points.T, precision=precision)
        if exclude_self:
            rows = query_offset + first_row + lax.broadcasted_iota(jnp.int32, scores.shape, 0)
            columns = lax.broadcasted_iota(jnp.int32, scores.shape, 1)
            scores = jnp.where(columns == rows, jnp.inf, scores)
        return _kth_smallest_index(scores, k, selection)

    if num_blocks == 1:
        return score_block(queries, 0)
    padded = jnp.pad(queries, ((0, num_blocks * block - num_queries), (0, 0)))
    firsts = jnp.arange(num_blocks, dtype=jnp.int32) * block
    indices = lax.map(
        lambda args: score_block(*args), (padded.reshape(num_blocks, block, -1), firsts)
    )
    return indices.reshape(-1)[:num_queries]


def kth_neighbor_sq_distances(
    queries: jax.Array,
    points: jax.Array,
    k: int,
    *,
    exclude_self: bool = False,
    query_offset: int | jax.Array = 0,
    points_mask: jax.Array | None = None,
    block_size: int | None = None,
    precision: lax.Precision | str | None = lax.Precision.HIGHEST,
    selection: str = "tiled",
    impl: str = "auto",
) -> jax.Array:
    """Exact squared distance ``||q_i - p_j||^2`` from each query to its k-th nearest point.

    The neighbour ``j`` is picked by :func:`kth_neighbor_indices` (same arguments); the distance
    of the chosen pair is recomputed from the two rows, so it is never negative and is
    differentiable w.r.t. both queries and points (gradient ``2 (q_i - p_j)``, zero for
    duplicates). Returns ``[Q]`` in float32 (float64 for float64 inputs).
    """
    queries, points, k, *_ = _check_args(queries, points, k, exclude_self, points_mask, block_size)
    indices = kth_neighbor_indices(
        queries,
        points,
        k,
        exclude_self=exclude_self,
        query_offset=query_offset,
        points_mask=points_mask,
        block_size=block_size,
        precision=precision,
        selection=selection,
        impl=impl,
    )
    diff = queries - points[indices]
    return jnp.sum(diff * diff, axis=1)
