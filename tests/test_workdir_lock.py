"""One training per run folder: a second trainer names the lock's holder; a dead holder's
lock is taken over."""

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
