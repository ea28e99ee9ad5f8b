"""Fused Pallas kernels for the two hot paths, behind the functions that use them.

* :mod:`jaxhash.kernels.kth_neighbor`: the k-th nearest point of each query by squared Euclidean
  distance, scored tile by tile so no ``[Q, P]`` matrix reaches device memory (behind
  :func:`jaxhash.knn.kth_neighbor_indices`).
* :mod:`jaxhash.kernels.hamming_tiles`: XOR-popcount distances fused with the first selection
  stage of the Hamming top-k, the minimum distance of each database tile (behind
  :func:`jaxhash.retrieval.hamming_topk`).

Two compiled CPU kernels (numba, extra ``search``) sit beside them:
:mod:`jaxhash.kernels.hamming_scan` (the brute-force Hamming top-k behind ``hamming_topk`` on
CPUs) and :mod:`jaxhash.kernels.multi_index_probe` (behind :class:`jaxhash.multi_index.MultiIndex`).

Each Pallas kernel has two lowerings: "triton" (GPUs; one program per query block loops over the
points) and "mosaic" (TPUs; a 2-D grid whose last axis walks the points, accumulating in the
output block). The XLA path stays the reference and the fallback: ``impl="auto"`` takes the
kernel on GPUs and TPUs and XLA on CPUs; ``"pallas"`` on a CPU runs the kernel in Pallas's
interpreter (slow; for tests). The choice is always an argument (``impl``; in training
``config.loss.knn_impl``), never process state read while tracing: a jitted caller that
changes it traces again, so the change takes effect.
"""

from __future__ import annotations

import jax

IMPLS = ("auto", "xla", "pallas")
VARIANTS = ("triton", "mosaic")


def resolve_impl(impl: str, platform: str | None = None) -> str:
    """``"xla"`` or ``"pallas"`` for ``impl`` on ``platform`` (default: the default backend; see
    the module docstring)."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}; got {impl!r}.")
    if impl == "auto":
        platform = jax.default_backend() if platform is None else platform
        return "pallas" if platform in ("gpu", "tpu") else "xla"
    return impl


def default_variant() -> str:
    """The kernel lowering for the default backend: "mosaic" on TPUs, else "triton" (GPUs, and
    the interpreter on CPUs)."""
    return "mosaic" if jax.default_backend() == "tpu" else "triton"


def check_variant(variant: str | None) -> str:
    """``variant`` if valid, the backend's default if None, else a ValueError."""
    if variant is None:
        return default_variant()
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} or None; got {variant!r}.")
    return variant


def interpret_default() -> bool:
    """Kernels run in Pallas's interpreter where there is no GPU or TPU to compile them for."""
    return jax.default_backend() not in ("gpu", "tpu")


def round_up(n: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``n``."""
    return -(-n // multiple) * multiple


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= ``n`` (Triton blocks are powers of two)."""
    return 1 << max(n - 1, 0).bit_length()
