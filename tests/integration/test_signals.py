"""Stopping a real training process early: SIGTERM and SIGINT save a checkpoint at the step
reached and stop with one line, on one process and on two (both at the same step)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh processes that import jaxhash and train

ROOT = Path(__file__).resolve().parents[2]
QUICK = str(ROOT / "configs" / "demo.py") + ":quick"
STOPPED = re.compile(r"jaxhash: stopped by (SIG\w+) at step (\d+): checkpoint \2 saved in (\S+);")


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def _wait_for_steps(metrics: Path, steps: int, processes: list, timeout: float = 600) -> None:
    """Until ``metrics`` (metrics.jsonl) has ``steps`` rows; fails if a process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                output = process.stdout.read()
                pytest.fail(f"training exited early ({process.returncode}): {output}")
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= steps:
            return
        time.sleep(0.2)
    pytest.fail(f"no {steps} logged steps in {timeout} s")


def _saved_steps(workdir: Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def data_dir(quick_data_dir) -> str:
    """The quick demo's data, built once before any process starts (two processes must not
    build it at the same time)."""
    return quick_data_dir


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_saves_the_step_reached_and_stops_with_one_line(data_dir, tmp_path, number):
    """``jaxhash train`` signalled mid-run: checkpoint at the step reached (off the save
    schedule), one line naming the signal, step and folder, exit status 128 + signal."""
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "jaxhash", "train", "--config", QUICK, "--workdir"]
    sets = ["train.steps=100000", "train.log_every=1", "train.checkpoint_every=100000"]
    sets += [f"data.data_dir={data_dir}", "eval.at_end=False", "train.tensorboard=False"]
    process = subprocess.Popen(
        [*command, str(workdir), "--set", *sets],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for_steps(workdir / "metrics.jsonl", 3, [process])
    process.send_signal(number)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 128 + number, output
    lines = output.strip().splitlines()
    found = STOPPED.search(lines[-1])
    assert found, output
    name, step = found.group(1), int(found.group(2))
    assert name == signal.Signals(number).name and found.group(3).startswith(str(workdir))
    rows = (workdir / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(row)["step"] for row in rows]
    assert max(_saved_steps(workdir)) == step >= max(logged) >= 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("signalled, number", [(1, signal.SIGTERM), (0, signal.SIGINT)])
def test_two_processes_stop_together_on_a_signal_to_one(data_dir, tmp_path, signalled, number):
    """Two processes; process 1's clock is a day ahead of a half-day time limit, so only
    process 0's clock may decide it (neither stops for it). A signal to one process (SIGTERM
    to process 1; Ctrl-C, i.e. SIGINT, to process 0) stops both at the same step after one
    checkpoint, each exiting 143 with the same line."""
    workdir, port = tmp_path / "run", str(_free_port())
    worker = str(ROOT / "tests" / "interruption_worker.py")
    workers = [
        subprocess.Popen(
            [sys.executable, worker, str(i), port, str(workdir), data_dir],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        _wait_for_steps(workdir / "metrics.jsonl", 3, workers)
        workers[signalled].send_signal(number)
        outputs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for worker in workers:
            worker.kill()
    found = [STOPPED.search(output) for output in outputs]
    for worker, output, match in zip(workers, outputs, found, strict=True):
        assert worker.returncode == 128 + signal.SIGTERM and match, output[-3000:]
    steps = {int(match.group(2)) for match in found}
    assert len(steps) == 1 and max(_saved_steps(workdir)) == steps.pop()
