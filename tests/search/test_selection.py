"""jaxhash.search.selection: the flat and tiled selections, any block size, and sorted tiles on
large chunks give the brute-force top-k."""

import numpy as np
import pytest

from jaxhash import retrieval


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


@pytest.mark.slow
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


def test_large_chunk_uses_sorted_tiles():
    """Chunks past 2^24 / (K + 2) rows cannot rank on a fused float32 key: the tiles are sorted."""
    rng = np.random.default_rng(6)
    database = _packed(rng, 300_000, 8, 256)
    queries = _packed(rng, 3, 8, 256)
    result = retrieval.hamming_topk(queries, database, 40, selection="tiled")
    _assert_topk(result, _oracle_topk(queries, database, 40))
