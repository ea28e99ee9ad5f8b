"""Float64 NumPy oracles of the retrieval metrics (brute-force ranking, stable ties) and the
small labelled problems the metric tests score, shared by tests/metrics/."""

import numpy as np


def sign_distances(queries, database):
    """float64 [Q, N] Hamming distances of sign codes (x > 0 is a 1 bit)."""
    return ((queries[:, None, :] > 0) != (database[None, :, :] > 0)).sum(-1).astype(np.float64)


def oracle_ranking(queries, database, exclude_self, order=None, dist=None):
    """Stable ranking over the database order ``order`` (default: index order)."""
    dist = sign_distances(queries, database) if dist is None else dist.copy()
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    n = database.shape[0]
    position = np.empty(n, int)
    position[np.arange(n) if order is None else order] = np.arange(n)
    return np.lexsort((np.broadcast_to(position, dist.shape), dist), axis=1)


def relevant(q_label, db_labels):
    if db_labels.ndim == 1:
        return (db_labels == q_label).astype(float)
    return ((db_labels @ q_label) > 0).astype(float)


def average_precision(rel):
    hits = np.cumsum(rel)
    return (rel * hits / np.arange(1, len(rel) + 1)).sum() / max(hits[-1], 1)


def oracle_map(q, db, ql, dl, k, exclude_self, order=None, dist=None):
    ranking = oracle_ranking(q, db, exclude_self, order, dist)[:, :k]
    return np.mean([average_precision(relevant(ql[i], dl[ranking[i]])) for i in range(len(q))])


def oracle_precision(q, db, ql, dl, k, exclude_self, order=None):
    ranking = oracle_ranking(q, db, exclude_self, order)[:, :k]
    return np.mean([relevant(ql[i], dl[ranking[i]]).sum() / k for i in range(len(q))])


def oracle_mahp(q, db, ql, dl, sim, k, exclude_self, order=None, dist=None):
    """Barz & Denzler's AHP@k (np.trapz of HP@1..k, dx = 1/k), the ideal over the database
    without the query."""
    ranking = oracle_ranking(q, db, exclude_self, order, dist)[:, :k]
    values = []
    for i in range(len(q)):
        sims = sim[ql[i], dl]
        if exclude_self:
            sims = np.delete(sims, i)
        ideal = np.cumsum(np.sort(sims)[::-1])[:k]
        hp = np.cumsum(sim[ql[i], dl[ranking[i]]]) / ideal
        values.append(np.trapezoid(hp, dx=1.0 / k))
    return np.mean(values)


def metric_problem(seed, n=240, bits=16, classes=6, queries=None):
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
