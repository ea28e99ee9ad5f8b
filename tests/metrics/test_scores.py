"""jaxhash.metrics.scores: AP@k, AHP@k, precision and recall@k and the mistake severity
against float64 NumPy oracles (brute-force ranking, stable ties)."""

import numpy as np
import pytest

from jaxhash import metrics


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


def _oracle_precision(q, db, ql, dl, k, exclude_self, order=None):
    ranking = _oracle_ranking(q, db, exclude_self, order)[:, :k]
    return np.mean([_relevant(ql[i], dl[ranking[i]]).sum() / k for i in range(len(q))])


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
@pytest.mark.parametrize("exclude_self", [False, True])
def test_map_mahp_precision_match_oracle(exclude_self):
    q, db, ql, dl, sim = _problem(0, queries=None if exclude_self else 50)
    for k in (1, 7, 60):
        got = metrics.map_at_k(q, db, ql, dl, k, exclude_self=exclude_self)
        assert got == pytest.approx(_oracle_map(q, db, ql, dl, k, exclude_self), abs=1e-6)
        got = metrics.precision_at_k(q, db, ql, dl, k, exclude_self=exclude_self)
        assert got == pytest.approx(_oracle_precision(q, db, ql, dl, k, exclude_self), abs=1e-6)
    for k in (2, 60, 200):
        got = metrics.mahp_at_k(q, db, ql, dl, sim, k, exclude_self=exclude_self)
        assert got == pytest.approx(_oracle_mahp(q, db, ql, dl, sim, k, exclude_self), abs=1e-6)


def test_recall_at_k_matches_oracle():
    q, db, ql, dl, _ = _problem(1)
    ranking = _oracle_ranking(q, db, True)[:, :30]
    totals = np.bincount(dl)[ql] - 1
    expected = np.mean([_relevant(ql[i], dl[ranking[i]]).sum() / totals[i] for i in range(len(q))])
    got = metrics.recall_at_k(q, db, ql, dl, 30, exclude_self=True)
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_mistake_severity_matches_oracle():
    q, db, ql, dl, sim = _problem(7, queries=50)
    distance = 1.0 - sim
    top1 = _oracle_ranking(q, db, False)[:, 0]
    wrong = dl[top1] != ql
    got = metrics.mistake_severity(q, db, ql, dl, distance)
    assert got["mistakes"] == wrong.sum()
    assert got["mistake_rate"] == pytest.approx(wrong.mean())
    assert got["mean_severity"] == pytest.approx(distance[ql, dl[top1]][wrong].mean())
