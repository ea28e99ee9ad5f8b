"""One query at a time over a loaded image index: the search a server answers requests with.

:func:`searcher` is the seam: it takes an :class:`jaxhash.image_index.ImageIndex` and returns a
function ``search(query, k) -> (distances, ids)`` prepared once for that index: the index's
multi-index hash (:class:`MultiIndexSearch`, exact, :mod:`jaxhash.multi_index`) when it carries
one, else :class:`ScanSearch`, an exact brute-force scan.

:class:`ScanSearch` keeps the codes on the device as ``uint32`` words (zero-padded to whole
words, which leaves Hamming distances unchanged); per query one jitted XLA program computes
``popcount(words ^ query)`` summed over the words for every row (uint8 while the code length
allows), then NumPy finds the smallest distance ``t`` with at least ``k`` rows at ``<= t`` by
bisection on ``t`` (distances are at most the code length) and sorts only those rows. The
result equals :func:`jaxhash.retrieval.hamming_topk`'s: sorted by (distance, id). Both halves
release the GIL, so concurrent requests share the cores.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash.image_index import ImageIndex
from jaxhash.multi_index import MultiIndex

#: ``search(query uint8 [B], k) -> (distances int32 [k], ids int64 [k])``, sorted.
SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]


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
    """Exact Hamming k nearest codes of one query, ties to the lower id, by a full scan."""

    def __init__(self, codes: np.ndarray):
        """``codes``: packed uint8 ``[N, B]`` (``np.packbits`` layout)."""
        words = _words(codes)
        self.width = int(np.shape(codes)[1])
        self._words = jax.device_put(words)
        self._max_distance = 32 * words.shape[0]
        self._size = words.shape[1]
        self.distances(np.zeros(self.width, np.uint8))  # compiled now, not on a first request

    def __len__(self) -> int:
        return self._size

    def distances(self, query: np.ndarray) -> np.ndarray:
        """``[N]`` Hamming distance of every row to ``query`` (packed uint8 ``[B]``)."""
        q = _words(np.asarray(query, np.uint8).reshape(1, self.width))[:, 0]
        return np.asarray(_distances(self._words, q))

    def __call__(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 [k], ids int64 [k])`` of the ``k`` nearest rows (``1 <= k <=
        N``), sorted by (distance, id)."""
        if not 1 <= k <= len(self):
            raise ValueError(f"k must be in [1, {len(self)}]; got {k}.")
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
        if not 1 <= k <= len(self):
            raise ValueError(f"k must be in [1, {len(self)}]; got {k}.")
        query = np.asarray(query, np.uint8).reshape(1, self.width)
        distances, ids = self._tables.search(query, k)
        return distances[0], ids[0].astype(np.int64)


def searcher(index: ImageIndex) -> SearchFn:
    """The search for ``index``, prepared once (see the module docstring): its multi-index
    when it has one (every index :func:`jaxhash.image_index.load_index` reads), else a scan."""
    if index.multi_index is not None:
        return MultiIndexSearch(index.multi_index)
    return ScanSearch(index.codes)


__all__ = ["MultiIndexSearch", "ScanSearch", "SearchFn", "searcher"]
