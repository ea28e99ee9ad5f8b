"""Packed binary codes, exact Hamming top-k at any scale, encoding, and a FAISS bridge.

Codes are ``sign(z)`` of a network's outputs ``z`` in R^K. They are stored packed, 8 bits a byte,
in exactly the layout of ``np.packbits(z > 0, axis=1)`` (first bit = most significant bit of the
first byte), which is also what FAISS binary indexes take, so codes move between the two as-is.

**Search.** :func:`hamming_topk` is exact and stable: the k nearest database rows of each query,
ties broken by ascending database index, self excluded on request. Distances are XOR + popcount on
32-bit words. A general top-k over every distance is the slow part on every backend, so the
selection is two-stage ("tiled") wherever the database is large against k:

1. The database is cut into tiles of ``T`` consecutive rows (T, a power of two up to 32, near
   sqrt(rows / k)). For each query and tile the minimum distance is taken, an element-wise
   minimum of T distance slices that never forms the ``[Q, N]`` distance matrix. ``lax.top_k``
   (ties to the lower index) then picks the k tiles with the smallest (minimum, tile index).
   These k tiles contain the exact top k: each tile ranked before a tile holding a top-k item
   ``e`` owns an item ranked strictly before ``e`` (a smaller distance, or the same distance at a
   lower index), and fewer than k items precede ``e``.
2. The k * T candidates of those tiles are scored again and ``lax.top_k`` keeps the best k, ties
   to the lower index (an exact float32 key ``distance * chunk_rows + offset``, or candidates
   sorted into index order where that key would not be exact).

The first stage's loop order is chosen per backend. CPUs (XLA) form the minima database-major,
``[tiles, Qb]``, so each database word is read once for a block of queries rather than once per
query, and rank them per query one level up, through super-tiles of 32 tiles
(:func:`_best_tiles_by_columns`: the same k tiles); query blocks are small (about 128 queries)
and searched one call each (inside a ``lax.map`` this stage runs about 4x slower). On CPUs
that is up to 2x faster than query-major (1.7x at 1,000 queries x 10^6 codes; less for few
queries). Accelerators form them query-major, with XLA or in
registers with the Pallas kernel of :mod:`jaxhash.kernels.hamming_tiles` (``impl``).

Work is linear in the database size N; time on CPUs is not, through the cache. Up to about 10^6
64-bit codes (8 MB) the codes and their tile layout fit a last-level cache and stay there between
calls; beyond, every chunk comes from memory. Measured in one process (100 queries, k = 100),
from 10^6 to 10^7 codes the per-call layout copy grew about 50x and the search 15-20x (one
2^20-row chunk of the larger database took 2-3x as long as the whole cached 10^6 one), where
FAISS grew 9-11x; 2^20-row chunks also round N up (10^7 -> 10.5 x 2^20). The copy is now one
jitted pass from the packed bytes (it was three: padding, 32-bit words, layout): 2.4x faster at
10^6 codes, 1.4x at 10^7. A copy per chunk inside the search (cache-resident) gained 1.1-1.2x at
10^7 and lost at 10^6, so it was left out.

With ``exclude_self``, k + 1 tiles are kept and the query's own row is masked in stage 2 (the top k
without self lie inside the top k + 1 with it). The database is processed in chunks with a running
top-k merged chunk by chunk (results are independent of chunk sizes), and with a mesh its rows are
sharded over the devices: each device searches its rows with global indices, the per-device
results are all-gathered and merged in device order, identical to one device.

Speeds (``benchmarks/retrieval.py``: against FAISS ``IndexBinaryFlat`` and NumPy in the same
process, on CPUs and GPUs) are in benchmarks/RESULTS.md. Two findings shaped the code: on CPUs
``lax.top_k`` over every distance ("flat") and counting/threshold selections are several times
slower than the tiled two stages (XLA:CPU's row reductions, cumulative sums and sorts are scalar
loops), and so the metrics rank CPU evaluations by a counting sort instead
(``jaxhash.metrics``); on GPUs the tiled selection is about 15x faster than "flat".

When a chunk holds fewer than 32 rows per neighbour wanted (small databases, large k) one "flat"
stable ``lax.top_k`` over the chunk is used: XLA:CPU's top_k pays about k log k comparisons per
row, twice when tiled.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import kernels
from jaxhash.embeddings import check_embeddings, unit_rows
from jaxhash.kernels import hamming_tiles

log = logging.getLogger(__name__)

# Largest number of database rows per tile in the first selection stage.
_MAX_TILE = 32
# Backends whose XLA first stage runs database-major (_best_tiles_by_columns), and its
# tiles per super-tile.
_DATABASE_MAJOR = frozenset({"cpu"})
_SUPER_TILE = 32
# "auto" selection tiles a chunk when it holds at least this many rows per neighbour wanted.
_TILED_MIN_RATIO = 32
# Largest database chunk (rows) searched in one step, and the budget (in [queries, tiles] or
# [queries, rows] entries) that bounds the per-step arrays; per backend.
_DATABASE_BLOCK = {"cpu": 1 << 20}
_DATABASE_BLOCK_ACCELERATOR = 1 << 22
_ENTRY_BUDGET = {"cpu": 1 << 25}
_ENTRY_BUDGET_ACCELERATOR = 1 << 27
# The database-major first stage (CPUs) is fastest with about 128 queries per 2^15 tiles.
_ENTRY_BUDGET_COLUMNS = 1 << 22
_SELECTIONS = ("auto", "tiled", "flat")


def backend_default(table: dict, accelerator: int) -> int:
    """``table``'s value for the default backend ("cpu", ...), else ``accelerator``."""
    return table.get(jax.default_backend(), accelerator)


