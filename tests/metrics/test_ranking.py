"""jaxhash.metrics.ranking: the counting rank equals the search, and its options are checked."""

import numpy as np
import pytest

from jaxhash import metrics
from tests.metrics.metric_oracles import metric_problem


@pytest.mark.slow
@pytest.mark.parametrize("ties", metrics.TIES)
@pytest.mark.parametrize("exclude_self, bits, multi", [(True, 8, False), (False, 300, True)])
def test_counting_rank_equals_the_search(mesh4, ties, exclude_self, bits, multi):
    """The CPU counting sort ranks and scores exactly as retrieval.search (sharded over 4
    devices), for every tie rule: uint8 distances at 8 bits, uint16 at 300. (Scores of sharded
    and unsharded rankings may differ by float rounding.)"""
    _, db, _, dl, sim = metric_problem(5, n=257, bits=bits)
    labels = np.eye(4, dtype=np.int32)[dl % 4] | np.eye(4, dtype=np.int32)[dl % 3] if multi else dl
    data = metrics.prepare(None, db, None, labels, exclude_self=exclude_self)
    k = 120
    by = {
        method: metrics.rank(data, k, ties=ties, seed=4, method=method, mesh=mesh)
        for method, mesh in (("counting", None), ("search", mesh4))
    }
    np.testing.assert_array_equal(by["counting"].indices, by["search"].indices)
    np.testing.assert_array_equal(by["counting"].distances, by["search"].distances)
    for k_cut in (1, 37, k):
        scores = [metrics.average_precisions(data, r, k_cut) for r in by.values()]
        np.testing.assert_allclose(*scores, rtol=1e-6)
        scores = [metrics.relevant_in_top(data, r, k_cut) for r in by.values()]
        np.testing.assert_allclose(*scores, rtol=1e-6)
    if not multi:
        scores = [metrics.hierarchical_precisions(data, r, sim, k)[1] for r in by.values()]
        np.testing.assert_allclose(*scores, rtol=1e-6)


def test_counting_rank_needs_hamming_and_unknown_options_raise():
    data = metrics.prepare(_CODES, _CODES, _LABELS, _LABELS, ranking="euclidean")
    with pytest.raises(ValueError, match="ranks Hamming distances"):
        metrics.rank(data, 3, method="counting")
    with pytest.raises(ValueError, match="method must be"):
        metrics.rank(data, 3, method="sort")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        metrics.map_at_k(_CODES, _CODES, _LABELS, _LABELS, 3, tie="stable")


_CODES = np.random.default_rng(0).normal(size=(10, 16))


_LABELS = np.arange(10) % 3
