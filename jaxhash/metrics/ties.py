"""Exact expectations over a uniformly random order inside each group of equal Hamming distance
(McSherry & Najork, ECIR 2008): what ``ties="expected"`` scores. Rows ``[b, k]`` are one block of
ranked queries, sorted by distance."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax


def group_bounds(dist):
    """Per position of sorted rows ``dist [b, k]``: start and end (exclusive) of its tie group."""
    k = dist.shape[1]
    positions = jnp.arange(k, dtype=jnp.int32)
    change = dist[:, 1:] != dist[:, :-1]
    edge = jnp.ones_like(dist[:, :1], bool)
    first = jnp.concatenate([edge, change], axis=1)
    last = jnp.concatenate([change, edge], axis=1)
    start = lax.cummax(jnp.where(first, positions, 0), axis=1)
    end = lax.cummin(jnp.where(last, positions + 1, k), axis=1, reverse=True)
    return start, end


def exclusive_cumsum(values):
    """``[b, k] -> [b, k + 1]`` exclusive prefix sums."""
    return jnp.pad(jnp.cumsum(values, axis=1), ((0, 0), (1, 0)))


def expected_values(dist, values, boundary_mean):
    """Expectation of ``values`` at each rank over random orders inside tie groups.

    A group wholly inside the top k contributes its mean to each of its positions; the group cut
    by the k-th position (distance ``dist[:, -1]``) extends past the list, so its positions take
    ``boundary_mean``, the mean over all of its database items.
    """
    start, end = group_bounds(dist)
    prefix = exclusive_cumsum(values)
    take = functools.partial(jnp.take_along_axis, prefix, axis=1)
    group_mean = (take(end) - take(start)) / (end - start).astype(jnp.float32)
    return jnp.where(dist == dist[:, -1:], boundary_mean[:, None], group_mean)


def expected_ap(dist, rel, boundary_count, boundary_relevant):
    """Exact E[AP@k] over random orders inside tie groups (McSherry & Najork, 2008).

    Groups wholly inside the top k: a position ``i`` at offset ``t`` (1-based) of a group of
    ``n`` items with ``r`` relevant, after ``N_a`` relevant items in earlier groups, has
    ``E[rel_i * hits_i] = (r/n)(N_a + 1) + (t - 1) r (r - 1) / (n (n - 1))`` (a uniformly random
    arrangement), independently of the group the cut-off splits; their sum of ``/ i`` is F.
    The split group (``n_B`` database items, ``r_B`` relevant, ``m`` of its positions in the top
    k, after ``a_B`` positions and ``R_b`` relevant items) brings H ~ Hypergeometric(n_B, r_B, m)
    relevant items, and given H = h its positions add ``h alpha + h (h - 1) beta`` with
    ``alpha = (R_b + 1)/m sum_t 1/(a_B + t)`` and ``beta = sum_t (t - 1)/(a_B + t) / (m (m - 1))``.
    AP's denominator is ``R_b + h``, so
    ``E[AP@k] = sum_h P(H = h) (F + h alpha + h (h - 1) beta) / (R_b + h)`` (0 when no hits).
    """
    _, k = dist.shape
    positions = jnp.arange(1, k + 1, dtype=jnp.float32)
    start, end = group_bounds(dist)
    prefix = exclusive_cumsum(rel)
    before = jnp.take_along_axis(prefix, start, axis=1)  # N_a
    group_rel = jnp.take_along_axis(prefix, end, axis=1) - before
    group_n = (end - start).astype(jnp.float32)
    offset = positions - start.astype(jnp.float32)
    pairs = jnp.maximum(group_n * (group_n - 1.0), 1.0)
    term = (group_rel / group_n) * (before + 1.0) + (offset - 1.0) * group_rel * (
        group_rel - 1.0
    ) / pairs
    full = dist < dist[:, -1:]
    f = jnp.sum(jnp.where(full, term / positions, 0.0), axis=1)

    a_b = jnp.sum(full, axis=1).astype(jnp.int32)
    m = (k - a_b).astype(jnp.float32)
    r_before = jnp.take_along_axis(prefix, a_b[:, None], axis=1)[:, 0]
    split = ~full
    alpha = (r_before + 1.0) / m * jnp.sum(jnp.where(split, 1.0 / positions, 0.0), axis=1)
    t_split = positions - a_b[:, None].astype(jnp.float32)
    beta = jnp.sum(jnp.where(split, (t_split - 1.0) / positions, 0.0), axis=1) / jnp.maximum(
        m * (m - 1.0), 1.0
    )

    n_b = boundary_count.astype(jnp.float32)[:, None]
    r_b = boundary_relevant.astype(jnp.float32)[:, None]
    m_ = m[:, None]
    h = jnp.arange(k + 1, dtype=jnp.float32)[None, :]
    low = jnp.maximum(0.0, m_ - (n_b - r_b))
    high = jnp.minimum(m_, r_b)
    # log P(h + 1) - log P(h), summed from `low`: stable for large groups (no binomials).
    step = (
        jnp.log(jnp.maximum(r_b - h, 1e-30))
        + jnp.log(jnp.maximum(m_ - h, 1e-30))
        - jnp.log(h + 1.0)
        - jnp.log(jnp.maximum(n_b - r_b - m_ + h + 1.0, 1e-30))
    )
    step = jnp.where((h >= low) & (h < high), step, 0.0)
    log_p = exclusive_cumsum(step)[:, : k + 1]
    log_p = jnp.where((h >= low) & (h <= high), log_p, -jnp.inf)
    p = jax.nn.softmax(log_p, axis=1)
    hits = r_before[:, None] + h
    value = (f[:, None] + h * alpha[:, None] + h * (h - 1.0) * beta[:, None]) / jnp.maximum(
        hits, 1.0
    )
    return jnp.sum(p * jnp.where(hits > 0, value, 0.0), axis=1)
