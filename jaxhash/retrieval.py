"""Exact nearest-neighbour search over packed codes or embeddings, at any scale; encoding.

:func:`hamming_topk` returns the exact k nearest database codes of each query by Hamming
distance, ties broken by ascending database index, self excluded on request;
:func:`embedding_topk` does the same for real-valued outputs before binarisation. Both run
:func:`search`. On a CPU, Hamming searches go by default through the compiled scan of
:mod:`jaxhash.kernels.hamming_scan` (numba; the implementation is chosen from the arguments and
the devices of the data, :func:`jaxhash.search.plan.search_impl`). Otherwise the search is
jitted JAX: the database is cut into chunks (:mod:`jaxhash.search.plan`), the top k of each
chunk is selected exactly (:mod:`jaxhash.search.selection`: one ``lax.top_k``, or two stages
through tiles of rows), and a running top k is merged chunk by chunk, so results do not depend
on chunk or block sizes. With a mesh the database rows are sharded over the devices: each
device searches its rows with global indices, and the per-device results are all-gathered and
merged in device order, identical to one device.

:func:`encode` computes a model's outputs over a stream of batches, sharded over a mesh.

Packed codes (:mod:`jaxhash.search.packing`) and the FAISS bridge (:mod:`jaxhash.search.faiss`)
live in :mod:`jaxhash.search`; their public names are importable from here too. Speeds against
FAISS and NumPy, and the measurements behind the kernel's choices: benchmarks/RESULTS.md
("Hamming search and retrieval evaluation", "Search kernel history").
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike

from jaxhash.embeddings import check_embeddings, unit_rows
from jaxhash.search.faiss import check_faiss_factory, faiss_index
from jaxhash.search.packing import (
    _check_widths,
    check_num_bits,
    check_packed,
    check_packed_host,
    hamming_distances,
    pack_codes,
    popcount_distance,
    to_words,
    unpack_codes,
)
from jaxhash.search.plan import (
    _SELECTIONS,
    _plan,
    _row_layout_jit,
    _tile_layout_jit,
    backend_default,
    search_impl,
    search_platform,
)
from jaxhash.search.selection import _embedding_chunk, _hamming_chunk, _select

__all__ = [
    "backend_default",
    "check_faiss_factory",
    "check_k",
    "check_mesh",
    "check_num_bits",
    "check_packed",
    "embedding_topk",
    "faiss_index",
    "hamming_distances",
    "hamming_topk",
    "pack_codes",
    "popcount_distance",
    "search",
    "to_words",
    "unpack_codes",
]

log = logging.getLogger(__name__)


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


def check_k(k: int, candidates: int, exclude_self: bool) -> int:
    """``k`` as an int in ``[1, candidates]``, else a ValueError."""
    if not isinstance(k, int | np.integer) or isinstance(k, bool) or not 1 <= k <= candidates:
        raise ValueError(
            f"k must be an int with 1 <= k <= {candidates} (the database size"
            f"{' less the query itself' if exclude_self else ''}); got k={k!r}."
        )
    return int(k)


def check_mesh(mesh: Mesh | None, axis_name: str) -> int:
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


def _resolve(impl, queries, database, mesh, metric, query_block, database_block, selection):
    """``(implementation, platform)`` of a search (:func:`jaxhash.search.plan.search_impl`)."""
    _check_blocks(query_block, database_block, selection)
    platform = search_platform(database, mesh)
    xla_options = selection != "auto" or query_block is not None or database_block is not None
    traced = any(isinstance(x, jax.core.Tracer) for x in (queries, database))
    return search_impl(impl, platform, metric, mesh, xla_options, traced), platform


def _compiled_search(queries, database, k, self_ids):
    """The search by :mod:`jaxhash.kernels.hamming_scan`, in host memory."""
    from jaxhash.kernels import hamming_scan

    self_ids = None if self_ids is None else np.asarray(self_ids)
    dist, idx = hamming_scan.topk(np.asarray(queries), np.asarray(database), k, self_ids)
    return jnp.asarray(dist), jnp.asarray(idx)


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
    database may also be packed uint8 codes, converted inside the jitted layout; both may be
    packed codes for ``impl="numba"``) or float rows (unit rows for "cosine"). ``self_ids [Q]``:
    one database index each query must never return (-1: none); this is how ``exclude_self``
    works under a permuted database.
    """
    num_queries, width = queries.shape
    num_rows = database.shape[0]
    num_devices = check_mesh(mesh, axis_name)
    impl, platform = _resolve(
        impl, queries, database, mesh, metric, query_block, database_block, selection
    )
    if impl == "numba":
        return _compiled_search(queries, database, k, self_ids)
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
        platform,
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
        # XLA:CPU runs the database-major first stage markedly slower inside a loop over query
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
    queries: ArrayLike,
    database: ArrayLike,
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
      selection: "tiled" (two stages, see :mod:`jaxhash.search.selection`), "flat" (one stable
        top_k per chunk) or "auto" (tiled where a chunk holds at least 32 rows per neighbour
        wanted). The result does not depend on it, nor on the block sizes.
      impl: "numba": the compiled CPU brute force of :mod:`jaxhash.kernels.hamming_scan`
        (extra ``search``; in host memory, no mesh; block sizes and selection do not apply).
        "xla": the jitted search above, whose tiled selection's first stage (distances and tile
        minima) "pallas" runs by the fused kernel of :mod:`jaxhash.kernels.hamming_tiles` (on a
        CPU in Pallas's interpreter, for tests).
        "auto": "numba" where the database lives on a CPU, numba is installed and no mesh,
        selection or block size is given; else the kernel on GPUs and TPUs and XLA on CPUs
        (:func:`jaxhash.search.plan.search_impl`). Same result.

    Returns:
      ``(distances int32 [Q, k], indices int32 [Q, k])``, sorted by (distance, index).
    """
    impl, _ = _resolve(
        impl, queries, database, mesh, "hamming", query_block, database_block, selection
    )
    check = check_packed_host if impl == "numba" else check_packed  # no copy to a device
    queries = check(queries, "queries")
    database = check(database, "database")
    _check_widths(queries, database)
    k, self_ids = _check_search_args(queries.shape[0], database.shape[0], k, exclude_self)
    return search(
        queries if impl == "numba" else to_words(queries),
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
    queries: ArrayLike,
    database: ArrayLike,
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
