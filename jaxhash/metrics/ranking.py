"""The ranking every metric scores: the top k database items of each query, with a tie rule.

On accelerators, and for small k, the ranking is :func:`jaxhash.retrieval.search` (exact, chunked,
sharded over a mesh). On the CPU with k of at least 1/256 of the database, Hamming rankings are a
counting sort instead: the distances of a block of queries (``K + 1`` possible values) are formed
in jitted code and ordered by NumPy's stable sort of small unsigned integers, a one-pass counting
(radix) sort over the ``K + 1`` values, several times faster there than XLA:CPU's ``top_k`` at large
k. Both break ties to the lower database index, so they return the same ranking.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh

from jaxhash import retrieval
from jaxhash.metrics.inputs import RetrievalSet, check_ties
from jaxhash.search.packing import popcount_distance

METHODS = ("auto", "counting", "search")
# "auto" counts on the CPU when k * _COUNTING_SHARE >= database rows (a full sort of each row
# costs about as much as the search's top-k once k is above this share).
_COUNTING_SHARE = 256
# Distances held per query block of the counting sort (its argsort holds 8 bytes per entry).
_COUNTING_ENTRIES = 1 << 23
_COUNTING_THREADS = min(4, os.cpu_count() or 1)


class Ranking(NamedTuple):
    """The k nearest database items of every query (indices into the original database)."""

    distances: jax.Array  # [Q, k]: int32 Hamming, or float32 squared-Euclidean / cosine
    indices: jax.Array  # int32 [Q, k]
    ties: str
    seed: int


@functools.partial(jax.jit, static_argnames=("sentinel", "dtype"))
def _block_distances(q_words, columns, self_ids, *, sentinel, dtype):
    """``[b, N]`` Hamming distances as ``dtype``; each query's ``self_ids`` column: ``sentinel``."""
    dist = popcount_distance(q_words, columns)
    rows = jnp.arange(columns.shape[1], dtype=jnp.int32)[None, :]
    return jnp.where(rows == self_ids[:, None], sentinel, dist).astype(dtype)


def counting_search(
    queries: jax.Array, database: jax.Array, k: int, self_ids: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Hamming top-k by a counting sort: ``uint32`` words ``[Q, W]`` and ``[N, W]`` ->
    ``(int32 distances [Q, k], int32 indices [Q, k])``, ties to the lower index, as
    :func:`jaxhash.retrieval.search`. ``self_ids [Q]`` (-1: none) is never returned; it needs
    ``k <= N - 1``."""
    num_queries = queries.shape[0]
    n, width = database.shape
    sentinel = 32 * width + 1  # above every distance: the excluded item sorts last
    dtype = np.uint8 if sentinel <= np.iinfo(np.uint8).max else np.uint16
    block = max(1, min(num_queries, _COUNTING_ENTRIES // n))
    padded = -(-num_queries // block) * block
    q_words = jnp.pad(queries, ((0, padded - num_queries), (0, 0)))
    if self_ids is None:
        self_ids = jnp.full((num_queries,), -1, jnp.int32)
    self_ids = jnp.pad(jnp.asarray(self_ids, jnp.int32), (0, padded - num_queries))
    columns = database.T
    idx = np.empty((padded, k), np.int32)

    def sort_block(start: int) -> None:
        rows = slice(start, start + block)
        full = np.asarray(
            _block_distances(q_words[rows], columns, self_ids[rows], sentinel=sentinel, dtype=dtype)
        )
        # NumPy sorts unsigned integers of at most 16 bits stably by radix (a counting sort), and
        # releases the GIL while it sorts: blocks sort in parallel threads.
        idx[rows] = np.argsort(full, axis=1, kind="stable")[:, :k]

    with ThreadPoolExecutor(max_workers=min(_COUNTING_THREADS, padded // block)) as pool:
        list(pool.map(sort_block, range(0, padded, block)))
    idx = jnp.asarray(idx[:num_queries])
    return _ranked_distances(queries, database, idx), idx


@jax.jit
def _ranked_distances(queries, database, idx):
    """``int32 [Q, k]`` Hamming distances of each query to its ranked items ``idx``."""
    bits = lax.population_count(queries[:, None, :] ^ database[idx])
    return jnp.sum(bits, axis=2, dtype=jnp.int32)


def _counts(data: RetrievalSet, k: int, method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    if method != "auto" or data.ranking != "hamming":
        return method == "counting"
    on_cpu = all(device.platform == "cpu" for device in data.database.devices())
    return on_cpu and k * _COUNTING_SHARE >= data.database.shape[0]


def rank(
    data: RetrievalSet,
    k: int,
    *,
    ties: str = "stable",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
    method: str = "auto",
) -> Ranking:
    """Top-k ranking of ``data`` with the tie rule (``"expected"`` ranks stably; the metrics then
    take expectations over tie orders). ``method``: "search" (:func:`jaxhash.retrieval.search`,
    which takes the mesh and blocks), "counting" (:func:`counting_search`, Hamming only) or
    "auto" (module docstring); all give the same ranking."""
    check_ties(ties, data)
    k = retrieval.check_k(k, data.num_candidates, data.exclude_self)
    if _counts(data, k, method):
        if data.ranking != "hamming":
            raise ValueError(
                f"method='counting' ranks Hamming distances; got ranking={data.ranking!r}. Use "
                "method='search' (or 'auto')."
            )
        search = counting_search
    else:
        search = functools.partial(
            retrieval.search,
            metric=data.ranking,
            mesh=mesh,
            axis_name=axis_name,
            query_block=query_block,
            database_block=database_block,
        )
    n = data.database.shape[0]
    self_ids = jnp.arange(n, dtype=jnp.int32) if data.exclude_self else None
    if ties != "random":
        dist, idx = search(data.queries, data.database, k, self_ids)
        return Ranking(dist, idx, ties, seed)
    order = jax.random.permutation(jax.random.key(seed), n).astype(jnp.int32)
    if self_ids is not None:
        self_ids = jnp.argsort(order).astype(jnp.int32)  # row i of the database sits at inv[i]
    dist, idx = search(data.queries, data.database[order], k, self_ids)
    return Ranking(dist, order[idx], ties, seed)
