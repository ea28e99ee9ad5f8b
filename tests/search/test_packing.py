"""jaxhash.search.packing: packing equals np.packbits and inverts, Hamming distances equal NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import retrieval
from tests.search.topk_oracles import packed_hamming, random_packed


@pytest.mark.slow
@pytest.mark.parametrize("bits", [1, 7, 8, 9, 64, 65])
def test_pack_codes_matches_np_packbits(bits):
    z = np.random.default_rng(bits).normal(size=(13, bits)).astype(np.float32)
    z[0, 0] = 0.0  # zero packs as a 0 bit, like np.packbits(z > 0)
    expected = np.packbits(z > 0, axis=1)
    for codes in (z, np.sign(z), z > 0, (z > 0).astype(np.int8)):
        packed = retrieval.pack_codes(codes)
        assert packed.dtype == jnp.uint8 and packed.shape == (13, -(-bits // 8))
        np.testing.assert_array_equal(np.asarray(packed), expected)


def test_unpack_inverts_pack():
    z = np.random.default_rng(0).normal(size=(9, 21))
    packed = retrieval.pack_codes(z)
    signs = retrieval.unpack_codes(packed, 21)
    np.testing.assert_array_equal(np.asarray(signs), np.where(z > 0, 1.0, -1.0))
    np.testing.assert_array_equal(np.asarray(retrieval.pack_codes(signs)), np.asarray(packed))
    assert retrieval.unpack_codes(packed).shape == (9, 24)


def test_pack_codes_works_under_jit():
    z = np.random.default_rng(1).normal(size=(4, 20))
    np.testing.assert_array_equal(
        np.asarray(jax.jit(retrieval.pack_codes)(z)), np.packbits(z > 0, axis=1)
    )


def test_hamming_distances_match_numpy():
    rng = np.random.default_rng(2)
    q, db = random_packed(rng, 7, 5), random_packed(rng, 30, 5)
    distances = np.asarray(retrieval.hamming_distances(q, db))
    np.testing.assert_array_equal(distances, packed_hamming(q, db))
