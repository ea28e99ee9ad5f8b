"""Faults a user can cause, end to end through the ``jaxhash`` command: each one stops with one
``jaxhash: error:`` line naming the key or the path (no traceback, status 1) or behaves as
documented, and no checkpoint is lost.

These are the cases of the fault audit (issue 13; its last run is in benchmarks/RESULTS.md,
"Fault audit") that no other test asserts. One quick training (two steps, a checkpoint each)
is shared by the module; commands run in this process through :func:`jaxhash.cli.main`, except
where another process is the point (a lock held by another trainer). Tests that train or
evaluate are marked slow.

Cases of the audit tested elsewhere with the same assertion:

- a read-only ``checkpoints/`` (one line naming the step, the path and "Permission denied"):
  tests/test_checkpoints.py::test_a_failed_save_stops_at_once_with_one_clear_line;
- repeated ``--set`` flags add up: tests/test_cli.py::test_repeated_set_flags_add_up (the
  module's training here also takes its settings that way);
- a rerun with another ``model.bits`` stops naming it, and with changes allowed stops because
  the checkpoints hold another model's arrays, checkpoints kept:
  tests/test_train.py::test_a_rerun_with_another_config_stops_before_training;
- a divergence after a good checkpoint (the newer one deleted, the message naming the last
  good step, ``jaxhash evaluate`` works on the folder):
  tests/test_train.py::test_a_checkpoint_whose_model_outputs_nan_is_deleted; the audit's
  learning rate 1e30 stopped as 1e4 does here (step 1, checkpoint 1 deleted, none left);
- CIFAR-100 without ``manual_dir`` when only a subset is prepared, and a home-made
  ``cifar-100-python.tar.gz`` refused by its sha256: in tests/data/datasets/test_cifar100.py,
  test_prepared_cifar100_records_its_provenance_and_a_subset_is_never_taken_silently and
  test_a_python_archive_is_opened_only_if_it_is_the_official_one;
- the losses on invalid inputs (labels outside [0, C), an all-False mask: ValueError when
  concrete, NaN under jit; a sampling KL form without a key):
  tests/losses/test_common.py::test_labels_out_of_range_are_an_error_or_nan_under_jit,
  tests/losses/test_common.py::test_all_masked_batch_is_an_error_or_nan_under_jit,
  tests/losses/test_kl_forms.py::test_sampling_forms_need_a_key;
- a truncated .npz or a text file as ``--queries``:
  tests/test_cli.py::test_an_npz_given_as_codes_is_named,
  tests/test_cli.py::test_a_file_that_is_not_codes_is_named; as ``data.manual_dir``:
  tests/integration/test_command_line.py::
  test_bad_data_is_one_line_and_nothing_else_reaches_stderr (a text file, the whole stderr
  checked) and tests/data/datasets/test_cifar100.py::test_a_broken_npz_is_named (both).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaxhash import cli

ROOT = Path(__file__).resolve().parents[2]
QUICK = f"{ROOT / 'configs' / 'demo.py'}:quick"
HOLD_LOCK = """
import sys
from jaxhash.workdir_lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.fixture(autouse=True)
def console_restored():
    """``cli.main`` sets up the console's root handler and levels: undone after each test."""
    root, own = logging.getLogger(), logging.getLogger("jaxhash")
    handlers, levels = list(root.handlers), (root.level, own.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    own.setLevel(levels[1])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """One TFDS folder for the module: the quick synthetic data set is built once."""
    return str(tmp_path_factory.mktemp("tfds"))


def _train_argv(workdir: Path, data_dir: str, *sets: str) -> list[str]:
    """``jaxhash train`` of the quick demo into ``workdir``, without the final evaluation."""
    argv = ["train", "--config", QUICK, "--workdir", str(workdir)]
    return [*argv, "--set", f"data.data_dir={data_dir!r}", "eval.at_end=False", *sets]


def _jaxhash(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``jaxhash ARGV`` in this process: (status, stdout, stderr)."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _error_line(status: int, err: str) -> str:
    """The one ``jaxhash: error:`` line of a failed command (status 1, no traceback)."""
    errors = [line for line in err.splitlines() if line.startswith("jaxhash: error: ")]
    assert status == 1 and len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _steps(workdir: Path) -> list[int]:
    folder = workdir / "checkpoints"
    if not folder.exists():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> Path:
    """The quick demo trained for 2 steps with a checkpoint at each (settings given as
    repeated ``--set`` flags)."""
    workdir = tmp_path_factory.mktemp("run")
    argv = _train_argv(workdir, data_dir)
    assert cli.main([*argv, "--set", "train.steps=2", "--set", "train.checkpoint_every=1"]) == 0
    assert _steps(workdir) == [1, 2]
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A copy of the trained run folder for a test to rerun, change or damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


# ----------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("train.log_every=0", "train.log_every"),
        ("train.checkpoint_every=0", "train.checkpoint_every"),
        ("train.steps=-5", "train.steps"),
        ("optim.learning_rate=-0.1", "optim.learning_rate"),
        ("model.width=-1", "model.width"),
    ],
)
def test_an_impossible_value_stops_at_load_naming_the_key(capsys, tmp_path, setting, key):
    status, _, err = _jaxhash(capsys, _train_argv(tmp_path / "run", str(tmp_path), setting))
    line = _error_line(status, err)
    value = setting.partition("=")[2]
    assert f"config key '{key}' must be " in line and f"got {value}" in line, line
    assert not (tmp_path / "run").exists()


