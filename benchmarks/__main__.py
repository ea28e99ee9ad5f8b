"""Every hot-path benchmark from one command; JSON lines to stdout and to a results file.

    python -m benchmarks               # the CPU sizes (each script's defaults), minutes
    python -m benchmarks --quick       # seconds per benchmark: the CI smoke test (each timing
                                       # one call after one warm-up: no numbers to quote)
    python -m benchmarks --full        # accelerator sizes (benchmarks/gpu.sh runs this)
    python -m benchmarks --only losses knn --out /tmp/results

Each benchmark runs in its own process (a failure or a missing optional dependency cannot
take the others down; XLA state does not leak between them) and prints JSON lines that time
jaxhash against a reference in that same process (see each script's docstring). The suite
adds ``module`` (the script), ``suite`` (the size), ``date`` and ``git`` (the commit) to every
line and writes them all to ``<out>/<device>.jsonl`` (``cpu``, ``nvidia-h200``, ...;
``<device>_quick.jsonl`` for
``--quick``), replacing that file. A benchmark that fails or cannot run here (e.g. the
sentence encoder without the ``text`` extra, the input pipeline without TensorFlow) leaves a
line ``{"benchmark": module, "status": "failed" | "skipped", "reason": ...}``: never a number.
The exit status is 1 when any benchmark failed (skipped ones are not failures).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import SMOKE_TEST, device_slug

ROOT = Path(__file__).resolve().parents[1]

# name -> (modules it needs, arguments per size). "" = the script's defaults.
SUITE: dict[str, tuple[tuple[str, ...], dict[str, list[str]]]] = {
    "losses": (
        (),
        {"quick": ["--batch", "256"], "cpu": [], "full": ["--full"]},
    ),
    "knn": (
        (),
        {"quick": ["--batch", "512"], "cpu": [], "full": ["--full"]},
    ),
    "retrieval": (
        (),
        {
            "quick": ["--queries", "128", "--rows", str(1 << 14), "--no-eval"],
            "cpu": [],
            "full": ["--full"],
        },
    ),
    "input_pipeline": (
        ("tensorflow", "tensorflow_datasets"),
        {
            "quick": ["--quick", "--batch-sizes", "64", "--synthetic-per-class", "32"],
            "cpu": [],
            "full": [],
        },
    ),
    "search_scale": (
        (),
        {"quick": ["--quick"], "cpu": ["--sizes", "1e6"], "full": ["--sizes", "1e6", "1e7"]},
    ),
    "train_step": (
        ("ml_collections",),
        {
            "quick": ["--batch", "32", "--width", "8"],
            "cpu": [],
            "full": ["--full"],
        },
    ),
    "semantics": (
        ("nltk",),
        {"quick": [], "cpu": [], "full": []},
    ),
    "semantics_text": (
        ("tokenizers", "safetensors"),
        {
            "quick": ["--num", "32", "--batch-sizes", "32", "--repeats", "1"],
            "cpu": [],
            "full": [],
        },
    ),
}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def _wordnet_installed() -> bool:
    """Whether nltk finds WordNet on its search path (``NLTK_DATA`` and its defaults)."""
    import nltk

    for resource in ("corpora/wordnet.zip", "corpora/wordnet"):
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            continue
    return False


def run_one(
    name: str, args: list[str], timeout: float, smoke_test: bool = False
) -> tuple[list[dict], dict | None]:
    """Run ``python -m benchmarks.<name> *args``; its JSON lines and a status line on failure.
    ``smoke_test``: every timing one call after one warm-up (``common.SMOKE_TEST``)."""
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    if smoke_test:
        env[SMOKE_TEST] = "1"
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{name}", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        rows = _json_lines(stdout)
        return rows, {"status": "failed", "reason": f"timed out after {timeout:.0f} s"}
    rows = _json_lines(proc.stdout)
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return rows, {"status": "failed", "reason": " | ".join(tail), "wall_s": seconds}
    if not rows:
        return rows, {"status": "failed", "reason": "printed no JSON lines", "wall_s": seconds}
    return rows, None


def _json_lines(text: str) -> list[dict]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="seconds each (CI smoke test)")
    size.add_argument("--full", action="store_true", help="accelerator sizes")
    parser.add_argument("--only", nargs="+", choices=sorted(SUITE), help="run only these")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    args = parser.parse_args(argv)
    level = "quick" if args.quick else "full" if args.full else "cpu"
    stamp = {
        "suite": level,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "git": _git_commit(),
    }
    results, failed = [], False
    for name in args.only or SUITE:
        needs, sizes = SUITE[name]
        extra, missing = list(sizes[level]), _missing(needs)
        if name == "semantics" and not _wordnet_installed():  # WordNet is data, not a module
            missing.append("WordNet 3.0 for nltk (python -m nltk.downloader wordnet)")
        if missing:
            status = {"status": "skipped", "reason": f"needs {', '.join(missing)}"}
            rows = []
        else:
            rows, status = run_one(name, extra, args.timeout, smoke_test=level == "quick")
        rows = [{**row, "module": name, **stamp} for row in rows]
        if status is not None:
            failed |= status["status"] == "failed"
            rows.append({"benchmark": name, "module": name, **status, **stamp})
        for row in rows:
            print(json.dumps(row), flush=True)
        results += rows
    devices = [r["device"] for r in results if "device" in r]
    slug = device_slug(devices[0]) if devices else "unknown"
    out = Path(args.out) / (f"{slug}_quick.jsonl" if level == "quick" else f"{slug}.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in results))
    print(f"wrote {len(results)} lines to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
