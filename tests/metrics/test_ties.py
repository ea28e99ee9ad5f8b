"""jaxhash.metrics.ties: the seeded random tie order is stable, and the expected scores equal
the exact average over every tie order on tiny inputs."""

import itertools

import jax
import numpy as np
import pytest

from jaxhash import metrics
from tests.metrics.metric_oracles import metric_problem, oracle_mahp, oracle_map, oracle_precision


def test_random_ties_are_stable_over_the_seeded_order():
    q, db, ql, dl, sim = metric_problem(5, bits=6)  # 6 bits: many ties
    for seed in (0, 3):
        order = np.asarray(jax.random.permutation(jax.random.key(seed), len(db)))
        got = metrics.map_at_k(q, db, ql, dl, 50, ties="random", seed=seed, exclude_self=True)
        expected = oracle_map(q, db, ql, dl, 50, True, order=order)
        assert got == pytest.approx(expected, abs=1e-6)
        got = metrics.mahp_at_k(q, db, ql, dl, sim, 50, ties="random", seed=seed, exclude_self=True)
        assert got == pytest.approx(oracle_mahp(q, db, ql, dl, sim, 50, True, order), abs=1e-6)


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
        expected = np.mean([oracle_map(q, db, ql, dl, k, exclude_self, o) for o in orders])
        got = metrics.map_at_k(q, db, ql, dl, k, ties="expected", exclude_self=exclude_self)
        assert got == pytest.approx(expected, abs=1e-5)
        expected = np.mean([oracle_precision(q, db, ql, dl, k, exclude_self, o) for o in orders])
        got = metrics.precision_at_k(q, db, ql, dl, k, ties="expected", exclude_self=exclude_self)
        assert got == pytest.approx(expected, abs=1e-5)
        if k >= 2:
            expected = np.mean(
                [oracle_mahp(q, db, ql, dl, sim, k, exclude_self, o) for o in orders]
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