# ----------------------------------------------------------------------------- packing


def pack_codes(z) -> jax.Array:
    """Pack codes to bits: ``bit = z > 0``, 8 a byte, as ``np.packbits(z > 0, axis=1)``.

    Args:
      z: ``[N, K]`` real-valued outputs, +-1 codes, {0, 1} bits or bools (bit = value > 0).

    Returns:
      ``uint8 [N, ceil(K / 8)]``; the last byte is zero-padded on the right (low bits).
    """
    z = jnp.asarray(z)
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"z must be a matrix [N, K] with K >= 1; got shape {z.shape}.")
    if not (jnp.issubdtype(z.dtype, jnp.number) or z.dtype == jnp.bool_):
        raise ValueError(f"z must be numeric or bool; got dtype {z.dtype}.")
    if jnp.issubdtype(z.dtype, jnp.floating) and not isinstance(z, jax.core.Tracer):
        if bool(jnp.isnan(z).any()):
            raise ValueError("z contains NaN: its sign, and so its code, is undefined.")
    n, num_bits = z.shape
    num_bytes = -(-num_bits // 8)
    bits = jnp.pad(z > 0, ((0, 0), (0, 8 * num_bytes - num_bits)))
    weights = jnp.asarray([128, 64, 32, 16, 8, 4, 2, 1], jnp.uint8)
    return jnp.sum(
        bits.reshape(n, num_bytes, 8).astype(jnp.uint8) * weights, axis=2, dtype=jnp.uint8
    )


def unpack_codes(packed, num_bits: int | None = None, *, dtype=jnp.float32) -> jax.Array:
    """Inverse of :func:`pack_codes`: ``[N, num_bits]`` codes in {-1, +1} (+1 where the bit is set).

    ``num_bits`` defaults to ``8 * packed.shape[1]``; ``pack_codes(unpack_codes(p, K)) == p``.
    """
    packed = check_packed(packed, "packed")
    width = packed.shape[1]
    if num_bits is None:
        num_bits = 8 * width
    check_num_bits(num_bits, width, "packed")
    shifts = jnp.arange(7, -1, -1, dtype=jnp.uint8)
    bits = (packed[:, :, None] >> shifts) & jnp.uint8(1)
    bits = bits.reshape(packed.shape[0], 8 * width)[:, :num_bits]
    return (2 * bits.astype(dtype) - 1).astype(dtype)


def check_packed(x, name: str) -> jax.Array:
    """``x`` as packed codes ``uint8 [N, bytes]``, else a ValueError naming it."""
    if isinstance(x, np.ndarray):
        x = jnp.asarray(x)
    x = jnp.asarray(x)
    if x.dtype != jnp.uint8:
        raise ValueError(
            f"{name} must be packed codes (uint8 [N, ceil(K/8)], as from pack_codes); got dtype "
            f"{x.dtype}. Pack real-valued or +-1 codes with pack_codes(z)."
        )
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a matrix [N, bytes] with bytes >= 1; got {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {x.shape}): need at least one code.")
    return x


def check_num_bits(num_bits, width: int, name: str) -> None:
    """``num_bits`` must fit ``width`` packed bytes exactly: ``ceil(num_bits / 8) == width``."""
    if not isinstance(num_bits, int) or isinstance(num_bits, bool) or num_bits < 1:
        raise ValueError(f"num_bits must be a positive int; got {num_bits!r}.")
    if -(-num_bits // 8) != width:
        raise ValueError(
            f"num_bits={num_bits} does not match {name}'s packed width of {width} bytes "
            f"(ceil(num_bits / 8) must equal it: {8 * width - 7}..{8 * width} bits)."
        )


def to_words(packed: jax.Array) -> jax.Array:
    """``uint8 [N, B] -> uint32 [N, ceil(B / 4)]`` (zero bytes appended; byte order is irrelevant
    to a popcount of XOR as long as queries and database share it)."""
    n, width = packed.shape
    num_words = -(-width // 4)
    packed = jnp.pad(packed, ((0, 0), (0, 4 * num_words - width)))
    return lax.bitcast_convert_type(packed.reshape(n, num_words, 4), jnp.uint32)


# ----------------------------------------------------------------------------- distances


def popcount_distance(queries: jax.Array, columns: jax.Array) -> jax.Array:
    """``sum_w popcount(q[:, w] ^ columns[w])``: queries ``[Q, W]``, columns ``[W, *S]`` ->
    ``uint32 [Q, *S]``."""
    expand = (slice(None),) + (None,) * (columns.ndim - 1)
    total = None
    for w in range(queries.shape[1]):
        bits = lax.population_count(queries[:, w][expand] ^ columns[w][None])
        total = bits if total is None else total + bits
    return total


def hamming_distances(queries, database) -> jax.Array:
    """All pairwise Hamming distances of packed codes: ``int32 [Q, N]``.

    Forms the full matrix: for small sets and checks. Use :func:`hamming_topk` to search.
    """
    queries = check_packed(queries, "queries")
    database = check_packed(database, "database")
    _check_widths(queries, database)
    return _hamming_distances(to_words(queries), to_words(database))


@jax.jit
def _hamming_distances(q_words, db_words):
    return popcount_distance(q_words, db_words.T).astype(jnp.int32)


def _check_widths(queries: jax.Array, database: jax.Array) -> None:
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must have the same packed width (code length); got "
            f"{queries.shape[1]} and {database.shape[1]} bytes."
        )


# ----------------------------------------------------------------------------- top-k


class _Plan(NamedTuple):
    """Static shape of one search (hashable: a jit static argument)."""

    metric: str  # "hamming", "euclidean" or "cosine"
    tile: int  # database rows per tile (1 for the flat selection)
    chunk_rows: int  # database rows per chunk, a multiple of tile
    kc: int  # neighbours kept per chunk (a chunk can hold fewer than k rows)
    kt: int  # tiles kept in stage 1 (k + 1: room for self)
    flat: bool  # one top_k over each chunk instead of the tiled selection
    fused: bool  # stage 2 ranks by the exact float32 key distance * chunk_rows + offset
    query_block: int
    num_blocks: int
    chunks_per_device: int
    pallas: bool  # stage 1 (tile minima) by the fused kernel of jaxhash.kernels.hamming_tiles
    columns: bool  # stage 1 database-major, then super-tiles (CPUs; _best_tiles_by_columns)


def _tile_size(rows: int, k: int, selection: str) -> int:
    """Rows per tile, a power of two in [2, 32] near sqrt(rows / k) (which balances the two
    stages' sizes, rows / T and k T); 1 means flat.

    XLA:CPU's ``lax.top_k`` costs about rows + k log(k) log(rows / k) comparisons, so the two
    stages pay the k log k part twice: "auto" tiles only when a chunk holds at least
    ``_TILED_MIN_RATIO`` rows per neighbour.
    """
    if selection == "flat":
        return 1
    tile = 2 ** round(math.log2(max(math.sqrt(rows / (k + 1)), 1.0)))
    tile = max(2, min(tile, _MAX_TILE))
    if selection == "auto" and rows < _TILED_MIN_RATIO * (k + 1):
        return 1
    return tile


def _plan(
    metric,
    num_queries,
    num_rows,
    width,
    k,
    num_devices,
    query_block,
    database_block,
    selection,
    impl="xla",
):
    rows_local = -(-num_rows // num_devices)
    if database_block is None:
        database_block = backend_default(_DATABASE_BLOCK, _DATABASE_BLOCK_ACCELERATOR)
    tile = 1
    if metric == "hamming":
        tile = _tile_size(min(rows_local, database_block), k, selection)
    tiles_local = -(-rows_local // tile)
    chunk_tiles = min(tiles_local, max(1, database_block // tile))
    kt = min(k + 1, chunk_tiles)
    flat = tile == 1 or kt * tile >= chunk_tiles * tile
    if flat and metric == "hamming" and tile > 1:  # the tiles would hold the whole chunk
        return _plan(metric, num_queries, num_rows, width, k, num_devices, query_block,
                     database_block, "flat", impl)  # fmt: skip
    chunk_rows = chunk_tiles * tile
    pallas = metric == "hamming" and not flat and kernels.resolve_impl(impl) == "pallas"
    columns = (
        metric == "hamming"
        and not flat
        and not pallas
        and jax.default_backend() in _DATABASE_MAJOR
        # exact float32 keys (tile minimum, tile) over the padded tiles of a chunk
        and (32 * width + 2) * kernels.round_up(chunk_tiles, _SUPER_TILE) <= 2**24
    )
    entries = chunk_rows if flat else max(chunk_tiles, kt * tile)
    if query_block is None:
        budget = backend_default(_ENTRY_BUDGET, _ENTRY_BUDGET_ACCELERATOR)
        if columns:
            budget = _ENTRY_BUDGET_COLUMNS
        query_block = max(1, budget // entries)
    query_block = min(query_block, num_queries)
    return _Plan(
        metric=metric,
        tile=tile,
        chunk_rows=chunk_rows,
        kc=min(k, chunk_rows),
        kt=kt,
        flat=flat,
        fused=(32 * width + 2) * chunk_rows <= 2**24,
        query_block=query_block,
        num_blocks=-(-num_queries // query_block),
        chunks_per_device=-(-tiles_local // chunk_tiles),
        pallas=pallas,
        columns=columns,
    )


def _tile_layout(db_words: jax.Array, num_chunks: int, chunk_rows: int, tile: int) -> jax.Array:
    """``[N, W] -> [C, W, T, tiles]``: row ``c * chunk_rows + i * T + t`` at ``[c, :, t, i]``.

    Rows past N repeat the last row, so a partly filled tile keeps its minimum; wholly padded
    tiles and padded rows are masked by index. Packed codes (uint8) become words in the same
    jitted pass: one read of the database instead of three (see the module docstring).
    """
    if db_words.dtype == jnp.uint8:
        db_words = to_words(db_words)
    n, num_words = db_words.shape
    total = num_chunks * chunk_rows
    if total > n:
        db_words = jnp.concatenate(
            [db_words, jnp.broadcast_to(db_words[-1:], (total - n, num_words))]
        )
    return db_words.reshape(num_chunks, chunk_rows // tile, tile, num_words).transpose(0, 3, 2, 1)


def _row_layout(database: jax.Array, num_chunks: int, chunk_rows: int) -> jax.Array:
    """``[N, D] -> [C, chunk_rows, D]``, zero rows appended (masked by index)."""
    n, dim = database.shape
    database = jnp.pad(database, ((0, num_chunks * chunk_rows - n), (0, 0)))
    return database.reshape(num_chunks, chunk_rows, dim)


def _best_tiles_by_columns(q_words, chunk, first_row, num_rows, plan, sentinel):
    """The ``kt`` best tiles of each query by (tile minimum, tile index), as stage 1 of
    :func:`_hamming_chunk` picks them, computed database-major: ``int32 [Qb, kt]``.

    The minima are formed ``[tiles, Qb]``, so each database word is read once for all the
    queries of the block (query-major, XLA:CPU streams the chunk once per query: about 2x
    slower). A per-query ``lax.top_k`` needs query-major rows, and transposing ``[tiles, Qb]``
    costs as much as it saves, so the selection goes one level up: super-tiles of
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


def _device_search(q_blocks, self_blocks, layout, first_chunk, num_rows, k, plan, sentinel):
    """Top-k of query blocks ``[B, Qb, ...]`` against this device's chunks ``[C, ...]``.

    The chunk loop is outermost and the query-block loop inside it, so each chunk is a whole
    (materialised) array inside the heavy loop: XLA:CPU runs a fused loop over a
    dynamically-sliced operand markedly slower.
    """
    chunk_fn = _hamming_chunk if plan.metric == "hamming" else _embedding_chunk

    def search_chunk(c, chunk):
        first_row = (first_chunk + c) * plan.chunk_rows

        def one_block(args):
            q, self_ids = args
            return chunk_fn(q, self_ids, chunk, first_row, num_rows, plan, sentinel)

        if q_blocks.shape[0] == 1:
            d, i = one_block((q_blocks[0], self_blocks[0]))
            d, i = d[None], i[None]
        else:
            d, i = lax.map(one_block, (q_blocks, self_blocks))
        if plan.kc < k:
            pad = ((0, 0), (0, 0), (0, k - plan.kc))
            d = jnp.pad(d, pad, constant_values=sentinel)
            i = jnp.pad(i, pad, constant_values=-1)
        return d, i

    if layout.shape[0] == 1:
        return search_chunk(0, layout[0])

    def body(carry, xs):
        # Earlier chunks hold lower indices, so listing them first keeps the merge stable.
        d, i = search_chunk(*xs)
        both_d = jnp.concatenate([carry[0], d], axis=2).reshape(-1, 2 * k)
        both_i = jnp.concatenate([carry[1], i], axis=2).reshape(-1, 2 * k)
        return tuple(x.reshape(d.shape) for x in _select(both_d, both_i, k)), None

    shape = (*q_blocks.shape[:2], k)
    dtype = jnp.int32 if plan.metric == "hamming" else jnp.float32
    init = (jnp.full(shape, sentinel, dtype), jnp.full(shape, -1, jnp.int32))
    steps = (jnp.arange(layout.shape[0], dtype=jnp.int32), layout)
    return lax.scan(body, init, steps)[0]


@functools.partial(
    jax.jit, static_argnames=("num_rows", "k", "plan", "sentinel", "mesh", "axis_name")
)
def _search(q_blocks, self_blocks, layout, *, num_rows, k, plan, sentinel, mesh, axis_name):
    """``q_blocks [B, Qb, ...]``, ``self_blocks [B, Qb]``, ``layout [C, ...]`` ->
    ``(distances [B, Qb, k], int32 indices [B, Qb, k])``."""
    search = functools.partial(_device_search, num_rows=num_rows, k=k, plan=plan, sentinel=sentinel)
    if mesh is None:
        return search(q_blocks, self_blocks, layout, 0)

    def sharded(q_blocks, self_blocks, layout):
        first_chunk = lax.axis_index(axis_name) * layout.shape[0]
        d, i = search(q_blocks, self_blocks, layout, first_chunk)
        d = lax.all_gather(d, axis_name, axis=0, tiled=False)  # [D, B, Qb, k], device order
        i = lax.all_gather(i, axis_name, axis=0, tiled=False)
        num_devices, b, qb, _ = d.shape
        d = d.transpose(1, 2, 0, 3).reshape(b * qb, num_devices * k)
        i = i.transpose(1, 2, 0, 3).reshape(b * qb, num_devices * k)
        d, i = _select(d, i, k)
        return d.reshape(b, qb, k), i.reshape(b, qb, k)

    # all_gather makes the merged result identical on every device; the replication checker
    # cannot see that through top_k, hence check_vma=False.
    return jax.shard_map(
        sharded,
        mesh=mesh,
        in_specs=(P(), P(), P(axis_name)),
        out_specs=(P(), P()),
        check_vma=False,
    )(q_blocks, self_blocks, layout)


_tile_layout_jit = jax.jit(_tile_layout, static_argnums=(1, 2, 3))
_row_layout_jit = jax.jit(_row_layout, static_argnums=(1, 2))


def check_k(k, candidates: int, exclude_self: bool) -> int:
    """``k`` as an int in ``[1, candidates]``, else a ValueError."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 1 <= k <= candidates:
        raise ValueError(
            f"k must be an int with 1 <= k <= {candidates} (the database size"
            f"{' less the query itself' if exclude_self else ''}); got k={k!r}."
        )
    return int(k)


def check_mesh(mesh, axis_name) -> int:
    """Number of devices along ``axis_name`` of ``mesh`` (1 for None), else a ValueError."""
    if mesh is None:
        return 1
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh or None; got {type(mesh).__name__}.")
    if axis_name not in mesh.axis_names:
        raise ValueError(f"axis_name {axis_name!r} is not an axis of the mesh {mesh.axis_names}.")
    return mesh.shape[axis_name]


def _check_blocks(query_block, database_block, selection) -> None:
    if selection not in _SELECTIONS:
        raise ValueError(f"selection must be one of {_SELECTIONS}; got {selection!r}.")
    for name, value in (("query_block", query_block), ("database_block", database_block)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int or None; got {value!r}.")


def search(
    queries: jax.Array,
    database: jax.Array,
    k: int,
    self_ids: jax.Array | None = None,
    *,
    metric: str = "hamming",
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
    selection: str = "auto",
    impl: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """The search behind :func:`hamming_topk` and :func:`embedding_topk`, without input checks.

    ``queries [Q, W]`` and ``database [N, W]`` are uint32 words (``metric="hamming"``; the
    database may also be packed uint8 codes, converted inside the jitted layout) or float rows
    (unit rows for "cosine"). ``self_ids [Q]``: one database index each query must never
    return (-1: none); this is how ``exclude_self`` works under a permuted database.
    """
    num_queries, width = queries.shape
    num_rows = database.shape[0]
    num_devices = check_mesh(mesh, axis_name)
    _check_blocks(query_block, database_block, selection)
    kernels.resolve_impl(impl)  # a ValueError for an unknown impl, whatever the plan
    plan = _plan(
        metric,
        num_queries,
        num_rows,
        width,
        k,
        num_devices,
        query_block,
        database_block,
        selection,
        impl,
    )
    num_chunks = num_devices * plan.chunks_per_device
    if metric == "hamming":
        sentinel = 32 * width + 1  # above every distance
        layout = _tile_layout_jit(database, num_chunks, plan.chunk_rows, plan.tile)
    else:
        sentinel = float("inf")
        layout = _row_layout_jit(database, num_chunks, plan.chunk_rows)
    if mesh is not None:
        layout = jax.device_put(layout, NamedSharding(mesh, P(axis_name)))
    if self_ids is None:
        self_ids = jnp.full((num_queries,), -1, jnp.int32)
    padded = plan.num_blocks * plan.query_block
    q_blocks = jnp.pad(queries, ((0, padded - num_queries), (0, 0)))
    self_blocks = jnp.pad(
        jnp.asarray(self_ids, jnp.int32), (0, padded - num_queries), constant_values=-1
    )
    q_blocks = q_blocks.reshape(plan.num_blocks, plan.query_block, width)
    self_blocks = self_blocks.reshape(plan.num_blocks, plan.query_block)
    run = functools.partial(
        _search,
        layout=layout,
        num_rows=num_rows,
        k=k,
        plan=plan,
        sentinel=sentinel,
        mesh=mesh,
        axis_name=axis_name,
    )
    if plan.columns and plan.num_blocks > 1:
        # XLA:CPU runs the database-major first stage about 4x slower inside a loop over query
        # blocks (lax.map) than alone: one call (one compilation) per block instead.
        parts = [run(q_blocks[b : b + 1], self_blocks[b : b + 1]) for b in range(plan.num_blocks)]
        dist = jnp.concatenate([d for d, _ in parts])
        idx = jnp.concatenate([i for _, i in parts])
    else:
        dist, idx = run(q_blocks, self_blocks)
    return dist.reshape(padded, k)[:num_queries], idx.reshape(padded, k)[:num_queries]


def _check_search_args(num_queries, num_rows, k, exclude_self):
    if num_rows >= 2**31 - 2**27:
        raise ValueError(f"database has {num_rows} rows; int32 indices allow under 2^31 - 2^27.")
    if exclude_self and num_queries != num_rows:
        raise ValueError(
            "exclude_self=True means the queries are the database, so they must have as many "
            f"rows; got {num_queries} queries and {num_rows} database rows."
        )
    k = check_k(k, num_rows - int(exclude_self), exclude_self)
    self_ids = jnp.arange(num_queries, dtype=jnp.int32) if exclude_self else None
    return k, self_ids


def hamming_topk(
    queries,
    database,
    k: int,
    *,
    exclude_self: bool = False,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
    selection: str = "auto",
    impl: str = "auto",
) -> tuple[jax.Array, jax.Array]:
    """Exact k nearest database codes of each query by Hamming distance, ties by lower index.

    Args:
      queries: packed codes ``uint8 [Q, B]`` (:func:`pack_codes`).
      database: packed codes ``uint8 [N, B]``.
      k: neighbours per query, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
      exclude_self: the queries are the database (``Q == N``); query i never returns index i.
      mesh: shard the database rows over ``mesh``'s ``axis_name`` devices (queries replicated);
        the result is identical to one device's. None: the default device.
      query_block, database_block: queries and database rows searched per step; memory is
        O(query_block * database_block / 32) (tiled) or O(query_block * database_block) (flat).
        None: backend defaults (CPU: 2^20 rows, 2^25 entries, 2^22 when tiled; accelerators 2^22
        and 2^27).
      selection: "tiled" (two-stage, see the module docstring), "flat" (one stable top_k per
        chunk) or "auto" (tiled unless the k tiles would cover over a quarter of a chunk). The
        result does not depend on it, nor on the block sizes.
      impl: the tiled selection's first stage (distances and tile minima) by "xla", by the fused
        Pallas kernel of :mod:`jaxhash.kernels.hamming_tiles` ("pallas"; on a CPU it runs in
        Pallas's interpreter, for tests) or "auto" (the kernel on GPUs and TPUs; the
        environment variable ``JAXHASH_IMPL`` overrides it). Same result.

    Returns:
      ``(distances int32 [Q, k], indices int32 [Q, k])``, sorted by (distance, index).
    """
    queries = check_packed(queries, "queries")
    database = check_packed(database, "database")
    _check_widths(queries, database)
    k, self_ids = _check_search_args(queries.shape[0], database.shape[0], k, exclude_self)
    return search(
        to_words(queries),
        database,
        k,
        self_ids,
        mesh=mesh,
        axis_name=axis_name,
        query_block=query_block,
        database_block=database_block,
        selection=selection,
        impl=impl,
    )


def embedding_topk(
    queries,
    database,
    k: int,
    *,
    metric: str = "euclidean",
    exclude_self: bool = False,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Exact k nearest real-valued embeddings: the counterpart of :func:`hamming_topk` for
    outputs before binarisation.

    ``metric="euclidean"`` ranks by squared Euclidean distance ``||q||^2 + ||p||^2 - 2 q.p``
    (float32, HIGHEST-precision products, clamped at 0); ``"cosine"`` by ``1 - cos(q, p)``.
    Ties (equal float distances) go to the lower index. Same arguments and chunking as
    :func:`hamming_topk`; returns ``(distances float32 [Q, k], indices int32 [Q, k])``.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine'; got {metric!r}.")
    queries = check_embeddings(queries, "queries")
    database = check_embeddings(database, "database")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries and database must have the same dimension; got {queries.shape[1]} and "
            f"{database.shape[1]}."
        )
    k, self_ids = _check_search_args(queries.shape[0], database.shape[0], k, exclude_self)
    if metric == "cosine":
        queries, database = unit_rows(queries), unit_rows(database)
    return search(
        queries,
        database,
        k,
        self_ids,
        metric=metric,
        mesh=mesh,
        axis_name=axis_name,
        query_block=query_block,
        database_block=database_block,
    )


# ----------------------------------------------------------------------------- encoding


def __getattr__(name: str):
    # encode moved to jaxhash.evaluation.encoding (which imports this module); kept here.
    if name in ("encode", "_encode_step", "_batch_inputs"):
        from jaxhash.evaluation import encoding

        return getattr(encoding, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ----------------------------------------------------------------------------- FAISS bridge


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "the FAISS bridge needs faiss: pip install 'jaxhash[faiss]' (faiss-cpu)."
        ) from error
    return faiss


def check_faiss_factory(factory: str, num_bits: int = 64):
    """An empty FAISS binary index of ``num_bits`` made by ``faiss.index_binary_factory(
    num_bits, factory)``, else a ValueError naming the factory string."""
    faiss = _faiss()
    if not isinstance(factory, str) or not factory.startswith("B"):
        raise ValueError(
            f"FAISS binary index factory strings start with B (BFlat, BIVF1024, BHNSW32, "
            f"BHash4x16); got {factory!r}."
        )
    try:
        return faiss.index_binary_factory(num_bits, factory)
    except RuntimeError as error:
        reason = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"{factory!r} is not a FAISS binary index for {num_bits}-bit codes ({reason}); try "
            "BFlat, BIVF1024, BHNSW32 or BHash4x16."
        ) from None


def faiss_index(database, num_bits: int | None = None, *, factory: str = "BFlat"):
    """A FAISS binary index holding packed codes ``uint8 [N, B]`` (the same layout): a
    ``faiss.IndexBinaryFlat``, or the index ``faiss.index_binary_factory`` makes of
    ``factory`` (e.g. "BIVF1024", "BHNSW32", "BHash4x16"; trained on the codes when it needs
    training).

    ``num_bits`` must be a multiple of 8 for FAISS (default ``8 * B``). Search it with
    ``index.search(queries_packed, k)``: the flat index gives identical distances to
    :func:`hamming_topk` (the order inside a group of equal distances may differ); the others
    are approximate.
    """
    database = np.ascontiguousarray(np.asarray(check_packed(database, "database")))
    width = database.shape[1]
    num_bits = 8 * width if num_bits is None else num_bits
    check_num_bits(num_bits, width, "database")
    if num_bits % 8:
        raise ValueError(
            f"FAISS binary indexes need a whole number of bytes; got num_bits={num_bits}. Pass "
            f"num_bits={8 * width} (the padding bits are zero in every code, so distances agree)."
        )
    if factory == "BFlat":
        index = _faiss().IndexBinaryFlat(num_bits)
    else:
        index = check_faiss_factory(factory, num_bits)
        if not index.is_trained:
            try:
                index.train(database)
            except RuntimeError as error:
                reason = str(error).strip().splitlines()[-1]
                raise ValueError(
                    f"FAISS could not train {factory} on {len(database)} codes ({reason}): "
                    "choose an index with fewer lists, or BFlat."
                ) from None
    index.add(database)
    return index
