"""Fault audit (issue 13): run each fault case against the CLI / library and classify the outcome.

    python -m benchmarks.fault_audit [--root /tmp/fault_audit] [--out benchmarks/results/...]

Each case runs in a subprocess with a timeout and is marked "clear error", "works as documented",
"silent wrong", "hang" or "data loss"; the first stderr line is recorded. Results: one JSON line
per case in ``--out``, and a summary (cases tried, counts per outcome) on stdout. Independent
groups of cases run a few at a time; trainings use ``configs/demo.py:quick``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICK = f"{ROOT}/configs/demo.py:quick"
OUTCOMES = ("clear error", "works as documented", "silent wrong", "hang", "data loss")


class Result(dict):
    """One case: name, item (issue 13's number), outcome, rc, seconds, first_stderr_line,
    error_line (the ``jaxhash: error`` line: info lines come first on stderr)."""


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    return env


def run(command: list[str], timeout: float) -> dict:
    """Run ``command``; rc None when it timed out (killed)."""
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=_env(), timeout=timeout, cwd=ROOT
        )
        rc, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as error:
        rc = None
        out = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else error.stdout
        err = (error.stderr or b"").decode() if isinstance(error.stderr, bytes) else error.stderr
    lines = [line for line in (err or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("jaxhash: error")]
    warnings = [line for line in lines if line.startswith("warning:")]
    return {
        "error_line": errors[0] if errors else "",
        "error_lines": len(errors),
        "warning_line": warnings[0] if warnings else "",
        "rc": rc,
        "stdout": out or "",
        "stderr": err or "",
        "first_stderr_line": lines[0] if lines else "",
        "stderr_lines": len(lines),
        "seconds": round(time.monotonic() - start, 1),
    }


def cli(*args: str, timeout: float = 240) -> dict:
    return run([sys.executable, "-m", "jaxhash", *args], timeout)


def train(workdir: Path, *sets: str, extra: tuple[str, ...] = (), timeout: float = 300) -> dict:
    command = ["train", "--config", QUICK, "--workdir", str(workdir), *extra]
    if sets:
        command += ["--set", *sets]
    return cli(*command, timeout=timeout)


def error_case(done: dict, *needles: str) -> str:
    """A failure that should be one line naming the problem (all ``needles`` in stderr)."""
    if done["rc"] is None:
        return "hang"
    if done["rc"] == 0:
        return "silent wrong"
    one_line = done["error_lines"] == 1 and "Traceback" not in done["stderr"]
    clear = one_line and all(n in done["error_line"] for n in needles)
    return "clear error" if clear else "silent wrong"


def record(name: str, item: int, outcome: str, done: dict, note: str = "") -> Result:
    keep = ("rc", "seconds", "first_stderr_line", "error_line", "warning_line", "stderr_lines")
    result = Result(name=name, item=item, outcome=outcome, **{k: done.get(k) for k in keep})
    if note:
        result["note"] = note
    if outcome not in ("clear error", "works as documented"):
        result["stderr_tail"] = done.get("stderr", "")[-1500:]
    return result


def _data_files(workdir: Path, step: int) -> list[Path]:
    state = workdir / "checkpoints" / str(step) / "state"
    return [p for p in state.glob("ocdbt.process_*/d/*") if p.is_file()]


def _steps(workdir: Path) -> list[int]:
    folder = workdir / "checkpoints"
    return (
        sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []
    )


# ----------------------------------------------------------------------------- groups


def group_divergence(root: Path, lr: str) -> list[Result]:
    """1: a huge learning rate: stop naming the last good checkpoint; evaluate still works."""
    workdir = root / f"lr_{lr}"
    sets = (f"optim.learning_rate={lr}", "optim.warmup_steps=0", "train.checkpoint_every=1")
    done = train(workdir, *sets, "train.steps=20")
    steps = _steps(workdir)
    if done["rc"] is None:
        outcome = "hang"
    elif done["rc"] == 0:
        outcome = "works as documented"  # trained to the end: checked by the evaluation below
    elif steps:
        outcome = error_case(done, f"The last good checkpoint is step {max(steps)}.")
    else:
        outcome = error_case(done, "There is no good checkpoint")
    note = f"checkpoints kept: {steps}" + (" (finished)" if done["rc"] == 0 else "")
    results = [record(f"lr={lr} diverges", 1, outcome, done, note)]
    evaluated = cli("evaluate", "--workdir", str(workdir))
    if evaluated["rc"] is None:
        outcome = "hang"
    elif evaluated["rc"] == 0 and "nan" not in evaluated["stdout"].lower():
        outcome = "works as documented"
    elif evaluated["rc"] != 0 and not steps:
        outcome = error_case(evaluated, "has no checkpoint")
    else:
        outcome = "silent wrong"
    results.append(record(f"lr={lr}: evaluate after the stop", 1, outcome, evaluated))
    return results


def group_config_changes(root: Path) -> list[Result]:
    """4: --set flags add up; a changed loss stops; --allow-config-change continues; bits differ.
    5: then the newest checkpoint truncated / with flipped bytes."""
    workdir = root / "accumulate"
    base = ("eval.at_end=False",)
    done = cli(
        "train", "--config", QUICK, "--workdir", str(workdir),
        "--set", "model.bits=8", "--set", "train.steps=2", *("--set", *base),
    )  # fmt: skip
    steps = _steps(workdir)
    ok = done["rc"] == 0 and max(steps, default=0) == 2 and "8 bits" in done["stderr"]
    outcome = "works as documented" if ok else ("hang" if done["rc"] is None else "silent wrong")
    results = [record("repeated --set add up (bits=8, steps=2)", 4, outcome, done, f"{steps}")]
    if not ok:
        return results
    same = ("model.bits=8", "train.steps=2", *base)
    changed = train(workdir, *same, "loss.w_kl=0.5")
    results.append(record("rerun with loss.w_kl=0.5", 4, error_case(changed, "loss.w_kl"), changed))
    data_changed = train(workdir, *same, "data.synthetic_seed=1")
    results.append(
        record(
            "rerun with data.synthetic_seed=1",
            4,
            error_case(data_changed, "data.synthetic_seed"),
            data_changed,
        )
    )
    allowed = train(
        workdir, "model.bits=8", "train.steps=3", "loss.w_kl=0.5", *base,
        extra=("--allow-config-change",),
    )  # fmt: skip
    steps = _steps(workdir)
    outcome = "works as documented" if allowed["rc"] == 0 and 3 in steps else "silent wrong"
    outcome = "hang" if allowed["rc"] is None else outcome
    results.append(record("--allow-config-change continues", 4, outcome, allowed, f"{steps}"))
    bits = train(workdir, "model.bits=16", "train.steps=4", *base)
    results.append(record("rerun with model.bits=16", 4, error_case(bits, "model.bits"), bits))
    bits = train(workdir, "model.bits=16", "train.steps=4", *base, extra=("--allow-config-change",))
    outcome = error_case(bits, "model.bits")
    results.append(record("model.bits=16 with --allow-config-change", 4, outcome, bits))

    newest = max(_steps(workdir))
    truncated = root / "truncated"
    shutil.copytree(workdir, truncated)
    for path in _data_files(truncated, newest):
        os.truncate(path, path.stat().st_size // 2)
    done = cli("evaluate", "--workdir", str(truncated))
    warned = f"skipping checkpoint step {newest}" in done["warning_line"]
    fell_back = f"step_{newest - 1}/report.json" in done["stdout"]
    if done["rc"] is None:
        outcome = "hang"
    elif done["rc"] == 0:
        outcome = "works as documented" if warned and fell_back else "silent wrong"
    else:
        outcome = error_case(done, f"step {newest}")
    note = f"newest step {newest} truncated; stdout says: " + _evaluated_step(done["stdout"])
    results.append(record("truncated newest checkpoint -> evaluate", 5, outcome, done, note))

    for flips in (64, 1):
        flipped = root / f"flipped_{flips}"
        shutil.copytree(workdir, flipped)
        for path in _data_files(flipped, newest):
            raw = bytearray(path.read_bytes())
            for i in range(len(raw) // 2, len(raw), max(1, len(raw) // (2 * flips)))[:flips]:
                raw[i] ^= 0xFF
            path.write_bytes(bytes(raw))
        done = cli("evaluate", "--workdir", str(flipped))
        fell_back = (
            f"skipping checkpoint step {newest}" in done["warning_line"]
            and f"step_{newest - 1}/report.json" in done["stdout"]
        )
        if done["rc"] is None:
            outcome = "hang"
        elif done["rc"] == 0:
            finite = "nan" not in done["stdout"].lower()
            outcome = "works as documented" if fell_back and finite else "silent wrong"
        else:
            outcome = error_case(done)
        note = f"{flips} byte(s) flipped in step {newest}'s data; " + _evaluated_step(
            done["stdout"]
        )
        name = f"{flips} flipped byte(s) in newest checkpoint -> evaluate"
        results.append(record(name, 5, outcome, done, note))
    return results


def _evaluated_step(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("report:")]
    return lines[0] if lines else "(no 'report:' line)"


def group_failed_save(root: Path) -> list[Result]:
    """3: checkpoints/ read-only: one line, no hang."""
    workdir = root / "readonly"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints").chmod(0o555)
    command = [sys.executable, "-m", "jaxhash", "train", "--config", QUICK]
    command += ["--workdir", str(workdir), "--set", "train.checkpoint_every=1", "eval.at_end=False"]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    done = run(command, 240)
    outcome = error_case(done, "could not write checkpoint step 1", "Permission denied")
    (workdir / "checkpoints").chmod(0o755)
    return [record("read-only checkpoints/", 3, outcome, done)]


def group_lock(root: Path) -> list[Result]:
    """10: two trainings into one workdir at once: the second names the holder."""
    workdir = root / "locked"
    command = [sys.executable, "-m", "jaxhash", "train", "--config", QUICK]
    command += ["--workdir", str(workdir), "--set", "train.steps=40", "eval.at_end=False"]
    first = subprocess.Popen(
        command, env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        lock = workdir / ".lock"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            time.sleep(0.5)
        second = train(workdir, "train.steps=40", "eval.at_end=False", timeout=180)
        outcome = error_case(second, str(first.pid))
    finally:
        first.kill()
        first.wait()
    return [record("second training in a locked workdir", 10, outcome, second)]


def group_config_errors(root: Path) -> list[Result]:
    """2, 8: bad config values stop at load time naming the key."""
    results = []
    bad = {
        "train.keep_checkpoints=0": (2, "train.keep_checkpoints"),
        "train.log_every=0": (8, "train.log_every"),
        "train.checkpoint_every=0": (8, "train.checkpoint_every"),
        "train.steps=-5": (8, "train.steps"),
        "optim.learning_rate=-0.1": (8, "optim.learning_rate"),
        "model.width=-1": (8, "model.width"),
    }
    for setting, (item, key) in bad.items():
        done = train(root / "config_errors", setting, timeout=120)
        results.append(record(f"--set {setting}", item, error_case(done, key), done))
    none_config = root / "none_config.py"
    none_config.write_text("def get_config(arg=''):\n    return None\n")
    done = cli("train", "--config", str(none_config), "--workdir", str(root / "none"), timeout=120)
    results.append(record("get_config() returns None", 8, error_case(done, str(none_config)), done))
    return results


def group_broken_files(root: Path) -> list[Result]:
    """9: a truncated .npz / a text file named .npz, as data.manual_dir and as --queries."""
    import numpy as np

    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    text = files / "text.npz"
    text.write_text("x_train,y_train\n1,2\n")
    whole = files / "whole.npz"
    np.savez(whole, x_train=np.zeros((64, 32, 32, 3), np.uint8), y_train_fine=np.zeros(64))
    truncated = files / "truncated.npz"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    database = files / "database.npy"
    np.save(database, np.zeros((10, 4), np.uint8))
    results = []
    for path in (truncated, text):
        done = train(
            root / "manual", "data.name=cifar100", f"data.manual_dir={str(path)!r}", timeout=120
        )
        results.append(record(f"data.manual_dir={path.name}", 9, error_case(done, str(path)), done))
        done = cli(
            "search", "--queries", str(path), "--database", str(database),
            "--out", str(files / "out.npy"), timeout=120,
        )  # fmt: skip
        results.append(
            record(f"search --queries {path.name}", 9, error_case(done, str(path)), done)
        )
    return results


CIFAR100_TESTS = "tests/data/datasets/test_cifar100.py"


def group_data_tests(root: Path) -> list[Result]:
    """6, 11: cifar100 provenance and the sha256 check, by their tests in ``CIFAR100_TESTS``."""
    tests = {
        "test_prepared_cifar100_records_its_provenance_and_a_subset_is_never_taken_silently": (
            6,
            "cifar100 without manual_dir, only a subset prepared -> DatasetNotFoundError",
        ),
        "test_a_python_archive_is_opened_only_if_it_is_the_official_one": (
            11,
            "a home-made cifar-100-python.tar.gz refused by sha256 before any pickle.load",
        ),
    }
    results = []
    for test, (item, name) in tests.items():
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += [f"{CIFAR100_TESTS}::{test}", "--basetemp", str(root / f"pytest_{item}")]
        done = run(command, 300)
        outcome = (
            "clear error" if done["rc"] == 0 else ("hang" if done["rc"] is None else "silent wrong")
        )
        done["error_line"] = (done["stdout"].strip().splitlines() or [""])[-1]
        results.append(record(name, item, outcome, done, f"{CIFAR100_TESTS}::{test}"))
    return results


LIBRARY_SNIPPETS = r"""
import json, jax, jax.numpy as jnp
from jaxhash import losses
codes = jax.random.normal(jax.random.key(0), (6, 8))
table = jnp.ones((4, 4)) - jnp.eye(4)
logits = jax.random.normal(jax.random.key(1), (6, 4))
good = jnp.array([0, 1, 2, 3, 0, 1])
cases = {
    "similarity_loss ClassTargets label 4 (C=4)": lambda: losses.similarity_loss(
        codes, losses.ClassTargets(good.at[0].set(4), table)),
    "similarity_loss ClassTargets label -1": lambda: losses.similarity_loss(
        codes, losses.ClassTargets(good.at[0].set(-1), table)),
    "similarity_loss ClassTargets label 4 under jit": lambda: jax.jit(
        lambda l: losses.similarity_loss(codes, losses.ClassTargets(l, table)))(good.at[0].set(4)),
    "classification_loss label -1": lambda: losses.classification_loss(logits, good.at[0].set(-1)),
    "classification_loss label C": lambda: losses.classification_loss(logits, good.at[0].set(4)),
    "classification_loss label C under jit": lambda: jax.jit(
        losses.classification_loss)(logits, good.at[0].set(4)),
    "classification_loss mask all False": lambda: losses.classification_loss(
        logits, good, mask=jnp.zeros(6, bool)),
    "similarity_loss mask all False": lambda: losses.similarity_loss(
        codes, losses.ClassTargets(good, table), mask=jnp.zeros(6, bool)),
    "classification_loss mask all False under jit": lambda: jax.jit(
        lambda m: losses.classification_loss(logits, good, mask=m))(jnp.zeros(6, bool)),
    "binary_kl_loss(key=None, form='wkv')": lambda: losses.binary_kl_loss(codes, form="wkv"),
    "binary_kl_loss(key=None, form='sphere')": lambda: losses.binary_kl_loss(codes, form="sphere"),
}
for name, call in cases.items():
    try:
        value = float(call())
        print(json.dumps({"name": name, "value": value}))
    except Exception as error:
        print(json.dumps({"name": name, "error": f"{type(error).__name__}: {error}"}))
"""


def group_library(root: Path) -> list[Result]:
    """7: the losses on invalid inputs: a ValueError (concrete) or NaN (traced, documented in
    ``jaxhash.losses.common._defined``: the trainer stops on a non-finite term and names it)."""
    done = run([sys.executable, "-c", LIBRARY_SNIPPETS], 240)
    if done["rc"] is None:
        return [record("library snippets", 7, "hang", done)]
    results = []
    for line in done["stdout"].splitlines():
        if not line.startswith("{"):
            continue
        item = json.loads(line)
        if "error" in item:
            message = item["error"]
            outcome = "clear error" if message.startswith("ValueError") else "silent wrong"
        else:
            value = item["value"]
            message = f"returned {value}"
            traced = "under jit" in item["name"]
            outcome = "works as documented" if traced and value != value else "silent wrong"
        one = {"rc": done["rc"], "first_stderr_line": message, "error_line": message}
        results.append(record(item["name"], 7, outcome, one))
    if not results:
        results.append(record("library snippets", 7, "silent wrong", done))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/tmp/fault_audit", help="scratch folder (emptied)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/fault_audit.jsonl"))
    parser.add_argument("--workers", type=int, default=3, help="groups run at once")
    args = parser.parse_args(argv)
    root = Path(args.root)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    groups: list[Callable[[], list[Result]]] = [
        lambda: group_divergence(root, "1e38"),
        lambda: group_config_changes(root),
        lambda: group_divergence(root, "1e30"),
        lambda: group_divergence(root, "1e4"),
        lambda: group_lock(root),
        lambda: group_failed_save(root),
        lambda: group_config_errors(root),
        lambda: group_broken_files(root),
        lambda: group_library(root),
        lambda: group_data_tests(root),
    ]
    start = time.monotonic()
    with ThreadPoolExecutor(args.workers) as pool:
        futures = [pool.submit(group) for group in groups]
        results = []
        for future in futures:
            try:
                results += future.result()
            except Exception as error:  # a broken group is reported, the others still count
                results.append(
                    Result(name="group crashed", item=0, outcome="silent wrong", note=repr(error))
                )
    results.sort(key=lambda r: r["item"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for result in results:
            f.write(json.dumps(result) + "\n")
    counts = collections.Counter(r["outcome"] for r in results)
    print(f"{'item':>4}  {'outcome':<20} case: first stderr line")
    for r in results:
        line = r.get("error_line") or r.get("warning_line") or r.get("first_stderr_line") or ""
        line = line[:140]
        print(f"{r['item']:>4}  {r['outcome']:<20} {r['name']}: {line}")
    print(f"\n{len(results)} cases in {time.monotonic() - start:.0f} s: " + ", ".join(
        f"{counts.get(o, 0)} {o}" for o in OUTCOMES
    ))  # fmt: skip
    print(f"results: {out}")


if __name__ == "__main__":
    main()
