"""Exact Hamming search at 10^6-10^8 codes: multi-index hashing against brute force and FAISS.

For each database size and kind, 64-bit codes:

* ``uniform``: every bit a fair coin;
* ``clustered``: like learned codes, 10^4 random centres, each code a centre with every bit
  flipped with probability 0.1 (``6554 / 65536``);

and 1,000 queries from the same distribution, k = 1, 10, 100, one line per method and k:

* ``multi_index`` (:class:`jaxhash.multi_index.MultiIndex`, numba kernel; ``multi_index_numpy``
  with ``--numpy``): build time, table bytes against the codes, queries/s, checked equal to
  jaxhash's brute force (distances and indices);
* ``jaxhash_brute_force`` (:func:`jaxhash.retrieval.hamming_topk`, its default: on a CPU the
  compiled scan of :mod:`jaxhash.kernels.hamming_scan`), ``jaxhash_brute_force_xla`` (the
  jitted XLA search, ``impl="xla"``: the CPU default before the compiled scan) and FAISS
  ``IndexBinaryFlat`` (FAISS's default threads, and one thread: on shared cores its OpenMP
  threads can lose several times): the exact references, timed on the first
  ``--reference-queries``; ``speedup_vs_faiss_flat_best`` is against the faster of the two
  FAISS timings;
* FAISS's approximate binary indexes (``--peers``, ``faiss.index_binary_factory`` strings):
  build time, queries/s (the faster of default threads and one) and recall@k against the exact
  answer (tie-aware: the share of returned codes within the exact k-th distance).

``median_ms`` is per query (median of repeats of a whole batch, divided by its queries), so
``speedup`` (over ``IndexBinaryFlat``) and ``speedup_vs_jaxhash_brute_force`` are ratios of
queries/s measured in this process. The brute forces also report ``cpu_ns_per_pair``, the
process CPU time of one call per query-code pair (FAISS at one thread): their work, steadier
than wall time on shared cores. Codes are generated in chunks (10^8 codes: 800 MB).

    python -m benchmarks.search_scale                       # 10^6 and 10^7
    python -m benchmarks.search_scale --sizes 1e8 --reference-queries 100
    python -m benchmarks.search_scale --quick               # a seconds-long smoke run
    python -m benchmarks.search_scale --brute-force --peers  # the exact brute forces only
    python -m benchmarks.search_scale --table results/search_scale.jsonl  # both tables
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import math
import time

import jax
import numpy as np

from benchmarks.common import emit, time_fn
from jaxhash import retrieval
from jaxhash.multi_index import MultiIndex

SLOW = dict(warmup=1, min_repeats=1, max_repeats=3, min_seconds=0.0)
_CHUNK = 1 << 22
_FLIP_THRESHOLD = 6554  # of 65536: each bit flips with probability 0.1


def codes(rng: np.random.Generator, num: int, bits: int, centres: np.ndarray | None):
    """Packed codes ``uint8 [num, bits / 8]``: uniform, or ``centres`` with bits flipped."""
    out = np.empty((num, bits // 8), np.uint8)
    for lo in range(0, num, _CHUNK):
        n = min(_CHUNK, num - lo)
        if centres is None:
            out[lo : lo + n] = rng.integers(0, 256, (n, bits // 8), np.uint8)
        else:
            flips = rng.integers(0, 1 << 16, (n, bits), np.uint16) < _FLIP_THRESHOLD
            out[lo : lo + n] = centres[rng.integers(0, len(centres), n)] ^ np.packbits(flips, 1)
    return out


def versions() -> dict:
    out = {}
    for name in ("jax", "numpy", "faiss-cpu", "numba"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def tie_aware_recall(found_distances: np.ndarray, found_ids: np.ndarray, exact: np.ndarray):
    """Mean share of returned codes (ids >= 0) within the exact k-th distance ``exact[:, -1]``."""
    hits = (found_distances <= exact[:, -1:]) & (found_ids >= 0)
    return float(hits.sum(1).mean() / exact.shape[1])


def _one_thread_ms(faiss, index, queries: np.ndarray, k: int) -> float:
    """Median ms of ``index.search`` with one OpenMP thread (FAISS's default restored)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return time_fn(index.search, queries, k, **SLOW)
    finally:
        faiss.omp_set_num_threads(threads)


def cpu_ns_per_pair(fn, queries: np.ndarray, rows: int, *args) -> float:
    """Process CPU time (every thread) of one ``fn(queries, *args)`` call per query-code pair,
    in ns: the work a search costs, which the sharing of cores moves less than wall time."""
    start = time.process_time()
    jax.block_until_ready(fn(queries, *args))
    return round(1e9 * (time.process_time() - start) / (len(queries) * rows), 4)


def _ratio(reference_ms: float | None, ms: float) -> float | None:
    return None if reference_ms is None else round(reference_ms / ms, 3)


def run_case(args, faiss, rng, size: int, kind: str) -> list[dict]:
    bits, rows = args.bits, []
    centres = None
    if kind == "clustered":
        centres = codes(rng, args.centres, bits, None)
    t0 = time.perf_counter()
    database = codes(rng, size, bits, centres)
    queries = codes(rng, args.queries, bits, centres)
    generate_s = time.perf_counter() - t0
    num_ref = min(args.reference_queries, args.queries)
    common = dict(versions=versions(), generate_s=round(generate_s, 2), kind=kind)

    index = memory = None
    if not args.brute_force:
        t0 = time.perf_counter()
        index = MultiIndex.build(database)
        build_s = time.perf_counter() - t0
        memory = dict(
            build_s=round(build_s, 3),
            table_bytes=index.table_bytes,
            codes_bytes=database.nbytes,
            memory_ratio=round(index.table_bytes / database.nbytes, 3),
            num_tables=index.num_tables,
            substring_bits=index.lengths.tolist(),
        )
    flat = None
    if faiss is not None:
        flat = faiss.IndexBinaryFlat(bits)
        flat.add(database)
    peers = {}
    for factory in args.peers if faiss is not None else []:
        t0 = time.perf_counter()
        peer = faiss.index_binary_factory(bits, factory)
        if not peer.is_trained:
            sample = database[rng.choice(size, min(size, 100 * 1024), replace=False)]
            peer.train(sample)
        peer.add(database)
        peers[factory] = (peer, time.perf_counter() - t0)

    for k in args.k:
        shape = dict(rows=size, bits=bits, queries=args.queries, k=k, kind=kind)
        ref_shape = dict(shape, queries=num_ref)
        head = queries[:num_ref]
        brute_ms = time_fn(retrieval.hamming_topk, head, database, k, **SLOW) / num_ref
        exact = retrieval.hamming_topk(head, database, k)
        exact = (np.asarray(exact[0]), np.asarray(exact[1]))
        xla = functools.partial(retrieval.hamming_topk, impl="xla")
        xla_ms = time_fn(xla, head, database, k, **SLOW) / num_ref
        xla_d, xla_i = xla(head, database, k)
        xla_exact = bool(np.array_equal(xla_d, exact[0]) and np.array_equal(xla_i, exact[1]))
        cpu_ns = {
            "jaxhash_brute_force": cpu_ns_per_pair(retrieval.hamming_topk, head, size, database, k),
            "jaxhash_brute_force_xla": cpu_ns_per_pair(xla, head, size, database, k),
        }
        flat_ms = None
        if flat is not None:
            flat_ms = time_fn(flat.search, head, k, **SLOW) / num_ref
            flat_d, _ = flat.search(head, k)
            assert np.array_equal(flat_d, exact[0]), "IndexBinaryFlat distances differ"
        best_flat_ms = flat_ms
        if flat is not None:
            one_thread_ms = _one_thread_ms(faiss, flat, head, k) / num_ref
            best_flat_ms = min(flat_ms, one_thread_ms)
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            flat_cpu_ns = cpu_ns_per_pair(flat.search, head, size, k)
            faiss.omp_set_num_threads(threads)
        reference = "faiss_IndexBinaryFlat" if flat_ms is not None else None
        xla_extra = dict(exact=xla_exact, speedup_vs_jaxhash_brute_force=_ratio(brute_ms, xla_ms))
        for name, ms, extra in (
            ("jaxhash_brute_force", brute_ms, {}),
            ("jaxhash_brute_force_xla", xla_ms, xla_extra),
        ):
            rows.append(emit("search_scale", name, ref_shape, ms, reference, flat_ms,
                             speedup_vs_faiss_flat_best=_ratio(best_flat_ms, ms),
                             cpu_ns_per_pair=cpu_ns[name], **extra, **common))  # fmt: skip
        if flat_ms is not None:
            rows.append(emit("search_scale", "faiss_IndexBinaryFlat_1thread", ref_shape,
                             one_thread_ms, reference, flat_ms, cpu_ns_per_pair=flat_cpu_ns,
                             **common))  # fmt: skip
            rows.append(emit("search_scale", "faiss_IndexBinaryFlat", ref_shape, flat_ms,
                             reference, flat_ms, speedup_vs_jaxhash_brute_force=round(
                                 brute_ms / flat_ms, 3), **common))  # fmt: skip
        has_numba = importlib.util.find_spec("numba") is not None
        impls = (["numba"] if has_numba else []) + (
            ["numpy"] if args.numpy or not has_numba else []
        )
        if index is None:
            impls = []
        exact_all = None
        for impl in impls:
            ms = time_fn(functools.partial(index.search, impl=impl), queries, k, **SLOW)
            ms /= args.queries
            d, i = index.search(queries, k, impl=impl)
            exact_match = bool(np.array_equal(d[:num_ref], exact[0]))
            exact_match &= bool(np.array_equal(i[:num_ref], exact[1]))
            name = "multi_index" if impl == "numba" else "multi_index_numpy"
            rows.append(emit("search_scale", name, shape, ms, reference, flat_ms,
                             qps=round(1e3 / ms, 1), exact=exact_match,
                             speedup_vs_jaxhash_brute_force=round(brute_ms / ms, 3),
                             speedup_vs_faiss_flat_best=_ratio(best_flat_ms, ms),
                             **memory, **common))  # fmt: skip
            if impl == impls[0]:
                exact_all = d
        if exact_all is None and peers:
            exact_all = np.asarray(retrieval.hamming_topk(queries, database, k)[0])
        for factory, (peer, peer_build_s) in peers.items():
            default_ms = time_fn(peer.search, queries, k, **SLOW) / args.queries
            one_ms = _one_thread_ms(faiss, peer, queries, k) / args.queries
            ms = min(default_ms, one_ms)
            pd, pi = peer.search(queries, k)
            rows.append(emit("search_scale", f"faiss_{factory}", shape, ms, reference, flat_ms,
                             qps=round(1e3 / ms, 1), recall=round(tie_aware_recall(
                                 pd, pi, exact_all), 4), build_s=round(peer_build_s, 3),
                             speedup_vs_jaxhash_brute_force=round(brute_ms / ms, 3),
                             faiss_threads=1 if one_ms < default_ms else "default",
                             **common))  # fmt: skip
    return rows


def _count(n: int) -> str:
    power = round(math.log10(n))
    return f"10^{power}" if 10**power == n else f"{n:,}"


def _times(x: float) -> str:
    return f"{x:,.1f}x" if x >= 1 else f"{x:.2f}x"


def table(rows: list[dict]) -> str:
    """Markdown: per size, kind and k, the multi-index's speed-ups and the peers' recall
    (ratios of per-query times; FAISS's flat index at its faster thread count)."""
    lines = [
        "| codes | kind | k | multi-index x jaxhash brute force | x FAISS flat | build s "
        "| tables / codes | FAISS approximate: x FAISS flat (recall@k) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cases = {}
    for row in rows:
        shape = row["shape"]
        cases.setdefault((shape["rows"], shape["kind"], shape["k"]), {})[row["impl"]] = row
    for (size, kind, k), impls in sorted(cases.items()):
        mih = impls.get("multi_index") or impls.get("multi_index_numpy")
        if mih is None:
            continue
        flat = min(
            impls[name]["median_ms"]
            for name in ("faiss_IndexBinaryFlat", "faiss_IndexBinaryFlat_1thread")
            if name in impls
        )
        peers = ", ".join(
            f"{name[6:]} {_times(flat / r['median_ms'])} ({r['recall']:.2f})"
            for name, r in impls.items()
            if name.startswith("faiss_B") and r.get("recall") is not None
        )
        lines.append(
            f"| {_count(size)} | {kind} | {k} | {_times(mih['speedup_vs_jaxhash_brute_force'])} "
            f"| {_times(flat / mih['median_ms'])} | {mih['build_s']:.1f} "
            f"| {mih['memory_ratio']:.2f} | {peers or '-'} |"
        )
    return "\n".join(lines)


def _cpu_ns(*rows) -> str:
    values = [(r or {}).get("cpu_ns_per_pair") for r in rows]
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


def brute_force_table(rows: list[dict]) -> str:
    """Markdown: per size, kind and k, jaxhash's brute force (default and XLA) against FAISS's
    flat index at its faster thread count (ratios of per-query times from one run)."""
    lines = [
        "| codes | kind | k | queries | jaxhash ms / query | x FAISS flat "
        "| XLA search x FAISS flat | jaxhash x its XLA search | CPU ns / pair: jaxhash, XLA, "
        "FAISS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    cases = {}
    for row in rows:
        shape = row["shape"]
        cases.setdefault((shape["rows"], shape["kind"], shape["k"]), {})[row["impl"]] = row
    for (size, kind, k), impls in sorted(cases.items()):
        brute, xla = impls.get("jaxhash_brute_force"), impls.get("jaxhash_brute_force_xla")
        faiss_one = impls.get("faiss_IndexBinaryFlat_1thread")
        if brute is None or xla is None or brute.get("speedup_vs_faiss_flat_best") is None:
            continue
        lines.append(
            f"| {_count(size)} | {kind} | {k} | {brute['shape']['queries']:,} "
            f"| {brute['median_ms']:.3f} | {_times(brute['speedup_vs_faiss_flat_best'])} "
            f"| {_times(xla['speedup_vs_faiss_flat_best'])} "
            f"| {_times(xla['median_ms'] / brute['median_ms'])} "
            f"| {_cpu_ns(brute, xla, faiss_one)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--kinds", nargs="+", default=["clustered", "uniform"],
                        choices=["clustered", "uniform"])  # fmt: skip
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--reference-queries", type=int, default=1000,
                        help="queries timed for the brute-force references")  # fmt: skip
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--centres", type=int, default=10_000)
    parser.add_argument("--peers", nargs="*", default=["BIVF1024", "BHNSW32"],
                        help="faiss.index_binary_factory strings")  # fmt: skip
    parser.add_argument("--numpy", action="store_true", help="also time the NumPy path")
    parser.add_argument("--brute-force", action="store_true",
                        help="no multi-index: the brute forces (and --peers) only")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20,000 codes, 50 queries")
    parser.add_argument("--table", nargs="+", metavar="JSONL", help="print the table of results")
    args = parser.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for path in args.table for line in open(path) if line.strip()]
        print(table(rows), brute_force_table(rows), sep="\n\n")
        return rows
    if args.bits % 8:
        parser.error("--bits must be a multiple of 8")
    if args.quick:
        args.sizes, args.queries, args.reference_queries = [20_000], 50, 50
        args.centres, args.k, args.peers, args.numpy = 100, [1, 10], ["BIVF16"], True
    faiss = _faiss()
    rows = []
    for size in args.sizes:
        for kind in args.kinds:
            rng = np.random.default_rng([args.seed, int(size), len(kind)])
            rows += run_case(args, faiss, rng, int(size), kind)
    return rows


if __name__ == "__main__":
    main()
