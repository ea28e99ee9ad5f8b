"""The compiled exact Hamming top-k scan of a batch of queries (numba, extra ``search``).

Behind :class:`jaxhash.index_search.ScanSearch`, the search a server answers requests with.
The codes are uint64 words ``[W, N]`` (zero-padded to whole words, which leaves distances
unchanged). The database is read in blocks of ``_BLOCK`` rows; for each query of the batch a
vectorised loop computes the block's distances ``sum_w popcount(words[w] ^ query[w])`` and their
minimum, and only a block whose minimum beats the query's current k-th distance is walked row by
row, each better row inserted into a sorted top k. Rows arrive in ascending id, so a row tying
the k-th distance never enters and the insertion keeps equal distances in id order: the result
is sorted by (distance, id), as :func:`jaxhash.retrieval.hamming_topk` returns it. Once the
top k is small, nearly every block is skipped after its vectorised pass, so a query costs
about one popcount per word and row; the block stays in cache while every query of the batch
scans it, so the codes are read from memory once per batch.

Compiled with ``nogil=True``: a server's event loop keeps running while a batch is searched.
"""

from __future__ import annotations

import numba
import numpy as np
from numba.extending import intrinsic

_BLOCK = 2048  # rows scored at a time: 16 KiB of 64-bit codes, in L1 across the batch


@intrinsic
def _popcount(typingctx, x):
    """``llvm.ctpop`` of a uint64: one instruction, and vectorised inside loops (unlike the
    shift-and-mask form, which LLVM does not always recognise)."""
    if x != numba.types.uint64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return numba.types.uint64(numba.types.uint64), codegen


@numba.njit(nogil=True, cache=True)
def _topk(words, queries, k, out_d, out_i):  # pragma: no cover - compiled
    width, rows = words.shape
    distances = np.empty(_BLOCK, np.uint64)
    for start in range(0, rows, _BLOCK):
        n = min(_BLOCK, rows - start)
        for q in range(queries.shape[0]):
            best_d = out_d[q]
            best_i = out_i[q]
            for w in range(width - 1):  # all words but the last: accumulate
                qw = queries[q, w]
                if w == 0:
                    for r in range(n):
                        distances[r] = _popcount(words[0, start + r] ^ qw)
                else:
                    for r in range(n):
                        distances[r] += _popcount(words[w, start + r] ^ qw)
            qw = queries[q, width - 1]
            lowest = np.uint64(2**62)
            for r in range(n):  # the last word, fused with the block's minimum
                d = _popcount(words[width - 1, start + r] ^ qw)
                if width > 1:
                    d += distances[r]
                distances[r] = d
                lowest = min(lowest, d)
            worst = np.int64(best_d[k - 1])
            if np.int64(lowest) >= worst:
                continue
            for r in range(n):
                d = np.int64(distances[r])
                if d >= worst:
                    continue
                pos = k - 1
                while pos > 0 and best_d[pos - 1] > d:
                    best_d[pos] = best_d[pos - 1]
                    best_i[pos] = best_i[pos - 1]
                    pos -= 1
                best_d[pos] = d
                best_i[pos] = start + r
                worst = np.int64(best_d[k - 1])


def to_words(codes: np.ndarray) -> np.ndarray:
    """Packed uint8 codes ``[N, B]`` -> uint64 words ``[ceil(B / 8), N]``, zero-padded."""
    codes = np.asarray(codes, np.uint8)
    width = -(-codes.shape[1] // 8) * 8
    padded = np.zeros((codes.shape[0], width), np.uint8)
    padded[:, : codes.shape[1]] = codes
    return np.ascontiguousarray(padded.view(np.uint64).T)


def topk(words: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``(distances int32 [Q, k], ids int64 [Q, k])`` of the k nearest of ``words``
    (:func:`to_words` of the codes) to packed ``queries`` uint8 ``[Q, B]``, sorted by
    (distance, id); ``1 <= k <= N``."""
    out_d = np.full((len(queries), k), np.iinfo(np.int32).max, np.int32)
    out_i = np.full((len(queries), k), -1, np.int64)
    _topk(words, np.ascontiguousarray(to_words(queries).T), k, out_d, out_i)
    return out_d, out_i


__all__ = ["to_words", "topk"]
