"""The compiled CPU brute force behind :func:`jaxhash.retrieval.hamming_topk` (numba, extra
``search``): exact top k by Hamming distance, ties to the lower database index.

A linear scan, like FAISS's ``IndexBinaryFlat``, arranged for a CPU's caches and vector units:

* **Blocks.** Work items are (block of ``_QUERY_BLOCK`` queries, part of the database), taken
  one at a time by the threads of :mod:`jaxhash.kernels.numba_threads`, one per core (the
  compiled code releases the GIL; on shared cores this balances far better than numba's own
  parallel loops). Each part is read ``_CHUNK_ROWS`` rows
  at a time (64 KiB of 64-bit codes, held in the L1/L2 cache while every query of the block
  scans it).
* **Scan.** For each query and run of ``_RUN`` rows, one loop forms the XOR-popcount distances
  and their minimum without a branch, so the compiler vectorises it (``vpopcntq`` where AVX-512
  has it). Only when that minimum passes the query's threshold are the run's distances read
  again to collect its candidates; once the threshold has settled, that is rare.
* **Selection without a heap.** Each query keeps a buffer of candidates in database order and
  a threshold ``limit`` (a candidate enters only when ``d < limit``). A full buffer is cut to
  its best k by counting its distances (``K + 1`` values): with ``c`` the smallest distance at
  which at least k candidates lie at or below, everything below ``c`` stays and the first
  candidates at ``c`` in database order fill the rest; then ``limit = c``, since any later
  candidate at distance ``c`` has a larger index than the k kept. Kept in database order,
  the final k are sorted by distance with a stable counting sort: ties go to the lower index.
* **Parts.** With fewer query blocks than threads, the database is split into parts searched
  in parallel, and each query's per-part top k (in part order, so in index order) are merged
  by one more cut. Small searches (under ``_PARALLEL_PAIRS`` query-code pairs) run in the
  calling thread: waking threads costs more there.

Queries and codes are 64-bit words (codes padded with zero bytes to a multiple of 8 bytes; a
popcount of XOR does not see them).
"""

from __future__ import annotations

import numba
import numpy as np

from jaxhash.kernels.numba_threads import cpu_threads, run_items

_QUERY_BLOCK = 32  # queries per work item: each scans a cached chunk in turn
_CHUNK_ROWS = 8192  # rows held in cache while a query block scans them
_RUN = 64  # rows whose minimum distance is checked at once
_MIN_BUFFER = 256  # candidates collected beyond k before a cut


@numba.njit(inline="always")
def popcount64(x):
    # LLVM recognises this bit-parallel count as its ctpop intrinsic: popcnt, or vpopcntq in
    # vectorised loops.
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@numba.njit(inline="always")
def code_distance(db, r, queries, q):
    """Hamming distance between row ``r`` of ``db`` and row ``q`` of ``queries`` (64-bit words)."""
    d = 0
    for w in range(db.shape[1]):
        d += popcount64(db[r, w] ^ queries[q, w])
    return d


@numba.njit
def _cut(buf_d, buf_i, count, k, counts):
    """Keep the best ``k`` of ``buf_d[:count]`` (database order, kept in place); the new
    threshold ``c``: later candidates enter only below it."""
    counts[:] = 0
    for p in range(count):
        counts[buf_d[p]] += 1
    total = 0
    c = 0
    while total + counts[c] < k:
        total += counts[c]
        c += 1
    at_c = k - total  # how many of the candidates at distance c stay (the first ones)
    n = 0
    for p in range(count):
        d = buf_d[p]
        if d < c or (d == c and at_c > 0):
            if d == c:
                at_c -= 1
            buf_d[n] = d
            buf_i[n] = buf_i[p]
            n += 1
    return c


