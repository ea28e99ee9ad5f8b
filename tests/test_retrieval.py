"""jaxhash.retrieval: exact Hamming and embedding top-k against brute force, ties included,
on one device and sharded; bad input is one ValueError."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import retrieval
from tests.search.topk_oracles import assert_topk, oracle_topk, random_packed

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


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_hamming_topk_matches_brute_force(case):
    num_q, rows, num_bytes, levels, k, exclude_self, selection, block = case
    rng = np.random.default_rng(rows + k)
    database = random_packed(rng, rows, num_bytes, levels)
    queries = database if exclude_self else random_packed(rng, num_q, num_bytes, levels)
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
    assert_topk(result, oracle_topk(queries, database, k, exclude_self))


def test_exclude_self_with_duplicates():
    """All codes equal: every distance is 0, and query i must skip only itself."""
    database = np.zeros((12, 2), np.uint8)
    dist, idx = retrieval.hamming_topk(database, database, 11, exclude_self=True)
    expected = np.array([[j for j in range(12) if j != i] for i in range(12)])
    np.testing.assert_array_equal(np.asarray(idx), expected)
    assert not np.asarray(dist).any()


@pytest.mark.slow
@pytest.mark.parametrize("exclude_self", [False, True])
def test_sharded_equals_single_device(mesh4, exclude_self):
    rng = np.random.default_rng(7)
    for rows, k, block in [(1001, 15, None), (1001, 15, 64), (50, 45, None), (9, 5, None)]:
        database = random_packed(rng, rows, 3, 8)
        queries = database if exclude_self else random_packed(rng, 21, 3, 8)
        single = retrieval.hamming_topk(
            queries, database, k, exclude_self=exclude_self, database_block=block
        )
        sharded = retrieval.hamming_topk(
            queries, database, k, exclude_self=exclude_self, database_block=block, mesh=mesh4
        )
        assert_topk(sharded, (np.asarray(single[0]), np.asarray(single[1])))
        assert_topk(single, oracle_topk(queries, database, k, exclude_self))


@pytest.mark.slow
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
