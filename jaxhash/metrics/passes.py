"""Passes over the whole database for every query, chunk by chunk (sharded over a mesh's devices):
per-distance histograms (Hamming-radius metrics) and the size, relevant count and similarity sum of
the tie group at a cut-off (``ties="expected"``). Sums do not depend on chunk sizes or devices."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import retrieval
from jaxhash.metrics.inputs import RetrievalSet
from jaxhash.metrics.ranking import Ranking
from jaxhash.search.packing import popcount_distance
from jaxhash.search.plan import backend_default, search_platform

# Database passes hold [queries, rows] blocks of this many entries.
_PASS_ENTRIES = {"cpu": 1 << 23}
_PASS_ENTRIES_ACCELERATOR = 1 << 26


def _chunk_relevance(q_labels, db_labels_chunk):
    """``bool [b, rows]``: relevance of a database chunk to a block of queries."""
    if db_labels_chunk.ndim == 1:
        return q_labels[:, None] == db_labels_chunk[None, :]
    return jnp.dot(q_labels, db_labels_chunk.T) > 0.5


def _tie_stats(dist, valid, rel, sims, thresholds):
    """Items at exactly each threshold distance: ``(int32 [b, M, 2]`` count and relevant count,
    ``float32 [b, M]`` similarity sum)."""
    counts, sim_sums = [], []
    for j in range(thresholds.shape[1]):
        eq = valid & (dist == thresholds[:, j : j + 1])
        # float32 row sums vectorise on XLA:CPU (integer ones do not); exact below 2^24 rows.
        both = jnp.stack([jnp.sum(eq, 1, jnp.float32), jnp.sum(eq & rel, 1, jnp.float32)], 1)
        counts.append(both.astype(jnp.int32))
        sim_sums.append(jnp.zeros(eq.shape[0]) if sims is None else jnp.sum(eq * sims, axis=1))
    return jnp.stack(counts, axis=1), jnp.stack(sim_sums, axis=1)


def _histogram(dist, valid, rel, num_values):
    """``[b, 2, V]`` counts of items per distance value: not relevant, and relevant."""
    b = dist.shape[0]
    rows = jnp.broadcast_to(jnp.arange(b)[:, None], dist.shape)
    bins = dist + num_values * rel.astype(jnp.int32)
    counts = jnp.zeros((b, 2 * num_values), jnp.int32).at[rows, bins].add(valid.astype(jnp.int32))
    return counts.reshape(b, 2, num_values)


@functools.partial(
    jax.jit, static_argnames=("kind", "num_rows", "num_values", "chunk_rows", "mesh", "axis_name")
)
def _pass(q_args, db_words, db_labels, *, kind, num_rows, num_values, chunk_rows, mesh, axis_name):
    """Sum a per-chunk statistic over the database: ``q_args = (words [B, b, W], self [B, b],
    labels [B, b, ...], extra...)``, database chunks ``[C, W, rows]`` and ``[C, rows, ...]``."""

    def chunk_stat(q_block, chunk_words, chunk_labels, first_row):
        words, self_ids, labels, *extra = q_block
        dist = popcount_distance(words, chunk_words).astype(jnp.int32)
        idx = first_row + jnp.arange(chunk_rows, dtype=jnp.int32)[None, :]
        valid = (idx < num_rows) & (idx != self_ids[:, None])
        rel = _chunk_relevance(labels, chunk_labels)
        if kind == "histogram":
            return _histogram(dist, valid, rel, num_values)
        thresholds, *sim_rows = extra
        sims = jnp.take(sim_rows[0], chunk_labels, axis=1) if sim_rows else None
        return _tie_stats(dist, valid, rel, sims, thresholds)

    def device_pass(q_args, db_words, db_labels, first_chunk):
        def body(total, xs):
            c, chunk_words, chunk_labels = xs
            first_row = (first_chunk + c) * chunk_rows
            stat = lax.map(lambda q: chunk_stat(q, chunk_words, chunk_labels, first_row), q_args)
            return jax.tree.map(jnp.add, total, stat), None

        shapes = jax.eval_shape(
            lambda: lax.map(lambda q: chunk_stat(q, db_words[0], db_labels[0], 0), q_args)
        )
        init = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        steps = (jnp.arange(db_words.shape[0], dtype=jnp.int32), db_words, db_labels)
        return lax.scan(body, init, steps)[0]

    if mesh is None:
        return device_pass(q_args, db_words, db_labels, 0)

    def sharded(q_args, db_words, db_labels):
        first_chunk = lax.axis_index(axis_name) * db_words.shape[0]
        return lax.psum(device_pass(q_args, db_words, db_labels, first_chunk), axis_name)

    # check_vma=False: the scan's zero carry starts device-invariant and becomes varying.
    return jax.shard_map(
        sharded,
        mesh=mesh,
        in_specs=(P(), P(axis_name), P(axis_name)),
        out_specs=P(),
        check_vma=False,
    )(q_args, db_words, db_labels)


def database_pass(
    data: RetrievalSet,
    kind: str,
    extra: tuple = (),
    *,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> jax.Array:
    """Run :func:`_pass` over every query and the whole database: ``[Q, ...]`` sums."""
    num_devices = retrieval.check_mesh(mesh, axis_name)
    num_queries, num_words = data.queries.shape
    n = data.database.shape[0]
    rows_local = -(-n // num_devices)
    platform = search_platform(data.database, mesh)
    budget = backend_default(_PASS_ENTRIES, _PASS_ENTRIES_ACCELERATOR, platform)
    chunk_rows = min(rows_local, database_block or max(1024, budget // 256))
    chunks = num_devices * -(-rows_local // chunk_rows)
    if query_block is None:
        query_block = max(1, budget // chunk_rows)
    query_block = min(query_block, num_queries)
    pad_rows = chunks * chunk_rows - n
    db_words = jnp.pad(data.database, ((0, pad_rows), (0, 0)))
    db_words = db_words.reshape(chunks, chunk_rows, num_words).transpose(0, 2, 1)
    db_labels = jnp.pad(data.db_labels, [(0, pad_rows)] + [(0, 0)] * (data.db_labels.ndim - 1))
    db_labels = db_labels.reshape(chunks, chunk_rows, *data.db_labels.shape[1:])
    if mesh is not None:
        sharding = NamedSharding(mesh, P(axis_name))
        db_words, db_labels = jax.device_put((db_words, db_labels), sharding)
    self_ids = jnp.arange(num_queries, dtype=jnp.int32)
    if not data.exclude_self:
        self_ids = jnp.full_like(self_ids, -1)
    num_blocks = -(-num_queries // query_block)

    def blocks(x):
        x = jnp.pad(x, [(0, num_blocks * query_block - num_queries)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(num_blocks, query_block, *x.shape[1:])

    q_args = tuple(blocks(x) for x in (data.queries, self_ids, data.query_labels, *extra))
    out = _pass(
        q_args,
        db_words,
        db_labels,
        kind=kind,
        num_rows=n,
        num_values=32 * num_words + 1,
        chunk_rows=chunk_rows,
        mesh=mesh,
        axis_name=axis_name,
    )
    return jax.tree.map(
        lambda o: o.reshape(num_blocks * query_block, *o.shape[2:])[:num_queries], out
    )


def boundary_stats(data: RetrievalSet, ranking: Ranking, cutoffs, table=None, **pass_options):
    """For each cutoff k: the database items at the query's k-th distance (self excluded):
    ``[Q, M, 2 or 3]`` = count, relevant count (and similarity sum with ``table``)."""
    thresholds = ranking.distances[:, jnp.asarray(cutoffs) - 1]
    extra = (thresholds,) if table is None else (thresholds, table[data.query_labels])
    counts, sims = database_pass(data, "ties", extra, **pass_options)
    return jnp.concatenate([counts.astype(jnp.float32), sims[..., None]], axis=2)
