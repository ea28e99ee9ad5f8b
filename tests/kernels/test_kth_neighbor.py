"""jaxhash.kernels.kth_neighbor: the Pallas kernel, interpreted on the CPU, against the XLA path
(identical indices, ties included)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import kernels, knn
from jaxhash.kernels import kth_neighbor

VARIANTS = kernels.VARIANTS


def _integer_points(seed, n, d):
    """Small integer coordinates: scores are exact, and equal scores (ties) are common."""
    return jnp.asarray(np.random.default_rng(seed).integers(-2, 3, (n, d)), jnp.float32)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("k", [1, 3])
def test_kth_neighbor_kernel_matches_xla_with_ties(variant, k):
    """Every query's k-th neighbour, ties to the lower index, as the XLA "flat" selection; the
    points span several blocks, with padding in the last."""
    q, p = _integer_points(0, 21, 5), _integer_points(1, 150, 5)
    want = knn.kth_neighbor_indices(q, p, k, selection="flat", impl="xla")
    got = jax.jit(
        functools.partial(
            kth_neighbor.kth_neighbor_indices,
            k=k,
            variant=variant,
            interpret=True,
            block_queries=8,
            block_points=128 if variant == "mosaic" else 32,
        )
    )(q, p, row_ids=jnp.full((21,), -1, jnp.int32), sq_norms=jnp.sum(p * p, 1))
    scores = np.asarray(jnp.sum(p * p, 1)[None, :] - 2.0 * q @ p.T)
    kth = np.sort(scores, axis=1)[:, k - 1]
    assert (np.sum(scores == kth[:, None], axis=1) > 1).sum() >= 5, "the data must have ties"
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 2])
def test_kth_neighbor_pallas_impl_matches_xla(k):
    """impl="pallas" through jaxhash.knn: same indices and distances as impl="xla", with
    exclude_self at an offset and a mask of points; gradients agree too."""
    p = _integer_points(2, 40, 4)
    q = p[10:25]
    mask = jnp.arange(40) % 5 != 3
    kw = dict(exclude_self=True, query_offset=10, points_mask=mask, selection="flat")
    fn = jax.jit(
        knn.kth_neighbor_indices,
        static_argnames=("k", "exclude_self", "impl", "selection", "query_offset"),
    )
    want = fn(q, p, k, impl="xla", **kw)
    got = fn(q, p, k, impl="pallas", **kw)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert not np.any(np.asarray(got) == np.arange(10, 25))
    assert np.all(np.asarray(mask)[np.asarray(got)])

    def total(q, impl):
        return jnp.sum(knn.kth_neighbor_sq_distances(q, p, k, impl=impl, **kw))

    value_x, grad_x = jax.value_and_grad(total)(q, "xla")
    value_p, grad_p = jax.value_and_grad(total)(q, "pallas")
    assert float(value_p) == float(value_x)
    np.testing.assert_array_equal(np.asarray(grad_p), np.asarray(grad_x))


def test_kth_neighbor_pallas_random_floats():
    """Generic float data (no ties): the same neighbours as the XLA path."""
    rng = np.random.default_rng(3)
    q = jnp.asarray(rng.standard_normal((16, 8)), jnp.float32)
    p = jnp.asarray(rng.standard_normal((70, 8)), jnp.float32)
    for k in (1, 4):
        want = knn.kth_neighbor_sq_distances(q, p, k, impl="xla", selection="flat")
        got = knn.kth_neighbor_sq_distances(q, p, k, impl="pallas")
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
