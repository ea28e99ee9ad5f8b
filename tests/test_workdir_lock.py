"""One training per run folder: a second trainer names the lock's holder; a dead holder's
lock is taken over; a released lock is free again."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jaxhash import config as config_lib
from jaxhash import train
from jaxhash.workdir_lock import LOCK_NAME, WorkdirLockedError, workdir_lock

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys
from jaxhash.workdir_lock import workdir_lock
with workdir_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_a_dead_holders_lock_taken_over(tmp_path, quick_data_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        config = config_lib.demo_config("quick")
        config.data.data_dir = quick_data_dir
        host = re.escape(socket.gethostname())
        with pytest.raises(
            WorkdirLockedError,
            match=rf"in use by another training \(pid {holder.pid} on host {host} since ",
        ):
            train.run(config, tmp_path, progress=False)
        assert not (tmp_path / "checkpoints").exists()
    finally:
        holder.kill()  # dies holding the lock: its file still names it
        holder.wait(timeout=60)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    with workdir_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_held_lock_refuses_a_second_holder_and_is_released(tmp_path):
    """In one process: a second open of a held lock is refused, naming the holder; the lock
    is free again after the block (``run_lock`` on one process is the same lock)."""
    from jaxhash.workdir_lock import run_lock

    host = re.escape(socket.gethostname())
    with run_lock(tmp_path):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(WorkdirLockedError, match=rf"\(pid {os.getpid()} on host {host} "):
            with workdir_lock(tmp_path):
                pass
    assert (tmp_path / LOCK_NAME).read_text() == ""  # released: the file stays, emptied
    with workdir_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