@numba.njit
def _scan_part(db, queries, self_ids, q0, q1, r0, r1, k, buf_d, buf_i, counts, out_d, out_i):
    """Top k of queries ``[q0, q1)`` over rows ``[r0, r1)`` into ``out_d/out_i[q0:q1]``,
    sorted by (distance, index)."""
    sentinel = 64 * db.shape[1] + 1
    nb = q1 - q0
    cap = buf_d.shape[1]
    width = db.shape[1]
    count = np.zeros(nb, np.int64)
    limit = np.full(nb, sentinel, np.int64)
    dist = np.empty(_RUN, np.int64)  # the distances of the last run
    flat = db.reshape(-1)  # one word a row when width == 1: the fastest loop
    for c0 in range(r0, r1, _CHUNK_ROWS):
        c1 = min(c0 + _CHUNK_ROWS, r1)
        for qi in range(nb):
            q = q0 + qi
            for s0 in range(c0, c1, _RUN):
                # Rows through a slice from 0: indices provably in range, so the loop
                # vectorises with plain loads (indexing db[r] directly gives gathers).
                run = db[s0 : min(s0 + _RUN, c1)]
                low = sentinel
                if width == 1:
                    qw = queries[q, 0]
                    words = flat[s0 : s0 + run.shape[0]]
                    for r in range(words.shape[0]):
                        d = popcount64(words[r] ^ qw)
                        dist[r] = d
                        low = min(low, d)
                else:
                    for r in range(run.shape[0]):
                        d = code_distance(run, r, queries, q)
                        dist[r] = d
                        low = min(low, d)
                if low >= limit[qi]:
                    continue
                for r in range(run.shape[0]):
                    d = dist[r]
                    if d < limit[qi] and s0 + r != self_ids[q]:
                        n = count[qi]
                        buf_d[qi, n] = d
                        buf_i[qi, n] = s0 + r
                        n += 1
                        if n == cap:
                            limit[qi] = _cut(buf_d[qi], buf_i[qi], n, k, counts)
                            n = k
                        count[qi] = n
    for qi in range(nb):
        n = count[qi]
        if n > k:
            _cut(buf_d[qi], buf_i[qi], n, k, counts)
            n = k
        _sorted_by_distance(buf_d[qi], buf_i[qi], n, counts, out_d[q0 + qi], out_i[q0 + qi])
        for p in range(n, k):  # a part can hold fewer than k rows
            out_d[q0 + qi, p] = sentinel
            out_i[q0 + qi, p] = -1


@numba.njit
def _sorted_by_distance(d, i, n, counts, out_d, out_i):
    """The first n of ``d, i`` (database order) stably sorted by distance (a counting sort)."""
    counts[:] = 0
    for p in range(n):
        counts[d[p] + 1] += 1
    for v in range(1, counts.shape[0]):
        counts[v] += counts[v - 1]
    for p in range(n):
        slot = counts[d[p]]
        counts[d[p]] += 1
        out_d[slot] = d[p]
        out_i[slot] = i[p]


@numba.njit(nogil=True, cache=True)
def _search_items(db, queries, self_ids, k, num_parts, first, last, out_d, out_i):
    """Work items ``[first, last)``: item ``b * num_parts + part`` is the top k of query block
    b over database part ``part``, into ``out_d/out_i [part, block's queries]``."""
    nq = queries.shape[0]
    n = db.shape[0]
    part_rows = (n + num_parts - 1) // num_parts
    cap = k + max(k, _MIN_BUFFER)
    counts = np.empty(64 * db.shape[1] + 3, np.int64)
    buf_d = np.empty((_QUERY_BLOCK, cap), np.int64)
    buf_i = np.empty((_QUERY_BLOCK, cap), np.int64)
    for item in range(first, last):
        b = item // num_parts
        part = item % num_parts
        q0 = b * _QUERY_BLOCK
        q1 = min(q0 + _QUERY_BLOCK, nq)
        r0 = part * part_rows
        r1 = min(r0 + part_rows, n)
        _scan_part(db, queries, self_ids, q0, q1, r0, r1, k, buf_d, buf_i, counts,
                   out_d[part], out_i[part])  # fmt: skip


