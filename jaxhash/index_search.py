"""Queries over a loaded image index, one or a batch at a time: the search a server answers
requests with.

:func:`searcher` is the seam: it takes an :class:`jaxhash.image_index.ImageIndex` and returns a
function ``search(query, k) -> (distances, ids)`` prepared once for that index: the index's
multi-index hash (:class:`MultiIndexSearch`, exact, :mod:`jaxhash.multi_index`) when it carries
one, else :class:`ScanSearch`, an exact brute-force scan. Both also answer a batch of queries
at once (``search_many``; :func:`batch_search` gives it for any search function), which is how
a server coalesces concurrent requests (:mod:`jaxhash.query_batching`); :func:`fastest_searcher`
measures the CPU time of both on a batch of the index's own codes and keeps the cheaper, since
which one wins depends on how the codes spread (multi-index hashing is sublinear when near
neighbours are close, and probes many buckets when they are far, as for uniformly random codes).

:class:`ScanSearch` runs the compiled scan of :mod:`jaxhash.kernels.hamming_scan` when numba is
installed (extras ``search``, ``serve``): one pass over the codes per batch, GIL released. Without
numba it keeps the codes on the device as ``uint32`` words (zero-padded to whole words, which
leaves Hamming distances unchanged); per query one jitted XLA program computes
``popcount(words ^ query)`` summed over the words for every row (uint8 while the code length
allows), then NumPy finds the smallest distance ``t`` with at least ``k`` rows at ``<= t`` by
bisection on ``t`` (distances are at most the code length) and sorts only those rows. Every
path returns what :func:`jaxhash.retrieval.hamming_topk` returns: sorted by (distance, id).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash.image_index import ImageIndex
from jaxhash.multi_index import MultiIndex

log = logging.getLogger(__name__)

#: ``search(query uint8 [B], k) -> (distances int32 [k], ids int64 [k])``, sorted.
SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
#: ``search_many(queries uint8 [Q, B], k) -> (distances int32 [Q, k], ids int64 [Q, k])``.
BatchSearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _compiled_scan():
    """:mod:`jaxhash.kernels.hamming_scan`, or None without numba."""
    try:
        from jaxhash.kernels import hamming_scan
    except ImportError:
        return None
    return hamming_scan


def _check_k(k: int, size: int) -> None:
    if not 1 <= k <= size:
        raise ValueError(f"k must be in [1, {size}]; got {k}.")


def _words(packed: np.ndarray) -> np.ndarray:
    """uint8 ``[N, B]`` packed codes -> uint32 ``[W, N]`` words, ``W = ceil(B / 4)``."""
    packed = np.asarray(packed, np.uint8)
    width = -(-packed.shape[1] // 4) * 4
    padded = np.zeros((packed.shape[0], width), np.uint8)
    padded[:, : packed.shape[1]] = packed
    return np.ascontiguousarray(padded.view(np.uint32).T)


@jax.jit
def _distances(words: jax.Array, query: jax.Array) -> jax.Array:
    """``[N]`` Hamming distances of the rows of ``words`` (uint32 ``[W, N]``) to ``query``
    (``[W]``), uint8 when ``32 W <= 255``, else uint16."""
    dtype = jnp.uint8 if 32 * words.shape[0] <= 255 else jnp.uint16
    bits = lax.population_count(words ^ query[:, None]).astype(dtype)
    return jnp.sum(bits, axis=0, dtype=dtype)


class ScanSearch:
    """Exact Hamming k nearest codes of a query, ties to the lower id, by a full scan."""

    def __init__(self, codes: np.ndarray, *, compiled: bool | None = None):
        """``codes``: packed uint8 ``[N, B]`` (``np.packbits`` layout). ``compiled``: the numba
        scan (default: when numba is installed) or the XLA one (False)."""
        self.width = int(np.shape(codes)[1])
        self._size = int(np.shape(codes)[0])
        kernel = _compiled_scan() if compiled is not False else None
        if compiled and kernel is None:
            raise ImportError(
                "ScanSearch(compiled=True) needs numba: pip install 'jaxhash[search]'."
            )
        self._kernel = kernel
        if kernel is not None:
            # Padded once to whole 64-bit words (the kernel pads the queries alike): each
            # batch then reads the codes as a view, never a copy.
            codes = np.asarray(codes, np.uint8)
            self._codes = np.ascontiguousarray(np.pad(codes, ((0, 0), (0, -self.width % 8))))
            self.search_many(np.zeros((1, self.width), np.uint8), 1)  # compiled now
            return
        words = _words(codes)
        self._words = jax.device_put(words)
        self._max_distance = 32 * words.shape[0]
        self.distances(np.zeros(self.width, np.uint8))  # compiled now, not on a first request

    def __len__(self) -> int:
        return self._size

    def distances(self, query: np.ndarray) -> np.ndarray:
        """``[N]`` Hamming distance of every row to ``query`` (packed uint8 ``[B]``; XLA)."""
        if self._kernel is not None:
            raise ValueError("distances() is the XLA scan's: build ScanSearch(compiled=False).")
        q = _words(np.asarray(query, np.uint8).reshape(1, self.width))[:, 0]
        return np.asarray(_distances(self._words, q))

    def __call__(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [k], ids int64 [k])`` of the ``k`` nearest rows (``1 <= k <=
        N``), sorted by (distance, id)."""
        _check_k(k, len(self))
        if self._kernel is not None:
            distances, ids = self.search_many(np.asarray(query).reshape(1, self.width), k)
            return distances[0], ids[0]
        dist = self.distances(query)
        low, high = 0, self._max_distance  # smallest t with count(dist <= t) >= k
        while low < high:
            mid = (low + high) // 2
            if np.count_nonzero(dist <= mid) >= k:
                high = mid
            else:
                low = mid + 1
        ids = np.flatnonzero(dist <= low)
        order = np.argsort(dist[ids], kind="stable")[:k]  # ids ascending: ties to the lower id
        ids = ids[order]
        return dist[ids].astype(np.int32), ids.astype(np.int64)

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [Q, k], ids int64 [Q, k])`` of packed ``queries [Q, B]``: one
        pass over the codes for the whole batch (compiled), else one scan per query."""
        _check_k(k, len(self))
        queries = np.asarray(queries, np.uint8).reshape(-1, self.width)
        if self._kernel is not None:
            distances, ids = self._kernel.topk(queries, self._codes, k)
            return distances, ids.astype(np.int64)
        return _stack([self(query, k) for query in queries], k)


def _stack(answers: list, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query ``(distances [k], ids [k])`` -> ``(int32 [Q, k], int64 [Q, k])``."""
    distances = np.array([d for d, _ in answers], np.int32).reshape(-1, k)
    return distances, np.array([i for _, i in answers], np.int64).reshape(-1, k)


