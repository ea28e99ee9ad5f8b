"""Retrieval metrics of hash codes: mAP@k, mAHP@k, precision/recall@k, Hamming-radius
precision-recall, and the mistake severity of the nearest item.

Every metric ranks a database for each query (:mod:`jaxhash.retrieval`: exact, chunked, sharded
over a mesh's devices) and scores the ranking in jitted code, a block of queries at a time, so
the result does not depend on chunk sizes or the device count. Definitions (METHOD.md section 5):

* **Codes**: real-valued or +-1 ``[N, K]`` (the code is ``x > 0``, so a 0 counts as -1) or packed
  ``uint8 [N, ceil(K/8)]`` (:func:`jaxhash.retrieval.pack_codes`). With ``ranking="euclidean"`` or
  ``"cosine"`` real-valued outputs are ranked by that distance instead (before binarisation).
* **Labels**: ``[N]`` class indices (relevant = same class) or ``[N, L]`` multi-hot (relevant =
  shares a label).
* **mAP@k** (peer convention: DeepHash-pytorch ``CalcTopMap``, CSQ, FIRe): over the top k,
  ``AP = sum_{i <= k, rel_i} P@i / #relevant in the top k``; a query without hits counts 0.
* **mAHP@k** (Deng, Berg & Fei-Fei, CVPR 2011; Barz & Denzler, WACV 2019, code after its
  Nov 2020 fix): ``HP@j = sum_{i <= j} s_i / (best achievable sum of j similarities in the
  database)``, ``s_i`` the class similarity of the i-th item to the query's class, and
  ``AHP@k = (1/k) (HP@1 + ... + HP@k - (HP@1 + HP@k) / 2)`` (``np.trapz(HP, dx=1/k)``). With
  ``exclude_self`` the query leaves both its ranking and its ideal. (Barz's code removes it from
  the ideal by deleting one entry and subtracting 1; the two agree whenever the query's own
  class has similarity 1 and it is ranked among its class's first items, as real-valued features
  are.)
* **Ties** of the integer Hamming distance: ``"stable"`` (database order), ``"random"`` (stable
  over a database order drawn from ``jax.random.permutation(jax.random.key(seed), N)``) or
  ``"expected"``: the exact expectation over a uniformly random order inside each group of equal
  distance (McSherry & Najork, ECIR 2008). Metrics linear in the ranked items (P@k, R@k, HP@j)
  replace each item by its group's mean; AP@k, whose denominator (#relevant in the top k) is
  random too, is averaged over the hypergeometric number of relevant items the cut-off takes from
  the group it splits (the derivation is in :func:`_expected_ap`). Peers use an unstable sort,
  which moves CIFAR mAP by 1-2 points when the database is shuffled.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import retrieval

TIES = ("stable", "random", "expected")
RANKINGS = ("hamming", "euclidean", "cosine")
# Per-query scoring runs in blocks of about this many [query, rank] entries.
_SCORE_ENTRIES = 1 << 22
# Database passes (tie groups, radius histograms) hold [queries, rows] blocks of this many entries.
_PASS_ENTRIES = {"cpu": 1 << 23}
_PASS_ENTRIES_ACCELERATOR = 1 << 26


# ----------------------------------------------------------------------------- inputs


class Data(NamedTuple):
    """Checked inputs of a retrieval evaluation (see :func:`prepare`)."""

    queries: jax.Array  # uint32 words [Q, W] (hamming) or float32 [Q, D]
    database: jax.Array  # [N, W] or [N, D]
    ranking: str
    num_bits: int  # code length K (hamming) or embedding dimension
    query_labels: jax.Array  # int32 [Q] or float32 multi-hot [Q, L]
    db_labels: jax.Array  # int32 [N] or float32 [N, L]
    exclude_self: bool

    @property
    def multi_label(self) -> bool:
        return self.db_labels.ndim == 2

    @property
    def num_candidates(self) -> int:
        return self.database.shape[0] - int(self.exclude_self)


def _codes(codes, name: str, ranking: str, num_bits: int | None) -> tuple[jax.Array, int]:
    """Codes as packed uint8 (hamming) or float32 rows, and their length K."""
    if ranking != "hamming":
        return retrieval.check_embeddings(codes, name), jnp.shape(codes)[1]
    codes = jnp.asarray(codes)
    if codes.dtype == jnp.uint8:
        packed = retrieval.check_packed(codes, name)
        if packed.shape[1] > 1 and int(packed.max()) == 1:
            raise ValueError(
                f"{name} is uint8, so it is read as packed codes (8 bits a byte), but every byte "
                "is 0 or 1: these look like unpacked bits. Pass pack_codes(bits) or the bits as a "
                "float/int array."
            )
        width = packed.shape[1]
        if num_bits is not None:
            retrieval.check_num_bits(num_bits, width, name)
        return packed, num_bits or 8 * width
    if codes.ndim != 2 or 0 in codes.shape:
        raise ValueError(f"{name} must be a non-empty matrix [N, K]; got shape {codes.shape}.")
    if num_bits is not None and num_bits != codes.shape[1]:
        raise ValueError(f"num_bits={num_bits} but {name} has {codes.shape[1]} columns.")
    try:
        return retrieval.pack_codes(codes), codes.shape[1]
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _labels(labels, n: int, name: str, codes_name: str) -> jax.Array:
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be class indices [N] or multi-hot [N, L]; got shape {labels.shape}."
        )
    if labels.shape[0] != n:
        raise ValueError(
            f"{name} has {labels.shape[0]} rows but {codes_name} has {n}: one label per code."
        )
    if labels.ndim == 1:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class indices; got dtype {labels.dtype}.")
        if labels.size and labels.min() < 0:
            raise ValueError(f"{name} holds a negative class index ({labels.min()}).")
        return jnp.asarray(labels, jnp.int32)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{name} is 2-D, so it must be multi-hot: every entry 0 or 1.")
    return jnp.asarray(labels, jnp.float32)


def prepare(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    exclude_self: bool = False,
    ranking: str = "hamming",
    num_bits: int | None = None,
) -> Data:
    """Check and convert the inputs shared by every metric (ValueError naming the problem).

    ``query_codes=None`` means the queries are the database (then ``query_labels`` may be None
    too). ``num_bits`` optionally states the code length to check packed widths against.
    """
    if ranking not in RANKINGS:
        raise ValueError(f"ranking must be one of {RANKINGS}; got {ranking!r}.")
    if query_codes is None:
        query_codes = db_codes
        query_labels = db_labels if query_labels is None else query_labels
    db, bits = _codes(db_codes, "db_codes", ranking, num_bits)
    queries, q_bits = _codes(query_codes, "query_codes", ranking, num_bits)
    if queries.shape[1] != db.shape[1] or q_bits != bits:
        raise ValueError(
            f"query_codes and db_codes must have the same code length; got {q_bits} and {bits} "
            f"({'packed bytes' if ranking == 'hamming' else 'columns'}: {queries.shape[1]} and "
            f"{db.shape[1]})."
        )
    if exclude_self and queries.shape[0] != db.shape[0]:
        raise ValueError(
            "exclude_self=True means the queries are the database; got "
            f"{queries.shape[0]} queries and {db.shape[0]} database codes."
        )
    q_labels = _labels(query_labels, queries.shape[0], "query_labels", "query_codes")
    d_labels = _labels(db_labels, db.shape[0], "db_labels", "db_codes")
    if q_labels.ndim != d_labels.ndim or q_labels.shape[1:] != d_labels.shape[1:]:
        raise ValueError(
            "query_labels and db_labels must be of one kind: both class indices [N] or both "
            f"multi-hot with the same number of labels; got {q_labels.shape} and {d_labels.shape}."
        )
    if ranking == "hamming":
        queries, db = retrieval.to_words(queries), retrieval.to_words(db)
    elif ranking == "cosine":
        queries, db = retrieval.unit_rows(queries), retrieval.unit_rows(db)
    return Data(queries, db, ranking, bits, q_labels, d_labels, bool(exclude_self))


def _check_ties(ties: str, data: Data) -> None:
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}; got {ties!r}.")
    if ties == "expected" and data.ranking != "hamming":
        raise ValueError(
            "ties='expected' needs ranking='hamming' (integer distances with tied groups); "
            "use 'stable' or 'random' for real-valued rankings."
        )


def _class_table(table, data: Data, name: str, *, nonnegative: bool) -> jax.Array:
    """A float32 ``[C, C]`` class table covering every label, else a ValueError naming it."""
    if data.multi_label:
        raise ValueError(f"{name} needs class-index labels [N], not multi-hot labels.")
    table = np.asarray(table, np.float64)
    if table.ndim != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"{name} must be a square [C, C] matrix; got shape {table.shape}.")
    if not np.isfinite(table).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if nonnegative and (table < 0).any():
        raise ValueError(f"{name} must be non-negative (similarities in [0, 1]).")
    top = max(int(data.query_labels.max()), int(data.db_labels.max()))
    if top >= table.shape[0]:
        raise ValueError(
            f"{name} covers {table.shape[0]} classes but the labels go up to {top}; it must be "
            "[C, C] with C above every class index."
        )
    return jnp.asarray(table, jnp.float32)


# ----------------------------------------------------------------------------- ranking


class Ranking(NamedTuple):
    """The k nearest database items of every query (indices into the original database)."""

    distances: jax.Array  # [Q, k]: int32 Hamming, or float32 squared-Euclidean / cosine
    indices: jax.Array  # int32 [Q, k]
    ties: str
    seed: int


def rank(
    data: Data,
    k: int,
    *,
    ties: str = "stable",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> Ranking:
    """Top-k ranking of ``data`` with the tie rule (``"expected"`` ranks stably; the metrics then
    take expectations over tie orders)."""
    _check_ties(ties, data)
    k = retrieval.check_k(k, data.num_candidates, data.exclude_self)
    n = data.database.shape[0]
    self_ids = jnp.arange(n, dtype=jnp.int32) if data.exclude_self else None
    options = dict(
        metric=data.ranking,
        mesh=mesh,
        axis_name=axis_name,
        query_block=query_block,
        database_block=database_block,
    )
    if ties != "random":
        dist, idx = retrieval.search(data.queries, data.database, k, self_ids, **options)
        return Ranking(dist, idx, ties, seed)
    order = jax.random.permutation(jax.random.key(seed), n).astype(jnp.int32)
    if self_ids is not None:
        self_ids = jnp.argsort(order).astype(jnp.int32)  # row i of the database sits at inv[i]
    dist, idx = retrieval.search(data.queries, data.database[order], k, self_ids, **options)
    return Ranking(dist, order[idx], ties, seed)


# ----------------------------------------------------------------------------- per-query kernels


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


def _group_bounds(dist):
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


def _prefix(values):
    """``[b, k] -> [b, k + 1]`` exclusive prefix sums."""
    return jnp.pad(jnp.cumsum(values, axis=1), ((0, 0), (1, 0)))


def _expected_values(dist, values, boundary_mean):
    """Expectation of ``values`` at each rank over random orders inside tie groups.

    A group wholly inside the top k contributes its mean to each of its positions; the group cut
    by the k-th position (distance ``dist[:, -1]``) extends past the list, so its positions take
    ``boundary_mean``, the mean over all of its database items.
    """
    start, end = _group_bounds(dist)
    prefix = _prefix(values)
    take = functools.partial(jnp.take_along_axis, prefix, axis=1)
    group_mean = (take(end) - take(start)) / (end - start).astype(jnp.float32)
    return jnp.where(dist == dist[:, -1:], boundary_mean[:, None], group_mean)


def _stable_ap(rel):
    """Peer AP@k of relevance rows ``[b, k]``: sum of P@i at hits over the number of hits."""
    hits = jnp.cumsum(rel, axis=1)
    positions = jnp.arange(1, rel.shape[1] + 1, dtype=jnp.float32)
    total = hits[:, -1]
    return jnp.sum(rel * hits / positions, axis=1) / jnp.maximum(total, 1.0)


def _expected_ap(dist, rel, boundary_count, boundary_relevant):
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
    start, end = _group_bounds(dist)
    prefix = _prefix(rel)
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
    log_p = _prefix(step)[:, : k + 1]
    log_p = jnp.where((h >= low) & (h <= high), log_p, -jnp.inf)
    p = jax.nn.softmax(log_p, axis=1)
    hits = r_before[:, None] + h
    value = (f[:, None] + h * alpha[:, None] + h * (h - 1.0) * beta[:, None]) / jnp.maximum(
        hits, 1.0
    )
    return jnp.sum(p * jnp.where(hits > 0, value, 0.0), axis=1)


def _trapezoid_ahp(gains, ideal):
    """HP@j ``[b, k]`` and AHP@k ``[b]`` (trapezoid, dx = 1/k) from gains and ideal sums."""
    cumulative = jnp.cumsum(gains, axis=1)
    hp = jnp.where(ideal > 0, cumulative / jnp.where(ideal > 0, ideal, 1.0), 1.0)
    k = gains.shape[1]
    ahp = (jnp.sum(hp, axis=1) - 0.5 * (hp[:, 0] + hp[:, -1])) / k
    return hp, ahp


# ----------------------------------------------------------------------------- database passes


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
        dist = retrieval.popcount_distance(words, chunk_words).astype(jnp.int32)
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


def _database_pass(
    data: Data,
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
    budget = retrieval.backend_default(_PASS_ENTRIES, _PASS_ENTRIES_ACCELERATOR)
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


def _boundary_stats(data: Data, ranking: Ranking, cutoffs, table=None, **pass_options):
    """For each cutoff k: the database items at the query's k-th distance (self excluded):
    ``[Q, M, 2 or 3]`` = count, relevant count (and similarity sum with ``table``)."""
    thresholds = ranking.distances[:, jnp.asarray(cutoffs) - 1]
    extra = (thresholds,) if table is None else (thresholds, table[data.query_labels])
    counts, sims = _database_pass(data, "ties", extra, **pass_options)
    return jnp.concatenate([counts.astype(jnp.float32), sims[..., None]], axis=2)


# ----------------------------------------------------------------------------- metric kernels


def _ap_kernel(dist, idx, q_labels, boundary, db_labels, ties):
    rel = _relevance(q_labels, idx, db_labels)
    if ties == "expected":
        return _expected_ap(dist, rel, boundary[:, 0], boundary[:, 1])
    return _stable_ap(rel)


def _hp_kernel(dist, idx, q_labels, boundary, ideal, db_labels, table, ties):
    gains = _similarity(q_labels, idx, db_labels, table)
    if ties == "expected":
        gains = _expected_values(dist, gains, boundary[:, 2] / boundary[:, 0])
    return _trapezoid_ahp(gains, ideal[q_labels])


def _precision_kernel(dist, idx, q_labels, boundary, db_labels, ties):
    """Expected (or realised) number of relevant items in the top k: ``[b]``."""
    rel = _relevance(q_labels, idx, db_labels)
    if ties == "expected":
        rel = _expected_values(dist, rel, boundary[:, 1] / boundary[:, 0])
    return jnp.sum(rel, axis=1)


def _ideal_sums(data: Data, table: jax.Array, k: int) -> jax.Array:
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


def relevant_totals(data: Data) -> jax.Array:
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


# ----------------------------------------------------------------------------- public metrics


def _mean(values) -> float:
    return float(np.mean(np.asarray(values, np.float64)))


def _pass_options(mesh, axis_name, query_block, database_block) -> dict:
    return dict(
        mesh=mesh, axis_name=axis_name, query_block=query_block, database_block=database_block
    )


def _cut(data: Data, ranking: Ranking, k: int, fill: float, table=None, **pass_options):
    """The top-k distances and indices, and the tie-boundary statistics at k: from a database
    pass for ``ties="expected"``, else the constant ``fill`` (which the kernels ignore)."""
    dist, idx = ranking.distances[:, :k], ranking.indices[:, :k]
    if ranking.ties == "expected":
        boundary = _boundary_stats(data, ranking, [k], table, **pass_options)[:, 0]
    else:
        boundary = jnp.full((dist.shape[0], 3), fill)
    return dist, idx, boundary


def average_precisions(data: Data, ranking: Ranking, k: int, **pass_options) -> jax.Array:
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
    data: Data, ranking: Ranking, table, k: int, **pass_options
) -> tuple[jax.Array, jax.Array]:
    """``(HP@1..k [Q, k], AHP@k [Q])`` of each query against class similarities ``table``."""
    table = _class_table(table, data, "class_similarity", nonnegative=True)
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


def relevant_in_top(data: Data, ranking: Ranking, k: int, **pass_options) -> jax.Array:
    """``[Q]`` (expected) number of relevant items among the top k."""
    dist, idx, boundary = _cut(data, ranking, k, 1.0, **pass_options)
    return _map_queries(
        (dist, idx, data.query_labels, boundary),
        (data.db_labels,),
        fn=_precision_kernel,
        block=_score_block(k, data.db_labels.shape[1] if data.multi_label else 1),
        static=(ranking.ties,),
    )


def _run(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    k,
    ties,
    exclude_self,
    ranking,
    seed,
    mesh,
    axis_name,
    query_block,
    database_block,
):
    data = prepare(
        query_codes, db_codes, query_labels, db_labels, exclude_self=exclude_self, ranking=ranking
    )
    options = _pass_options(mesh, axis_name, query_block, database_block)
    return data, rank(data, k, ties=ties, seed=seed, **options), options


def map_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    k: int,
    *,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> float:
    """Mean over queries of AP@k (peer convention; module docstring).

    Args:
      query_codes: ``[Q, K]`` real-valued / +-1 codes or packed ``uint8 [Q, ceil(K/8)]``; None
        means the database is the query set.
      db_codes: ``[N, K]`` or packed, as ``query_codes``.
      query_labels, db_labels: ``int [Q]``/``[N]`` classes or multi-hot ``[Q, L]``/``[N, L]``.
      k: cut-off, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
      ties: "stable", "random" (seeded by ``seed``) or "expected".
      exclude_self: the queries are the database; each query is left out of its own ranking.
      ranking: "hamming" (sign codes) or "euclidean" / "cosine" (real-valued outputs).
      mesh, axis_name, query_block, database_block: as :func:`jaxhash.retrieval.hamming_topk`.
    """
    data, ranked, options = _run(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        k,
        ties,
        exclude_self,
        ranking,
        seed,
        mesh,
        axis_name,
        query_block,
        database_block,
    )
    return _mean(average_precisions(data, ranked, k, **options))


def mahp_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    class_similarity,
    k: int = 250,
    *,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> float:
    """Mean average hierarchical precision mAHP@k (Deng et al. 2011; Barz & Denzler 2019, fixed
    version; module docstring). ``class_similarity [C, C]``: non-negative similarity between
    classes (e.g. ``1 - height(lcs) / height(root)``); labels must be class indices. Other
    arguments as :func:`map_at_k`; ``k >= 2``. With ``exclude_self`` the query is removed from its
    ranking and from its ideal ranking.
    """
    data, ranked, options = _run(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        k,
        ties,
        exclude_self,
        ranking,
        seed,
        mesh,
        axis_name,
        query_block,
        database_block,
    )
    return _mean(hierarchical_precisions(data, ranked, class_similarity, k, **options)[1])


def precision_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    k: int,
    *,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> float:
    """Mean over queries of (#relevant in the top k) / k. Arguments as :func:`map_at_k`."""
    data, ranked, options = _run(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        k,
        ties,
        exclude_self,
        ranking,
        seed,
        mesh,
        axis_name,
        query_block,
        database_block,
    )
    return _mean(relevant_in_top(data, ranked, k, **options) / k)


def recall_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    k: int,
    *,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> float:
    """Mean over queries with at least one relevant item of (#relevant in the top k) /
    (#relevant in the database). Arguments as :func:`map_at_k`."""
    data, ranked, options = _run(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        k,
        ties,
        exclude_self,
        ranking,
        seed,
        mesh,
        axis_name,
        query_block,
        database_block,
    )
    hits = np.asarray(relevant_in_top(data, ranked, k, **options), np.float64)
    totals = np.asarray(relevant_totals(data), np.float64)
    has = totals > 0
    return float(np.mean(hits[has] / totals[has])) if has.any() else 0.0


def radius_histograms(data: Data, **pass_options) -> jax.Array:
    """``int32 [Q, 2, K + 1]``: database items (self excluded) at each Hamming distance, all and
    relevant."""
    if data.ranking != "hamming":
        raise ValueError("Hamming-radius metrics need ranking='hamming'.")
    counts = _database_pass(data, "histogram", **pass_options)[:, :, : data.num_bits + 1]
    return counts.at[:, 0].add(counts[:, 1])


def radius_curves(histograms) -> dict:
    """Per radius r = 0..K: precision over queries that retrieve something (``precision``), the
    same with empty retrievals counted as 0 (``precision_empty_zero``), recall over queries with a
    relevant item, and the share of queries retrieving something (``coverage``)."""
    h = np.asarray(histograms, np.float64)
    retrieved = np.cumsum(h[:, 0], axis=1)
    hits = np.cumsum(h[:, 1], axis=1)
    relevant = hits[:, -1]
    nonempty = retrieved > 0
    precision_q = np.where(nonempty, hits / np.where(nonempty, retrieved, 1), 0.0)
    count = nonempty.sum(axis=0)
    has = relevant > 0
    recall = (hits[has] / relevant[has, None]).mean(axis=0) if has.any() else hits[0] * 0
    return {
        "radius": np.arange(h.shape[2]),
        "precision": np.where(count > 0, precision_q.sum(axis=0) / np.maximum(count, 1), 0.0),
        "precision_empty_zero": precision_q.mean(axis=0),
        "recall": recall,
        "coverage": count / h.shape[0],
    }


def precision_recall_curve(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    exclude_self: bool = False,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> dict[str, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval at every radius r = 0..K.

    Returns ``{"radius", "precision", "precision_empty_zero", "recall", "coverage"}``, arrays
    ``[K + 1]``: ``precision`` averages over queries whose ball holds an item,
    ``precision_empty_zero`` counts the others as 0, ``recall`` averages over queries with a
    relevant item, ``coverage`` is the share of queries whose ball holds an item. Ties do not
    arise (a ball holds every item at distance <= r).
    """
    data = prepare(query_codes, db_codes, query_labels, db_labels, exclude_self=exclude_self)
    options = _pass_options(mesh, axis_name, query_block, database_block)
    return radius_curves(radius_histograms(data, **options))


def radius_precision_recall(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    radius: int = 2,
    *,
    exclude_self: bool = False,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> dict[str, float]:
    """Hamming-ball lookup at ``radius`` (2 is the classic setting): the entries of
    :func:`precision_recall_curve` at that radius, as floats."""
    data = prepare(query_codes, db_codes, query_labels, db_labels, exclude_self=exclude_self)
    if not isinstance(radius, int) or not 0 <= radius <= data.num_bits:
        raise ValueError(f"radius must be an int in [0, {data.num_bits}]; got {radius!r}.")
    options = _pass_options(mesh, axis_name, query_block, database_block)
    curves = radius_curves(radius_histograms(data, **options))
    return {name: float(values[radius]) for name, values in curves.items() if name != "radius"}


def top1_mistakes(data: Data, ranking: Ranking, table) -> dict[str, float]:
    """Share of queries whose nearest item has another class, and the mean ``table`` distance
    (e.g. LCS height) between the classes of those mistakes (0 when there are none)."""
    if ranking.ties == "expected":
        raise ValueError(
            "mistake severity is a ratio over the queries that err; use ties='stable' or "
            "'random' for it."
        )
    table = _class_table(table, data, "class_distance", nonnegative=True)
    top = data.db_labels[ranking.indices[:, 0]]
    wrong = np.asarray(top != data.query_labels)
    severity = np.asarray(table[data.query_labels, top], np.float64)
    return {
        "mistake_rate": float(wrong.mean()),
        "mistakes": int(wrong.sum()),
        "mean_severity": float(severity[wrong].mean()) if wrong.any() else 0.0,
    }


def mistake_severity(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    class_distance,
    *,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
    query_block: int | None = None,
    database_block: int | None = None,
) -> dict[str, float]:
    """Mistake severity of the nearest retrieved item (Bertinetto et al., CVPR 2020, for
    retrieval): ``{"mistake_rate", "mistakes", "mean_severity"}``, the severity being
    ``class_distance[query class, top-1 class]`` (a hierarchy distance, e.g. LCS height) averaged
    over the queries whose top-1 item has another class. Ties "stable" or "random"."""
    if ties == "expected":
        raise ValueError(
            "mistake severity is a ratio over the queries that err; use ties='stable' or "
            "'random' for it."
        )
    data, ranked, _ = _run(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        1,
        ties,
        exclude_self,
        ranking,
        seed,
        mesh,
        axis_name,
        query_block,
        database_block,
    )
    return top1_mistakes(data, ranked, class_distance)
