"""Packed random codes and the brute-force Hamming top-k oracle shared by the search and
retrieval tests."""

import numpy as np


def random_packed(rng, rows, num_bytes, levels=256):
    """Random packed codes; ``levels < 256`` draws few distinct bytes, so distances tie often."""
    return rng.integers(0, levels, (rows, num_bytes), dtype=np.uint8)


def packed_hamming(queries, database):
    """int64 [Q, N] brute-force Hamming distances of packed codes."""
    q = np.unpackbits(queries, axis=1).astype(np.int64)
    d = np.unpackbits(database, axis=1).astype(np.int64)
    return (q[:, None, :] != d[None, :, :]).sum(-1)


def oracle_topk(queries, database, k, exclude_self=False):
    dist = packed_hamming(queries, database)
    if exclude_self:
        np.fill_diagonal(dist, 10**6)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, idx, axis=1), idx


def assert_topk(result, expected):
    np.testing.assert_array_equal(np.asarray(result[0]), expected[0])
    np.testing.assert_array_equal(np.asarray(result[1]), expected[1])
