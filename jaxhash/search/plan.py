"""The static plan of one search: which implementation, tile, chunk and query-block sizes, and
the database layouts.

The database is searched in chunks of ``chunk_rows`` rows, cut into tiles of ``tile`` rows for
the two-stage selection (:mod:`jaxhash.search.selection`), by blocks of ``query_block`` queries.
The sizes bound the per-step arrays (``[queries, tiles]`` or ``[queries, rows]`` entries) by a
per-platform budget. A plan is hashable: a static argument of the jitted search.

Every choice comes from the call's arguments and the devices its data lives on
(:func:`search_platform`: the mesh's devices, else the database array's), never from process
state read while tracing: a caller who moves the data or changes ``impl`` gets the matching
plan on the next call.
"""

from __future__ import annotations

import importlib.util
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxhash import kernels
from jaxhash.search.packing import to_words

# Largest number of database rows per tile in the first selection stage.
_MAX_TILE = 32
# Backends whose XLA first stage runs database-major (selection._best_tiles_by_columns), and its
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
# The Hamming search's implementations: XLA, the fused Pallas first stage, or the compiled CPU
# brute force of jaxhash.kernels.hamming_scan (numba, extra "search").
SEARCH_IMPLS = ("auto", *kernels.IMPLS[1:], "numba")


def backend_default(table: dict[str, int], accelerator: int, platform: str) -> int:
    """``table``'s value for ``platform`` ("cpu", ...; :func:`search_platform`), else
    ``accelerator``."""
    return table.get(platform, accelerator)


def search_platform(database, mesh: Mesh | None = None) -> str:
    """The platform ("cpu", "gpu", "tpu") a search of ``database`` runs on: the mesh's devices,
    else the devices holding ``database`` (a ``jax.Array``), else the default backend, where
    JAX places a NumPy array (and where a traced value will run)."""
    if mesh is not None:
        return mesh.devices.flat[0].platform
    if isinstance(database, jax.Array) and not isinstance(database, jax.core.Tracer):
        return next(iter(database.devices())).platform
    return jax.default_backend()


def has_numba() -> bool:
    """numba (extra ``search``) is installed."""
    return importlib.util.find_spec("numba") is not None


def search_impl(
    impl: str,
    platform: str,
    metric: str = "hamming",
    mesh: Mesh | None = None,
    xla_options: bool = False,
    traced: bool = False,
) -> str:
    """The implementation ``impl`` names for a search on ``platform``: "xla", "pallas" or
    "numba"; else a ValueError (an ImportError for "numba" without numba).

    "auto" takes the compiled brute force ("numba") for Hamming codes on a CPU when numba is
    installed, without a mesh, without ``xla_options`` (a selection or block sizes, which
    shape the XLA search) and outside a trace (``traced``: the codes are abstract values
    inside ``jax.jit``); else the Pallas first stage on GPUs and TPUs and XLA on CPUs.
    """
    if impl not in SEARCH_IMPLS:
        raise ValueError(f"impl must be one of {SEARCH_IMPLS}; got {impl!r}.")
    if impl == "numba":
        if metric != "hamming":
            raise ValueError(f"impl='numba' searches Hamming codes; got metric={metric!r}.")
        if mesh is not None:
            raise ValueError(
                "impl='numba' searches host memory on one machine and takes no mesh; pass "
                "mesh=None, or impl='auto' to search sharded over the mesh."
            )
        if traced:
            raise ValueError(
                "impl='numba' searches concrete arrays, not values traced inside jax.jit; use "
                "impl='auto' or 'xla' there."
            )
        if not has_numba():
            raise ImportError("impl='numba' needs numba: pip install 'jaxhash[search]'.")
        return impl
    compiled = metric == "hamming" and platform == "cpu" and mesh is None
    compiled = compiled and not xla_options and not traced
    if impl == "auto" and compiled and has_numba():
        return "numba"
    return kernels.resolve_impl(impl, platform)


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
    platform="cpu",
):
    """The plan of an XLA or Pallas search (``impl`` resolved by :func:`search_impl`) on
    ``platform``."""
    rows_local = -(-num_rows // num_devices)
    if database_block is None:
        database_block = backend_default(_DATABASE_BLOCK, _DATABASE_BLOCK_ACCELERATOR, platform)
    tile = 1
    if metric == "hamming":
        tile = _tile_size(min(rows_local, database_block), k, selection)
    tiles_local = -(-rows_local // tile)
    chunk_tiles = min(tiles_local, max(1, database_block // tile))
    kt = min(k + 1, chunk_tiles)
    flat = tile == 1 or kt * tile >= chunk_tiles * tile
    if flat and metric == "hamming" and tile > 1:  # the tiles would hold the whole chunk
        return _plan(metric, num_queries, num_rows, width, k, num_devices, query_block,
                     database_block, "flat", impl, platform)  # fmt: skip
    chunk_rows = chunk_tiles * tile
    pallas = metric == "hamming" and not flat and impl == "pallas"
    columns = (
        metric == "hamming"
        and not flat
        and not pallas
        and platform in _DATABASE_MAJOR
        # exact float32 keys (tile minimum, tile) over the padded tiles of a chunk
        and (32 * width + 2) * kernels.round_up(chunk_tiles, _SUPER_TILE) <= 2**24
    )
    entries = chunk_rows if flat else max(chunk_tiles, kt * tile)
    if query_block is None:
        budget = backend_default(_ENTRY_BUDGET, _ENTRY_BUDGET_ACCELERATOR, platform)
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
    jitted pass: one read of the database instead of three.
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


_tile_layout_jit = jax.jit(_tile_layout, static_argnums=(1, 2, 3))
_row_layout_jit = jax.jit(_row_layout, static_argnums=(1, 2))
