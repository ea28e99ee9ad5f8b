"""jaxhash.search.selection: the flat and tiled selections, any block size, and sorted tiles on
large chunks give the brute-force top-k."""

import numpy as np
import pytest

from jaxhash import retrieval
from tests.search.topk_oracles import assert_topk, oracle_topk, random_packed


@pytest.mark.slow
def test_block_sizes_and_selection_do_not_matter():
    rng = np.random.default_rng(5)
    database = random_packed(rng, 3001, 4, 16)
    queries = random_packed(rng, 37, 4, 16)
    expected = oracle_topk(queries, database, 25)
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
        assert_topk(result, expected)


def test_large_chunk_uses_sorted_tiles():
    """Chunks past 2^24 / (K + 2) rows cannot rank on a fused float32 key: the tiles are sorted."""
    rng = np.random.default_rng(6)
    database = random_packed(rng, 300_000, 8, 256)
    queries = random_packed(rng, 3, 8, 256)
    result = retrieval.hamming_topk(queries, database, 40, selection="tiled")
    assert_topk(result, oracle_topk(queries, database, 40))
