"""One query at a time over a loaded image index: the search a server answers requests with.

:func:`searcher` is the seam: it takes an :class:`jaxhash.image_index.ImageIndex` and returns a
function ``search(query, k) -> (distances, ids)`` prepared once for that index. Today that is
:class:`ScanSearch`, an exact brute-force scan; an index that carries a faster structure can be
given its own search here without the server changing.

:class:`ScanSearch` keeps the codes as ``uint64`` words (zero-padded to whole words, which
leaves Hamming distances unchanged) and per query does ``popcount(words ^ query)`` over all rows
(NumPy, which releases the GIL, so concurrent requests use several cores), then finds the
smallest distance ``t`` with at least ``k`` rows at ``<= t`` by bisection on ``t`` (distances
are at most the code length) and sorts only those rows. The result equals
:func:`jaxhash.retrieval.hamming_topk`'s: sorted by (distance, id).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxhash.image_index import ImageIndex

#: ``search(query uint8 [B], k) -> (distances int32 [k], ids int64 [k])``, sorted.
SearchFn = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
_BYTE_COUNTS = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (``np.bitwise_count`` where NumPy has it, >= 2.0)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_COUNTS[x[..., None].view(np.uint8)].sum(-1, dtype=np.uint8)


def _words(packed: np.ndarray) -> np.ndarray:
    """uint8 ``[N, B]`` packed codes -> uint64 ``[W, N]`` words, ``W = ceil(B / 8)``."""
    packed = np.asarray(packed, np.uint8)
    width = -(-packed.shape[1] // 8) * 8
    padded = np.zeros((packed.shape[0], width), np.uint8)
    padded[:, : packed.shape[1]] = packed
    return np.ascontiguousarray(padded.view(np.uint64).T)


class ScanSearch:
    """Exact Hamming k nearest codes of one query, ties to the lower id, by a NumPy scan."""

    def __init__(self, codes: np.ndarray):
        """``codes``: packed uint8 ``[N, B]`` (``np.packbits`` layout)."""
        self.width = int(np.shape(codes)[1])
        self._words = _words(codes)
        self._max_distance = 64 * self._words.shape[0]

    def __len__(self) -> int:
        return self._words.shape[1]

    def distances(self, query: np.ndarray) -> np.ndarray:
        """uint16 ``[N]``: Hamming distance of every row to ``query`` (packed uint8 ``[B]``)."""
        q = _words(np.asarray(query, np.uint8).reshape(1, self.width))[:, 0]
        dist = _popcount(self._words[0] ^ q[0]).astype(np.uint16)
        for w in range(1, len(q)):
            dist += _popcount(self._words[w] ^ q[w])
        return dist

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


def searcher(index: ImageIndex) -> SearchFn:
    """The search for ``index``, prepared once (see the module docstring)."""
    return ScanSearch(index.codes)


__all__ = ["ScanSearch", "SearchFn", "searcher"]
