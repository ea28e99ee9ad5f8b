"""jaxhash.kernels.hamming_tiles: the Pallas tile minima, interpreted on the CPU, and the Hamming
top-k through them against the XLA path (identical distances and indices, ties included)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import kernels, retrieval
from jaxhash.kernels import hamming_tiles
from jaxhash.search.plan import _plan

VARIANTS = kernels.VARIANTS


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


@pytest.mark.slow
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
