"""Per-query scores of a ranking: AP@k (peer convention), HP@j and AHP@k, the relevant items in the
top k, and the top-1 mistake severity, each for the realised order or its expectation over tie
orders (:mod:`jaxhash.metrics.ties`). Scoring runs in jitted code a block of queries at a time."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash.metrics.inputs import RetrievalSet, class_table
from jaxhash.metrics.passes import boundary_stats
from jaxhash.metrics.ranking import Ranking
from jaxhash.metrics.ties import expected_ap, expected_values

# Per-query scoring runs in blocks of about this many [query, rank] entries.
_SCORE_ENTRIES = 1 << 22


@functools.partial(jax.jit, static_argnames=("fn", "block", "static"))
def _map_queries(per_query, shared, *, fn, block, static=()):
    """``fn(*per_query_block, *shared, *static)`` over blocks of ``block`` queries (lax.map)."""
    n = per_query[0].shape[0]
    block = min(block, n)
    num_blocks = -(-n // block)

    def blocks(x):
        x = jnp.pad(x, [(0, num_blocks * block - n)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(num_blocks, block, *x.shape[1:])

    out = lax.map(lambda xs: fn(*xs, *shared, *static), tuple(blocks(x) for x in per_query))
    return jax.tree.map(lambda o: o.reshape(num_blocks * block, *o.shape[2:])[:n], out)


def _score_block(k: int, width: int = 1) -> int:
    return max(1, _SCORE_ENTRIES // (k * width))


def _relevance(q_labels, indices, db_labels):
    """``float32 [b, k]``: 1 where the ranked item shares the query's label."""
    ranked = db_labels[indices]
    if db_labels.ndim == 1:
        return (ranked == q_labels[:, None]).astype(jnp.float32)
    return (jnp.einsum("bkl,bl->bk", ranked, q_labels) > 0).astype(jnp.float32)


def _similarity(q_labels, indices, db_labels, table):
    """``float32 [b, k]``: class similarity of each ranked item to the query."""
    return table[q_labels[:, None], db_labels[indices]]


def _stable_ap(rel):
    """Peer AP@k of relevance rows ``[b, k]``: sum of P@i at hits over the number of hits."""
    hits = jnp.cumsum(rel, axis=1)
    positions = jnp.arange(1, rel.shape[1] + 1, dtype=jnp.float32)
    total = hits[:, -1]
    return jnp.sum(rel * hits / positions, axis=1) / jnp.maximum(total, 1.0)


def _trapezoid_ahp(gains, ideal):
    """HP@j ``[b, k]`` and AHP@k ``[b]`` (trapezoid, dx = 1/k) from gains and ideal sums."""
    cumulative = jnp.cumsum(gains, axis=1)
    hp = jnp.where(ideal > 0, cumulative / jnp.where(ideal > 0, ideal, 1.0), 1.0)
    k = gains.shape[1]
    ahp = (jnp.sum(hp, axis=1) - 0.5 * (hp[:, 0] + hp[:, -1])) / k
    return hp, ahp


def _ap_kernel(dist, idx, q_labels, boundary, db_labels, ties):
    rel = _relevance(q_labels, idx, db_labels)
    if ties == "expected":
        return expected_ap(dist, rel, boundary[:, 0], boundary[:, 1])
    return _stable_ap(rel)


def _hp_kernel(dist, idx, q_labels, boundary, ideal, db_labels, table, ties):
    gains = _similarity(q_labels, idx, db_labels, table)
    if ties == "expected":
        gains = expected_values(dist, gains, boundary[:, 2] / boundary[:, 0])
    return _trapezoid_ahp(gains, ideal[q_labels])


def _precision_kernel(dist, idx, q_labels, boundary, db_labels, ties):
    """Expected (or realised) number of relevant items in the top k: ``[b]``."""
    rel = _relevance(q_labels, idx, db_labels)
    if ties == "expected":
        rel = expected_values(dist, rel, boundary[:, 1] / boundary[:, 0])
    return jnp.sum(rel, axis=1)


def _ideal_sums(data: RetrievalSet, table: jax.Array, k: int) -> jax.Array:
    """``[C, k]`` best achievable cumulative similarity for a query of each class.

    Built from per-class database counts (less the query itself with ``exclude_self``): the
    class similarities sorted in decreasing order, each repeated by its count.
    """
    table = np.asarray(table, np.float64)
    num_classes = table.shape[0]
    counts = np.bincount(np.asarray(data.db_labels), minlength=num_classes).astype(np.int64)
    ideal = np.zeros((num_classes, k))
    for c in np.unique(np.asarray(data.query_labels)):
        row_counts = counts.copy()
        if data.exclude_self:
            row_counts[c] -= 1
        order = np.argsort(-table[c], kind="stable")
        sims = np.repeat(table[c, order], row_counts[order])[:k]
        ideal[c] = np.cumsum(sims)
    return jnp.asarray(ideal, jnp.float32)


