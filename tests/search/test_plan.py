"""jaxhash.search.plan: both first-stage orders the plan can choose give the brute-force top-k."""

import numpy as np
import pytest

from jaxhash import retrieval
from jaxhash.search import plan
from tests.search.topk_oracles import assert_topk, oracle_topk, random_packed


@pytest.mark.parametrize("database_major", [True, False])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_first_stage_orders_agree(monkeypatch, database_major, exclude_self):
    """Stage 1 database-major with super-tiles (CPUs) or query-major (the accelerators' XLA
    path): the brute-force result, ties included, over several chunks."""
    if not database_major:
        monkeypatch.setattr(plan, "_DATABASE_MAJOR", frozenset())
    rng = np.random.default_rng(8)
    database = random_packed(rng, 600, 8, 4)  # 4 byte values: many equal distances
    queries = database if exclude_self else random_packed(rng, 23, 8, 4)
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
    assert_topk(result, oracle_topk(queries, database, 5, exclude_self))
