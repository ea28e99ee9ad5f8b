"""The reproduction study: methods and KL forms on the full CIFAR-100, one JSON row each.

    python -m studies.reproduce_cifar100 --data cifar100.npz --plan    # the whole study
    python -m studies.reproduce_cifar100 --data ... --rows paper,64,0 ce,64,0 --epochs 15
    python -m studies.reproduce_cifar100 --table                       # the README table

``--data`` is the official 50,000 / 10,000 split as an ``.npz`` (``x_train``, ``y_train_fine``,
``x_test``, ``y_test_fine``; never committed). Each row trains
``configs/<recipe>:<method>,<bits>,<seed>[,zeroshot]`` (``jaxhash.methods``) for its epochs
in ``--workdir/<config>/<row>`` and evaluates the test set as queries and database (self
excluded; the zero-shot rows among the 20 held-out classes only). A row is (spec, epochs): a
rerun resumes a row from its checkpoints and skips rows already in ``--out``, so the study can
be stopped and restarted at any time; every finished row is written at once.

``--plan`` runs the study in two stages. The screen (5 epochs, seed 0, 64 bits): every KL form
at a few weights beside ``ce`` and ``ce_sim``. Then the main rows (15 epochs): ``ce``,
``ce_sim`` and the screen's winner (the KL form and weight with the highest Hamming mAHP@250;
``--winner`` overrides) at three seeds, the winner at 16 and 32 bits, and the three on the
zero-shot protocol. ``--recipe resnet18`` runs the main rows of ``configs/cifar100.py``
instead (ResNet-18, 200 epochs, for a GPU or TPU; ``paper`` unless ``--winner``);
``--time-limit M`` stops after M minutes with a checkpoint (exit code 3), and the same command
continues where it stopped: a long study fits machines lent for minutes at a time.
``--reader numpy`` reads the ``.npz`` with NumPy alone (``config.data.reader``): for machines
without TensorFlow; the examples then come in the file's order rather than TFDS's, so its rows
are not bit-identical to TFDS-read ones (the row records its reader).

Row fields: method, kl_form, loss weights, bits, seed, protocol, epochs, steps, wall_s (the
wall time of the process that finished the row), train_s and median_images_per_s (the training
loop over every process that trained it, from its log), device, ``metrics`` (sign codes
ranked by Hamming distance), ``real_valued`` (the outputs z ranked by Euclidean and by cosine
distance), ``gap_cosine_minus_hamming`` (what binarisation
loses, per metric), ``random_codes`` and ``train_log`` (the last training log line: every loss
term and the diagnostics of jaxhash.diagnostics).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from benchmarks.common import device_name
from jaxhash import train
from jaxhash.config import apply_overrides, load_config_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Recipes: the config file, and the plan's epochs (screen, main rows; no screen: None).
RECIPES = {
    "cpu": ("cifar100_cpu.py", 5.0, 15.0),  # the small CNN, width 16, batch 256
    "resnet18": ("cifar100.py", None, 200.0),  # ResNet-18, bf16, batch 512: a GPU or TPU
    "fast": ("cifar100_fast.py", None, None),  # airbench-shaped net and recipe: its EPOCHS
}
# Recipes whose plan adds the class-description (sentence-embedding) target row.
TEXT_ROWS = {"fast"}


class Unfinished(Exception):
    """A row stopped by the time limit (its checkpoints are kept; a rerun continues it)."""


# The screen, most informative rows first (weights of the per-bit forms are per bit).
SCREEN = (
    "ce_sim",
    "paper-marginal-1",
    "paper-wkv-0.1",
    "paper-smoothed_prior-1",
    "paper-corner-1",
    "paper-sphere-1",
    "ce",
    "paper-marginal-3",
    "paper-marginal-0.3",
    "paper-smoothed_prior-0.3",
    "paper-corner-3",
    "paper-sphere-0.3",
    "paper-wkv-0.01",
    "paper-wkv-0.1-tanh",
    "paper-smoothed_prior-3",
)


def plan_rows(winner: str, epochs: float | None, text: bool = False) -> list[tuple[str, float]]:
    """The main stage: (spec, epochs) of every row, ``winner`` the chosen paper method;
    ``text`` adds the winner with class-description targets (``configs/cifar100_fast.py``).

    The winner's three seeds come first (they decide whether the recipe meets its goal), then
    the baselines' seeds (the ranking of the losses), then bits, text targets and zero-shot."""
    rows = [f"{winner},64,{s}" for s in (0, 1, 2)]
    rows += [f"{m},64,{s}" for s in (0, 1, 2) for m in ("ce", "ce_sim")]
    rows += [f"{winner},{bits},0" for bits in (16, 32)]
    if text:
        rows.append(f"{winner},64,0,text")
    rows += [f"{m},64,0,zeroshot" for m in ("ce", "ce_sim", winner)]
    return [(spec, epochs) for spec in rows]


