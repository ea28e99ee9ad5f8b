"""Loss kernels: jaxhash's losses against a straightforward JAX reference, same process.

The reference is what one writes first: full [B, B] distance matrices, ``lax.top_k`` for the
k-th neighbour, gradients through everything. Each line is value-and-grad w.r.t. the codes
(and logits), jitted, compile time excluded.

    python -m benchmarks.losses                 # batch 256, 1024, 4096 at K = 64
    python -m benchmarks.losses --full          # adds 16384 (accelerators)
    python -m benchmarks.losses --cases hashing_loss --batch 4096 65536 --impls xla pallas \
        --reference-max 16384

``--impls`` times the losses with a k-th-neighbour term (hashing_loss, binary_kl_loss) once per
kNN implementation, passed as ``knn_impl`` (lines "jaxhash_xla", "jaxhash_pallas";
"auto" is the line "jaxhash"), so the fused kernel and the XLA path meet in one process.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import emit, time_fn
from jaxhash import losses
from jaxhash.losses import ClassTargets

# ----------------------------------------------------------------------------- reference


def _sq_dists(a, b):
    d = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(d, 0.0)


def reference_similarity(z, dist):
    """Full-matrix relative distance matching ("mean" normalisation, p = 2)."""
    n = z.shape[0]
    u = z / jnp.maximum(jnp.linalg.norm(z, axis=1, keepdims=True), 1e-6)
    d = 0.5 * (1.0 - u @ u.T)
    off = ~jnp.eye(n, dtype=bool)
    d = d / (jnp.sum(jnp.where(off, d, 0.0)) / (n * (n - 1)))
    dist = dist / (jnp.sum(jnp.where(off, dist, 0.0)) / (n * (n - 1)))
    return jnp.sum(jnp.where(off, (d - dist) ** 2, 0.0)) / (n * (n - 1))


def reference_kl(z, key, k=1):
    """Wang-Kulkarni-Verdu estimate against uniform binary samples, with top_k."""
    n, dim = z.shape
    y = jax.random.rademacher(key, (n, dim), z.dtype)
    dxx = _sq_dists(z, z) + jnp.diag(jnp.full((n,), jnp.inf))
    rho2 = -jax.lax.top_k(-dxx, k)[0][:, k - 1]
    nu2 = -jax.lax.top_k(-_sq_dists(z, y), k)[0][:, k - 1]
    log_ratio = 0.5 * (jnp.log(jnp.maximum(nu2, 1e-12)) - jnp.log(jnp.maximum(rho2, 1e-12)))
    return dim * jnp.mean(log_ratio) + jnp.log(n / (n - 1))


def reference_ce(logits, labels):
    return jnp.mean(
        jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, labels[:, None], 1)[:, 0]
    )


def reference_hashing(z, logits, key, labels, table):
    return (
        reference_ce(logits, labels)
        + reference_similarity(z, table[labels][:, labels])
        + reference_kl(z, key)
    )


# ----------------------------------------------------------------------------- cases


def _inputs(batch: int, bits: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(batch, bits)), jnp.float32)
    logits = jnp.asarray(rng.normal(size=(batch, classes)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, classes, batch), jnp.int32)
    table = rng.uniform(0.2, 1.0, (classes, classes))
    table = (table + table.T) / 2
    np.fill_diagonal(table, 0.0)
    return z, logits, labels, jnp.asarray(table, jnp.float32), jax.random.key(seed)


KNN_CASES = ("hashing_loss", "binary_kl_loss")
CASES = ("hashing_loss", "similarity_loss_class", "similarity_loss_dense", "binary_kl_loss")


def run(
    batches: list[int],
    bits: int = 64,
    classes: int = 100,
    cases: tuple[str, ...] = CASES,
    impls: tuple[str, ...] = ("auto",),
    reference_max: int | None = None,
) -> list[dict]:
    """Time ``cases`` per batch: jaxhash once per kNN ``impls`` entry (where the loss has a kNN
    term) and the reference up to batch ``reference_max``."""
    rows = []
    for batch in batches:
        z, logits, labels, table, key = _inputs(batch, bits, classes)
        dense = table[labels][:, labels]
        shape = {"batch": batch, "bits": bits, "classes": classes}

        def ours_total(z, logits, labels, table, key, knn_impl="auto"):
            targets = ClassTargets(labels, table)
            return losses.hashing_loss(
                z, key, logits=logits, labels=labels, targets=targets, knn_impl=knn_impl
            )[0]

        # name: (ours, reference, arguments, number of leading arguments differentiated)
        table_of_cases = {
            "hashing_loss": (
                ours_total,
                lambda z, logits, labels, table, key: reference_hashing(
                    z, logits, key, labels, table
                ),
                (z, logits, labels, table, key),
                2,
            ),
            "similarity_loss_class": (
                lambda z, labels, table: losses.similarity_loss(z, ClassTargets(labels, table)),
                lambda z, labels, table: reference_similarity(z, table[labels][:, labels]),
                (z, labels, table),
                1,
            ),
            "similarity_loss_dense": (
                losses.similarity_loss,
                reference_similarity,
                (z, dense),
                1,
            ),
            "binary_kl_loss": (losses.binary_kl_loss, reference_kl, (z, key), 1),
        }
        for name in cases:
            ours, reference, args, num_diff = table_of_cases[name]
            argnums = tuple(range(num_diff))
            ref_ms = ref_value = None
            if reference_max is None or batch <= reference_max:
                ref_fn = jax.jit(jax.value_and_grad(reference, argnums=argnums))
                ref_value = float(ref_fn(*args)[0])
                ref_ms = time_fn(ref_fn, *args)
                rows.append(
                    emit(name, "reference", shape, ref_ms, "reference", ref_ms, value=ref_value)
                )
            for impl in impls if name in KNN_CASES else ("auto",):
                with_impl = functools.partial(ours, knn_impl=impl) if name in KNN_CASES else ours
                ours_fn = jax.jit(jax.value_and_grad(with_impl, argnums=argnums))
                ours_value = float(ours_fn(*args)[0])
                ours_ms = time_fn(ours_fn, *args)
                rows.append(
                    emit(
                        name,
                        "jaxhash" if impl == "auto" else f"jaxhash_{impl}",
                        shape,
                        ours_ms,
                        None if ref_ms is None else "reference",
                        ref_ms,
                        value=ours_value,
                        reference_value=ref_value,
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--full", action="store_true", help="add batch 16384")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument(
        "--impls", nargs="+", choices=("auto", "xla", "pallas"), default=["auto"],
        help="kNN implementations for the losses with a kNN term (pallas on a CPU: interpreted)",
    )  # fmt: skip
    parser.add_argument(
        "--reference-max", type=int, help="largest batch for the [B, B] reference (default: all)"
    )
    args = parser.parse_args(argv)
    batches = args.batch + ([16384] if args.full and 16384 not in args.batch else [])
    run(batches, args.bits, args.classes, tuple(args.cases), tuple(args.impls), args.reference_max)


if __name__ == "__main__":
    main()
