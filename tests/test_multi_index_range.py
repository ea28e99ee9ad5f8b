"""MultiIndex.range_search through the compiled kernel (jaxhash.kernels.multi_index_probe.within)
equals the brute force and the NumPy path: every code within the radius, sorted by (distance,
index)."""

import numpy as np
import pytest

from jaxhash.multi_index import MultiIndex

pytest.importorskip("numba")


def _codes(rng, kind, n, width):
    if kind == "random":
        return rng.integers(0, 256, (n, width), np.uint8)
    if kind == "clustered":  # 30 centres, each bit flipped with probability 0.1
        centres = rng.integers(0, 256, (30, width), np.uint8)
        flips = np.packbits(rng.random((n, 8 * width)) < 0.1, axis=1)
        return centres[rng.integers(0, 30, n)] ^ flips
    distinct = rng.integers(0, 256, (40, width), np.uint8)  # duplicate-heavy
    return distinct[rng.integers(0, 40, n)]


def _brute_force_within(queries, database, radius):
    dist = np.bitwise_count(queries[:, None, :] ^ database[None]).sum(-1)
    out = []
    for row in dist:
        hits = np.flatnonzero(row <= radius)
        hits = hits[np.argsort(row[hits], kind="stable")]
        out.append((row[hits], hits))
    return out


@pytest.mark.parametrize("kind", ["random", "clustered", "duplicates"])
@pytest.mark.parametrize("num_queries", [5, 40])  # one block of queries; two, in threads
def test_compiled_range_search_equals_brute_force(kind, num_queries):
    rng = np.random.default_rng([num_queries, len(kind)])
    for n, width, radii in [(3000, 8, (0, 5, 12, 20)), (2000, 3, (0, 4, 24)), (500, 2, (16,))]:
        database = _codes(rng, kind, n, width)
        queries = np.concatenate([database[:2], _codes(rng, kind, num_queries, width)])
        index = MultiIndex.build(database)
        for radius in radii:
            compiled = index.range_search(queries, radius, impl="numba")
            numpy_path = index.range_search(queries, radius, impl="numpy")
            expected = _brute_force_within(queries, database, radius)
            assert len(compiled) == len(queries)
            for (d, i), (nd, ni), (ed, ei) in zip(compiled, numpy_path, expected, strict=True):
                assert d.dtype == i.dtype == np.int32
                np.testing.assert_array_equal(i, ei)
                np.testing.assert_array_equal(d, ed)
                np.testing.assert_array_equal(ni, ei)
                np.testing.assert_array_equal(nd, ed)


def test_range_search_rejects_an_unknown_impl():
    index = MultiIndex.build(np.zeros((4, 2), np.uint8))
    with pytest.raises(ValueError, match="impl must be one of"):
        index.range_search(np.zeros((1, 2), np.uint8), 1, impl="fast")
