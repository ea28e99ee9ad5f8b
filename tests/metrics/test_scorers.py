"""jaxhash.metrics.scorers: the one-call metrics take packed or real codes, multi-hot labels
and real-valued rankings, and agree with the oracles on each."""

import numpy as np
import pytest

from jaxhash import metrics, retrieval


def _distances(queries, database):
    """float64 [Q, N] Hamming distances of sign codes (x > 0 is a 1 bit)."""
    return ((queries[:, None, :] > 0) != (database[None, :, :] > 0)).sum(-1).astype(np.float64)


def _oracle_ranking(queries, database, exclude_self, order=None, dist=None):
    """Stable ranking over the database order ``order`` (default: index order)."""
    dist = _distances(queries, database) if dist is None else dist.copy()
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    n = database.shape[0]
    position = np.empty(n, int)
    position[np.arange(n) if order is None else order] = np.arange(n)
    return np.lexsort((np.broadcast_to(position, dist.shape), dist), axis=1)


def _relevant(q_label, db_labels):
    if db_labels.ndim == 1:
        return (db_labels == q_label).astype(float)
    return ((db_labels @ q_label) > 0).astype(float)


def _ap(rel):
    hits = np.cumsum(rel)
    return (rel * hits / np.arange(1, len(rel) + 1)).sum() / max(hits[-1], 1)


def _oracle_map(q, db, ql, dl, k, exclude_self, order=None, dist=None):
    ranking = _oracle_ranking(q, db, exclude_self, order, dist)[:, :k]
    return np.mean([_ap(_relevant(ql[i], dl[ranking[i]])) for i in range(len(q))])


def _oracle_mahp(q, db, ql, dl, sim, k, exclude_self, order=None, dist=None):
    """Barz & Denzler's AHP@k (np.trapz of HP@1..k, dx = 1/k), the ideal over the database
    without the query."""
    ranking = _oracle_ranking(q, db, exclude_self, order, dist)[:, :k]
    values = []
    for i in range(len(q)):
        sims = sim[ql[i], dl]
        if exclude_self:
            sims = np.delete(sims, i)
        ideal = np.cumsum(np.sort(sims)[::-1])[:k]
        hp = np.cumsum(sim[ql[i], dl[ranking[i]]]) / ideal
        values.append(np.trapezoid(hp, dx=1.0 / k))
    return np.mean(values)


def _problem(seed, n=240, bits=16, classes=6, queries=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, bits))
    db_labels = rng.integers(0, classes, n)
    database = centres[db_labels] + 1.5 * rng.normal(size=(n, bits))
    sim = rng.uniform(0.0, 0.8, (classes, classes))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    if queries is None:
        return database, database, db_labels, db_labels, sim
    q_labels = rng.integers(0, classes, queries)
    q = centres[q_labels] + 1.5 * rng.normal(size=(queries, bits))
    return q, database, q_labels, db_labels, sim


@pytest.mark.slow
def test_multi_hot_labels():
    rng = np.random.default_rng(2)
    q, db, _, _, _ = _problem(2, queries=30)
    ql = (rng.random((30, 5)) < 0.3).astype(np.int32)
    dl = (rng.random((240, 5)) < 0.3).astype(np.float32)
    for k in (5, 80):
        got = metrics.map_at_k(q, db, ql, dl, k)
        assert got == pytest.approx(_oracle_map(q, db, ql, dl, k, False), abs=1e-6)
    got = metrics.recall_at_k(db, db, dl, dl, 40, exclude_self=True)
    ranking = _oracle_ranking(db, db, True)[:, :40]
    totals = ((dl @ dl.T) > 0).sum(1) - (dl.sum(1) > 0)
    has = np.flatnonzero(totals > 0)
    per_query = [_relevant(dl[i], dl[ranking[i]]).sum() / totals[i] for i in has]
    assert got == pytest.approx(np.mean(per_query), abs=1e-6)


def test_packed_and_real_codes_agree():
    q, db, ql, dl, sim = _problem(3, queries=40)
    packed_q, packed_db = retrieval.pack_codes(q), retrieval.pack_codes(db)
    assert metrics.map_at_k(packed_q, packed_db, ql, dl, 25) == metrics.map_at_k(q, db, ql, dl, 25)
    assert metrics.mahp_at_k(packed_q, packed_db, ql, dl, sim, 25) == pytest.approx(
        metrics.mahp_at_k(np.sign(q), np.sign(db), ql, dl, sim, 25)
    )


@pytest.mark.slow
@pytest.mark.parametrize("ranking", ["euclidean", "cosine"])
def test_real_valued_rankings(ranking):
    q, db, ql, dl, sim = _problem(4, queries=30)
    if ranking == "euclidean":
        dist = ((q[:, None] - db[None]) ** 2).sum(-1)
    else:
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        dist = 1 - unit(q) @ unit(db).T
    got = metrics.map_at_k(q, db, ql, dl, 40, ranking=ranking)
    assert got == pytest.approx(_oracle_map(q, db, ql, dl, 40, False, dist=dist), abs=1e-6)
    got = metrics.mahp_at_k(q, db, ql, dl, sim, 40, ranking=ranking)
    assert got == pytest.approx(_oracle_mahp(q, db, ql, dl, sim, 40, False, dist=dist), abs=1e-6)
