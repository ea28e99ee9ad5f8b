"""jaxhash.metrics.scores: AP@k, AHP@k, precision and recall@k and the mistake severity
against float64 NumPy oracles (brute-force ranking, stable ties)."""

import numpy as np
import pytest

from jaxhash import metrics
from tests.metrics.metric_oracles import (
    metric_problem,
    oracle_mahp,
    oracle_map,
    oracle_precision,
    oracle_ranking,
    relevant,
)


@pytest.mark.slow
@pytest.mark.parametrize("exclude_self", [False, True])
def test_map_mahp_precision_match_oracle(exclude_self):
    q, db, ql, dl, sim = metric_problem(0, queries=None if exclude_self else 50)
    for k in (1, 7, 60):
        got = metrics.map_at_k(q, db, ql, dl, k, exclude_self=exclude_self)
        assert got == pytest.approx(oracle_map(q, db, ql, dl, k, exclude_self), abs=1e-6)
        got = metrics.precision_at_k(q, db, ql, dl, k, exclude_self=exclude_self)
        assert got == pytest.approx(oracle_precision(q, db, ql, dl, k, exclude_self), abs=1e-6)
    for k in (2, 60, 200):
        got = metrics.mahp_at_k(q, db, ql, dl, sim, k, exclude_self=exclude_self)
        assert got == pytest.approx(oracle_mahp(q, db, ql, dl, sim, k, exclude_self), abs=1e-6)


def test_recall_at_k_matches_oracle():
    q, db, ql, dl, _ = metric_problem(1)
    ranking = oracle_ranking(q, db, True)[:, :30]
    totals = np.bincount(dl)[ql] - 1
    expected = np.mean([relevant(ql[i], dl[ranking[i]]).sum() / totals[i] for i in range(len(q))])
    got = metrics.recall_at_k(q, db, ql, dl, 30, exclude_self=True)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_mistake_severity_matches_oracle():
    q, db, ql, dl, sim = metric_problem(7, queries=50)
    distance = 1.0 - sim
    top1 = oracle_ranking(q, db, False)[:, 0]
    wrong = dl[top1] != ql
    got = metrics.mistake_severity(q, db, ql, dl, distance)
    assert got["mistakes"] == wrong.sum()
    assert got["mistake_rate"] == pytest.approx(wrong.mean())
    assert got["mean_severity"] == pytest.approx(distance[ql, dl[top1]][wrong].mean())
