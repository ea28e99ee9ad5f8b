"""jaxhash.multi_index: exact top-k and range search against a NumPy brute force (and
``retrieval.hamming_topk`` for the tie order), on random, clustered and duplicate-heavy codes."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from jaxhash import retrieval
from jaxhash.multi_index import MultiIndex, choose_substrings, substring_keys, weight_masks

IMPLS = ["numpy"] + (["numba"] if importlib.util.find_spec("numba") else [])


def _distances(queries, database):
    return np.bitwise_count(queries[:, None, :] ^ database[None]).sum(-1)


def _oracle_topk(queries, database, k):
    d = _distances(queries, database)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]  # ties: lower index first
    return np.take_along_axis(d, order, 1), order


def _codes(rng, kind, n, width):
    if kind == "random":
        return rng.integers(0, 256, (n, width), np.uint8)
    if kind == "clustered":  # 30 centres, each bit flipped with probability 0.1
        centres = rng.integers(0, 256, (30, width), np.uint8)
        flips = np.packbits(rng.random((n, 8 * width)) < 0.1, axis=1)
        return centres[rng.integers(0, 30, n)] ^ flips
    distinct = rng.integers(0, 256, (40, width), np.uint8)  # duplicate-heavy
    return distinct[rng.integers(0, 40, n)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["random", "clustered", "duplicates"])
def test_search_equals_brute_force(kind, impl):
    rng = np.random.default_rng(["random", "clustered", "duplicates"].index(kind))
    for n, width, k in [(3000, 8, 10), (3000, 8, 1000), (2000, 3, 1), (1500, 16, 37), (7, 1, 7)]:
        database = _codes(rng, kind, n, width)
        queries = np.concatenate([_codes(rng, kind, 20, width), database[:3]])
        index = MultiIndex.build(database)
        d, i = index.search(queries, k, impl=impl)
        expected_d, expected_i = _oracle_topk(queries, database, k)
        np.testing.assert_array_equal(d, expected_d)
        np.testing.assert_array_equal(i, expected_i)
        assert d.dtype == i.dtype == np.int32


@pytest.mark.slow
@pytest.mark.parametrize("impl", IMPLS)
def test_exclude_self_equals_hamming_topk(impl):
    database = _codes(np.random.default_rng(9), "duplicates", 500, 8)
    index = MultiIndex.build(database)
    for k in (1, 20, 499):
        d, i = index.search(database, k, exclude_self=True, impl=impl)
        expected = retrieval.hamming_topk(database, database, k, exclude_self=True)
        np.testing.assert_array_equal(d, np.asarray(expected[0]))
        np.testing.assert_array_equal(i, np.asarray(expected[1]))
    with pytest.raises(ValueError, match="1 <= k <= 499"):
        index.search(database, 500, exclude_self=True)
    with pytest.raises(ValueError, match="queries are the database"):
        index.search(database[:5], 2, exclude_self=True)


def test_ties_break_as_hamming_topk():
    rng = np.random.default_rng(3)
    database = _codes(rng, "duplicates", 4000, 8)
    queries = _codes(rng, "duplicates", 16, 8)
    d, i = MultiIndex.build(database).search(queries, 100, impl="numpy")
    expected = retrieval.hamming_topk(queries, database, 100)
    np.testing.assert_array_equal(d, np.asarray(expected[0]))
    np.testing.assert_array_equal(i, np.asarray(expected[1]))


@pytest.mark.parametrize("num_tables", [1, 2, 3, 5, 8])
def test_any_table_count_is_exact(num_tables):
    rng = np.random.default_rng(4)
    database = _codes(rng, "clustered", 2000, 8)
    queries = _codes(rng, "clustered", 10, 8)
    index = MultiIndex.build(database, num_tables=num_tables)
    assert index.num_tables == num_tables
    for impl in IMPLS:
        d, i = index.search(queries, 25, impl=impl)
        expected_d, expected_i = _oracle_topk(queries, database, 25)
        np.testing.assert_array_equal(d, expected_d)
        np.testing.assert_array_equal(i, expected_i)


@pytest.mark.parametrize("kind", ["random", "clustered", "duplicates"])
def test_range_search_equals_brute_force(kind):
    rng = np.random.default_rng(5)
    database = _codes(rng, kind, 2500, 4)
    queries = _codes(rng, kind, 12, 4)
    index = MultiIndex.build(database)
    d_all = _distances(queries, database)
    for radius in (0, 3, 9, 32):
        result = index.range_search(queries, radius)
        assert len(result) == len(queries)
        for row, (d, i) in zip(d_all, result, strict=True):
            hits = np.flatnonzero(row <= radius)
            hits = hits[np.argsort(row[hits], kind="stable")]
            np.testing.assert_array_equal(i, hits)
            np.testing.assert_array_equal(d, row[hits])


def test_substrings_follow_the_paper_and_the_memory_budget():
    # s = floor(log2 N) bits, m = ceil(K / s): 10^6 codes -> 4 x 16, 10^8 -> 22 + 21 + 21.
    assert choose_substrings(64, 10**6)[1].tolist() == [16] * 4
    starts, lengths = choose_substrings(64, 10**8)
    assert starts.tolist() == [0, 22, 43] and lengths.tolist() == [22, 21, 21]
    for n in (1000, 2**16, 10**5, 10**6, 2**24, 10**8):
        for bits in (16, 32, 64, 128):
            _, lengths = choose_substrings(bits, n)
            table_bytes = 4 * len(lengths) * n + 4 * sum(2 ** int(s) + 1 for s in lengths)
            assert table_bytes <= 2.5 * n * bits / 8, (n, bits)
    index = MultiIndex.build(np.random.default_rng(0).integers(0, 256, (70_000, 8), np.uint8))
    assert index.table_bytes <= 2.5 * index.codes.nbytes


def test_substring_keys_and_masks():
    rng = np.random.default_rng(6)
    codes = rng.integers(0, 256, (50, 5), np.uint8)
    bits = np.unpackbits(codes, axis=1)
    for start, length in [(0, 8), (3, 17), (7, 32), (39, 1)]:
        powers = 2 ** np.arange(length - 1, -1, -1, dtype=np.int64)
        expected = bits[:, start : start + length].astype(np.int64) @ powers
        np.testing.assert_array_equal(substring_keys(codes, start, length), expected)
    masks = weight_masks(10, 3)
    assert len(masks) == math.comb(10, 3) == len(set(masks.tolist()))
    assert (np.bitwise_count(masks) == 3).all() and masks.max() < 2**10


def test_bad_input_is_one_clear_error():
    rng = np.random.default_rng(7)
    index = MultiIndex.build(rng.integers(0, 256, (100, 8), np.uint8))
    queries = rng.integers(0, 256, (3, 8), np.uint8)
    with pytest.raises(ValueError, match="32-bit codes but the index holds 64-bit"):
        index.search(queries[:, :4], 5)
    with pytest.raises(ValueError, match=r"1 <= k <= 100"):
        index.search(queries, 101)
    for radius in (-1, 65, 2.5):
        with pytest.raises(ValueError, match=r"radius must be an int in \[0, 64\]"):
            index.range_search(queries, radius)
    with pytest.raises(ValueError, match="impl must be one of"):
        index.search(queries, 5, impl="cuda")
    with pytest.raises(ValueError, match="num_tables must be an int"):
        MultiIndex.build(index.codes, num_tables=0)


def test_an_inconsistent_index_is_refused():
    rng = np.random.default_rng(8)
    index = MultiIndex.build(rng.integers(0, 256, (300, 8), np.uint8))
    index.check_consistency()
    offsets = index.offsets.copy()
    offsets[5] += 1000
    broken = MultiIndex(
        index.sorted_codes, index.bits, index.starts, index.lengths, index.ids, offsets
    )
    with pytest.raises(ValueError, match=r"bucket offsets .* rebuild it"):
        broken.check_consistency()
    assert broken.checksum() != index.checksum()
    short = MultiIndex(index.sorted_codes, index.bits, index.starts, index.lengths,
                       index.ids[:, :5], index.offsets)  # fmt: skip
    with pytest.raises(ValueError, match="ids are not uint32"):
        short.check_consistency()
