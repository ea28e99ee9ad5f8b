"""The exact, stable top-k of one database chunk: one ``lax.top_k`` ("flat") or two stages.

The k nearest rows of each query, ties broken by ascending database index. A general top-k over
every distance is the slow part on every backend, so where a chunk is large against k the
Hamming selection has two stages ("tiled"):

1. The chunk is cut into tiles of ``T`` consecutive rows (T, a power of two up to 32, near
   sqrt(rows / k): :func:`jaxhash.search.plan._tile_size`). For each query and tile the minimum
   distance is taken, an element-wise minimum of T distance slices that never forms the
   ``[Q, N]`` distance matrix. ``lax.top_k`` (ties to the lower index) then picks the k tiles
   with the smallest (minimum, tile index). These k tiles contain the exact top k: each tile
   ranked before a tile holding a top-k item ``e`` owns an item ranked strictly before ``e`` (a
   smaller distance, or the same distance at a lower index), and fewer than k items precede ``e``.
2. The k * T candidates of those tiles are scored again and ``lax.top_k`` keeps the best k, ties
   to the lower index (an exact float32 key ``distance * chunk_rows + offset``, or candidates
   sorted into index order where that key would not be exact).

The first stage's loop order is chosen per backend. CPUs (XLA) form the minima database-major,
``[tiles, Qb]``, so each database word is read once for a block of queries rather than once per
query, and rank them per query one level up, through super-tiles of 32 tiles
(:func:`_best_tiles_by_columns`: the same k tiles). Accelerators form them query-major, with XLA
or in registers with the Pallas kernel of :mod:`jaxhash.kernels.hamming_tiles` (``impl``).

With ``exclude_self``, k + 1 tiles are kept and the query's own row is masked in stage 2 (the top
k without self lie inside the top k + 1 with it). When a chunk holds fewer than 32 rows per
neighbour wanted (small databases, large k) the flat selection is used: XLA:CPU's ``top_k`` pays
about k log k comparisons per row, twice when tiled. Embeddings always take the flat selection.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxhash.kernels import hamming_tiles
from jaxhash.search.packing import popcount_distance
from jaxhash.search.plan import _SUPER_TILE


def _best_tiles_by_columns(q_words, chunk, first_row, num_rows, plan, sentinel):
    """The ``kt`` best tiles of each query by (tile minimum, tile index), as stage 1 of
    :func:`_hamming_chunk` picks them, computed database-major: ``int32 [Qb, kt]``.

    The minima are formed ``[tiles, Qb]``, so each database word is read once for all the
    queries of the block (query-major, XLA:CPU streams the chunk once per query). A per-query
    ``lax.top_k`` needs query-major rows, and transposing ``[tiles, Qb]`` costs as much as it
    saves, so the selection goes one level up: super-tiles of
    ``_SUPER_TILE`` consecutive tiles are ranked by their minimum (a small ``[Qb, supers]``
    transpose), and the tiles of the ``kt`` best super-tiles ranked by the exact float32 key
    ``minimum * tiles + tile``. Exact by the argument of the module docstring, one level up:
    each super-tile ranked before one holding a top-``kt`` tile owns a tile ranked before it.
    """
    num_words, tile, num_tiles = chunk.shape
    qb = q_words.shape[0]
    tile_min = None
    for t in range(tile):
        dist = None
        for w in range(num_words):
            bits = lax.population_count(chunk[w, t, :, None] ^ q_words[None, :, w])
            dist = bits if dist is None else dist + bits
        tile_min = dist if tile_min is None else jnp.minimum(tile_min, dist)
    tile_first = first_row + tile * jnp.arange(num_tiles, dtype=jnp.int32)
    tile_min = jnp.where((tile_first < num_rows)[:, None], tile_min.astype(jnp.int32), sentinel)
    num_super = -(-num_tiles // _SUPER_TILE)
    padded = num_super * _SUPER_TILE  # padded tiles rank after every real one (index, value)
    tile_min = jnp.pad(tile_min, ((0, padded - num_tiles), (0, 0)), constant_values=sentinel)
    super_min = jnp.min(tile_min.reshape(num_super, _SUPER_TILE, qb), axis=1)  # [supers, Qb]
    _, supers = lax.top_k(_rank_score(super_min.T), min(plan.kt, num_super))
    offsets = jnp.arange(_SUPER_TILE, dtype=jnp.int32)
    candidates = (supers[:, :, None] * _SUPER_TILE + offsets).reshape(qb, -1)
    values = tile_min[candidates, jnp.arange(qb)[:, None]]
    _, pos = lax.top_k(-(values * padded + candidates).astype(jnp.float32), plan.kt)
    return jnp.take_along_axis(candidates, pos, axis=1)


def _rank_score(dist: jax.Array) -> jax.Array:
    """Larger is nearer, for ``lax.top_k`` (whose ties go to the lower index)."""
    return -dist.astype(jnp.float32)


def _select(dist, idx, k):
    """Stable best k of each row of ``dist`` (listed in index order)."""
    _, pos = lax.top_k(_rank_score(dist), k)
    return jnp.take_along_axis(dist, pos, axis=1), jnp.take_along_axis(idx, pos, axis=1)


def _hamming_chunk(q_words, self_ids, chunk, first_row, num_rows, plan, sentinel):
    """Stable top-kc of one chunk ``[W, T, tiles]``: ``(int32 [Qb, kc], int32 [Qb, kc])``."""
    _, tile, num_tiles = chunk.shape
    qb = q_words.shape[0]
    if plan.flat:
        dist = popcount_distance(q_words, chunk)  # [Qb, T, tiles]
        dist = dist.transpose(0, 2, 1).reshape(qb, num_tiles * tile)
        idx = first_row + jnp.arange(num_tiles * tile, dtype=jnp.int32)[None, :]
    elif plan.pallas:
        tile_min = hamming_tiles.tile_minima(q_words, chunk)
    elif not plan.columns:
        tile_min = None
        for t in range(tile):
            d = popcount_distance(q_words, chunk[:, t, :])
            tile_min = d if tile_min is None else jnp.minimum(tile_min, d)
    if plan.columns:
        tiles = _best_tiles_by_columns(q_words, chunk, first_row, num_rows, plan, sentinel)
    elif not plan.flat:
        tile_first = first_row + tile * jnp.arange(num_tiles, dtype=jnp.int32)
        tile_min = jnp.where(tile_first < num_rows, tile_min.astype(jnp.int32), sentinel)
        _, tiles = lax.top_k(_rank_score(tile_min), plan.kt)
    if not plan.flat:
        if not plan.fused:
            tiles = jnp.sort(tiles, axis=1)  # index order, so that top_k's tie rule is stable
        candidates = chunk[:, :, tiles].transpose(0, 2, 3, 1)  # [W, Qb, kt, T]
        dist = None
        for w in range(q_words.shape[1]):
            bits = lax.population_count(q_words[:, w, None, None] ^ candidates[w])
            dist = bits if dist is None else dist + bits
        dist = dist.reshape(qb, plan.kt * tile)
        offsets = jnp.arange(tile, dtype=jnp.int32)
        idx = (first_row + tiles[:, :, None] * tile + offsets).reshape(qb, plan.kt * tile)
    masked = (idx >= num_rows) | (idx == self_ids[:, None])
    dist = jnp.where(masked, sentinel, dist.astype(jnp.int32))
    if plan.flat or not plan.fused:
        return _select(dist, idx, plan.kc)
    # Candidates come in order of tile rank, not index: break ties on an exact fused key.
    key = dist * plan.chunk_rows + (idx - first_row)
    _, pos = lax.top_k(-key.astype(jnp.float32), plan.kc)
    return jnp.take_along_axis(dist, pos, axis=1), jnp.take_along_axis(idx, pos, axis=1)


def _embedding_chunk(queries, self_ids, chunk, first_row, num_rows, plan, sentinel):
    """Stable top-kc of one chunk ``[rows, D]`` by squared Euclidean or cosine distance."""
    dots = jnp.dot(queries, chunk.T, precision=lax.Precision.HIGHEST)
    if plan.metric == "euclidean":
        sq = jnp.sum(queries * queries, axis=1)[:, None] + jnp.sum(chunk * chunk, axis=1)[None, :]
        dist = sq - 2.0 * dots
    else:  # rows are unit (or zero) vectors
        dist = 1.0 - dots
    dist = jnp.where(dist > 0, dist, 0.0)  # clamp rounding below 0; also turns -0.0 into +0.0
    idx = first_row + jnp.arange(chunk.shape[0], dtype=jnp.int32)[None, :]
    dist = jnp.where((idx >= num_rows) | (idx == self_ids[:, None]), sentinel, dist)
    return _select(dist, jnp.broadcast_to(idx, dist.shape), plan.kc)
