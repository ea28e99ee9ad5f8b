"""jaxhash.query_batching: queries that wait together are searched in one batch, each answer
equals the query searched alone, a lone query is searched alone at once, and a failing query
fails alone."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from jaxhash import index_search, retrieval
from jaxhash.query_batching import QueryBatcher

CODES = np.random.default_rng(0).integers(0, 256, (700, 2), np.uint8)


class _Recording:
    """A batched scan of CODES that records its batch sizes; ``gate``, when given, holds the
    first batch until it is set (so that queries queue behind it)."""

    def __init__(self, gate: threading.Event | None = None, poison: int | None = None):
        self.scan = index_search.ScanSearch(CODES)
        self.sizes: list[int] = []
        self.gate, self.poison = gate, poison
        self.started = threading.Event()

    def __call__(self, queries, k):
        self.sizes.append(len(queries))
        self.started.set()
        if self.gate is not None and len(self.sizes) == 1:
            assert self.gate.wait(30)
        if self.poison is not None and (queries[:, 0] == self.poison).any():
            raise RuntimeError("poisoned query")
        return self.scan.search_many(queries, k)


def _batcher(search, max_batch=64):
    return QueryBatcher(search, width=2, size=len(CODES), max_batch=max_batch)


async def _queue_behind_a_held_batch(batcher, search, gate, requests):
    """Send one query, wait until its batch is held at the gate, queue ``requests`` (pairs of
    code row and k), release the gate; the answers of the queued requests."""
    first = asyncio.ensure_future(batcher.search(CODES[0], 3))
    while not search.started.is_set():
        await asyncio.sleep(0.001)
    tasks = [asyncio.ensure_future(batcher.search(CODES[row], k)) for row, k in requests]
    while batcher._queue.qsize() < len(requests):
        await asyncio.sleep(0.001)
    gate.set()
    await first
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_waiting_queries_share_one_batch_and_keep_their_own_answers():
    gate = threading.Event()
    search = _Recording(gate)
    batcher = _batcher(search)
    requests = [(row, 1 + row % 37) for row in range(1, 41)]  # 40 queries, k from 1 to 37
    answers = asyncio.run(_queue_behind_a_held_batch(batcher, search, gate, requests))
    batcher.close()
    assert search.sizes == [1, 40]
    want_d, want_i = retrieval.hamming_topk(CODES[1:41], CODES, 37)
    for (row, k), (distances, ids) in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(distances, np.asarray(want_d)[row - 1, :k])
        np.testing.assert_array_equal(ids, np.asarray(want_i)[row - 1, :k])


def test_batches_are_at_most_max_batch():
    gate = threading.Event()
    search = _Recording(gate)
    batcher = _batcher(search, max_batch=4)
    answers = asyncio.run(
        _queue_behind_a_held_batch(batcher, search, gate, [(r, 5) for r in range(10)])
    )
    batcher.close()
    assert search.sizes == [1, 4, 4, 2] and len(answers) == 10


def test_a_lone_query_is_searched_alone():
    search = _Recording()
    batcher = _batcher(search)

    async def one_after_another():
        return [await batcher.search(CODES[row], 4) for row in range(5)]

    answers = asyncio.run(one_after_another())
    batcher.close()
    assert search.sizes == [1] * 5  # nobody else waits, so each is searched on arrival
    want_d, want_i = retrieval.hamming_topk(CODES[:5], CODES, 4)
    np.testing.assert_array_equal(np.stack([d for d, _ in answers]), np.asarray(want_d))
    np.testing.assert_array_equal(np.stack([i for _, i in answers]), np.asarray(want_i))


def test_a_failing_query_fails_alone():
    gate = threading.Event()
    poison = int(CODES[7, 0])
    rows = [*[r for r in range(1, 30) if CODES[r, 0] != poison][:12], 7]
    search = _Recording(gate, poison=poison)
    batcher = _batcher(search)
    answers = asyncio.run(_queue_behind_a_held_batch(batcher, search, gate, [(r, 6) for r in rows]))
    batcher.close()
    assert isinstance(answers[-1], RuntimeError) and "poisoned" in str(answers[-1])
    want_d, want_i = retrieval.hamming_topk(CODES[rows[:-1]], CODES, 6)
    for q, (distances, ids) in enumerate(answers[:-1]):
        np.testing.assert_array_equal(distances, np.asarray(want_d)[q])
        np.testing.assert_array_equal(ids, np.asarray(want_i)[q])
    assert search.sizes[:2] == [1, 13]  # the batch failed, then each query was searched alone


def test_a_cancelled_query_does_not_stop_the_others():
    gate = threading.Event()
    search = _Recording(gate)
    batcher = _batcher(search)

    async def cancel_one():
        first = asyncio.ensure_future(batcher.search(CODES[0], 3))
        while not search.started.is_set():
            await asyncio.sleep(0.001)
        gone = asyncio.ensure_future(batcher.search(CODES[1], 3))
        kept = asyncio.ensure_future(batcher.search(CODES[2], 3))
        while batcher._queue.qsize() < 2:
            await asyncio.sleep(0.001)
        gone.cancel()
        gate.set()
        await first
        return await kept, await batcher.search(CODES[3], 3)

    kept, after = asyncio.run(cancel_one())
    batcher.close()
    want_d, want_i = retrieval.hamming_topk(CODES[[2, 3]], CODES, 3)
    np.testing.assert_array_equal(kept[1], np.asarray(want_i)[0])
    np.testing.assert_array_equal(after[0], np.asarray(want_d)[1])


def test_bad_queries_are_refused_before_any_search():
    search = _Recording()
    batcher = _batcher(search)

    async def ask(query, k):
        return await batcher.search(query, k)

    with pytest.raises(ValueError, match=r"packed uint8 code of 2 bytes; got uint8 \(3,\)"):
        asyncio.run(ask(np.zeros(3, np.uint8), 1))
    with pytest.raises(ValueError, match=r"packed uint8 code of 2 bytes; got int64"):
        asyncio.run(ask(np.zeros(2, np.int64), 1))
    with pytest.raises(ValueError, match=r"k must be in \[1, 700\]; got 701"):
        asyncio.run(ask(CODES[0], 701))
    with pytest.raises(ValueError, match=r"max_batch must be a positive int; got 0"):
        _batcher(search, max_batch=0)
    assert search.sizes == []
