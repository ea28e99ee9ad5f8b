"""jaxhash.metrics.ties: the seeded random tie order is stable, and the expected scores equal
the exact average over every tie order on tiny inputs."""

import itertools

import jax
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


def test_random_ties_are_stable_over_the_seeded_order():
    q, db, ql, dl, sim = _problem(5, bits=6)  # 6 bits: many ties
    for seed in (0, 3):
        order = np.asarray(jax.random.permutation(jax.random.key(seed), len(db)))
        got = metrics.map_at_k(q, db, ql, dl, 50, ties="random", seed=seed, exclude_self=True)
        expected = _oracle_map(q, db, ql, dl, 50, True, order=order)
        assert got == pytest.approx(expected, abs=1e-6)
        got = metrics.mahp_at_k(q, db, ql, dl, sim, 50, ties="random", seed=seed, exclude_self=True)
        assert got == pytest.approx(_oracle_mahp(q, db, ql, dl, sim, 50, True, order), abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
@pytest.mark.parametrize("exclude_self", [False, True])
def test_expected_ties_equal_the_average_over_all_orders(trial, exclude_self):
    """Tiny sets (6 codes of 3 bits, so large tie groups): enumerate all 720 database orders."""
    rng = np.random.default_rng(10 + trial)
    n, classes = 6, 3
    db = rng.choice([-1.0, 1.0], (n, 3))
    dl = rng.integers(0, classes, n)
    q, ql = (db, dl) if exclude_self else (rng.choice([-1.0, 1.0], (3, 3)), rng.integers(0, 3, 3))
    sim = rng.uniform(0, 1, (classes, classes))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    orders = [np.array(p) for p in itertools.permutations(range(n))]
    for k in (1, 3, n - 1):
        expected = np.mean([_oracle_map(q, db, ql, dl, k, exclude_self, o) for o in orders])
        got = metrics.map_at_k(q, db, ql, dl, k, ties="expected", exclude_self=exclude_self)
        assert got == pytest.approx(expected, abs=1e-5)
        expected = np.mean([_oracle_precision(q, db, ql, dl, k, exclude_self, o) for o in orders])
        got = metrics.precision_at_k(q, db, ql, dl, k, ties="expected", exclude_self=exclude_self)
        assert got == pytest.approx(expected, abs=1e-5)
        if k >= 2:
            expected = np.mean(
                [_oracle_mahp(q, db, ql, dl, sim, k, exclude_self, o) for o in orders]
            )
            got = metrics.mahp_at_k(
                q, db, ql, dl, sim, k, ties="expected", exclude_self=exclude_self
            )
            assert got == pytest.approx(expected, abs=1e-5)


@pytest.mark.slow
def test_expected_ap_on_large_tie_groups():
    """One group of 20,000 tied items (hypergeometric terms far from a float32 binomial's range):
    by symmetry E[AP@k] for one relevant in n is E[1/position]."""
    db = np.ones((20001, 8))
    labels = np.zeros(20001, int)
    labels[5] = 1  # the only item relevant to a class-1 query, among 20,000 ties
    q = np.ones((1, 8))
    got = metrics.map_at_k(q, db, np.array([1]), labels, 100, ties="expected")
    # P(position = i) = 1/20,001 for i <= 20,001; AP@100 = 1/i if i <= 100 else 0.
    expected = sum(1.0 / i for i in range(1, 101)) / 20001
    assert got == pytest.approx(expected, rel=1e-4)