def test_a_config_file_whose_get_config_returns_none_is_named(capsys, tmp_path):
    config = tmp_path / "none_config.py"
    config.write_text("def get_config(arg=''):\n    return None\n")
    argv = ["train", "--config", str(config), "--workdir", str(tmp_path / "run")]
    line = _error_line(*_jaxhash(capsys, argv)[::2])
    assert str(config) in line and "must return an ml_collections.ConfigDict" in line, line


# ----------------------------------------------------------------------------- reruns


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setting", "change"),
    [("loss.w_kl=0.5", "loss.w_kl: "), ("data.synthetic_seed=1", "data.synthetic_seed: 0 -> 1")],
)
def test_a_rerun_with_another_config_stops_naming_the_key(
    capsys, data_dir, run_copy, setting, change
):
    """A loss weight or a data field changed on rerun: one line naming the key (old -> new)
    and the ways on; the checkpoints are untouched."""
    argv = _train_argv(run_copy, data_dir, "train.steps=2", "train.checkpoint_every=1", setting)
    line = _error_line(*_jaxhash(capsys, argv)[::2])
    assert f"{run_copy} holds a run trained with another config (" in line, line
    assert change in line and "--allow-config-change" in line and "--workdir" in line, line
    assert _steps(run_copy) == [1, 2]


@pytest.mark.slow
def test_allow_config_change_resumes_with_a_warning(capsys, data_dir, run_copy):
    """``--allow-config-change`` trains on from the newest checkpoint, warning with the
    changed keys."""
    argv = _train_argv(run_copy, data_dir, "train.steps=3", "train.checkpoint_every=1")
    status, _, err = _jaxhash(capsys, [*argv, "loss.w_kl=0.5", "--allow-config-change"])
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, err
    assert f"resuming {run_copy} with a changed config: loss.w_kl: " in warnings[0]
    assert warnings[0].endswith("-> 0.5") and "Traceback" not in err
    assert _steps(run_copy)[-2:] == [2, 3]


def test_a_second_trainer_in_a_locked_workdir_names_the_holder(capsys, data_dir, tmp_path):
    """Another process holds the run folder's lock: one line naming its pid; nothing written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workdir = tmp_path
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workdir)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        line = _error_line(*_jaxhash(capsys, _train_argv(workdir, data_dir))[::2])
    finally:
        holder.kill()
        holder.wait(timeout=60)
    assert f"{workdir} is in use by another training (pid {holder.pid} " in line, line
    assert "choose another --workdir" in line and _steps(workdir) == []
    assert "--verbose" not in line and "Error" not in line  # an expected error, not a crash


# ----------------------------------------------------------------------------- divergence


@pytest.mark.slow
@pytest.mark.parametrize(
    ("learning_rate", "stop"),
    [
        ("1e38", "step 0: the update made params non-finite"),
        ("1e4", "Checkpoint 1 was deleted (its model gives non-finite outputs)"),
    ],
)
def test_a_diverging_run_stops_with_one_line_and_keeps_no_bad_checkpoint(
    capsys, data_dir, tmp_path, learning_rate, stop
):
    """A learning rate that overflows the update (1e38) or the model's outputs one step later
    (1e4): one line naming the step and that no good checkpoint is left; then ``jaxhash
    evaluate`` says the folder has no checkpoint rather than scoring a broken model."""
    workdir = tmp_path / "run"
    sets = (f"optim.learning_rate={learning_rate}", "optim.warmup_steps=0")
    argv = _train_argv(workdir, data_dir, *sets, "train.checkpoint_every=1", "train.steps=20")
    line = _error_line(*_jaxhash(capsys, argv)[::2])
    assert stop in line and "There is no good checkpoint (a rerun starts from step 0)" in line
    assert "--allow-config-change" in line, line
    assert _steps(workdir) == []
    line = _error_line(*_jaxhash(capsys, ["evaluate", "--workdir", str(workdir)])[::2])
    assert f"{workdir} has no checkpoint; train into it first" in line, line


# ----------------------------------------------------------------------------- damaged checkpoints


def _data_files(workdir: Path, step: int) -> list[Path]:
    state = workdir / "checkpoints" / str(step) / "state"
    return [path for path in state.glob("ocdbt.process_*/d/*") if path.is_file()]


def _truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def _flip_bytes(count: int):
    """Flip ``count`` bytes spread over the second half of a file."""

    def flip(path: Path) -> None:
        raw = bytearray(path.read_bytes())
        for i in range(len(raw) // 2, len(raw), max(1, len(raw) // (2 * count)))[:count]:
            raw[i] ^= 0xFF
        path.write_bytes(bytes(raw))

    return flip


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage", [_truncate, _flip_bytes(1), _flip_bytes(64)], ids=["truncated", "1 byte", "64 bytes"]
)
def test_evaluate_skips_a_damaged_newest_checkpoint_for_the_older_one(capsys, run_copy, damage):
    """The newest checkpoint's data files damaged: ``jaxhash evaluate`` warns once naming it
    and the file its checksum caught, evaluates the one before (finite metrics) and deletes
    nothing."""
    for path in _data_files(run_copy, 2):
        damage(path)
    status, out, err = _jaxhash(capsys, ["evaluate", "--workdir", str(run_copy)])
    assert status == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "Traceback" not in err, err
    assert f"skipping checkpoint step 2 in {run_copy / 'checkpoints'}: its file " in warnings[0]
    assert "changed on disk" in warnings[0], warnings[0]
    report = run_copy / "eval" / "step_1" / "report.json"
    assert out.splitlines()[-1] == f"report: {report}"
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics and all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))
    assert _steps(run_copy) == [1, 2]
