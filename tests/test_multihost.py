"""Two CPU processes on loopback (jax.distributed, gloo) train like one process.

The quick demo config runs once in this process on a 4-device mesh, and once as two
processes of 2 devices each (tests/multihost_worker.py): same global batches (host-count
invariant input order), same loss trajectory and final parameters to float tolerance.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxhash import config as config_lib
from jaxhash import train

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(workdir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows}


def test_two_processes_match_one(tmp_path):
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 devices in this process")
    data_dir = str(tmp_path / "tfds")
    config = config_lib.demo_config("quick")
    config.data.data_dir = data_dir
    config.eval.at_end = False
    one = tmp_path / "one"
    state, _ = train.run(config, one, progress=False, mesh=train.make_mesh(jax.devices()[:4]))

    two = tmp_path / "two"
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "multihost_worker.py"),
                str(i),
                port,
                str(two),
                data_dir,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    for worker, log in zip(workers, logs, strict=True):
        assert worker.returncode == 0, log[-3000:]

    a, b = _losses(one), _losses(two)
    steps = sorted(a)
    assert a.keys() == b.keys() and len(steps) >= 3
    np.testing.assert_allclose([a[s] for s in steps[:2]], [b[s] for s in steps[:2]], rtol=1e-5)
    np.testing.assert_allclose([a[s] for s in steps], [b[s] for s in steps], rtol=1e-3)
    with np.load(two / "params.npz") as saved:
        leaves = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    want = jax.tree_util.tree_leaves(jax.device_get(state.params))
    assert len(leaves) == len(want)
    for got, expected in zip(leaves, want, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)
