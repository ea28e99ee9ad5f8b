"""jaxhash.metrics.radius: Hamming-ball precision, recall and coverage against NumPy."""

import numpy as np
import pytest

from jaxhash import metrics
from tests.metrics.metric_oracles import metric_problem, sign_distances


def test_precision_recall_curve_and_radius():
    q, db, ql, dl, _ = metric_problem(6, bits=10, queries=40)
    dist = sign_distances(q, db)
    rel = ql[:, None] == dl[None, :]
    curve = metrics.precision_recall_curve(q, db, ql, dl)
    assert len(curve["radius"]) == 11
    for r in range(11):
        inside = dist <= r
        retrieved, hits = inside.sum(1), (inside & rel).sum(1)
        nonempty = retrieved > 0
        precision = hits[nonempty] / retrieved[nonempty]
        assert curve["precision"][r] == pytest.approx(precision.mean() if nonempty.any() else 0)
        assert curve["precision_empty_zero"][r] == pytest.approx(precision.sum() / len(q))
        assert curve["recall"][r] == pytest.approx(np.mean(hits / rel.sum(1)))
        assert curve["coverage"][r] == pytest.approx(nonempty.mean())
    lookup = metrics.radius_precision_recall(q, db, ql, dl, radius=2)
    assert lookup["precision_empty_zero"] == pytest.approx(curve["precision_empty_zero"][2])
