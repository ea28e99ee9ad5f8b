"""The compiled brute force (jaxhash.kernels.hamming_scan) against a NumPy oracle and against the
XLA search, ties included: random, clustered and duplicate-heavy codes, any width, k up to 1000."""

import numpy as np
import pytest

pytest.importorskip("numba")

from jaxhash import retrieval
from jaxhash.kernels import hamming_scan


def _oracle(queries, database, k, self_ids=None):
    """Stable argsort of every brute-force distance row (ties to the lower index)."""
    q = np.unpackbits(queries, axis=1).astype(np.int64)
    d = np.unpackbits(database, axis=1).astype(np.int64)
    dist = (q[:, None, :] != d[None, :, :]).sum(-1)
    if self_ids is not None:
        dist[np.arange(len(queries)), self_ids] = 10**6
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, idx, axis=1), idx


def _codes(rng, kind, rows, num_bytes):
    if kind == "uniform":
        return rng.integers(0, 256, (rows, num_bytes), np.uint8)
    if kind == "few_values":  # few distinct bytes: distances tie often
        return rng.integers(0, 3, (rows, num_bytes), np.uint8)
    if kind == "duplicates":  # 5 distinct codes
        return rng.integers(0, 256, (5, num_bytes), np.uint8)[rng.integers(0, 5, rows)]
    centres = rng.integers(0, 256, (8, num_bytes), np.uint8)  # clustered: centres, bits flipped
    flips = np.packbits(rng.random((rows, 8 * num_bytes)) < 0.1, axis=1)
    return centres[rng.integers(0, 8, rows)] ^ flips


@pytest.fixture(params=["serial", pytest.param("parallel", marks=pytest.mark.slow)])
def threads(request, monkeypatch):
    """Small searches run in the calling thread; "parallel" sends them to the threads, with the
    database split into 3 parts (parts may hold fewer than k rows, or none)."""
    if request.param == "parallel":
        monkeypatch.setattr(hamming_scan, "_PARALLEL_PAIRS", 0)
        monkeypatch.setattr(hamming_scan, "_num_parts", lambda *args: 3)
    return request.param


CASES = [
    # kind, queries, rows, bytes, k
    ("uniform", 70, 20_000, 8, 10),
    ("uniform", 3, 40_000, 8, 1000),
    ("few_values", 1, 1_000, 8, 600),  # in parallel, parts of 334 rows: fewer than k
    ("clustered", 40, 9_000, 8, 100),
    ("few_values", 33, 5_000, 8, 300),
    ("duplicates", 20, 3_000, 8, 50),
    ("uniform", 17, 2_000, 1, 5),
    ("clustered", 25, 3_000, 3, 40),
    ("few_values", 9, 1_000, 16, 999),
    ("uniform", 40, 2_500, 40, 7),
    ("duplicates", 1, 1, 2, 1),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[2]}x{c[3]}B-k{c[4]}" for c in CASES])
def test_topk_matches_the_oracle(case, threads):
    kind, num_q, rows, num_bytes, k = case
    rng = np.random.default_rng(rows + num_bytes + k)
    database = _codes(rng, kind, rows, num_bytes)
    queries = np.concatenate([database[:2], _codes(rng, kind, num_q, num_bytes)])[:num_q]
    dist, idx = hamming_scan.topk(queries, database, k)
    assert dist.dtype == np.int32 and idx.dtype == np.int32 and dist.shape == (num_q, k)
    expected = _oracle(queries, database, k)
    np.testing.assert_array_equal(dist, expected[0])
    np.testing.assert_array_equal(idx, expected[1])


@pytest.mark.parametrize("kind", ["uniform", "duplicates", "few_values"])
def test_self_ids_are_never_returned(kind, threads):
    rng = np.random.default_rng(3)
    database = _codes(rng, kind, 4_000, 8)
    self_ids = np.arange(0, 4_000, 100)
    self_ids[-1] = -1  # this query excludes nothing
    queries = database[np.maximum(self_ids, 0)]
    dist, idx = hamming_scan.topk(queries, database, 30, self_ids)
    expected = _oracle(queries, database, 30, np.where(self_ids < 0, 0, self_ids))
    expected_last = _oracle(queries[-1:], database, 30)
    np.testing.assert_array_equal(dist[:-1], expected[0][:-1])
    np.testing.assert_array_equal(idx[:-1], expected[1][:-1])
    np.testing.assert_array_equal(idx[-1:], expected_last[1])


def test_k_equal_to_the_database_minus_self(threads):
    rng = np.random.default_rng(4)
    database = _codes(rng, "few_values", 50, 2)
    dist, idx = hamming_scan.topk(database, database, 49, np.arange(50))
    expected = _oracle(database, database, 49, np.arange(50))
    np.testing.assert_array_equal(idx, expected[1])
    np.testing.assert_array_equal(dist, expected[0])


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "few_values"])
def test_compiled_and_xla_searches_agree(kind, exclude_self):
    """The two implementations of hamming_topk return the same answers, ties included."""
    rng = np.random.default_rng(5)
    database = _codes(rng, kind, 6_000, 8)
    queries = database if exclude_self else _codes(rng, kind, 50, 8)
    for k in (1, 10, 100):
        if exclude_self and k == 100:
            continue  # 6,000 self-excluding queries at k = 100 only repeat k = 10
        compiled = retrieval.hamming_topk(queries, database, k, exclude_self=exclude_self,
                                          impl="numba")  # fmt: skip
        xla = retrieval.hamming_topk(queries, database, k, exclude_self=exclude_self, impl="xla")
        np.testing.assert_array_equal(np.asarray(compiled[0]), np.asarray(xla[0]))
        np.testing.assert_array_equal(np.asarray(compiled[1]), np.asarray(xla[1]))
