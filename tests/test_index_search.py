"""jaxhash.index_search: the server's one-query search by the multi-index equals the scan and
``retrieval.hamming_topk``, also under concurrent requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_image_index import index_of_codes

from jaxhash import index_search, retrieval
from jaxhash.multi_index import MultiIndex


def test_the_multi_index_answers_like_the_scan():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (1500, 4), np.uint8)
    codes[::7] = codes[0]  # ties
    search = index_search.searcher(index_of_codes(codes, MultiIndex.build(codes)))
    scan = index_search.searcher(index_of_codes(codes, None))
    assert isinstance(search, index_search.MultiIndexSearch)
    assert isinstance(scan, index_search.ScanSearch) and len(search) == len(scan) == 1500
    want_d, want_i = retrieval.hamming_topk(codes[:24], codes, 30)

    def answer(q):
        return search(codes[q], 30), scan(codes[q], 30)

    with ThreadPoolExecutor(4) as pool:  # a server's concurrent requests
        answers = list(pool.map(answer, range(24)))
    for q, ((d, i), (scan_d, scan_i)) in enumerate(answers):
        np.testing.assert_array_equal(scan_d, d)
        np.testing.assert_array_equal(d, np.asarray(want_d)[q])
        np.testing.assert_array_equal(i, np.asarray(want_i)[q])
        np.testing.assert_array_equal(i, scan_i)
        assert d.dtype == np.int32 and i.dtype == np.int64
    with pytest.raises(ValueError, match=r"k must be in \[1, 1500\]"):
        search(codes[0], 1501)


def test_concurrent_batches_are_exact():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (2000, 8), np.uint8)
    tables = MultiIndex.build(codes)
    batches = [rng.integers(0, 256, (40, 8), np.uint8) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda q: tables.search(q, 10), batches))
    for queries, (d, i) in zip(batches, results, strict=True):
        want_d, want_i = retrieval.hamming_topk(queries, codes, 10)
        np.testing.assert_array_equal(d, np.asarray(want_d))
        np.testing.assert_array_equal(i, np.asarray(want_i))