@numba.njit(nogil=True, cache=True)
def _merge_parts(part_d, part_i, k, out_d, out_i):
    """Each query's best k of its parts' sorted top k (parts in index order)."""
    num_parts, nq, _ = part_d.shape
    bins = int(part_d.max()) + 3
    for q in range(nq):
        buf_d = np.empty(num_parts * k, np.int64)
        buf_i = np.empty(num_parts * k, np.int64)
        n = 0
        for part in range(num_parts):
            for p in range(k):
                if part_i[part, q, p] >= 0:
                    buf_d[n] = part_d[part, q, p]
                    buf_i[n] = part_i[part, q, p]
                    n += 1
        counts = np.empty(bins, np.int64)
        # Parts are listed in index order and sorted within: re-sort into database order first.
        order = np.argsort(buf_i[:n])
        buf_d[:n] = buf_d[:n][order]
        buf_i[:n] = buf_i[:n][order]
        _cut(buf_d, buf_i, n, k, counts)
        _sorted_by_distance(buf_d, buf_i, k, counts, out_d[q], out_i[q])


# Work items run in parallel threads from this many query-code pairs: below, handing them to
# threads costs more than it saves.
_PARALLEL_PAIRS = 1 << 22


def _num_parts(num_queries: int, rows: int, k: int) -> int:
    """Parts to split the database into: more than one only when query blocks alone would leave
    threads idle, each part at least a few chunks and 2k rows."""
    threads = cpu_threads()
    blocks = -(-num_queries // _QUERY_BLOCK)
    if blocks >= threads:
        return 1
    return max(1, min(-(-threads // blocks), rows // max(4 * _CHUNK_ROWS, 2 * k)))


def as_words(packed: np.ndarray) -> np.ndarray:
    """``uint8 [N, B] -> uint64 [N, ceil(B / 8)]``, zero bytes appended (a view when B is a
    multiple of 8 and the rows are contiguous)."""
    packed = np.ascontiguousarray(packed)
    width = packed.shape[1]
    if width % 8:
        packed = np.pad(packed, ((0, 0), (0, 8 - width % 8)))
    return packed.view(np.uint64)


def topk(
    queries: np.ndarray, database: np.ndarray, k: int, self_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k of packed codes ``uint8 [Q, B]`` against ``uint8 [N, B]`` (``k <= N``, or
    ``N - 1`` with ``self_ids``): ``(int32 [Q, k], int32 [Q, k])`` sorted by (distance, index).
    ``self_ids [Q]``: one row each query never returns (-1: none)."""
    q_words, db_words = as_words(queries), as_words(database)
    nq, n = len(q_words), len(db_words)
    self_ids = np.full(nq, -1, np.int64) if self_ids is None else np.asarray(self_ids, np.int64)
    num_parts = 1 if nq * n < _PARALLEL_PAIRS else _num_parts(nq, n, k)
    items = -(-nq // _QUERY_BLOCK) * num_parts
    out_d = np.empty((num_parts, nq, k), np.int64)
    out_i = np.empty((num_parts, nq, k), np.int64)
    args = (db_words, q_words, self_ids, k, num_parts)
    if nq * n < _PARALLEL_PAIRS:
        _search_items(*args, 0, items, out_d, out_i)
    else:  # a thread that the OS runs less (shared cores) takes fewer items
        run_items(lambda i: _search_items(*args, i, i + 1, out_d, out_i), items)
    if num_parts > 1:
        merged_d = np.empty((nq, k), np.int64)
        merged_i = np.empty((nq, k), np.int64)
        _merge_parts(out_d, out_i, k, merged_d, merged_i)
        return merged_d.astype(np.int32), merged_i.astype(np.int32)
    return out_d[0].astype(np.int32), out_i[0].astype(np.int32)
