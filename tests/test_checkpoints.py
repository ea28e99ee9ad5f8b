"""Checkpoints stay good: a non-finite state is never saved, a failed write stops the run at
once, and restoring skips damaged or non-finite checkpoints for the next older one."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import checkpoints, run_folder, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def trained(quick_run):
    """The shared quick run (3 steps, checkpoints 1, 2 and 3) and its final state."""
    return quick_run


@pytest.fixture
def run_copy(quick_run, quick_run_copy):
    """A copy of the trained run folder for a test to damage, and the run's final state."""
    return quick_run_copy, quick_run[1]


def _truncate_data(workdir: Path, step: int) -> None:
    """Cut each data file of checkpoint ``step``'s state to half its size."""
    for path in (workdir / "checkpoints" / str(step) / "state").glob("ocdbt.process_*/d/*"):
        os.truncate(path, path.stat().st_size // 2)


@pytest.mark.slow
def test_save_refuses_a_non_finite_state(trained, tmp_path, quick_run_config):
    """A state with a NaN leaf is refused, naming the tree; nothing is written."""
    workdir, _ = trained
    setup = run_folder.restore_run(quick_run_config(), workdir)
    params = jax.tree_util.tree_map(lambda x: x.at[...].set(jnp.nan), setup.state.params)
    manager = checkpoints.checkpoint_manager(tmp_path, setup.config)
    with pytest.raises(checkpoints.NonFiniteStateError, match=r"step 7 not written: its params"):
        checkpoints.save(manager, 7, setup.state.replace(params=params), setup.config, force=True)
    assert manager.all_steps() == []
    assert not any(p.name.startswith("7") for p in (tmp_path / "checkpoints").iterdir())


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_skipped_and_training_resumes(
    run_copy, caplog, quick_run_config
):
    """Checkpoint 3 truncated: restoring warns once naming it and resumes from 2; training
    on from there ends bit-identical to the undamaged run."""
    workdir, state = run_copy
    _truncate_data(workdir, 3)
    with caplog.at_level(logging.WARNING, logger="jaxhash.checkpoints"):
        setup = run_folder.restore_run(quick_run_config(), workdir)
    assert setup.restored_step == 2
    skipped = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
    assert len(skipped) == 1 and "step 3" in skipped[0] and "changed on disk" in skipped[0]
    resumed, _ = train.run(quick_run_config(), workdir, progress=False)
    assert int(resumed.step) == 3
    for got, want in zip(
        jax.tree_util.tree_leaves(jax.device_get(resumed.params)),
        jax.tree_util.tree_leaves(jax.device_get(state.params)),
        strict=True,
    ):
        np.testing.assert_array_equal(got, want)


def test_a_changed_byte_is_caught_by_the_checksums_even_where_it_would_decode(
    run_copy, caplog, quick_run_config
):
    """Each save records sha256 digests of its files; one flipped byte in checkpoint 3 (which
    could decode to other, finite numbers) is named and step 2 restored. Without the record
    (written by an older jaxhash), the checkpoint is restored unchecked."""
    workdir, _ = run_copy
    step_dir = workdir / "checkpoints" / "3"
    recorded = json.loads((step_dir / checkpoints.CHECKSUMS).read_text())["files"]
    assert any(name.startswith("state/") for name in recorded)
    assert any(name.startswith("config/") for name in recorded)
    victim = max((step_dir / "state").rglob("ocdbt.process_*/d/*"), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="jaxhash.checkpoints"):
        assert run_folder.restore_run(quick_run_config(), workdir).restored_step == 2
    name = victim.relative_to(step_dir).as_posix()
    assert "step 3" in caplog.text and f"its file {name} changed on disk" in caplog.text
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    (step_dir / checkpoints.CHECKSUMS).unlink()
    assert run_folder.restore_run(quick_run_config(), workdir).restored_step == 3


@pytest.mark.slow
def test_a_non_finite_checkpoint_is_skipped_and_none_good_is_an_error(
    run_copy, caplog, quick_run_config
):
    """A checkpoint holding NaN (written past save's check) is skipped; with every
    checkpoint damaged, restoring fails with one error listing them."""
    import orbax.checkpoint as ocp

    workdir, _ = run_copy
    setup = run_folder.restore_run(quick_run_config(), workdir)
    poisoned = setup.state.replace(
        step=setup.state.step + 1,
        batch_stats=jax.tree_util.tree_map(lambda x: x * jnp.inf, setup.state.batch_stats),
    )
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(workdir / "checkpoints" / "4" / "state", poisoned.as_dict())
    folder = workdir / "checkpoints"
    shutil.copytree(folder / "3" / "config", folder / "4" / "config")
    with caplog.at_level(logging.WARNING, logger="jaxhash.checkpoints"):
        assert run_folder.restore_run(quick_run_config(), workdir).restored_step == 3
    assert "step 4" in caplog.text and "batch_stats hold NaN or infinite" in caplog.text
    for step in (1, 2, 3):
        _truncate_data(workdir, step)
    with pytest.raises(checkpoints.NoGoodCheckpointError, match=r"no usable checkpoint.*step 1"):
        run_folder.restore_run(quick_run_config(), workdir)


@pytest.mark.slow
def test_a_failed_save_stops_at_once_with_one_clear_line(quick_data_dir, tmp_path):
    """`checkpoints/` read-only: the command exits non-zero at the first save, saying which
    checkpoint could not be written where and why, without hanging at exit."""
    data_dir = quick_data_dir
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "checkpoints").chmod(0o555)
    command = [sys.executable, "-m", "jaxhash", "train", "--workdir", str(workdir)]
    command += ["--config", f"{ROOT}/configs/demo.py:quick", "--set", f"data.data_dir={data_dir!r}"]
    command += ["train.checkpoint_every=1", "eval.at_end=False"]
    if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that let it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no way to make a folder unwritable")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "could not write checkpoint" in line]
    assert lines, done.stderr[-3000:]
    assert f"could not write checkpoint step 1 to {workdir / 'checkpoints' / '1'}: " in lines[-1]
    assert "Permission denied; fix permissions/disk space or choose another --workdir" in lines[-1]


def test_a_restore_failure_that_is_not_damage_stops_instead_of_falling_back(
    run_copy, monkeypatch, quick_run_config
):
    """A read error on a checkpoint whose files match their checksums (a passing fault, memory,
    another device count) is raised, naming the step, rather than skipped for an older one;
    without checksums the error says how to fall back by hand."""
    import orbax.checkpoint as ocp

    workdir, _ = run_copy

    def failing_restore(self, step, *args, **kwargs):
        raise OSError("transient read error")

    monkeypatch.setattr(ocp.CheckpointManager, "restore", failing_restore)
    with pytest.raises(checkpoints.CheckpointReadError, match=r"step 3 .*match their checksums"):
        checkpoints.restore_run(quick_run_config(), workdir)
    (workdir / "checkpoints" / "3" / checkpoints.CHECKSUMS).unlink()
    with pytest.raises(checkpoints.CheckpointReadError, match=r"no checksums.*delete .*3"):
        checkpoints.restore_run(quick_run_config(), workdir)
