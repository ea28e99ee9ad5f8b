"""Timing and reporting shared by the benchmarks: warm up, block, median of repeats, JSON lines."""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable

import jax


def device_name() -> str:
    """e.g. "cpu", "NVIDIA H200" (the kind of the first device)."""
    device = jax.devices()[0]
    return device.platform if device.platform == "cpu" else device.device_kind


def device_slug(device: str | None = None) -> str:
    """A file-name form of a device name: "NVIDIA H200" -> "nvidia-h200" (default: this one)."""
    device = device_name() if device is None else device
    return re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"


# ``python -m benchmarks --quick`` (the CI smoke test) sets this: every timing is one call after
# one warm-up, so a benchmark's code runs end to end in seconds; its numbers mean nothing then.
SMOKE_TEST = "JAXHASH_BENCHMARK_SMOKE_TEST"


def time_fn(
    fn: Callable,
    *args,
    warmup: int = 2,
    min_repeats: int = 5,
    max_repeats: int = 100,
    min_seconds: float = 1.0,
) -> float:
    """Median wall time in milliseconds of ``fn(*args)``, blocking on its results.

    Compilation stays out of the numbers (``warmup`` calls first); repeats continue until both
    ``min_repeats`` runs and ``min_seconds`` have passed, up to ``max_repeats``. Under the
    suite's smoke test (``SMOKE_TEST`` set), one warm-up and one timed call.
    """
    if os.environ.get(SMOKE_TEST):
        warmup, min_repeats, min_seconds = min(warmup, 1), 1, 0.0
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_repeats and (
        len(times) < min_repeats or time.perf_counter() - start < min_seconds
    ):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def emit(
    benchmark: str,
    impl: str,
    shape: dict,
    median_ms: float,
    reference: str | None,
    reference_ms: float | None,
    **extra,
) -> dict:
    """Print (and return) one result line: speedup = reference time / this time.

    ``reference`` and ``reference_ms`` are None when no reference could run in this process
    (e.g. an optional library is absent); speedup is then null, never a made-up number.
    """
    row = {
        "benchmark": benchmark,
        "impl": impl,
        "device": device_name(),
        "jax_version": jax.__version__,
        "shape": shape,
        "median_ms": round(median_ms, 4),
        "reference": reference,
        "speedup": None if reference_ms is None else round(reference_ms / median_ms, 3),
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row
