"""jaxhash.metrics.passes: the histogram pass counts each Hamming distance, relevant and not,
against NumPy; database passes give the same sums for any chunk size and device count."""

import numpy as np
import pytest

from jaxhash import metrics
from jaxhash.metrics import passes
from tests.metrics.metric_oracles import metric_problem


@pytest.mark.slow
def test_chunk_size_and_device_count_do_not_matter(mesh4):
    q, db, ql, dl, sim = metric_problem(8, n=401, bits=8)
    reference = None
    for mesh, query_block, database_block in [(None, None, None), (None, 7, 64), (mesh4, 50, 32)]:
        options = dict(
            exclude_self=True, mesh=mesh, query_block=query_block, database_block=database_block
        )
        values = (
            metrics.map_at_k(q, db, ql, dl, 30, **options),
            metrics.map_at_k(q, db, ql, dl, 30, ties="expected", **options),
            metrics.mahp_at_k(q, db, ql, dl, sim, 30, ties="expected", **options),
        )
        curve = metrics.precision_recall_curve(q, db, ql, dl, **options)
        if reference is None:
            reference = values, curve
            continue
        np.testing.assert_allclose(values, reference[0], rtol=1e-6)
        for name, array in curve.items():
            np.testing.assert_array_equal(array, reference[1][name])


def test_the_histogram_pass_counts_each_distance_over_several_chunks():
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(37, 8)), rng.integers(0, 3, 37)
    data = metrics.prepare(codes[:5], codes, labels[:5], labels)
    counts = np.asarray(passes.database_pass(data, "histogram", database_block=8))[:, :, :9]
    bits = codes > 0
    distances = (bits[:5, None] != bits[None]).sum(-1)
    relevant = labels[:5, None] == labels[None]
    for q in range(5):
        d, r = distances[q], relevant[q]
        np.testing.assert_array_equal(counts[q, 1], np.bincount(d[r], minlength=9))
        np.testing.assert_array_equal(counts[q, 0], np.bincount(d[~r], minlength=9))