# Rows also scored with the class-description similarity as graded relevance (``text_relevance``
# in the row): the text-target row and the WordNet-target row it is compared with.
def scores_text_relevance(spec: str) -> bool:
    method, bits, seed, *rest = spec.split(",")
    return bits == "64" and seed == "0" and "zeroshot" not in rest and method.startswith("paper")


def screen_winner(rows: list[dict], config_file: str, epochs: float) -> str | None:
    """The screened paper method with the best Hamming mAHP@250 (None before the screen ends)."""
    screened = {
        r["method"]: r
        for r in rows
        if r["epochs"] == epochs
        and r["protocol"] == "database_is_query"
        and r["config"].startswith(f"configs/{config_file}:")
    }
    if any(m not in screened for m in SCREEN):
        return None
    candidates = [m for m in SCREEN if m.startswith("paper-")]
    return max(candidates, key=lambda m: metric(screened[m]["metrics"], "mAHP@"))


METRICS = ("mAHP@", "mAP@", "P@100", "mistake_severity")  # cut-offs lowered to the candidates


def row_name(spec: str, epochs: float) -> str:
    return f"{spec.replace(',', '_')}_e{epochs:g}"


def _pick(summary: dict) -> dict:
    return {
        k: v
        for k, v in summary.items()
        if k.startswith(("mAHP@", "mAP@", "precision@r")) or k in ("P@100", "mistake_severity")
    }


def metric(summary: dict, prefix: str) -> float:
    """The value of the first metric named ``prefix...`` ("mAP@" -> "mAP@250")."""
    return next(v for k, v in summary.items() if k.startswith(prefix))


def _last_train_log(workdir: Path) -> dict:
    """The last training log line of a run (loss terms and diagnostics), {} if none."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train_lines = [line for line in lines if "loss" in line]
    return train_lines[-1] if train_lines else {}


def training_time(workdir: Path, batch_size: int, log_every: int) -> dict:
    """Seconds spent in the training loop over every process that trained the run, and the
    median images/s, from its log (``metrics.jsonl``): each line's window is the steps since the
    line before it (``log_every``, or fewer, on the first line after a resume) over its
    images/s. Robust to a row resumed across processes, where ``wall_s`` is the last process's
    wall time only; evaluation is not included. {} without a training log."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    seconds, speeds, previous = 0.0, [], 0
    for line in lines:
        if "images_per_s" not in line:
            continue
        step, speed = int(line["step"]), float(line["images_per_s"])
        steps = step - previous if step > previous else min(step, log_every)
        seconds += steps * batch_size / speed
        speeds.append(speed)
        previous = step
    if not speeds:
        return {}
    median = statistics.median(speeds)
    return {"train_s": round(seconds, 1), "median_images_per_s": round(median, 1)}


def run_row(
    spec: str,
    data: str,
    workdir: Path,
    data_dir: str | None,
    epochs: float | None = None,
    *,
    config_file: str = "cifar100_cpu.py",
    time_limit_s: float | None = None,
    reader: str = "tfds",
    text_relevance_too: bool = False,
    overrides: Sequence[str] = (),
) -> dict:
    """Train and evaluate one row; return its JSON object (Unfinished: out of time).
    ``overrides``: ``key.path=value`` changes of the config (smoke runs)."""
    config = load_config_file(f"{CONFIGS / config_file}:{spec}")
    apply_overrides(config, overrides)
    config.data.manual_dir = data
    config.data.reader = reader
    if epochs is not None:
        config.train.epochs = epochs
    if data_dir:
        config.data.data_dir = data_dir
    run_dir = workdir / Path(config_file).stem / row_name(spec, float(config.train.epochs))
    start = time.time()
    state, report = train.run(config, run_dir, progress=False, time_limit_s=time_limit_s)
    wall = time.time() - start
    if report is None:
        raise Unfinished(f"{spec}: stopped at step {int(state.step)} by the time limit")
    method, bits, seed, *rest = spec.split(",")
    hamming = _pick(report["metrics"])
    text_relevance = None
    if text_relevance_too:
        text_relevance = _text_relevance(config, run_dir)
    rows = report["rows"]
    real = {n: _pick(r["summary"]) for n, r in rows.items() if n not in ("hamming", "random_codes")}
    gap = {k: round(v - hamming[k], 6) for k, v in real.get("cosine", {}).items() if k in hamming}
    return {
        "method": method,
        "kl_form": config.loss.kl_form if config.loss.w_kl else None,
        "weights": {name: float(config.loss[f"w_{name}"]) for name in ("ce", "sim", "kl", "quant")},
        "hash_activation": config.model.hash_activation,
        "bits": int(bits),
        "seed": int(seed),
        "protocol": "zero_shot" if "zeroshot" in rest else "database_is_query",
        "epochs": float(config.train.epochs),
        "steps": int(state.step),
        "batch_size": int(config.batch_size),
        "model": _model_name(config.model),
        "recipe": Path(config_file).stem,
        "tta": config.eval.tta,
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
        "targets": config.loss.similarity,
        "text_relevance": text_relevance,
        "train_log": _last_train_log(run_dir),
        **training_time(run_dir, int(config.batch_size), int(config.train.log_every)),
        "config": f"configs/{config_file}:{spec}",
        "reader": reader,
    }


