"""jaxhash.index_search in batches: ``search_many`` of the scan (compiled and XLA) and of the
multi-index equals ``retrieval.hamming_topk``; the searcher chosen by timing is one of them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from test_image_index import index_of_codes

from jaxhash import index_search, retrieval
from jaxhash.multi_index import MultiIndex


def _codes(rows=2500, width=3, seed=0):
    codes = np.random.default_rng(seed).integers(0, 256, (rows, width), np.uint8)
    codes[::9] = codes[0]  # ties
    return codes


def _searches(codes):
    searches = {
        "scan (XLA)": index_search.ScanSearch(codes, compiled=False),
        "multi-index": index_search.MultiIndexSearch(MultiIndex.build(codes)),
    }
    try:
        searches["scan (compiled)"] = index_search.ScanSearch(codes, compiled=True)
    except ImportError:  # numba is the extra "search"
        pass
    return searches


def test_search_many_equals_hamming_topk_and_one_query_at_a_time():
    codes = _codes()
    queries = np.concatenate([codes[:6], np.random.default_rng(1).integers(0, 256, (5, 3))])
    queries = queries.astype(np.uint8)
    want_d, want_i = (np.asarray(a) for a in retrieval.hamming_topk(queries, codes, 40))
    for name, search in _searches(codes).items():
        distances, ids = search.search_many(queries, 40)
        np.testing.assert_array_equal(distances, want_d, err_msg=name)
        np.testing.assert_array_equal(ids, want_i, err_msg=name)
        assert distances.dtype == np.int32 and ids.dtype == np.int64, name
        alone_d, alone_i = search(queries[3], 40)
        np.testing.assert_array_equal(alone_d, want_d[3], err_msg=name)
        np.testing.assert_array_equal(alone_i, want_i[3], err_msg=name)
        with pytest.raises(ValueError, match=r"k must be in \[1, 2500\]; got 0"):
            search.search_many(queries, 0)


def test_batch_search_of_a_plain_function_asks_it_once_per_query():
    codes = _codes(300, 2)
    scan = index_search.ScanSearch(codes)
    calls = []

    def one(query, k):
        calls.append(k)
        return scan(query, k)

    distances, ids = index_search.batch_search(one)(codes[:4], 7)
    want_d, want_i = retrieval.hamming_topk(codes[:4], codes, 7)
    np.testing.assert_array_equal(distances, np.asarray(want_d))
    np.testing.assert_array_equal(ids, np.asarray(want_i))
    assert calls == [7] * 4
    assert index_search.batch_search(scan) == scan.search_many


def test_fastest_searcher_times_both_and_answers_exactly(caplog):
    codes = _codes()
    with caplog.at_level(logging.INFO, logger="jaxhash.index_search"):
        search = index_search.fastest_searcher(index_of_codes(codes, MultiIndex.build(codes)))
    assert isinstance(search, index_search.ScanSearch | index_search.MultiIndexSearch)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "jaxhash.index_search"]
    assert line.startswith("search by ") and "by the scan" in line and "by the multi-index" in line
    want_d, want_i = retrieval.hamming_topk(codes[:5], codes, 12)
    distances, ids = search.search_many(codes[:5], 12)
    np.testing.assert_array_equal(distances, np.asarray(want_d))
    np.testing.assert_array_equal(ids, np.asarray(want_i))
    without = index_search.fastest_searcher(index_of_codes(codes, None))
    assert isinstance(without, index_search.ScanSearch)  # nothing else to time
