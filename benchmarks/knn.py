"""k-th-neighbour distances (jaxhash.knn) against the full-matrix ``lax.top_k`` reference.

Each line times value-and-grad of ``sum(log kth-neighbour distance)`` over a batch against itself
(self excluded), the shape of the KL estimator's rho term, jitted, compile excluded. Variants:
the implementation (``impl``: the fused Pallas kernel against the XLA path, same process), the
XLA path's selection strategy ("tiled", "flat", "top_k") and the scoring matmul precision.
"jaxhash" is the default (``impl="auto"``: the kernel on GPUs and TPUs, XLA on CPUs).

    python -m benchmarks.knn                 # batch 1024, 4096 at K = 64, k = 1 and 3
    python -m benchmarks.knn --full          # adds 16384 and 65536 (accelerators)
    python -m benchmarks.knn --batch 16384 --k 1 --variants jaxhash_xla jaxhash_pallas

On a CPU the kernel runs in Pallas's interpreter (minutes at these sizes), so "jaxhash_pallas"
runs there only when named in ``--variants``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import emit, time_fn
from jaxhash.knn import kth_neighbor_sq_distances


def reference_log_kth(x, k):
    """Full [n, n] squared distances, diagonal masked, ``lax.top_k``; gradients through all."""
    n = x.shape[0]
    sq = jnp.sum(x * x, 1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    d2 = d2 + jnp.diag(jnp.full((n,), jnp.inf))
    kth = -jax.lax.top_k(-d2, k)[0][:, k - 1]
    return 0.5 * jnp.sum(jnp.log(jnp.maximum(kth, 1e-12)))


def ours_log_kth(x, k, **options):
    d2 = kth_neighbor_sq_distances(x, x, k, exclude_self=True, **options)
    return 0.5 * jnp.sum(jnp.log(jnp.maximum(d2, 1e-12)))


VARIANTS = {
    "jaxhash": {},
    "jaxhash_xla": {"impl": "xla"},
    "jaxhash_pallas": {"impl": "pallas"},
    "jaxhash_flat": {"selection": "flat", "impl": "xla"},
    "jaxhash_top_k": {"selection": "top_k", "impl": "xla"},
    "jaxhash_default_precision": {"precision": jax.lax.Precision.DEFAULT},
}


def default_variants() -> list[str]:
    """Every variant; without the interpreted kernel on a CPU."""
    if jax.default_backend() == "cpu":
        return [name for name in VARIANTS if name != "jaxhash_pallas"]
    return list(VARIANTS)


def run(
    batches: list[int],
    bits: int = 64,
    ks: tuple[int, ...] = (1, 3),
    variants: list[str] | None = None,
    reference_max: int | None = None,
) -> list[dict]:
    """Time each variant (and the reference, up to batch ``reference_max``) per batch and k."""
    variants = default_variants() if variants is None else variants
    rows = []
    for batch in batches:
        x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, bits)), jnp.float32)
        for k in ks:
            shape = {"batch": batch, "bits": bits, "k": k}
            ref_ms = ref_value = None
            if reference_max is None or batch <= reference_max:
                ref_fn = jax.jit(jax.value_and_grad(lambda x, k=k: reference_log_kth(x, k)))
                ref_ms = time_fn(ref_fn, x)
                ref_value = float(ref_fn(x)[0])
                rows.append(emit("knn", "reference", shape, ref_ms, "reference", ref_ms))
            for name in variants:
                options = VARIANTS[name]
                fn = jax.jit(jax.value_and_grad(lambda x, k=k, o=options: ours_log_kth(x, k, **o)))
                value = float(fn(x)[0])
                ms = time_fn(fn, x)
                rows.append(
                    emit(
                        "knn",
                        name,
                        shape,
                        ms,
                        None if ref_ms is None else "reference",
                        ref_ms,
                        value=value,
                        reference_value=ref_value,
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--full", action="store_true", help="add batch 16384 and 65536")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), help="default: all (CPU: no kernel)"
    )
    parser.add_argument(
        "--reference-max", type=int, help="largest batch for the [B, B] reference (default: all)"
    )
    args = parser.parse_args(argv)
    batches = args.batch + ([16384, 65536] if args.full else [])
    run(batches, args.bits, tuple(args.k), args.variants, args.reference_max)


if __name__ == "__main__":
    main()