class MultiIndexSearch:
    """Exact Hamming k nearest codes of one query, ties to the lower id, by the index's
    multi-index hash (:mod:`jaxhash.multi_index`; same answers as :class:`ScanSearch`)."""

    def __init__(self, tables: MultiIndex):
        self._tables = tables
        self.width = tables.bits // 8
        self(np.zeros(self.width, np.uint8), 1)  # compiled now (numba), not on a first request

    def __len__(self) -> int:
        return len(self._tables)

    def __call__(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [k], ids int64 [k])`` of the ``k`` nearest rows (``1 <= k <=
        N``), sorted by (distance, id)."""
        distances, ids = self.search_many(np.asarray(query).reshape(1, self.width), k)
        return distances[0], ids[0]

    def search_many(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [Q, k], ids int64 [Q, k])`` of packed ``queries [Q, B]``."""
        _check_k(k, len(self))
        queries = np.asarray(queries, np.uint8).reshape(-1, self.width)
        distances, ids = self._tables.search(queries, k)
        return distances, ids.astype(np.int64)


def searcher(index: ImageIndex) -> SearchFn:
    """The search for ``index``, prepared once (see the module docstring): its multi-index
    when it has one (every index :func:`jaxhash.image_index.load_index` reads), else a scan."""
    if index.multi_index is not None:
        return MultiIndexSearch(index.multi_index)
    return ScanSearch(index.codes)


def batch_search(search: SearchFn) -> BatchSearchFn:
    """``search``'s own ``search_many``, or one call of ``search`` per query."""
    many = getattr(search, "search_many", None)
    if many is not None:
        return many
    return lambda queries, k: _stack([search(query, k) for query in queries], k)


def _cpu_seconds(search: BatchSearchFn, queries: np.ndarray, k: int, repeats: int = 3) -> float:
    """The least CPU time (all the process's threads) of ``repeats`` runs of one batch: under
    load a server's throughput is bounded by the CPU a search takes, not by its latency alone
    (the multi-index runs a batch on every core, the scan on one)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        search(queries, k)
        best = min(best, time.process_time() - started)
    return best


def fastest_searcher(index: ImageIndex, *, k: int = 10, sample: int = 64) -> SearchFn:
    """The cheaper on ``index`` of its multi-index search and the scan: the one that took less
    CPU time for a batch of ``sample`` of its own codes (evenly spaced rows, ``k`` nearest
    each); the scan when the index has no multi-index. Both are exact, so the choice changes
    speed, never answers."""
    scan = ScanSearch(index.codes)
    if index.multi_index is None:
        return scan
    tables = MultiIndexSearch(index.multi_index)
    rows = np.linspace(0, len(index) - 1, min(sample, len(index))).astype(np.int64)
    queries, k = np.asarray(index.codes)[rows], min(k, len(index))
    times = {
        name: _cpu_seconds(s.search_many, queries, k)
        for name, s in (("scan", scan), ("multi-index", tables))
    }
    chosen = min(times, key=times.get)
    log.info(
        "search by %s: %d queries took %.1f ms of CPU by the scan, %.1f ms by the multi-index",
        chosen,
        len(queries),
        1e3 * times["scan"],
        1e3 * times["multi-index"],
    )
    return scan if chosen == "scan" else tables


__all__ = [
    "BatchSearchFn",
    "MultiIndexSearch",
    "ScanSearch",
    "SearchFn",
    "batch_search",
    "fastest_searcher",
    "searcher",
]
