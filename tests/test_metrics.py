"""jaxhash.metrics against float64 NumPy oracles (brute force, stable ties) and against the
exact average over every tie order on tiny inputs."""

import itertools

import jax
import numpy as np
import pytest

from jaxhash import metrics, retrieval

# ----------------------------------------------------------------------------- oracles


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


# ----------------------------------------------------------------------------- stable ties


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


# ----------------------------------------------------------------------------- random and expected


def test_random_ties_are_stable_over_the_seeded_order():
    q, db, ql, dl, sim = _problem(5, bits=6)  # 6 bits: many ties
    for seed in (0, 3):
        order = np.asarray(jax.random.permutation(jax.random.key(seed), len(db)))
        got = metrics.map_at_k(q, db, ql, dl, 50, ties="random", seed=seed, exclude_self=True)
        expected = _oracle_map(q, db, ql, dl, 50, True, order=order)
        assert got == pytest.approx(expected, abs=1e-6)
        got = metrics.mahp_at_k(q, db, ql, dl, sim, 50, ties="random", seed=seed, exclude_self=True)
        assert got == pytest.approx(_oracle_mahp(q, db, ql, dl, sim, 50, True, order), abs=1e-6)


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


# ----------------------------------------------------------------------------- radius, severity


def test_precision_recall_curve_and_radius():
    q, db, ql, dl, _ = _problem(6, bits=10, queries=40)
    dist = _distances(q, db)
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


def test_mistake_severity_matches_oracle():
    q, db, ql, dl, sim = _problem(7, queries=50)
    distance = 1.0 - sim
    top1 = _oracle_ranking(q, db, False)[:, 0]
    wrong = dl[top1] != ql
    got = metrics.mistake_severity(q, db, ql, dl, distance)
    assert got["mistakes"] == wrong.sum()
    assert got["mistake_rate"] == pytest.approx(wrong.mean())
    assert got["mean_severity"] == pytest.approx(distance[ql, dl[top1]][wrong].mean())


# ----------------------------------------------------------------------------- independence


def test_chunk_size_and_device_count_do_not_matter(mesh4):
    q, db, ql, dl, sim = _problem(8, n=401, bits=8)
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


@pytest.mark.parametrize("ties", metrics.TIES)
@pytest.mark.parametrize("exclude_self, bits, multi", [(True, 8, False), (False, 300, True)])
def test_counting_rank_equals_the_search(mesh4, ties, exclude_self, bits, multi):
    """The CPU counting sort ranks and scores exactly as retrieval.search (sharded over 4
    devices), for every tie rule: uint8 distances at 8 bits, uint16 at 300. (Scores of sharded
    and unsharded rankings may differ by float rounding.)"""
    _, db, _, dl, sim = _problem(5, n=257, bits=bits)
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


# ----------------------------------------------------------------------------- bad input


_CODES = np.random.default_rng(0).normal(size=(10, 16))
_LABELS = np.arange(10) % 3
_SIM = np.eye(3)

BAD = [
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 11), {}, "k must be"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 10), {"exclude_self": True}, "k must"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS[:9], _LABELS, 3), {}, "9 rows but query_codes"),
    (metrics.map_at_k, (_CODES, _CODES[:8], _LABELS, _LABELS, 3), {}, "db_labels has 10 rows"),
    (
        metrics.map_at_k,
        (
            np.packbits(_CODES > 0, axis=1),
            np.packbits(_CODES[:, :8] > 0, axis=1),
            _LABELS,
            _LABELS,
            3,
        ),
        {},
        "same code length",
    ),
    (
        metrics.map_at_k,
        ((_CODES > 0).astype(np.uint8),) * 2 + (_LABELS, _LABELS, 3),
        {},
        "look like unpacked bits",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 3), {"ties": "first"}, "ties"),
    (
        metrics.map_at_k,
        (_CODES, _CODES, _LABELS, _LABELS, 3),
        {"ties": "expected", "ranking": "cosine"},
        "needs ranking='hamming'",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS * 1.0, _LABELS, 3), {}, "integer class"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS - 1, _LABELS, 3), {}, "negative"),
    (
        metrics.map_at_k,
        (_CODES[:5], _CODES, _LABELS[:5], _LABELS, 3),
        {"exclude_self": True},
        "database",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 3), {"ranking": "l2"}, "ranking"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, np.eye(2), 3), {}, "covers 2 classes"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, -_SIM, 3), {}, "non-negative"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, _SIM, 1), {}, "k >= 2"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, np.ones(3), 3), {}, "square"),
    (
        metrics.mahp_at_k,
        (_CODES, _CODES, np.eye(10, 3), np.eye(10, 3), _SIM, 3),
        {},
        "class-index labels",
    ),
    (
        metrics.mistake_severity,
        (_CODES, _CODES, _LABELS, _LABELS, _SIM),
        {"ties": "expected"},
        "ratio",
    ),
    (metrics.radius_precision_recall, (_CODES, _CODES, _LABELS, _LABELS, 17), {}, "radius"),
    (metrics.map_at_k, (np.full((10, 16), np.nan), _CODES, _LABELS, _LABELS, 3), {}, "NaN"),
]


@pytest.mark.parametrize("fn, args, kwargs, message", BAD)
def test_bad_inputs_raise(fn, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)