def _model_name(model) -> str:
    if model.widths:
        return f"{model.name} widths {','.join(str(w) for w in model.widths)}"
    if model.name in ("fast_cnn", "fast_resnet"):
        from jaxhash.models import FAST_WIDTHS

        return f"{model.name} widths {','.join(str(w) for w in FAST_WIDTHS[model.name])}"
    return f"{model.name} width {model.width}"


def _text_relevance(config, run_dir: Path) -> dict:
    """The run's last checkpoint scored with the class-description similarity as graded
    relevance (``eval.similarity = "text"``): Hamming and cosine mAHP@k, mAP@k, ...; its report
    goes to ``run_dir/text_relevance``."""
    from jaxhash.run_folder import open_run

    config = config.copy_and_resolve_references()
    config.eval.similarity = "text"
    report = open_run(run_dir, config=config).evaluate(run_dir / "text_relevance")
    rows = report["rows"]
    return {name: _pick(rows[name]["summary"]) for name in ("hamming", "cosine") if name in rows}


def load_rows(path: Path) -> list[dict]:
    return json.loads(path.read_text()) if path.exists() else []


def _protocol(name: str) -> str:
    return {"database_is_query": "test vs test", "zero_shot": "zero-shot"}.get(name, name)


def _kl_cell(row: dict) -> str:
    if not row.get("kl_form"):
        return "-"
    tanh = ", tanh" if row.get("hash_activation") == "tanh" else ""
    return f"{row['kl_form']} x {row['weights']['kl']:g}{tanh}"


