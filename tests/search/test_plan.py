"""jaxhash.search.plan: both first-stage orders the plan can choose give the brute-force top-k."""

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
