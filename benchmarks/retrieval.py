"""Hamming search and retrieval evaluation against references in the same process.

Search: ``jaxhash.retrieval.hamming_topk`` (exact, ties to the lower index) against a NumPy brute
force, a straightforward JAX search (all distances of a query block, one ``lax.top_k``) and, when
installed, FAISS ``IndexBinaryFlat``. Every line checks its result against the first one timed.
Evaluation: mAP@k and mAHP@250 of a CIFAR-100-sized set (database = queries, self excluded) from
one ranking, against a float64 NumPy brute force.

    python -m benchmarks.retrieval            # 1,000 x 2^20 codes, 64 bits, k = 100; CIFAR eval
    python -m benchmarks.retrieval --study    # selection strategies at 1,000 x 2^15
    python -m benchmarks.retrieval --full     # accelerators: 4,096 x 2^20, no NumPy search
    python -m benchmarks.retrieval --full --no-eval --impls jaxhash_xla jaxhash_pallas

Search lines: "jaxhash" is the default (``impl="auto"``: the fused Pallas first stage on GPUs and
TPUs, the compiled scan of ``jaxhash.kernels.hamming_scan`` on CPUs when numba is installed);
"jaxhash_xla" and "jaxhash_pallas" force one (on a CPU the kernel runs in Pallas's interpreter,
so it runs there only when named in ``--impls``).
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.common import emit, time_fn
from jaxhash import metrics, retrieval

SLOW = dict(warmup=1, min_repeats=3, min_seconds=0.0)  # references that take seconds a call
_BYTE_COUNTS = np.array([bin(b).count("1") for b in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Bits set per uint64 (``np.bitwise_count`` where NumPy has it, >= 2.0)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    return _BYTE_COUNTS[x[..., None].view(np.uint8)].sum(-1)


# ----------------------------------------------------------------------------- references


def numpy_topk(queries: np.ndarray, database: np.ndarray, k: int, block: int = 32):
    """Exact stable top-k by brute force: XOR + popcount on uint64 words, argpartition on the
    key ``distance * N + index``."""
    n = database.shape[0]
    words = np.ascontiguousarray(database).view(np.uint64)
    q_words = np.ascontiguousarray(queries).view(np.uint64)
    dist_out = np.empty((len(queries), k), np.int32)
    idx_out = np.empty((len(queries), k), np.int64)
    index = np.arange(n, dtype=np.int64)
    for start in range(0, len(queries), block):
        q = q_words[start : start + block]
        dist = np.zeros((len(q), n), np.int64)
        for w in range(words.shape[1]):
            dist += _popcount(q[:, w, None] ^ words[None, :, w])
        key = dist * n + index
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(part, np.argsort(np.take_along_axis(key, part, 1), 1), 1)
        dist_out[start : start + block] = np.take_along_axis(dist, order, 1)
        idx_out[start : start + block] = order
    return dist_out, idx_out


@functools.partial(jax.jit, static_argnames=("k",))
def _naive_block(q_words, db_words, k):
    dist = jnp.zeros((q_words.shape[0], db_words.shape[0]), jnp.int32)
    for w in range(q_words.shape[1]):
        dist += lax.population_count(q_words[:, w, None] ^ db_words[None, :, w]).astype(jnp.int32)
    _, idx = lax.top_k(-dist.astype(jnp.float32), k)  # ties to the lower index
    return jnp.take_along_axis(dist, idx, axis=1), idx


def naive_jax_topk(queries, database, k: int, block: int):
    """What one writes first: all distances of ``block`` queries, then ``lax.top_k``."""
    q_words, db_words = retrieval.to_words(queries), retrieval.to_words(database)
    parts = [
        _naive_block(q_words[s : s + block], db_words, k) for s in range(0, len(q_words), block)
    ]
    return jnp.concatenate([p[0] for p in parts]), jnp.concatenate([p[1] for p in parts])


def faiss_topk(index, queries: np.ndarray, k: int):
    dist, idx = index.search(queries, k)
    return dist, idx


def _faiss_index(database):
    try:
        return retrieval.faiss_index(database)
    except ImportError:
        return None


# ----------------------------------------------------------------------------- study variants


@functools.partial(jax.jit, static_argnames=("k",))
def sort_topk(q_words, db_words, k):
    """Stable argsort of every distance row."""
    dist = retrieval.popcount_distance(q_words, db_words.T).astype(jnp.int32)
    idx = jnp.argsort(dist, axis=1, stable=True)[:, :k]
    return jnp.take_along_axis(dist, idx, axis=1), idx


@functools.partial(jax.jit, static_argnames=("k", "bits"))
def threshold_topk(q_words, db_words, k, bits):
    """Counting selection: counts of d <= v for v = 0..K (K + 1 float32 row sums), the k-th
    distance t, everything below t and the first ties at t (``nonzero`` in index order), then a
    stable sort of the k survivors."""
    dist = retrieval.popcount_distance(q_words, db_words.T).astype(jnp.int32)
    values = jnp.arange(bits + 1, dtype=jnp.int32)
    at_most = jnp.stack([jnp.sum(dist <= v, axis=1, dtype=jnp.float32) for v in values], 1)
    t = jnp.argmax(at_most >= k, axis=1).astype(jnp.int32)
    below = jnp.take_along_axis(at_most, jnp.maximum(t - 1, 0)[:, None], 1)[:, 0]
    below = jnp.where(t > 0, below, 0.0)
    ties = dist == t[:, None]
    tie_rank = jnp.cumsum(ties, axis=1)
    keep = (dist < t[:, None]) | (ties & (tie_rank <= (k - below)[:, None]))
    idx = jax.vmap(lambda m: jnp.nonzero(m, size=k)[0])(keep).astype(jnp.int32)
    dist = jnp.take_along_axis(dist, idx, axis=1)
    order = jnp.argsort(dist, axis=1, stable=True)
    return jnp.take_along_axis(dist, order, 1), jnp.take_along_axis(idx, order, 1)


def _blocked(fn, block):
    def run(queries, database, k, **kw):
        q_words, db_words = retrieval.to_words(queries), retrieval.to_words(database)
        parts = [
            fn(q_words[s : s + block], db_words, k, **kw) for s in range(0, len(q_words), block)
        ]
        return jnp.concatenate([p[0] for p in parts]), jnp.concatenate([p[1] for p in parts])

    return run


# ----------------------------------------------------------------------------- cases


def _random_packed(rows: int, num_bytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, num_bytes), dtype=np.uint8)


def _same(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a[0]), np.asarray(b[0]))) and bool(
        np.array_equal(np.asarray(a[1]), np.asarray(b[1]))
    )


SEARCH_IMPLS = (
    "faiss_IndexBinaryFlat",
    "numpy",
    "jaxhash",
    "jaxhash_xla",
    "jaxhash_pallas",
    "jaxhash_flat",
    "naive_jax",
)


def default_search_impls() -> list[str]:
    """Every search; without the interpreted kernel on a CPU."""
    if jax.default_backend() == "cpu":
        return [name for name in SEARCH_IMPLS if name != "jaxhash_pallas"]
    return list(SEARCH_IMPLS)


def search(
    num_queries: int,
    num_rows: int,
    bits: int,
    k: int,
    with_numpy: bool,
    names: list[str] | None = None,
) -> list[dict]:
    """Time the searches ``names`` (default :func:`default_search_impls`) on one shape."""
    names = default_search_impls() if names is None else names
    queries = _random_packed(num_queries, bits // 8, 1)
    database = _random_packed(num_rows, bits // 8, 2)
    q_dev, db_dev = jnp.asarray(queries), jnp.asarray(database)
    shape = {"queries": num_queries, "database": num_rows, "bits": bits, "k": k}
    accelerator = jax.default_backend() != "cpu"
    impls = {
        "jaxhash": lambda: retrieval.hamming_topk(q_dev, db_dev, k),
        "jaxhash_xla": lambda: retrieval.hamming_topk(q_dev, db_dev, k, impl="xla"),
        "jaxhash_pallas": lambda: retrieval.hamming_topk(q_dev, db_dev, k, impl="pallas"),
        "jaxhash_flat": lambda: retrieval.hamming_topk(q_dev, db_dev, k, selection="flat"),
        "naive_jax": lambda: naive_jax_topk(q_dev, db_dev, k, 1024 if accelerator else 128),
    }
    impls = {name: fn for name, fn in impls.items() if name in names}
    results, times = {}, {}
    index = _faiss_index(database) if "faiss_IndexBinaryFlat" in names else None
    if index is not None:
        times["faiss_IndexBinaryFlat"] = time_fn(faiss_topk, index, queries, k, **SLOW)
        results["faiss_IndexBinaryFlat"] = faiss_topk(index, queries, k)
    if with_numpy and "numpy" in names:
        times["numpy"] = time_fn(numpy_topk, queries, database, k, warmup=0, min_repeats=1)
        results["numpy"] = numpy_topk(queries, database, k)
    for name, fn in impls.items():
        options = SLOW if name == "naive_jax" and not accelerator else {}
        times[name] = time_fn(fn, **options)
        results[name] = fn()
    reference = next(
        (r for r in ("faiss_IndexBinaryFlat", "numpy", "naive_jax", "jaxhash_xla") if r in times),
        next(iter(times)),
    )
    stable = [r for r in ("numpy", "jaxhash_xla", "jaxhash", "naive_jax") if r in results]
    truth = results[stable[0]] if stable else next(iter(results.values()))
    rows = []
    for name, ms in times.items():
        exact = _same(results[name], truth)
        same_dist = bool(np.array_equal(np.asarray(results[name][0]), np.asarray(truth[0])))
        rows.append(
            emit(
                "hamming_topk",
                name,
                shape,
                ms,
                reference,
                times[reference],
                queries_per_s=round(1e3 * num_queries / ms, 1),
                same_distances=same_dist,
                same_indices=exact,
            )
        )
    return rows


def study(num_queries: int = 1000, num_rows: int = 1 << 15, bits: int = 64, k: int = 100):
    """The selection strategies on one shape (all exact and stable; reference: flat top_k)."""
    queries = jnp.asarray(_random_packed(num_queries, bits // 8, 3))
    database = jnp.asarray(_random_packed(num_rows, bits // 8, 4))
    shape = {"queries": num_queries, "database": num_rows, "bits": bits, "k": k}
    impls = {
        "flat_top_k": lambda: retrieval.hamming_topk(queries, database, k, selection="flat"),
        "tiled": lambda: retrieval.hamming_topk(queries, database, k, selection="tiled"),
        "threshold_counting": lambda: _blocked(threshold_topk, 100)(
            queries, database, k, bits=bits
        ),
        "stable_sort": lambda: _blocked(sort_topk, 100)(queries, database, k),
    }
    truth = impls["flat_top_k"]()
    ref_ms = time_fn(impls["flat_top_k"])
    rows = []
    for name, fn in impls.items():
        ms = ref_ms if name == "flat_top_k" else time_fn(fn, **SLOW)
        rows.append(
            emit(
                "hamming_selection",
                name,
                shape,
                ms,
                "flat_top_k",
                ref_ms,
                ns_per_pair=round(1e6 * ms / (num_queries * num_rows), 4),
                same_indices=_same(fn(), truth),
            )
        )
    return rows


def _cifar_like(num: int, bits: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, num)
    centres = rng.normal(size=(classes, bits))
    codes = (centres[labels] + 2.0 * rng.normal(size=(num, bits))).astype(np.float32)
    similarity = rng.uniform(0.0, 0.8, (classes, classes))
    similarity = (similarity + similarity.T) / 2
    np.fill_diagonal(similarity, 1.0)
    return codes, labels, similarity


def numpy_map_mahp(codes, labels, similarity, map_k: int, mahp_k: int):
    """float64 brute force (database = queries, self excluded, stable ties)."""
    packed = np.packbits(codes > 0, axis=1)
    words = packed.view(np.uint64)
    n = len(codes)
    dist = np.zeros((n, n), np.int16)
    for w in range(words.shape[1]):
        dist += _popcount(words[:, w, None] ^ words[None, :, w]).astype(np.int16)
    np.fill_diagonal(dist, 10**4)
    ranking = np.argsort(dist, axis=1, kind="stable")[:, : max(map_k, mahp_k)]
    rel = labels[ranking[:, :map_k]] == labels[:, None]
    hits = np.cumsum(rel, axis=1)
    ap = (rel * hits / np.arange(1, map_k + 1)).sum(1) / np.maximum(hits[:, -1], 1)
    gains = similarity[labels[:, None], labels[ranking[:, :mahp_k]]]
    counts = np.bincount(labels, minlength=len(similarity))
    ideal = np.zeros((len(similarity), mahp_k))
    for c in range(len(similarity)):
        row = counts.copy()
        row[c] -= 1
        order = np.argsort(-similarity[c], kind="stable")
        ideal[c] = np.cumsum(np.repeat(similarity[c, order], row[order])[:mahp_k])
    hp = np.cumsum(gains, axis=1) / ideal[labels]
    ahp = (hp.sum(1) - 0.5 * (hp[:, 0] + hp[:, -1])) / mahp_k
    return float(ap.mean()), float(ahp.mean())


def jaxhash_map_mahp(codes, labels, similarity, map_k, mahp_k, ties="stable"):
    """mAP@map_k and mAHP@mahp_k from one ranking, as ``jaxhash.evaluation`` computes them."""
    data = metrics.prepare(codes, codes, labels, labels, exclude_self=True)
    ranked = metrics.rank(data, max(map_k, mahp_k), ties=ties)
    ap = metrics.average_precisions(data, ranked, map_k)
    ahp = metrics.hierarchical_precisions(data, ranked, similarity, mahp_k)[1]
    return float(np.mean(np.asarray(ap, np.float64))), float(np.mean(np.asarray(ahp, np.float64)))


def evaluation(num: int, bits: int, classes: int, map_ks=(1000, 100), mahp_k: int = 250):
    codes, labels, similarity = _cifar_like(num, bits, classes)
    rows = []
    for map_k in map_ks:
        shape = {"queries": num, "database": num, "bits": bits, "map_k": map_k, "mahp_k": mahp_k}
        ref_ms = time_fn(numpy_map_mahp, codes, labels, similarity, map_k, mahp_k, **SLOW)
        ref = numpy_map_mahp(codes, labels, similarity, map_k, mahp_k)
        rows.append(emit("eval_map_mahp", "numpy", shape, ref_ms, "numpy", ref_ms, values=ref))
        for ties in ("stable", "expected"):
            fn = functools.partial(jaxhash_map_mahp, ties=ties)
            ms = time_fn(fn, codes, labels, similarity, map_k, mahp_k, **SLOW)
            values = fn(codes, labels, similarity, map_k, mahp_k)
            rows.append(
                emit(
                    "eval_map_mahp",
                    f"jaxhash_{ties}",
                    shape,
                    ms,
                    "numpy",
                    ref_ms,
                    values=values,
                    reference_values=ref,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1 << 20)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--study", action="store_true", help="selection strategies only")
    parser.add_argument("--full", action="store_true", help="4,096 queries, no NumPy search")
    parser.add_argument("--no-eval", action="store_true", help="skip the CIFAR-sized evaluation")
    parser.add_argument("--no-search", action="store_true", help="skip the search benchmark")
    parser.add_argument("--map-k", type=int, nargs="+", default=[1000, 100])
    parser.add_argument(
        "--impls",
        nargs="+",
        choices=SEARCH_IMPLS,
        help="searches to time (default: all; CPU: no kernel)",
    )
    args = parser.parse_args(argv)
    if args.study:
        study()
        return
    num_queries = 4096 if args.full else args.queries
    if not args.no_search:
        search(num_queries, args.rows, args.bits, args.k, not args.full, args.impls)
    if not args.no_eval:
        evaluation(10_000, args.bits, 100, map_ks=tuple(args.map_k))


if __name__ == "__main__":
    main()
