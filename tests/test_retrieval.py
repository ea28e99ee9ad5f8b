"""jaxhash.retrieval against NumPy: packed layout, exact stable top-k, sharding, encoding, FAISS."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import retrieval
from jaxhash.search import plan


def _packed(rng, rows, num_bytes, levels=256):
    """Random packed codes; ``levels < 256`` draws few distinct bytes, so distances tie often."""
    return rng.integers(0, levels, (rows, num_bytes), dtype=np.uint8)


def _hamming(queries, database):
    """int64 [Q, N] brute-force Hamming distances of packed codes."""
    q = np.unpackbits(queries, axis=1).astype(np.int64)
    d = np.unpackbits(database, axis=1).astype(np.int64)
    return (q[:, None, :] != d[None, :, :]).sum(-1)


def _oracle_topk(queries, database, k, exclude_self=False):
    dist = _hamming(queries, database)
    if exclude_self:
        np.fill_diagonal(dist, 10**6)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, idx, axis=1), idx


def _assert_topk(result, expected):
    np.testing.assert_array_equal(np.asarray(result[0]), expected[0])
    np.testing.assert_array_equal(np.asarray(result[1]), expected[1])


# ----------------------------------------------------------------------------- packing


@pytest.mark.parametrize("bits", [1, 7, 8, 9, 64, 65])
def test_pack_codes_matches_np_packbits(bits):
    z = np.random.default_rng(bits).normal(size=(13, bits)).astype(np.float32)
    z[0, 0] = 0.0  # zero packs as a 0 bit, like np.packbits(z > 0)
    expected = np.packbits(z > 0, axis=1)
    for codes in (z, np.sign(z), z > 0, (z > 0).astype(np.int8)):
        packed = retrieval.pack_codes(codes)
        assert packed.dtype == jnp.uint8 and packed.shape == (13, -(-bits // 8))
        np.testing.assert_array_equal(np.asarray(packed), expected)


def test_unpack_inverts_pack():
    z = np.random.default_rng(0).normal(size=(9, 21))
    packed = retrieval.pack_codes(z)
    signs = retrieval.unpack_codes(packed, 21)
    np.testing.assert_array_equal(np.asarray(signs), np.where(z > 0, 1.0, -1.0))
    np.testing.assert_array_equal(np.asarray(retrieval.pack_codes(signs)), np.asarray(packed))
    assert retrieval.unpack_codes(packed).shape == (9, 24)


def test_pack_codes_works_under_jit():
    z = np.random.default_rng(1).normal(size=(4, 20))
    np.testing.assert_array_equal(
        np.asarray(jax.jit(retrieval.pack_codes)(z)), np.packbits(z > 0, axis=1)
    )


def test_hamming_distances_match_numpy():
    rng = np.random.default_rng(2)
    q, db = _packed(rng, 7, 5), _packed(rng, 30, 5)
    np.testing.assert_array_equal(np.asarray(retrieval.hamming_distances(q, db)), _hamming(q, db))


# ----------------------------------------------------------------------------- top-k


CASES = [
    # queries, rows, bytes, levels, k, exclude_self, selection, database_block
    (40, 3000, 8, 256, 10, False, "tiled", None),
    (40, 3000, 8, 256, 10, True, "tiled", 1024),
    (30, 3000, 3, 4, 7, False, "flat", 512),
    (50, 50, 2, 3, 49, True, "auto", None),
    (20, 5000, 16, 256, 100, False, "tiled", 2048),
    (30, 100, 1, 2, 20, False, "auto", None),
    (20, 4000, 8, 256, 300, True, "auto", None),
    (20, 4000, 1, 8, 50, False, "tiled", 1000),
    (20, 2000, 40, 256, 30, True, "tiled", None),
]


@pytest.mark.parametrize("case", CASES)
def test_hamming_topk_matches_brute_force(case):
    num_q, rows, num_bytes, levels, k, exclude_self, selection, block = case
    rng = np.random.default_rng(rows + k)
    database = _packed(rng, rows, num_bytes, levels)
    queries = database if exclude_self else _packed(rng, num_q, num_bytes, levels)
    result = retrieval.hamming_topk(
        queries,
        database,
        k,
        exclude_self=exclude_self,
        selection=selection,
        database_block=block,
        query_block=16,
    )
    assert result[0].dtype == jnp.int32 and result[1].dtype == jnp.int32
    _assert_topk(result, _oracle_topk(queries, database, k, exclude_self))


def test_exclude_self_with_duplicates():
    """All codes equal: every distance is 0, and query i must skip only itself."""
    database = np.zeros((12, 2), np.uint8)
    dist, idx = retrieval.hamming_topk(database, database, 11, exclude_self=True)
    expected = np.array([[j for j in range(12) if j != i] for i in range(12)])
    np.testing.assert_array_equal(np.asarray(idx), expected)
    assert not np.asarray(dist).any()


def test_block_sizes_and_selection_do_not_matter():
    rng = np.random.default_rng(5)
    database = _packed(rng, 3001, 4, 16)
    queries = _packed(rng, 37, 4, 16)
    expected = _oracle_topk(queries, database, 25)
    for selection, query_block, database_block in [
        ("auto", None, None),
        ("tiled", 5, 256),
        ("tiled", 37, 1000),
        ("flat", 8, 64),
    ]:
        result = retrieval.hamming_topk(
            queries,
            database,
            25,
            selection=selection,
            query_block=query_block,
            database_block=database_block,
        )
        _assert_topk(result, expected)


@pytest.mark.parametrize("database_major", [True, False])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_first_stage_orders_agree(monkeypatch, database_major, exclude_self):
    """Stage 1 database-major with super-tiles (CPUs) or query-major (the accelerators' XLA
    path): the brute-force result, ties included, over several chunks."""
    if not database_major:
        monkeypatch.setattr(plan, "_DATABASE_MAJOR", frozenset())
    rng = np.random.default_rng(8)
    database = _packed(rng, 600, 8, 4)  # 4 byte values: many equal distances
    queries = database if exclude_self else _packed(rng, 23, 8, 4)
    shape = plan._plan("hamming", len(queries), 600, 2, 5, 1, None, 128, "tiled")
    assert shape.columns == database_major and not shape.flat and shape.chunks_per_device > 1
    result = retrieval.hamming_topk(
        queries,
        database,
        5,
        exclude_self=exclude_self,
        database_block=128,
        query_block=10,
        selection="tiled",
    )
    _assert_topk(result, _oracle_topk(queries, database, 5, exclude_self))


def test_large_chunk_uses_sorted_tiles():
    """Chunks past 2^24 / (K + 2) rows cannot rank on a fused float32 key: the tiles are sorted."""
    rng = np.random.default_rng(6)
    database = _packed(rng, 300_000, 8, 256)
    queries = _packed(rng, 3, 8, 256)
    result = retrieval.hamming_topk(queries, database, 40, selection="tiled")
    _assert_topk(result, _oracle_topk(queries, database, 40))


@pytest.mark.parametrize("exclude_self", [False, True])
def test_sharded_equals_single_device(mesh4, exclude_self):
    rng = np.random.default_rng(7)
    for rows, k, block in [(1001, 15, None), (1001, 15, 64), (50, 45, None), (9, 5, None)]:
        database = _packed(rng, rows, 3, 8)
        queries = database if exclude_self else _packed(rng, 21, 3, 8)
        single = retrieval.hamming_topk(
            queries, database, k, exclude_self=exclude_self, database_block=block
        )
        sharded = retrieval.hamming_topk(
            queries, database, k, exclude_self=exclude_self, database_block=block, mesh=mesh4
        )
        _assert_topk(sharded, (np.asarray(single[0]), np.asarray(single[1])))
        _assert_topk(single, _oracle_topk(queries, database, k, exclude_self))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_embedding_topk_matches_numpy(metric, mesh4):
    rng = np.random.default_rng(8)
    database = rng.normal(size=(301, 6)).astype(np.float32)
    for exclude_self in (False, True):
        queries = database if exclude_self else rng.normal(size=(17, 6)).astype(np.float32)
        q, d = queries.astype(np.float64), database.astype(np.float64)
        if metric == "euclidean":
            dist = ((q[:, None] - d[None]) ** 2).sum(-1)
        else:
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            dist = 1 - q @ (d / np.linalg.norm(d, axis=1, keepdims=True)).T
        if exclude_self:
            np.fill_diagonal(dist, np.inf)
        idx = np.argsort(dist, axis=1, kind="stable")[:, :12]
        for mesh in (None, mesh4):
            got_d, got_i = retrieval.embedding_topk(
                queries,
                database,
                12,
                metric=metric,
                exclude_self=exclude_self,
                database_block=64,
                mesh=mesh,
            )
            np.testing.assert_array_equal(np.asarray(got_i), idx)
            np.testing.assert_allclose(got_d, np.take_along_axis(dist, idx, 1), atol=1e-4)


# ----------------------------------------------------------------------------- encode


def _apply(params, x):
    return jnp.tanh(x @ params)


def _batches(x, sizes, masks=False):
    start = 0
    for size in sizes:
        batch = x[start : start + size]
        start += size
        if not masks:
            yield batch
            continue
        mask = np.ones(len(batch), bool)
        mask[-1] = False  # a padded row the pipeline marked invalid
        yield {"image": batch, "mask": mask}


@pytest.mark.parametrize("use_mesh", [False, True])
def test_encode_keeps_every_example_once(use_mesh, mesh4):
    mesh = mesh4 if use_mesh else None
    rng = np.random.default_rng(9)
    params = jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)
    x = rng.normal(size=(23, 5)).astype(np.float32)
    expected = np.tanh(x @ np.asarray(params))
    codes = retrieval.encode(_apply, params, _batches(x, [8, 8, 7]), mesh=mesh)
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    packed = retrieval.encode(_apply, params, _batches(x, [10, 10, 3]), mesh=mesh, pack=True)
    np.testing.assert_array_equal(np.asarray(packed), np.packbits(expected > 0, axis=1))
    masked = retrieval.encode(_apply, params, _batches(x, [8, 8, 7], masks=True), mesh=mesh)
    keep = np.ones(23, bool)
    keep[[7, 15, 22]] = False
    np.testing.assert_allclose(masked, expected[keep], rtol=1e-5, atol=1e-6)


def test_encode_rejects_bad_batches():
    params = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="no examples"):
        retrieval.encode(_apply, params, [])
    with pytest.raises(ValueError, match="mask"):
        retrieval.encode(_apply, params, [{"image": np.ones((2, 3)), "mask": np.ones(3, bool)}])
    with pytest.raises(ValueError, match="input key"):
        retrieval.encode(_apply, params, [{"x": np.ones((2, 3))}])


# ----------------------------------------------------------------------------- FAISS


def test_faiss_bridge_agrees():
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(10)
    database = _packed(rng, 2000, 8, 256)
    queries = _packed(rng, 25, 8, 256)
    index = retrieval.faiss_index(database)
    assert isinstance(index, faiss.IndexBinaryFlat) and index.ntotal == 2000
    f_dist, f_idx = index.search(queries, 30)
    dist, idx = (np.asarray(a) for a in retrieval.hamming_topk(queries, database, 30))
    np.testing.assert_array_equal(f_dist, dist)
    full = _hamming(queries, database)
    for q in range(len(queries)):
        # Same neighbours up to the order inside a distance; the last distance's group may be
        # cut at a different member, but every member FAISS returns is at that distance.
        inner = dist[q] < dist[q, -1]
        assert set(f_idx[q][inner]) == set(idx[q][inner])
        np.testing.assert_array_equal(full[q, f_idx[q]], f_dist[q])


# ----------------------------------------------------------------------------- bad input


_DB = np.zeros((10, 2), np.uint8)

BAD = [
    (retrieval.hamming_topk, (_DB, _DB, 11), {}, "k must be"),
    (retrieval.hamming_topk, (_DB, _DB, 10), {"exclude_self": True}, "k must be"),
    (retrieval.hamming_topk, (_DB, _DB, 0), {}, "k must be"),
    (retrieval.hamming_topk, (_DB, _DB, 2.0), {}, "k must be"),
    (retrieval.hamming_topk, (_DB[:3], _DB, 2), {"exclude_self": True}, "queries are the database"),
    (retrieval.hamming_topk, (_DB[:, :1], _DB, 2), {}, "same packed width"),
    (retrieval.hamming_topk, (_DB.astype(np.int32), _DB, 2), {}, "queries must be packed"),
    (retrieval.hamming_topk, (_DB, _DB[:0], 1), {}, "database is empty"),
    (retrieval.hamming_topk, (_DB, _DB, 2), {"selection": "heap"}, "selection"),
    (retrieval.hamming_topk, (_DB, _DB, 2), {"query_block": 0}, "query_block"),
    (retrieval.unpack_codes, (_DB, 17), {}, "num_bits=17 does not match"),
    (retrieval.unpack_codes, (_DB, 8), {}, "does not match"),
    (retrieval.faiss_index, (_DB, 12), {}, "whole number of bytes"),
    (retrieval.faiss_index, (_DB, 24), {}, "does not match"),
    (retrieval.pack_codes, (np.full((2, 3), np.nan),), {}, "NaN"),
    (retrieval.pack_codes, (np.ones(3),), {}, "matrix"),
    (retrieval.embedding_topk, (np.ones((3, 2)), np.ones((3, 3)), 1), {}, "same dimension"),
    (retrieval.embedding_topk, (np.ones((3, 2)),) * 2 + (1,), {"metric": "l1"}, "metric"),
    (retrieval.embedding_topk, (_DB, _DB, 1), {}, "real-valued"),
]


@pytest.mark.parametrize("fn, args, kwargs, message", BAD)
def test_bad_inputs_raise(fn, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)


def test_bad_mesh_axis_raises(mesh4):
    with pytest.raises(ValueError, match="axis_name"):
        retrieval.hamming_topk(_DB, _DB, 2, mesh=mesh4, axis_name="model")


def test_faiss_missing_gives_install_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ImportError, match="faiss-cpu"):
        retrieval.faiss_index(_DB)
