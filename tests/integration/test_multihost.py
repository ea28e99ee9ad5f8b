"""Two CPU processes on loopback (jax.distributed, gloo) train and evaluate like one process.

The quick demo config runs once in this process on a 4-device mesh, and once as two
processes of 2 devices each (tests/multihost_worker.py): same global batches (host-count
invariant input order), same loss trajectory and final parameters to float tolerance. The
two-process evaluation gathers both hosts' codes: in the one-process order and equal to this
process's codes of the same checkpoint, so its report equals this process's report of it.
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
from jaxhash import model_eval, parallel, run_folder, train

pytestmark = pytest.mark.slow  # fresh processes that import jaxhash and train

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _losses(workdir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows}


def test_two_processes_match_one(tmp_path, quick_data_dir):
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 devices in this process")
    data_dir = quick_data_dir  # built already: the workers only read it
    config = config_lib.demo_config("quick")  # as multihost_worker.multihost_config
    config.data.data_dir = data_dir
    config.eval.batch_size = 24
    config.eval.rankings = ["hamming"]
    config.eval.baseline = False
    config.loss.kl_form = "wkv"  # as multihost_worker.multihost_config
    config.loss.w_kl = 0.1
    one = tmp_path / "one"
    mesh = parallel.make_mesh(jax.devices()[:4])
    state, one_report = train.run(config, one, progress=False, mesh=mesh)

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

    # Evaluation: the two-process checkpoint encoded here gives the codes both processes
    # gathered, row for row, and the report they wrote.
    setup = run_folder.restore_run(config, two, mesh=mesh)
    assert setup.restored_step == config.train.steps
    variables = {"params": setup.state.params, "batch_stats": setup.state.batch_stats}
    codes, labels, ids, _ = model_eval.encode_split(
        setup.config, setup.model, variables, mesh, setup.info.eval_split
    )
    assert len(ids) == setup.info.num_eval and len(np.unique(ids)) == len(ids)
    for p in range(2):
        with np.load(two / f"gathered_{p}.npz") as gathered:
            np.testing.assert_array_equal(gathered["ids"], ids)
            np.testing.assert_array_equal(gathered["labels"], labels)
            np.testing.assert_array_equal(np.sign(gathered["codes"]), np.sign(codes))
            np.testing.assert_allclose(gathered["codes"], codes, rtol=1e-4, atol=1e-5)
    here = model_eval.evaluate_state(
        setup.config, setup.info, setup.model, setup.state, mesh, tmp_path / "here"
    )
    two_path = model_eval.report_dir(two, config.train.steps) / "report.json"
    two_report = json.loads(two_path.read_text())
    assert two_report["num_database"] == len(ids)
    assert two_report["metrics"] == here["metrics"]  # same codes, stable ties
    for p in range(2):  # every process returned the report process 0 wrote
        assert json.loads((two / f"metrics_{p}.json").read_text()) == two_report["metrics"]
    # The one-process run's parameters agree to ~1e-2, so its codes and metrics nearly do.
    assert one_report["metrics"].keys() == two_report["metrics"].keys()
    for name, value in one_report["metrics"].items():
        assert two_report["metrics"][name] == pytest.approx(value, abs=0.05), name