def relevant_totals(data: RetrievalSet) -> jax.Array:
    """``[Q]`` number of relevant database items per query (self excluded)."""
    if not data.multi_label:
        counts = jnp.bincount(data.db_labels, length=int(data.db_labels.max()) + 1)
        top = counts.shape[0] - 1
        totals = jnp.where(data.query_labels <= top, counts[jnp.minimum(data.query_labels, top)], 0)
        return totals - int(data.exclude_self)
    block = max(1, _SCORE_ENTRIES // data.db_labels.shape[0])
    shared = jnp.float32(data.exclude_self)
    return _map_queries(
        (data.query_labels,), (data.db_labels, shared), fn=_shared_label_count, block=block
    )


def _shared_label_count(q_labels, db_labels, exclude_self):
    """Database items sharing a label with each multi-hot query (less itself)."""
    shared = jnp.dot(q_labels, db_labels.T, precision=lax.Precision.HIGHEST) > 0.5
    has_label = jnp.sum(q_labels, axis=1) > 0  # only then is the query relevant to itself
    return jnp.sum(shared, axis=1, dtype=jnp.float32) - exclude_self * has_label


def mean(values) -> float:
    return float(np.mean(np.asarray(values, np.float64)))


def _cut(data: RetrievalSet, ranking: Ranking, k: int, fill: float, table=None, **pass_options):
    """The top-k distances and indices, and the tie-boundary statistics at k: from a database
    pass for ``ties="expected"``, else the constant ``fill`` (which the kernels ignore)."""
    dist, idx = ranking.distances[:, :k], ranking.indices[:, :k]
    if ranking.ties == "expected":
        boundary = boundary_stats(data, ranking, [k], table, **pass_options)[:, 0]
    else:
        boundary = jnp.full((dist.shape[0], 3), fill)
    return dist, idx, boundary


def average_precisions(data: RetrievalSet, ranking: Ranking, k: int, **pass_options) -> jax.Array:
    """``[Q]`` AP@k of each query (peer convention; expectation for ``ties="expected"``)."""
    dist, idx, boundary = _cut(data, ranking, k, 0.0, **pass_options)
    return _map_queries(
        (dist, idx, data.query_labels, boundary),
        (data.db_labels,),
        fn=_ap_kernel,
        block=_score_block(k, data.db_labels.shape[1] if data.multi_label else 1),
        static=(ranking.ties,),
    )


def hierarchical_precisions(
    data: RetrievalSet, ranking: Ranking, table, k: int, **pass_options
) -> tuple[jax.Array, jax.Array]:
    """``(HP@1..k [Q, k], AHP@k [Q])`` of each query against class similarities ``table``."""
    table = class_table(table, data, "class_similarity", nonnegative=True)
    if k < 2:
        raise ValueError(f"mAHP@k needs k >= 2 (a trapezoid area over HP@1..HP@k); got k={k}.")
    dist, idx, boundary = _cut(data, ranking, k, 1.0, table, **pass_options)
    return _map_queries(
        (dist, idx, data.query_labels, boundary),
        (_ideal_sums(data, table, k), data.db_labels, table),
        fn=_hp_kernel,
        block=_score_block(k),
        static=(ranking.ties,),
    )


def relevant_in_top(data: RetrievalSet, ranking: Ranking, k: int, **pass_options) -> jax.Array:
    """``[Q]`` (expected) number of relevant items among the top k."""
    dist, idx, boundary = _cut(data, ranking, k, 1.0, **pass_options)
    return _map_queries(
        (dist, idx, data.query_labels, boundary),
        (data.db_labels,),
        fn=_precision_kernel,
        block=_score_block(k, data.db_labels.shape[1] if data.multi_label else 1),
        static=(ranking.ties,),
    )


def top1_mistakes(data: RetrievalSet, ranking: Ranking, table) -> dict[str, float]:
    """Share of queries whose nearest item has another class, and the mean ``table`` distance
    (e.g. LCS height) between the classes of those mistakes (0 when there are none)."""
    if ranking.ties == "expected":
        raise ValueError(
            "mistake severity is a ratio over the queries that err; use ties='stable' or "
            "'random' for it."
        )
    table = class_table(table, data, "class_distance", nonnegative=True)
    top = data.db_labels[ranking.indices[:, 0]]
    wrong = np.asarray(top != data.query_labels)
    severity = np.asarray(table[data.query_labels, top], np.float64)
    return {
        "mistake_rate": float(wrong.mean()),
        "mistakes": int(wrong.sum()),
        "mean_severity": float(severity[wrong].mean()) if wrong.any() else 0.0,
    }
