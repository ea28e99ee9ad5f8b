"""jaxhash.kernels.multi_index_probe: the compiled probe of the multi-index, called directly, is
the brute-force top-k (ties to the lower row), in the calling thread and in several."""

import numpy as np
import pytest

from jaxhash.multi_index import MultiIndex

pytest.importorskip("numba", reason="optional extra 'search' (numba) is not installed")

from jaxhash.kernels import multi_index_probe  # after the skip: it imports numba


@pytest.mark.parametrize("num_queries", [3, 3 * multi_index_probe._QUERY_BLOCK + 5])
def test_topk_is_brute_force(num_queries):
    rng = np.random.default_rng(num_queries)
    distinct = rng.integers(0, 256, (50, 4), np.uint8)  # duplicates: many tied distances
    database = distinct[rng.integers(0, 50, 400)]
    queries = rng.integers(0, 256, (num_queries, 4), np.uint8)
    d, i = multi_index_probe.topk(MultiIndex.build(database), queries, 9)
    full = np.bitwise_count(queries[:, None, :] ^ database[None]).sum(-1)
    order = np.argsort(full, axis=1, kind="stable")[:, :9]
    np.testing.assert_array_equal(i, order)
    np.testing.assert_array_equal(d, np.take_along_axis(full, order, 1))
    assert d.dtype == i.dtype == np.int32
