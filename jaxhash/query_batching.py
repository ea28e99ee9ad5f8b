"""Coalescing concurrent searches: requests that wait together are answered by one batched search.

A server answering each request with its own scan of N codes saturates at about one scan per
request and core; requests that arrive meanwhile queue behind each other. :class:`QueryBatcher`
instead hands every query to one worker thread, which takes all the queries waiting (at most
``max_batch``) and answers them with one ``search_many`` call: a batched scan reads the codes
once for the whole batch (:mod:`jaxhash.kernels.hamming_scan`), and one thread hop and one
wake-up of the event loop serve the batch instead of one per request. This is the dynamic
batching of inference servers (e.g. NVIDIA Triton's dynamic batcher, TensorFlow Serving's
batching) without a batching delay: a query that finds the worker idle is searched at once,
alone, so a lone client waits no longer than before; batches form only while a search is
already running, that is under load, and grow with it.

Answers are exact and equal to one search per query: the batch is searched for the largest k
asked and each query keeps its own first k, which are its k nearest since results are sorted by
(distance, id), a strict order. A batch whose search raises is searched again one query at a
time, so a failing query fails alone, with its own error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading

import numpy as np

from jaxhash.index_search import BatchSearchFn

_STOP = None  # put on the queue by close()


@dataclasses.dataclass
class _Request:
    query: np.ndarray
    k: int
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class QueryBatcher:
    """Answers ``await batcher.search(query, k)`` from asyncio code with batched searches run
    by one worker thread (see the module docstring).

    ``search_many(queries uint8 [Q, B], k) -> (distances [Q, k], ids [Q, k])`` sorted by
    (distance, id), over ``size`` codes of ``width`` bytes; ``max_batch``: the most queries
    searched at once (1: no batching, every query searched alone, in arrival order).
    """

    def __init__(self, search_many: BatchSearchFn, *, width: int, size: int, max_batch: int = 64):
        if not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be a positive int; got {max_batch!r}.")
        self.search_many, self.width, self.size = search_many, width, size
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0  # searches run, for tests and logs
        self.largest_batch = 0

    async def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [k], ids int64 [k])`` of the ``k`` nearest codes to packed
        ``query`` (uint8 ``[B]``); a ValueError at once for a bad query or k."""
        query = np.asarray(query)
        if query.dtype != np.uint8 or query.shape != (self.width,):
            raise ValueError(
                f"a query is a packed uint8 code of {self.width} bytes; got {query.dtype} "
                f"{query.shape}."
            )
        if not isinstance(k, int | np.integer) or not 1 <= k <= self.size:
            raise ValueError(f"k must be in [1, {self.size}]; got {k!r}.")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_worker()
        self._queue.put(_Request(query, int(k), future, loop))
        return await future

    def close(self) -> None:
        """Stop the worker once the queries already queued are answered."""
        if self._worker is not None:
            self._queue.put(_STOP)
            self._worker.join()
            self._worker = None

    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._work, name="jaxhash-query-batcher", daemon=True
                    )
                    self._worker.start()

    def _work(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]  # blocks while idle: no batching delay
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [request for request in batch if request is not _STOP]
            if batch:
                self._deliver(batch, self._answer(batch))

    def _answer(self, batch: list[_Request]) -> list:
        """Per request ``(distances, ids)`` or the exception its search raised."""
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        k = max(request.k for request in batch)
        try:
            distances, ids = self.search_many(np.stack([r.query for r in batch]), k)
        except Exception as error:  # handed to the request(s) that caused it, not swallowed
            if len(batch) == 1:
                return [error]
            return [self._answer([request])[0] for request in batch]
        return [(distances[j, : r.k], ids[j, : r.k]) for j, r in enumerate(batch)]

    @staticmethod
    def _deliver(batch: list[_Request], answers: list) -> None:
        """Resolve the futures, one event-loop wake-up per loop and batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for request, answer in zip(batch, answers, strict=True):
            by_loop.setdefault(request.loop, []).append((request.future, answer))
        for loop, resolved in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, resolved)
            except RuntimeError:  # that loop is closed: nobody waits for these answers
                pass


def _resolve(resolved: list) -> None:
    for future, answer in resolved:
        if future.done():  # cancelled: the client went away
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)


__all__ = ["QueryBatcher"]
