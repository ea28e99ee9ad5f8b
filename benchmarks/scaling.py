"""How the costs grow: measured times against size, with the fitted power-law exponent of each.

    python -m benchmarks.scaling            # CPU sizes -> results/scaling_<device>.json
    python -m benchmarks.scaling --quick    # small sizes (smoke test)
    python -m benchmarks.scaling --table    # the markdown table of the last results

Three studies, each timed with ``benchmarks.common.time_fn`` (compile excluded, median):

* **batch**: value-and-grad of ``hashing_loss`` (CE + similarity + kNN KL, K = 64, 100 classes)
  and of the kNN term alone (``kth_neighbor_sq_distances``, k = 1) for B = 256 .. 16384, with
  the naive reference (full ``[B, B]`` matrices, ``lax.top_k``) up to ``--reference-max``.
  The similarity term is O(B K^2) in closed form, the kNN term O(B^2 K): expect an exponent
  near 2 once the B^2 work dominates (and below 2 at small B, where fixed costs dominate).
* **database**: ``retrieval.hamming_topk`` of 100 queries (64 bits, k = 100) against 10^4 ..
  10^7 packed codes, FAISS ``IndexBinaryFlat`` as the reference where installed. Linear in the
  database (exponent 1) once the per-call overhead is amortised.
* **devices**: the full train step (small CNN width 16, global batch 256) on 1, 2 and 4 host
  devices (``--xla_force_host_platform_device_count``), each in its own process. On one CPU the
  fake devices share the same cores, so this measures the cost of sharding the step (the
  collectives, the all-gathered kNN, the per-device launch overhead), not a speed-up: a flat
  line (exponent ~0) means the sharded step adds little. It does not predict accelerator
  scaling, where each device brings its own compute and the all-gather crosses a real link.

The exponent is the least-squares slope of log(time) on log(size) over the points at or above
``fit_from`` (the regime the exponent describes; stated in each row). JSON lines go to stdout;
every row and fit to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import device_name, device_slug, time_fn
from benchmarks.losses import _inputs, reference_hashing
from benchmarks.retrieval import _faiss_index, _random_packed, faiss_topk
from jaxhash import losses, retrieval
from jaxhash.knn import kth_neighbor_sq_distances
from jaxhash.losses import ClassTargets

ROOT = Path(__file__).resolve().parents[1]
# time_fn options: the full study repeats until a second has passed; --quick only smoke-tests.
TIMING: dict = {}
QUICK_TIMING = dict(warmup=1, min_repeats=2, min_seconds=0.0)


def fit_exponent(sizes, times, fit_from: int | None = None) -> float | None:
    """Least-squares slope of log(time) against log(size) for sizes >= ``fit_from``."""
    points = [
        (s, t) for s, t in zip(sizes, times, strict=True) if fit_from is None or s >= fit_from
    ]
    if len(points) < 2:
        return None
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return round(float(np.polyfit(x, y, 1)[0]), 3)


def _row(study: str, impl: str, size: int, ms: float, **extra) -> dict:
    row = {
        "benchmark": f"scaling.{study}",
        "impl": impl,
        "device": device_name(),
        "jax_version": jax.__version__,
        "size": size,
        "median_ms": round(ms, 4),
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row


def batch_study(batches: list[int], reference_max: int) -> list[dict]:
    rows = []

    def ours_total(z, logits, labels, table, key):
        targets = ClassTargets(labels, table)
        return losses.hashing_loss(z, key, logits=logits, labels=labels, targets=targets)[0]

    def ours_knn(z):
        d2 = kth_neighbor_sq_distances(z, z, 1, exclude_self=True)
        return 0.5 * jnp.sum(jnp.log(jnp.maximum(d2, 1e-12)))

    loss_fn = jax.jit(jax.value_and_grad(ours_total, argnums=(0, 1)))
    ref_fn = jax.jit(
        jax.value_and_grad(
            lambda z, logits, labels, table, key: reference_hashing(z, logits, key, labels, table),
            argnums=(0, 1),
        )
    )
    knn_fn = jax.jit(jax.value_and_grad(ours_knn))
    for batch in batches:
        args = _inputs(batch, 64, 100)
        z = args[0]
        slow = TIMING or (dict(min_repeats=3, min_seconds=0.5) if batch >= 8192 else {})
        rows.append(_row("batch", "hashing_loss", batch, time_fn(loss_fn, *args, **slow)))
        rows.append(_row("batch", "knn_k1", batch, time_fn(knn_fn, z, **slow)))
        if batch <= reference_max:
            ms = time_fn(ref_fn, *args, **(TIMING or dict(min_repeats=3, min_seconds=0.5)))
            rows.append(_row("batch", "hashing_loss_reference", batch, ms))
    return rows


def database_study(sizes: list[int], queries: int = 100, k: int = 100) -> list[dict]:
    rows = []
    q = _random_packed(queries, 8, 1)
    q_dev = jnp.asarray(q)
    for size in sizes:
        db = _random_packed(size, 8, 2)
        db_dev = jnp.asarray(db)
        slow = TIMING or dict(warmup=1, min_repeats=3, min_seconds=0.5)
        ms = time_fn(
            lambda q_dev=q_dev, db_dev=db_dev: retrieval.hamming_topk(q_dev, db_dev, k), **slow
        )
        rows.append(_row("database", "hamming_topk", size, ms, queries=queries, k=k))
        index = _faiss_index(db)
        if index is not None:
            ms = time_fn(faiss_topk, index, q, k, **slow)
            rows.append(_row("database", "faiss_IndexBinaryFlat", size, ms, queries=queries, k=k))
        del db, db_dev, index
    return rows


def device_study(counts: list[int], batch: int, width: int) -> list[dict]:
    rows = []
    for count in counts:
        env = dict(os.environ)
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={count}"])
        env["JAX_PLATFORMS"] = "cpu"
        cmd = [sys.executable, "-m", "benchmarks.train_step", "--batch", str(batch)]
        cmd += ["--width", str(width)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        for line in proc.stdout.splitlines():
            if not line.startswith("{"):
                continue
            result = json.loads(line)
            if result["impl"] == "jaxhash" and result.get("devices") == count:
                rows.append(
                    _row(
                        "devices",
                        "train_step",
                        count,
                        result["median_ms"],
                        batch=batch,
                        images_per_s=result["images_per_s"],
                        fake_cpu_devices=True,
                    )
                )
    return rows


FITS = {  # impl -> fit_from (the smallest size in the regime the exponent describes)
    "hashing_loss": 2048,
    "knn_k1": 2048,
    "hashing_loss_reference": 1024,
    "hamming_topk": 100_000,
    "faiss_IndexBinaryFlat": 100_000,
    "train_step": 1,
}


def fits(rows: list[dict]) -> list[dict]:
    out = []
    for study, impl in sorted({(r["benchmark"], r["impl"]) for r in rows}):
        members = [r for r in rows if (r["benchmark"], r["impl"]) == (study, impl)]
        sizes, times = [r["size"] for r in members], [r["median_ms"] for r in members]
        fit_from = FITS.get(impl)
        out.append(
            {
                "study": study,
                "impl": impl,
                "sizes": sizes,
                "median_ms": times,
                "fit_from": fit_from,
                "exponent": fit_exponent(sizes, times, fit_from),
            }
        )
    return out


def table(result: dict) -> str:
    lines = [
        f"Device: {result['device']}, JAX {result['jax_version']}, {result['date']}.",
        "",
        "| study | impl | sizes | median ms | exponent (fit from) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for f in result["fits"]:
        sizes = ", ".join(f"{s:,}" for s in f["sizes"])
        times = ", ".join(f"{t:.3g}" for t in f["median_ms"])
        exp = "-" if f["exponent"] is None else f"{f['exponent']:.2f} (>= {f['fit_from']:,})"
        lines.append(f"| {f['study'].split('.')[-1]} | {f['impl']} | {sizes} | {times} | {exp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import datetime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", default=None, help="JSON file (default results/scaling_<device>)")
    parser.add_argument("--reference-max", type=int, default=4096)
    parser.add_argument("--max-database", type=int, default=10_000_000)
    parser.add_argument("--table", action="store_true", help="print the table of --out")
    parser.add_argument("--skip", nargs="*", default=[], choices=("batch", "database", "devices"))
    args = parser.parse_args(argv)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"scaling_{device_slug()}.json")
    if args.table:
        print(table(json.loads(out.read_text())))
        return
    if args.quick:
        TIMING.update(QUICK_TIMING)
        batches, databases, counts = [256, 512], [10_000, 20_000], [1, 2]
    else:
        batches = [256, 512, 1024, 2048, 4096, 8192, 16384]
        databases = [d for d in (10**4, 10**5, 10**6, 10**7) if d <= args.max_database]
        counts = [1, 2, 4]
    rows = []
    if "batch" not in args.skip:
        rows += batch_study(batches, args.reference_max)
    if "database" not in args.skip:
        rows += database_study(databases)
    if "devices" not in args.skip:
        rows += device_study(counts, batch=32 if args.quick else 256, width=8 if args.quick else 16)
    result = {
        "device": device_name(),
        "jax_version": jax.__version__,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.scaling" + (" --quick" if args.quick else ""),
        "rows": rows,
        "fits": fits(rows),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
