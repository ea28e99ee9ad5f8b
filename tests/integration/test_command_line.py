"""The ``jaxhash`` command in a fresh process, as a user runs it: a bad data file is one line
on stderr and nothing else reaches it; the quick demo's console is a few lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh processes that import jaxhash and train

ROOT = Path(__file__).resolve().parents[2]
QUICK = f"{ROOT / 'configs' / 'demo.py'}:quick"


def _jaxhash(args, tmp_path, timeout):
    """``python -m jaxhash ARGS`` in a fresh process, with a fresh TFDS folder."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TFDS_DATA_DIR": str(tmp_path / "tfds")}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, "-m", "jaxhash", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def test_bad_data_is_one_line_and_nothing_else_reaches_stderr(tmp_path):
    """A text file named .npz, through the data pipeline (TensorFlow imported): stderr is the
    error line only, no TensorFlow start-up lines, no library logs."""
    bad = tmp_path / "cifar100.npz"
    bad.write_text("x_train,y_train\n1,2\n")
    argv = ["train", "--config", QUICK, "--workdir", str(tmp_path / "run")]
    argv += ["--set", "data.name='cifar100'", f"data.manual_dir='{bad}'"]
    out = _jaxhash(argv, tmp_path, timeout=300)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"jaxhash: error: {bad} is not an .npz archive (not a zip file: truncated, or another "
        "format); write it again with numpy.savez(path, x_train=..., y_train_fine=..., ...)."
    ]


def test_the_quick_demo_console_is_a_few_lines(tmp_path):
    """Data built, model, progress bar, results table, report path: no library chatter."""
    out = _jaxhash(["demo", "--quick", "--workdir", str(tmp_path / "run")], tmp_path, 600)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert len(text.splitlines()) < 30, text
    for noise in ("INFO", "absl", "oneDNN", "Unknown size", "Using custom data configuration"):
        assert noise not in text, noise
    assert "built now" in out.stderr and "checkpoints:" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["metric", "codes", "random", "codes", "real-valued", "(cosine)"]
    assert any(line.startswith("mAHP@50 ") for line in lines)
    assert lines[-1] == f"report: {tmp_path / 'run' / 'eval' / 'step_6' / 'report.json'}"
