"""jaxhash.metrics.scorers: the one-call metrics take packed or real codes, multi-hot labels
and real-valued rankings, and agree with the oracles on each."""

import numpy as np
import pytest

from jaxhash import metrics, retrieval
from tests.metrics.metric_oracles import (
    metric_problem,
    oracle_mahp,
    oracle_map,
    oracle_ranking,
    relevant,
)


@pytest.mark.slow
def test_multi_hot_labels():
    rng = np.random.default_rng(2)
    q, db, _, _, _ = metric_problem(2, queries=30)
    ql = (rng.random((30, 5)) < 0.3).astype(np.int32)
    dl = (rng.random((240, 5)) < 0.3).astype(np.float32)
    for k in (5, 80):
        got = metrics.map_at_k(q, db, ql, dl, k)
        assert got == pytest.approx(oracle_map(q, db, ql, dl, k, False), abs=1e-6)
    got = metrics.recall_at_k(db, db, dl, dl, 40, exclude_self=True)
    ranking = oracle_ranking(db, db, True)[:, :40]
    totals = ((dl @ dl.T) > 0).sum(1) - (dl.sum(1) > 0)
    has = np.flatnonzero(totals > 0)
    per_query = [relevant(dl[i], dl[ranking[i]]).sum() / totals[i] for i in has]
    assert got == pytest.approx(np.mean(per_query), abs=1e-6)


def test_packed_and_real_codes_agree():
    q, db, ql, dl, sim = metric_problem(3, queries=40)
    packed_q, packed_db = retrieval.pack_codes(q), retrieval.pack_codes(db)
    assert metrics.map_at_k(packed_q, packed_db, ql, dl, 25) == metrics.map_at_k(q, db, ql, dl, 25)
    assert metrics.mahp_at_k(packed_q, packed_db, ql, dl, sim, 25) == pytest.approx(
        metrics.mahp_at_k(np.sign(q), np.sign(db), ql, dl, sim, 25)
    )


@pytest.mark.slow
@pytest.mark.parametrize("ranking", ["euclidean", "cosine"])
def test_real_valued_rankings(ranking):
    q, db, ql, dl, sim = metric_problem(4, queries=30)
    if ranking == "euclidean":
        dist = ((q[:, None] - db[None]) ** 2).sum(-1)
    else:
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        dist = 1 - unit(q) @ unit(db).T
    got = metrics.map_at_k(q, db, ql, dl, 40, ranking=ranking)
    assert got == pytest.approx(oracle_map(q, db, ql, dl, 40, False, dist=dist), abs=1e-6)
    got = metrics.mahp_at_k(q, db, ql, dl, sim, 40, ranking=ranking)
    assert got == pytest.approx(oracle_mahp(q, db, ql, dl, sim, 40, False, dist=dist), abs=1e-6)
