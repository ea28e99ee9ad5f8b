"""Tests for jaxhash.kernels: the Pallas kernels, interpreted on the CPU, against the XLA paths
(identical indices and distances, ties included), and their lowering for GPUs and TPUs."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import kernels, knn, retrieval
from jaxhash.kernels import hamming_tiles, kth_neighbor
from jaxhash.search.plan import _plan

VARIANTS = kernels.VARIANTS


def _integer_points(seed, n, d):
    """Small integer coordinates: scores are exact, and equal scores (ties) are common."""
    return jnp.asarray(np.random.default_rng(seed).integers(-2, 3, (n, d)), jnp.float32)


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


def test_impl_choice_and_errors():
    """auto is the kernel on GPUs and TPUs, XLA on CPUs; an explicit choice is kept; bad values
    and dtypes are named."""
    accelerator = jax.default_backend() in ("gpu", "tpu")
    assert kernels.resolve_impl("auto") == ("pallas" if accelerator else "xla")
    assert kernels.resolve_impl("pallas") == "pallas"
    assert kernels.resolve_impl("xla") == "xla"
    with pytest.raises(ValueError, match="impl must be one of"):
        kernels.resolve_impl("triton")
    with pytest.raises(ValueError, match="variant must be"):
        kernels.check_variant("cuda")
    with jax.enable_x64(True):
        x = jnp.ones((4, 3), jnp.float64)
        with pytest.raises(ValueError, match="impl='pallas' takes float32"):
            knn.kth_neighbor_indices(x, x, 1, impl="pallas")
        assert knn.kth_neighbor_indices(x, x, 1, impl="auto").shape == (4,)  # XLA for float64
    with pytest.raises(ValueError, match="impl must be one of"):
        retrieval.hamming_topk(
            jnp.zeros((2, 1), jnp.uint8), jnp.zeros((3, 1), jnp.uint8), 1, impl="gpu"
        )


def _packed_with_ties(seed, n, num_bytes):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, num_bytes), dtype=np.uint8)
    codes[1::7] = codes[0::7][: len(codes[1::7])]  # exact duplicates: tied distances
    codes[:, 0] &= 0x0F  # fewer distinct distances, more ties
    return jnp.asarray(codes)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("num_words", [1, 3])
def test_tile_minima_kernel_matches_xla(variant, num_words):
    """Tile minima equal the XLA popcount minima, for word counts that need padding."""
    rng = np.random.default_rng(num_words)
    q = jnp.asarray(rng.integers(0, 2**32, (19, num_words), dtype=np.uint64), jnp.uint32)
    chunk = jnp.asarray(rng.integers(0, 2**32, (num_words, 4, 200), dtype=np.uint64), jnp.uint32)
    want = None
    for t in range(4):
        d = retrieval.popcount_distance(q, chunk[:, t, :])
        want = d if want is None else jnp.minimum(want, d)
    got = hamming_tiles.tile_minima(
        q,
        chunk,
        variant=variant,
        interpret=True,
        block_queries=8,
        block_tiles=128 if variant == "mosaic" else 64,
    )
    assert got.dtype == jnp.int32 and got.shape == (19, 200)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want).astype(np.int32))


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("num_bytes", [8, 3])
def test_hamming_topk_pallas_matches_xla(exclude_self, num_bytes):
    """impl="pallas" gives the XLA path's distances and indices exactly, ties included, over
    several chunks."""
    database = _packed_with_ties(4, 3000, num_bytes)
    queries = database if exclude_self else _packed_with_ties(5, 23, num_bytes)
    queries = queries[:23] if not exclude_self else queries
    k = 10
    plan = _plan("hamming", len(queries), 3000, 2, k, 1, None, 1024, "tiled", "pallas")
    assert plan.pallas and not plan.flat and plan.chunks_per_device > 1
    kw = dict(exclude_self=exclude_self, selection="tiled", database_block=1024)
    if exclude_self:
        kw["query_block"] = 1000
    want = retrieval.hamming_topk(queries, database, k, impl="xla", **kw)
    got = retrieval.hamming_topk(queries, database, k, impl="pallas", **kw)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
    assert np.sum(np.diff(np.asarray(want[0]), axis=1) == 0) > 0, "the data must have ties"


def _lowers(fn, platform, *args):
    return jax.jit(fn).trace(*args).lower(lowering_platforms=(platform,)).as_text()


@pytest.mark.parametrize(("variant", "platform"), [("triton", "cuda"), ("mosaic", "tpu")])
def test_kernels_lower_for_accelerators(variant, platform):
    """Both kernels lower to Triton (GPUs) and Mosaic (TPUs) from this machine: the Pallas
    lowering rules accept every operation and block shape at benchmark-like sizes."""
    q, p = jnp.ones((1024, 64)), jnp.ones((1000, 64))
    knn_fn = functools.partial(
        kth_neighbor.kth_neighbor_indices, k=3, variant=variant, interpret=False
    )
    rows, norms = jnp.zeros((1024,), jnp.int32), jnp.ones((1000,))
    text = _lowers(
        lambda q, p, r, n: knn_fn(q, p, row_ids=r, sq_norms=n), platform, q, p, rows, norms
    )
    assert "kth_neighbor" in text
    tiles_fn = functools.partial(hamming_tiles.tile_minima, variant=variant, interpret=False)
    q_words = jnp.zeros((512, 2), jnp.uint32)
    text = _lowers(tiles_fn, platform, q_words, jnp.zeros((2, 32, 4096), jnp.uint32))
    assert "hamming_tile_minima" in text


def test_the_knn_switch_takes_effect_after_a_first_call(monkeypatch):
    """The kNN implementation is an argument (``config.loss.knn_impl``): one jitted loss called
    with "xla" and then "pallas" runs the kernel on the second call only, with the same value,
    not a trace cached from the first."""
    from jaxhash import losses
    from jaxhash.kernels import kth_neighbor as kernel_module

    calls = []
    real = kernel_module.kth_neighbor_indices

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(kernel_module, "kth_neighbor_indices", spy)
    codes = jax.random.normal(jax.random.key(0), (16, 8))

    @functools.partial(jax.jit, static_argnames="knn_impl")
    def loss(codes, key, knn_impl):
        return losses.binary_kl_loss(codes, key, form="wkv", knn_impl=knn_impl)

    first = loss(codes, jax.random.key(1), knn_impl="xla")
    assert calls == []
    second = loss(codes, jax.random.key(1), knn_impl="pallas")
    assert calls and np.isclose(float(first), float(second), rtol=1e-5)
