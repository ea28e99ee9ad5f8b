"""Exact Hamming search by multi-index hashing (Norouzi, Punjani & Fleet, "Fast search in Hamming
space with multi-index hashing", CVPR 2012; "Fast exact search in Hamming space with multi-index
hashing", TPAMI 2014).

Each K-bit code is cut into m disjoint substrings, one hash table per substring. By pigeonhole,
a code within Hamming distance r of the query matches it within ``floor(r / m)`` bits in at
least one substring, so probing every table with all keys within radius rho of the query's
substring finds every code within ``m * rho + m - 1``. :meth:`MultiIndex.search` grows rho
until the k-th best distance found is certain, which returns the exact top k; tables are probed
in order (rho, table j), and after table j at radius rho every code within ``m * rho + j`` has
been seen (a code not seen differs by more than rho bits in tables ``<= j`` and by at least rho
in the others). A candidate found again in a later table is recognised without any state: it
is new only if no earlier (rho', j') probe could have reached it (its substring distances tell).

**Choices.** Substrings of about the paper's s = log2 N bits, where a bucket holds about one
code: ``m = ceil(K / min(floor(log2 N), 32))`` tables, at most ``K / 16`` (the uint32 id arrays
then stay within twice the packed codes). K is split as evenly as possible into substrings
``[start_j, start_j + K_j)``; table j indexes their first ``s_j = min(K_j, floor(log2 N), 32,
s_mem)`` bits, ``s_mem`` keeping the tables within ``MEMORY_BUDGET`` (2.5) times the packed
codes for K >= 16. Pigeonhole holds for any disjoint bit sets, so bits left out cost speed,
never exactness; they are left out only for small N or where the ``K / 16`` cap binds. m is
rounded up rather than to the nearest (the paper's ``K / log2 N``): on 64-bit codes at 10^6,
3 substrings would each lose 2-3 bits to the cap, and 4 full ones searched faster
(benchmarks/RESULTS.md).

**Layout** (no Python object per code): the index keeps the codes sorted by their table-0 key
(``sorted_codes``; ``ids[0]``, uint32 [N], names the database row of each), so that table 0's
bucket of a key is the contiguous slice ``sorted_codes[offsets[0][key] : offsets[0][key + 1]]``
(uint32 offsets, direct addressing) and is read sequentially. For the other tables ``ids[j]``
lists positions in ``sorted_codes`` sorted by their table-j key, and the bucket is
``ids[j][offsets[j][key] : offsets[j][key + 1]]``. Scoring a candidate reads its code, so the
tables beyond the first cost a random memory access per candidate, the first a sequential
read (benchmarks/RESULTS.md measures the difference). Memory:
``4 m N + 4 sum_j 2^s_j`` bytes of tables beside the ``N K / 8`` of the codes.

Results equal :func:`jaxhash.retrieval.hamming_topk`'s: sorted by (distance, database index).
Queries run on the CPU, vectorised over queries with NumPy, or one thread per query in the
compiled kernel of :mod:`jaxhash.kernels.multi_index_probe` (numba, extra ``search``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import math

import numpy as np

from jaxhash.retrieval import check_k
from jaxhash.search.packing import check_packed

IMPLS = ("auto", "numpy", "numba")
MEMORY_BUDGET = 2.5  # tables at most this many times the packed codes (K >= 16)
_MAX_SUBSTRING = 32  # keys are uint32
_PROBE_BUDGET = 1 << 18  # probes per vectorised NumPy step ...
_CANDIDATE_BUDGET = 1 << 20  # ... and expected candidates (bounds its temporary arrays)
_KEY_CHUNK = 1 << 22  # rows per step when computing substring keys


def choose_substrings(num_bits: int, num_rows: int, num_tables: int | None = None):
    """``(starts, lengths)`` int64 ``[m]`` of the indexed substrings (see the module docstring).

    ``m = ceil(K / min(floor(log2 N), 32))`` clipped to ``[1, max(1, K // 16)]`` unless
    ``num_tables`` is given; ``lengths[j] = min(K_j, floor(log2 N), 32, s_mem)`` with ``K_j``
    the even split of K bits and ``s_mem`` the longest substring whose directories fit beside
    the ids in ``MEMORY_BUDGET`` times the packed codes (for K >= 16).
    """
    cap = max(1, min(_MAX_SUBSTRING, math.floor(math.log2(max(num_rows, 2)))))
    if num_tables is None:
        num_tables = min(-(-num_bits // cap), max(1, num_bits // 16))
    if not isinstance(num_tables, int) or not 1 <= num_tables <= num_bits:
        raise ValueError(f"num_tables must be an int in [1, {num_bits}]; got {num_tables!r}.")
    spare = (MEMORY_BUDGET * num_bits / 8 - 4 * num_tables) * num_rows  # bytes for directories
    entries = spare / (4 * num_tables) if spare > 0 else num_rows / 2
    cap = max(1, min(cap, math.floor(math.log2(max(entries - 1, 2)))))
    split = [num_bits // num_tables + (j < num_bits % num_tables) for j in range(num_tables)]
    starts = np.cumsum([0, *split[:-1]])
    lengths = np.minimum(split, cap)
    return starts.astype(np.int64), lengths.astype(np.int64)


def substring_keys(codes: np.ndarray, start: int, length: int) -> np.ndarray:
    """Bits ``[start, start + length)`` of each packed code as an integer, first bit most
    significant: ``uint32 [N]`` (``length <= 32``)."""
    first, last = start // 8, (start + length - 1) // 8
    shift = np.uint64(8 * (last + 1) - (start + length))
    mask = np.uint64((1 << length) - 1)
    keys = np.empty(codes.shape[0], np.uint32)
    for lo in range(0, codes.shape[0], _KEY_CHUNK):
        acc = np.zeros(min(_KEY_CHUNK, codes.shape[0] - lo), np.uint64)
        for byte in range(first, last + 1):
            acc = (acc << np.uint64(8)) | codes[lo : lo + _KEY_CHUNK, byte]
        keys[lo : lo + _KEY_CHUNK] = (acc >> shift) & mask
    return keys


@functools.lru_cache(maxsize=256)
def weight_masks(length: int, weight: int) -> np.ndarray:
    """All ``length``-bit integers with exactly ``weight`` bits set, ascending: uint32
    ``[C(length, weight)]`` (the probes at radius ``weight`` are ``key ^ masks``)."""
    if weight == 0:
        return np.zeros(1, np.uint32)
    if weight > length:
        return np.zeros(0, np.uint32)
    top = np.uint32(1 << (length - 1))
    return np.concatenate(
        [weight_masks(length - 1, weight), weight_masks(length - 1, weight - 1) | top]
    )


def code_words(codes: np.ndarray) -> np.ndarray:
    """Packed codes as uint64 words ``[N, B / 8]`` when B is a multiple of 8, else the bytes
    (popcounts of XORs do not depend on the grouping)."""
    codes = np.ascontiguousarray(codes)
    return codes.view(np.uint64) if codes.shape[1] % 8 == 0 else codes


_BYTE_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    """Bits set per row of ``x [R, W]`` (``np.bitwise_count`` from NumPy 2.0, else a table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).sum(axis=1, dtype=np.int64)
    return _BYTE_POPCOUNT[np.ascontiguousarray(x).view(np.uint8)].sum(axis=1, dtype=np.int64)


@dataclasses.dataclass(frozen=True, eq=False)
class MultiIndex:
    """Multi-index hash tables over packed codes (module docstring); build with :meth:`build`.

    Attributes:
      sorted_codes: uint8 ``[N, B]`` packed codes (``np.packbits`` layout) sorted by their
        table-0 key (stably); :attr:`codes` gives them in database order.
      bits: code length K (``8 * B``).
      starts, lengths: int64 ``[m]``: table j indexes bits ``[starts[j], starts[j] + lengths[j])``.
      ids: uint32 ``[m, N]``: ``ids[0][i]`` is the database row of ``sorted_codes[i]``; for
        j >= 1, ``ids[j]`` lists positions in ``sorted_codes`` sorted by table-j key.
      offsets: uint32 ``[sum_j (2^lengths[j] + 1)]``: the tables' bucket boundaries, one after
        another (table j's from ``table_base[j]``).
    """

    sorted_codes: np.ndarray
    bits: int
    starts: np.ndarray
    lengths: np.ndarray
    ids: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, codes, num_tables: int | None = None) -> MultiIndex:
        """Tables over packed codes ``uint8 [N, B]`` (any B; N < 2^32)."""
        codes = np.ascontiguousarray(np.asarray(check_packed(codes, "codes")))
        num_rows, width = codes.shape
        if num_rows >= 2**31:
            raise ValueError(f"codes has {num_rows} rows; the index holds under 2^31.")
        starts, lengths = choose_substrings(8 * width, num_rows, num_tables)
        ids = np.empty((len(starts), num_rows), np.uint32)
        offsets = []
        sorted_codes = codes
        for j, (start, length) in enumerate(zip(starts, lengths, strict=True)):
            keys = substring_keys(sorted_codes, int(start), int(length))
            ids[j] = np.argsort(keys, kind="stable")
            bounds = np.zeros((1 << int(length)) + 1, np.uint32)
            np.cumsum(np.bincount(keys, minlength=1 << int(length)), out=bounds[1:])
            offsets.append(bounds)
            if j == 0:
                sorted_codes = codes[ids[0]]
        return cls(sorted_codes, 8 * width, starts, lengths, ids, np.concatenate(offsets))

    # ------------------------------------------------------------------------- properties

    @property
    def num_tables(self) -> int:
        return len(self.starts)

    def __len__(self) -> int:
        return self.sorted_codes.shape[0]

    @property
    def codes(self) -> np.ndarray:
        """The packed codes in database order, uint8 ``[N, B]`` (a new array)."""
        codes = np.empty_like(self.sorted_codes)
        codes[self.ids[0]] = self.sorted_codes
        return codes

    @property
    def table_base(self) -> np.ndarray:
        """int64 ``[m + 1]``: where each table's offsets begin in :attr:`offsets`."""
        return np.concatenate([[0], np.cumsum((1 << self.lengths) + 1)]).astype(np.int64)

    @property
    def table_bytes(self) -> int:
        """Bytes of the tables (ids and offsets), beside the codes' ``sorted_codes.nbytes``."""
        return self.ids.nbytes + self.offsets.nbytes

    @functools.cached_property
    def _words(self) -> np.ndarray:
        return code_words(self.sorted_codes)

    @functools.cached_property
    def _substring_masks(self) -> np.ndarray:
        """``[m, words]``: each table's indexed bits, in the layout of :func:`code_words`."""
        bits = np.zeros((self.num_tables, self.bits), bool)
        for j, (start, length) in enumerate(zip(self.starts, self.lengths, strict=True)):
            bits[j, start : start + length] = True
        return code_words(np.packbits(bits, axis=1))

    # ------------------------------------------------------------------------- storage

    ARRAYS = ("starts", "lengths", "ids", "offsets", "checksum")  # the keys of to_arrays

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The tables and their checksum as arrays to save beside the codes (``np.savez``)."""
        return {
            "starts": self.starts,
            "lengths": self.lengths,
            "ids": self.ids,
            "offsets": self.offsets,
            "checksum": np.str_(self.checksum()),
        }

    @classmethod
    def from_arrays(cls, codes: np.ndarray, arrays: dict, source: str) -> MultiIndex:
        """The index saved by :meth:`to_arrays` with ``codes`` (database order); a ValueError
        naming ``source`` unless its tables are consistent and match their checksum."""
        codes = np.asarray(codes)
        index = cls(
            codes,
            8 * codes.shape[1] if codes.ndim == 2 else 0,
            np.asarray(arrays["starts"]),
            np.asarray(arrays["lengths"]),
            np.asarray(arrays["ids"]),
            np.asarray(arrays["offsets"]),
        )
        try:
            index.check_consistency()
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        index = dataclasses.replace(index, sorted_codes=codes[index.ids[0]])
        if index.checksum() != str(arrays["checksum"]):
            raise ValueError(
                f"{source} is corrupt: its codes or multi-index tables do not match their "
                "checksum; rebuild it (jaxhash index)."
            )
        return index

    # ------------------------------------------------------------------------- checks

    def checksum(self) -> str:
        """SHA-256 of the codes, the layout and the tables (hex)."""
        digest = hashlib.sha256()
        for array in (self.starts, self.lengths, self.sorted_codes, self.ids, self.offsets):
            digest.update(np.ascontiguousarray(array).data)
        digest.update(str(self.bits).encode())
        return digest.hexdigest()

    def check_consistency(self) -> None:
        """A ValueError unless shapes, dtypes and bucket boundaries fit together (a cheap
        O(m 2^s) check; the checksum catches the rest)."""
        problems = []
        codes = self.sorted_codes
        if codes.dtype != np.uint8 or codes.ndim != 2 or len(self) == 0:
            problems.append("codes are not uint8 [N, bytes] with N >= 1")
        elif self.bits != 8 * codes.shape[1]:
            problems.append(f"bits={self.bits} is not 8 x the codes' {codes.shape[1]} bytes")
        else:
            expected = choose_substrings(self.bits, len(self), self.num_tables)
            layout = (self.starts, self.lengths)
            if not all(np.array_equal(a, b) for a, b in zip(expected, layout, strict=True)):
                problems.append("the substring layout is not the one the tables were built with")
        if not problems:
            problems = self._table_problems()
        if problems:
            raise ValueError(
                f"the multi-index is inconsistent ({'; '.join(problems)}): rebuild it "
                "(MultiIndex.build(codes), or jaxhash index)."
            )

    def _table_problems(self) -> list[str]:
        n, problems = len(self), []
        if self.ids.dtype != np.uint32 or self.ids.shape != (self.num_tables, n):
            problems.append(f"ids are not uint32 [{self.num_tables}, {n}]")
        elif self.ids.max() >= n:
            problems.append(f"ids reach past the {n} codes")
        if self.offsets.dtype != np.uint32 or self.offsets.shape != (self.table_base[-1],):
            return [*problems, "the bucket offsets have the wrong size"]
        for j in range(self.num_tables):
            bounds = self.offsets[self.table_base[j] : self.table_base[j + 1]].astype(np.int64)
            if bounds[0] != 0 or bounds[-1] != n or np.any(np.diff(bounds) < 0):
                problems.append(f"table {j}'s bucket offsets are not 0..{n} ascending")
        return problems

    def _check_queries(self, queries) -> np.ndarray:
        queries = np.ascontiguousarray(np.asarray(check_packed(queries, "queries")))
        if queries.shape[1] != self.sorted_codes.shape[1]:
            raise ValueError(
                f"queries are {8 * queries.shape[1]}-bit codes but the index holds "
                f"{self.bits}-bit codes: encode the queries with the model that made the index, "
                "or rebuild the index from codes of this length."
            )
        return queries

    # ------------------------------------------------------------------------- search

    def search(
        self, queries, k: int, *, exclude_self: bool = False, impl: str = "auto"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest codes of each query by Hamming distance, ties to the lower index.

        Args:
          queries: packed codes ``uint8 [Q, B]`` with the index's B.
          k: ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
          exclude_self: the queries are the database (``Q == N``); query i never returns
            index i (the top k + 1, less i).
          impl: "numpy", "numba" (:mod:`jaxhash.kernels.multi_index_probe`) or "auto" (numba
            when it is installed). Same result.

        Returns:
          ``(distances int32 [Q, k], indices int32 [Q, k])`` sorted by (distance, index), as
          :func:`jaxhash.retrieval.hamming_topk` returns them.
        """
        queries = self._check_queries(queries)
        if exclude_self and len(queries) != len(self):
            raise ValueError(
                "exclude_self=True means the queries are the database, so they must have as "
                f"many rows; got {len(queries)} queries and {len(self)} database rows."
            )
        k = check_k(k, len(self) - int(exclude_self), exclude_self)
        wanted = k + int(exclude_self)
        if _resolve_impl(impl) == "numba":
            from jaxhash.kernels import multi_index_probe

            distances, indices = multi_index_probe.topk(self, queries, wanted)
        else:
            distances, indices = self._search_numpy(queries, wanted)
        if exclude_self:
            drop = indices == np.arange(len(queries))[:, None]
            drop[~drop.any(axis=1), -1] = True
            keep = ~drop
            distances = distances[keep].reshape(-1, k)
            indices = indices[keep].reshape(-1, k)
        return distances, indices

    def range_search(
        self, queries, radius: int, *, impl: str = "auto"
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every code within Hamming distance ``radius`` (``0 <= radius <= K``) of each query:
        one ``(distances int32 [n_q], indices int32 [n_q])`` per query, sorted by (distance,
        index). Probes radius ``floor(radius / m)`` in every table; ``impl`` as in
        :meth:`search`."""
        queries = self._check_queries(queries)
        if not isinstance(radius, int | np.integer) or not 0 <= radius <= self.bits:
            raise ValueError(
                f"radius must be an int in [0, {self.bits}] (the code length); got {radius!r}."
            )
        if _resolve_impl(impl) == "numba":
            from jaxhash.kernels import multi_index_probe

            rows, d, ids = multi_index_probe.within(self, queries, int(radius))
        else:
            rows, d, ids = self._within_numpy(queries, int(radius))
        order = np.lexsort((ids, d, rows))
        rows, d, ids = rows[order], d[order].astype(np.int32), ids[order].astype(np.int32)
        bounds = np.searchsorted(rows, np.arange(len(queries) + 1))
        return [(d[a:b], ids[a:b]) for a, b in itertools.pairwise(bounds)]

    # ------------------------------------------------------------------------- NumPy path

    def _within_numpy(self, queries: np.ndarray, radius: int):
        """``(rows, distances, ids)`` of every code within ``radius``, unsorted."""
        parts = []
        everyone = np.arange(len(queries))
        limits = np.full(len(queries), radius, np.int64)
        for rho, j in self._rounds():
            if rho > radius // self.num_tables:
                break
            for block in self._blocks(everyone, rho, j):
                rows, ids, d = self._new_candidates(queries, block, rho, j, limits[block])
                parts.append((block[rows], d, ids))
            if rho >= self.lengths[j]:
                break
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    def _rounds(self):
        """``(rho, j)`` in probing order: every table at radius 0, then at 1, ..."""
        for rho in range(int(self.lengths.max()) + 1):
            for j in range(self.num_tables):
                yield rho, j

    def _blocks(self, rows: np.ndarray, rho: int, j: int):
        per_query = len(weight_masks(int(self.lengths[j]), rho))
        bucket = len(self) / 2 ** int(self.lengths[j])  # mean codes per key
        budget = min(_PROBE_BUDGET, _CANDIDATE_BUDGET / max(bucket, 1.0))
        size = max(1, int(budget // max(per_query, 1)))
        for lo in range(0, len(rows), size):
            yield rows[lo : lo + size]

    def _new_candidates(self, queries, block, rho, j, limits):
        """Codes first reached by probe (rho, j) from queries ``block`` with distance at most
        ``limits`` (per query of the block): ``(rows in block, ids, distances)``."""
        base = self.table_base[j]
        masks = weight_masks(int(self.lengths[j]), rho)
        keys = substring_keys(queries[block], int(self.starts[j]), int(self.lengths[j]))
        probes = (keys[:, None] ^ masks[None, :]).ravel().astype(np.int64) + base
        lo = self.offsets[probes].astype(np.int64)
        counts = self.offsets[probes + 1].astype(np.int64) - lo
        total = int(counts.sum())
        rows = np.repeat(np.repeat(np.arange(len(block)), len(masks)), counts)
        slots = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(total)
        positions = slots if j == 0 else self.ids[j][slots]  # in sorted_codes
        x = self._words[positions] ^ code_words(queries)[block[rows]]
        d = _popcount_rows(x)
        keep = d <= limits[rows]
        rows, positions, d, x = rows[keep], positions[keep], d[keep], x[keep]
        new = np.ones(len(positions), bool)
        for other in range(self.num_tables):
            if other != j:
                sub = _popcount_rows(x & self._substring_masks[other])
                new &= sub > rho if other < j else sub >= rho
        return rows[new], self.ids[0][positions[new]].astype(np.int64), d[new]

    def _search_numpy(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        num_queries, m = len(queries), self.num_tables
        sentinel = self.bits + 1
        best_d = np.full((num_queries, k), sentinel, np.int64)
        best_i = np.full((num_queries, k), len(self), np.int64)
        active = np.arange(num_queries)
        for rho, j in self._rounds():
            for block in self._blocks(active, rho, j):
                rows, ids, d = self._new_candidates(queries, block, rho, j, best_d[block, -1])
                self._merge(best_d, best_i, block, rows, ids, d)
            if rho >= self.lengths[j]:
                break  # table j enumerated every key: every code has been seen
            active = active[best_d[active, -1] > m * rho + j]
            if not len(active):
                break
        return best_d.astype(np.int32), best_i.astype(np.int32)

    def _merge(self, best_d, best_i, block, rows, ids, d) -> None:
        """Fold candidates into the per-query top k (rows sorted by (distance, index))."""
        if not len(ids):
            return
        k = best_d.shape[1]
        rows = np.concatenate([np.repeat(np.arange(len(block)), k), rows])
        d = np.concatenate([best_d[block].ravel(), d])
        ids = np.concatenate([best_i[block].ravel(), ids])
        key = (rows * (self.bits + 2) + d) * (len(self) + 1) + ids
        order = np.argsort(key)
        rows, d, ids = rows[order], d[order], ids[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        keep = rank < k
        best_d[block[rows[keep]], rank[keep]] = d[keep]
        best_i[block[rows[keep]], rank[keep]] = ids[keep]


def _resolve_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}.")
    if impl == "numpy":
        return impl
    try:
        import numba  # noqa: F401
    except ImportError as error:
        if impl == "numba":
            raise ImportError("impl='numba' needs numba: pip install 'jaxhash[search]'.") from error
        return "numpy"
    return "numba"


__all__ = [
    "IMPLS",
    "MEMORY_BUDGET",
    "MultiIndex",
    "choose_substrings",
    "code_words",
    "substring_keys",
    "weight_masks",
]
