"""Tests for jaxhash.knn against a brute-force float64 NumPy oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import knn

# Calls go through jax.jit: on the CPU one compilation is much faster than eager dispatch.
_STATIC = ("k", "exclude_self", "query_offset", "block_size", "precision")
kth_neighbor_indices = jax.jit(knn.kth_neighbor_indices, static_argnames=_STATIC)
kth_neighbor_sq_distances = jax.jit(knn.kth_neighbor_sq_distances, static_argnames=_STATIC)

FUNCS = (kth_neighbor_indices, kth_neighbor_sq_distances)


def _oracle(queries, points, k, exclude_self=False, query_offset=0, points_mask=None):
    """Float64 brute force: (index, squared distance) of the k-th neighbour of each query.

    Also asserts that the k-th distance is well separated from its sorted neighbours, so that a
    float32 implementation must pick the same index.
    """
    q = np.asarray(queries, np.float64)
    p = np.asarray(points, np.float64)
    d2 = ((q[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    rows = np.arange(q.shape[0])
    if exclude_self:
        d2[rows, query_offset + rows] = np.inf
    if points_mask is not None:
        d2[:, ~np.asarray(points_mask)] = np.inf
    order = np.argsort(d2, axis=1, kind="stable")
    srt = np.take_along_axis(d2, order, axis=1)
    gaps = np.diff(srt[:, max(k - 2, 0) : k + 1], axis=1)
    assert np.all(gaps[np.isfinite(gaps)] > 2e-5), "test data has near-ties"
    idx = order[:, k - 1]
    return idx, d2[rows, idx]


def _data(seed, n, d=3):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 5, 20])
def test_matches_brute_force(k):
    """Indices and squared distances equal the float64 brute force for distinct queries/points."""
    q, p = _data(0, 13), _data(1, 40)
    want_idx, want_d2 = _oracle(q, p, k)
    idx = kth_neighbor_indices(q, p, k)
    d2 = kth_neighbor_sq_distances(q, p, k)
    assert idx.dtype == jnp.int32 and idx.shape == (13,)
    assert d2.dtype == jnp.float32 and d2.shape == (13,)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    np.testing.assert_allclose(np.asarray(d2), want_d2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_exclude_self_with_query_offset(k):
    """Queries that are a slice of the points never pick their own row (offset respected)."""
    p = _data(2, 30)
    q = p[7:19]
    want_idx, want_d2 = _oracle(q, p, k, exclude_self=True, query_offset=7)
    idx = kth_neighbor_indices(q, p, k, exclude_self=True, query_offset=7)
    d2 = kth_neighbor_sq_distances(q, p, k, exclude_self=True, query_offset=7)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    assert np.all(np.asarray(idx) != 7 + np.arange(12))
    np.testing.assert_allclose(np.asarray(d2), want_d2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exclude_self", [False, True])
def test_points_mask(exclude_self):
    """Masked-out points are never chosen; the result equals brute force over the valid points."""
    p = _data(3, 30)
    mask = np.random.default_rng(4).random(30) < 0.5
    q = p[:11] if exclude_self else _data(5, 11)
    kw = dict(exclude_self=exclude_self, query_offset=0, points_mask=jnp.asarray(mask))
    want_idx, want_d2 = _oracle(q, p, 2, exclude_self, 0, mask)
    idx = np.asarray(kth_neighbor_indices(q, p, 2, **kw))
    d2 = kth_neighbor_sq_distances(q, p, 2, **kw)
    assert mask[idx].all()
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(np.asarray(d2), want_d2, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 5])
def test_many_points(k):
    """P = 600 (not a multiple of any tile width), with exclude_self and mask, and without."""
    p = _data(15, 600, d=5)
    mask = np.random.default_rng(16).random(600) < 0.7
    q = p[100:137]
    kw = dict(exclude_self=True, query_offset=100, points_mask=jnp.asarray(mask))
    want_idx, want_d2 = _oracle(q, p, k, True, 100, mask)
    idx = kth_neighbor_indices(q, p, k, **kw)
    d2 = kth_neighbor_sq_distances(q, p, k, **kw)
    np.testing.assert_array_equal(np.asarray(idx), want_idx)
    np.testing.assert_allclose(np.asarray(d2), want_d2, rtol=1e-5, atol=1e-6)
    # Without mask or self-exclusion, on distinct queries.
    q2 = _data(17, 37, d=5)
    want_idx, want_d2 = _oracle(q2, p, k)
    np.testing.assert_array_equal(np.asarray(kth_neighbor_indices(q2, p, k)), want_idx)
    np.testing.assert_allclose(
        np.asarray(kth_neighbor_sq_distances(q2, p, k)), want_d2, rtol=1e-5, atol=1e-6
    )


def test_block_size_does_not_matter():
    """Block sizes that do not divide Q (Q = 13), or exceed it, give the brute-force result."""
    p = _data(6, 35)
    mask = np.ones(35, bool)
    mask[[3, 20, 21]] = False
    q = p[4:17]  # Q = 13
    kw = dict(exclude_self=True, query_offset=4, points_mask=jnp.asarray(mask))
    want_idx, want_d2 = _oracle(q, p, 3, True, 4, mask)
    for block_size in (4, 5, 1024):
        idx = kth_neighbor_indices(q, p, 3, block_size=block_size, **kw)
        d2 = kth_neighbor_sq_distances(q, p, 3, block_size=block_size, **kw)
        np.testing.assert_array_equal(np.asarray(idx), want_idx, err_msg=f"{block_size=}")
        np.testing.assert_allclose(np.asarray(d2), want_d2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_gradient_is_analytic(k):
    """d/dq and d/dp of sum_i w_i ||q_i - p_j(i)||^2 equal 2 w_i (q_i - p_j) and its scatter."""
    q, p = _data(7, 10), _data(8, 25)
    w = np.random.default_rng(9).random(10).astype(np.float32)
    idx, _ = _oracle(q, p, k)
    diff = q.astype(np.float64) - p[idx].astype(np.float64)
    want_gq = 2 * w[:, None] * diff
    want_gp = np.zeros(p.shape)
    np.add.at(want_gp, idx, -2 * w[:, None] * diff)

    def f(q, p):
        return jnp.sum(w * kth_neighbor_sq_distances(q, p, k))

    gq, gp = jax.grad(f, argnums=(0, 1))(q, p)
    np.testing.assert_allclose(np.asarray(gq), want_gq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(gp), want_gp, rtol=1e-5, atol=1e-6)


def test_gradient_finite_at_zero_distance():
    """Duplicate rows (distance 0) give value 0 and finite, analytic gradients."""
    x = _data(10, 12)
    x[5] = x[2]
    x[9] = x[2]
    x[11] = x[0]

    def f(x):
        return jnp.sum(kth_neighbor_sq_distances(x, x, 1, exclude_self=True))

    val, g = jax.value_and_grad(f)(x)
    # Brute force by hand (the oracle's tie check would reject duplicates on purpose).
    x64 = x.astype(np.float64)
    d2 = ((x64[:, None] - x64[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    want_d2 = d2.min(1)
    assert want_d2[[0, 2, 5, 9, 11]].max() == 0
    np.testing.assert_allclose(float(val), want_d2.sum(), rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(g)))
    # Analytic gradient; which duplicate receives a point-side term is a tie, so compare sums
    # over groups of identical rows.
    idx = d2.argmin(1)
    want_g = 2 * (x64 - x64[idx])
    np.add.at(want_g, idx, -2 * (x64 - x64[idx]))
    group = np.arange(12)
    group[[5, 9]] = 2
    group[11] = 0
    got_sum, want_sum = np.zeros((12, 3)), np.zeros((12, 3))
    np.add.at(got_sum, group, np.asarray(g, np.float64))
    np.add.at(want_sum, group, want_g)
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-5, atol=1e-5)

    # A query equal to a point, without exclude_self: distance 0, zero gradient for the query.
    gq = jax.grad(lambda q: jnp.sum(kth_neighbor_sq_distances(q, x, 1)))(x[:4])
    assert np.all(np.isfinite(np.asarray(gq)))
    np.testing.assert_allclose(np.asarray(gq), 0.0, atol=1e-6)


def test_float64_and_bf16_dtypes():
    """bf16 inputs give float32 distances; float64 inputs under x64 give float64, exact."""
    q, p = _data(11, 6), _data(12, 20)
    out = kth_neighbor_sq_distances(jnp.asarray(q, jnp.bfloat16), jnp.asarray(p, jnp.bfloat16), 1)
    assert out.dtype == jnp.float32
    qb = np.asarray(jnp.asarray(q, jnp.bfloat16).astype(jnp.float32))
    pb = np.asarray(jnp.asarray(p, jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(out), _oracle(qb, pb, 1)[1], rtol=1e-5, atol=1e-6)
    with jax.enable_x64(True):
        q64, p64 = q.astype(np.float64) * 1.1, p.astype(np.float64)
        out = kth_neighbor_sq_distances(jnp.asarray(q64), jnp.asarray(p64), 2)
        assert out.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(out), _oracle(q64, p64, 2)[1], rtol=1e-12)


_Q, _P = _data(13, 4), _data(14, 6)


@pytest.mark.parametrize("fn", FUNCS, ids=["indices", "sq_distances"])
@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((_Q, _P, 0), {}, "k"),
        ((_Q, _P, 7), {}, "k"),
        ((_Q, _P, 6), {"exclude_self": True}, "k"),
        ((_Q[0], _P, 1), {}, "queries"),
        ((_Q, _P[None], 1), {}, "points"),
        ((_Q, _P[:, :2], 1), {}, "queries|points"),
        ((_Q, _P[:0], 1), {}, "points|k"),
        ((_Q.astype(np.int32), _P, 1), {}, "queries"),
        ((_Q, _P.astype(np.int32), 1), {}, "points"),
        ((_Q, _P, 1), {"points_mask": np.ones(5, bool)}, "points_mask"),
    ],
    ids=[
        "k0",
        "k>P",
        "k=P-exclude_self",
        "queries-rank",
        "points-rank",
        "dim-mismatch",
        "empty-points",
        "int-queries",
        "int-points",
        "mask-shape",
    ],
)
def test_bad_inputs_raise(fn, args, kwargs, name):
    """Bad inputs raise ValueError whose message names the offending argument."""
    with pytest.raises(ValueError, match=name):
        fn(*args, **kwargs)