def table(rows: list[dict]) -> str:
    """Markdown: one line per (epochs, network, protocol, bits, method), seeds averaged (with
    spread); the network column (model and batch size) only when rows name their model. The
    time per seed is the training time (``train_s``, every process of a resumed row) with the
    median images/s when every row records it, else the wall time of the finishing process."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:  # rows with class-description targets are a method of their own
        method = row["method"] + (" (text targets)" if row.get("targets") == "text" else "")
        network = f"{row['model']}, batch {row['batch_size']}" if row.get("model") else ""
        key = (row["epochs"], network, row["protocol"], row["bits"], method)
        groups.setdefault(key, []).append(row)
    fixed = ("ce", "ce_quant", "ce_sim")
    networks = any(key[1] for key in groups)
    timed = all("train_s" in row for row in rows)
    time_heads = " train s / seed | images/s |" if timed else " wall s / seed |"
    lines = [
        "| epochs |" + (" network |" if networks else "")
        + " protocol | bits | method | KL term | seeds | mAHP@250 | mAP@250 | P@100 | "
        "severity | precision r<=2 | mAHP@250 real (cos) | mAP@250 real (cos) | gap mAP | "
        "cos(z, sign z) |" + time_heads,
        "|" + " --- |" * (16 + networks + timed),
    ]

    def lead(key) -> str:
        return f"| {key[0]:g} |" + (f" {key[1] or '-'} |" if networks else "")

    def cell(values: list[float]) -> str:
        if not values:
            return "-"
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{mean:.3f}"
        return f"{mean:.3f} ± {(max(values) - min(values)) / 2:.3f}"

    def seconds(members: list[dict]) -> str:
        if not timed:
            return f"{sum(r['wall_s'] for r in members) / len(members):.0f}"
        train_s = sum(r["train_s"] for r in members) / len(members)
        speed = sum(r["median_images_per_s"] for r in members) / len(members)
        return f"{train_s:.0f} | {speed:.0f}"

    def order(key):
        epochs, network, protocol, bits, method = key
        rank = fixed.index(method) if method in fixed else len(fixed)
        return (-epochs, network, protocol != "database_is_query", bits, rank, method)

    keys = sorted(groups, key=order)
    for i, key in enumerate(keys):
        members = groups[key]
        m = [r["metrics"] for r in members]
        c = [r["real_valued"].get("cosine", {}) for r in members]
        logs = [r.get("train_log", {}) for r in members]
        diag = [log["z_sign_cos"] for log in logs if "z_sign_cos" in log]
        lines.append(
            f"{lead(key)} {_protocol(key[2])} | {key[3]} | {key[4]} | {_kl_cell(members[0])} | "
            f"{len(members)} | {cell([metric(x, 'mAHP@') for x in m])} | "
            f"{cell([metric(x, 'mAP@') for x in m])} | {cell([x['P@100'] for x in m])} | "
            f"{cell([x['mistake_severity'] for x in m])} | "
            f"{cell([x['precision@r2'] for x in m if 'precision@r2' in x])} | "
            f"{cell([metric(x, 'mAHP@') for x in c])} | {cell([metric(x, 'mAP@') for x in c])} | "
            f"{cell([metric(r['gap_cosine_minus_hamming'], 'mAP@') for r in members])} | "
            f"{cell(diag)} | {seconds(members)} |"
        )
        last_of_block = i + 1 == len(keys) or keys[i + 1][:4] != key[:4]
        rc = members[0]["random_codes"]
        if last_of_block and rc:  # uniform random codes of the same length, same queries
            lines.append(
                f"{lead(key)} {_protocol(key[2])} | {key[3]} | random codes | - | - | "
                f"{metric(rc, 'mAHP@'):.3f} | {metric(rc, 'mAP@'):.3f} | "
                f"{rc['P@100']:.3f} | {rc['mistake_severity']:.3f} | "
                f"{rc.get('precision@r2', 0.0):.3f} | - | - | - | - | -" + " | -" * timed + " |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="CIFAR-100 .npz (x_train, y_train_fine, ...)")
    parser.add_argument("--workdir", default="runs/reproduce_cifar100")
    parser.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's)")
    parser.add_argument("--out", default="benchmarks/results/reproduce_cifar100.json")
    parser.add_argument("--rows", nargs="*", default=[], help="specs method,bits,seed[,zeroshot]")
    parser.add_argument("--epochs", type=float, default=None, help="epochs of --rows")
    parser.add_argument("--plan", action="store_true", help="run the screen, then the main rows")
    parser.add_argument("--winner", default=None, help="the main rows' paper method")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="cpu")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="minutes; then stop (a rerun continues)"
    )
    parser.add_argument(
        "--reader",
        choices=("tfds", "numpy"),
        default="tfds",
        help="config.data.reader: numpy reads the .npz without TensorFlow (rows in file order)",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        dest="overrides",
        help="key.path=value config changes of every row (for smoke runs: rows keep their spec)",
    )
    parser.add_argument("--table", action="store_true", help="print the table of --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(load_rows(out)))
        return
    if not args.data or not Path(args.data).is_file():
        parser.error(
            f"--data must be the CIFAR-100 .npz; {args.data!r} is not a file (keys x_train, "
            "y_train_fine, x_test, y_test_fine; the official 50,000 / 10,000 split)."
        )
    if not args.rows and not args.plan:
        parser.error("give --rows, or --plan for the whole study.")

    config_file, screen_epochs, main_epochs = RECIPES[args.recipe]
    deadline = None if args.time_limit is None else time.time() + 60 * args.time_limit

    def run(specs: list[tuple[str, float | None]]) -> None:
        for spec, epochs in specs:
            done = {(r["config"], r["epochs"]) for r in load_rows(out)}
            if epochs is None:
                epochs = load_config_file(f"{CONFIGS / config_file}:{spec}").train.epochs
            if (f"configs/{config_file}:{spec}", float(epochs)) in done:
                print(f"{spec} ({epochs:g} epochs): already in {out}, skipped", flush=True)
                continue
            left = None if deadline is None else deadline - time.time()
            if left is not None and left <= 0:
                raise Unfinished("time limit reached")
            row = run_row(
                spec,
                args.data,
                Path(args.workdir),
                args.data_dir,
                epochs,
                config_file=config_file,
                time_limit_s=left,
                reader=args.reader,
                text_relevance_too=args.recipe in TEXT_ROWS and scores_text_relevance(spec),
                overrides=args.overrides,
            )
            rows = load_rows(out)
            rows = [r for r in rows if (r["config"], r["epochs"]) != (row["config"], row["epochs"])]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps([*rows, row], indent=1) + "\n")
            print(json.dumps(row), flush=True)

    try:
        run([(spec, args.epochs) for spec in args.rows])
        if args.plan:
            winner = args.winner
            if screen_epochs is not None:
                run([(f"{m},64,0", screen_epochs) for m in SCREEN])
                winner = winner or screen_winner(load_rows(out), config_file, screen_epochs)
            winner = winner or "paper"
            print(f"main rows with {winner}", flush=True)
            run(plan_rows(winner, main_epochs, text=args.recipe in TEXT_ROWS))
    except Unfinished as stop:
        print(f"{stop}: rerun the same command to continue.", flush=True)
        sys.exit(3)
    print(table(load_rows(out)))


if __name__ == "__main__":
    main()
