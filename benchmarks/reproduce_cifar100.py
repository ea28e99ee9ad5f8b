"""The reproduction study: every method on the full CIFAR-100 with one budget, one JSON row each.

    python -m benchmarks.reproduce_cifar100 --data /tmp/cifar100_full.npz
    python -m benchmarks.reproduce_cifar100 --data ... --rows paper,64,0 ce,64,0   # a subset

``--data`` is the official 50,000 / 10,000 split as an ``.npz`` (rebuilt offline as
``../shared/data/cifar100_full/README.md`` says; never committed). Each row trains
``configs/cifar100_cpu.py:<method>,<bits>,<seed>[,zeroshot]`` in ``--workdir/<row>`` (a rerun
resumes from the row's checkpoints and skips rows already in ``--out``), evaluates the test set
as queries and database (self excluded; the zero-shot rows among the 20 held-out classes only)
and appends to ``--out`` (``benchmarks/results/reproduce_cifar100.json``): method, bits, seed,
epochs, steps, wall_s, device, ``metrics`` (sign codes ranked by Hamming distance),
``real_valued`` (the outputs z ranked by Euclidean and by cosine distance), ``gap`` (real-valued
cosine minus Hamming, per metric: what binarisation loses) and ``random_codes``.
``--table`` prints the README table from ``--out`` without training.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

from benchmarks.common import device_name
from jaxhash import train
from jaxhash.config import load_config_file

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar100_cpu.py"
ROWS = (
    # 64 bits, every method, two seeds
    *[f"{m},64,{s}" for s in (0, 1) for m in ("ce", "ce_quant", "ce_sim", "paper", "sim_kl")],
    # 16 and 32 bits for cross-entropy only and the paper's loss
    *[f"{m},{b},0" for b in (16, 32) for m in ("ce", "paper")],
    # zero-shot: 20 classes never seen in training
    "ce,64,0,zeroshot",
    "paper,64,0,zeroshot",
    # the KL weight lowered to 0.01, or a tanh hash layer (see configs/cifar100_cpu.py)
    "paper_kl0.01,64,0",
    "sim_kl0.01,64,0",
    "paper_tanh,64,0",
    "sim_kl_tanh,64,0",
)
METRICS = ("mAHP@", "mAP@", "P@100", "mistake_severity")  # cut-offs lowered to the candidates


def row_name(spec: str) -> str:
    return spec.replace(",", "_")


def _pick(summary: dict) -> dict:
    return {
        k: v
        for k, v in summary.items()
        if k.startswith(("mAHP@", "mAP@", "precision@r")) or k in ("P@100", "mistake_severity")
    }


def metric(summary: dict, prefix: str) -> float:
    """The value of the first metric named ``prefix...`` ("mAP@" -> "mAP@250")."""
    return next(v for k, v in summary.items() if k.startswith(prefix))


def run_row(
    spec: str, data: str, workdir: Path, data_dir: str | None, epochs: float | None = None
) -> dict:
    """Train and evaluate one row; return its JSON object."""
    config = load_config_file(f"{CONFIG}:{spec}")
    config.data.manual_dir = data
    if epochs is not None:
        config.train.epochs = epochs
    if data_dir:
        config.data.data_dir = data_dir
    start = time.time()
    state, report = train.run(config, workdir / row_name(spec), progress=False)
    wall = time.time() - start
    method, bits, seed, *rest = spec.split(",")
    hamming = _pick(report["metrics"])
    rows = report["rows"]
    real = {n: _pick(r["summary"]) for n, r in rows.items() if n not in ("hamming", "random_codes")}
    gap = {k: round(v - hamming[k], 6) for k, v in real.get("cosine", {}).items() if k in hamming}
    return {
        "method": method,
        "bits": int(bits),
        "seed": int(seed),
        "protocol": "zero_shot" if rest else "database_is_query",
        "epochs": float(config.train.epochs),
        "steps": int(state.step),
        "batch_size": int(config.batch_size),
        "model": f"{config.model.name} width {config.model.width}",
        "wall_s": round(wall, 1),
        "device": device_name(),
        "devices": jax.device_count(),
        "jax_version": jax.__version__,
        "num_queries": report["num_queries"],
        "num_database": report["num_database"],
        "metrics": hamming,
        "real_valued": real,
        "gap_cosine_minus_hamming": gap,
        "random_codes": _pick(rows.get("random_codes", {}).get("summary", {})),
        "config": f"configs/cifar100_cpu.py:{spec}",
    }


def load_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def _protocol(name: str) -> str:
    return {"database_is_query": "test vs test", "zero_shot": "zero-shot"}.get(name, name)


def table(rows: list[dict]) -> str:
    """Markdown: one line per (method, bits, protocol), seeds averaged (and their spread)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["protocol"], row["bits"], row["method"]), []).append(row)
    methods = ("ce", "ce_quant", "ce_sim", "paper", "paper_kl0.01", "paper_tanh", "sim_kl")
    methods += ("sim_kl0.01", "sim_kl_tanh")
    order = {method: i for i, method in enumerate(methods)}
    lines = [
        "| protocol | bits | method | seeds | mAHP@250 | mAP@250 | P@100 | severity | "
        "mAHP@250 real (cos) | mAP@250 real (cos) | wall s / seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(values: list[float]) -> str:
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{mean:.3f}"
        return f"{mean:.3f} ± {(max(values) - min(values)) / 2:.3f}"

    keys = sorted(groups, key=lambda k: (k[0] != "database_is_query", k[1], order[k[2]]))
    for i, key in enumerate(keys):
        members = groups[key]
        m = [r["metrics"] for r in members]
        c = [r["real_valued"].get("cosine", {}) for r in members]
        lines.append(
            f"| {_protocol(key[0])} | {key[1]} | {key[2]} | {len(members)} | "
            f"{cell([metric(x, 'mAHP@') for x in m])} | {cell([metric(x, 'mAP@') for x in m])} | "
            f"{cell([x['P@100'] for x in m])} | {cell([x['mistake_severity'] for x in m])} | "
            f"{cell([metric(x, 'mAHP@') for x in c])} | {cell([metric(x, 'mAP@') for x in c])} | "
            f"{sum(r['wall_s'] for r in members) / len(members):.0f} |"
        )
        last_of_block = i + 1 == len(keys) or keys[i + 1][:2] != key[:2]
        rc = members[0]["random_codes"]
        if last_of_block and rc:  # uniform random codes of the same length, same queries
            lines.append(
                f"| {_protocol(key[0])} | {key[1]} | random codes | - | "
                f"{metric(rc, 'mAHP@'):.3f} | {metric(rc, 'mAP@'):.3f} | "
                f"{rc['P@100']:.3f} | {rc['mistake_severity']:.3f} | "
                "- | - | - |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-100 .npz (x_train, y_train_fine, ...)")
    parser.add_argument("--workdir", default="runs/reproduce_cifar100")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's)")
    parser.add_argument("--out", default="benchmarks/results/reproduce_cifar100.json")
    parser.add_argument("--rows", nargs="*", default=list(ROWS))
    parser.add_argument("--epochs", type=float, default=None, help="override (smoke tests)")
    parser.add_argument("--table", action="store_true", help="print the table of --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(load_rows(out)))
        return
    if not args.data or not Path(args.data).is_file():
        parser.error(
            f"--data must be the CIFAR-100 .npz; {args.data!r} is not a file. Rebuild it as "
            "../shared/data/cifar100_full/README.md says."
        )
    done = {r["config"].split(":", 1)[1] for r in load_rows(out)}
    for spec in args.rows:
        if spec in done:
            print(f"{spec}: already in {out}, skipped", flush=True)
            continue
        row = run_row(spec, args.data, Path(args.workdir), args.data_dir, args.epochs)
        rows = [r for r in load_rows(out) if r["config"] != row["config"]] + [row]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1) + "\n")
        print(json.dumps(row), flush=True)
    print(table(load_rows(out)))


if __name__ == "__main__":
    main()
