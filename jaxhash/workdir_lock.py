"""One training per run folder: an exclusive lock on ``workdir/.lock`` while a run trains.

The lock is ``fcntl.flock`` on the file, so the kernel releases it when its holder exits or
dies: a stale lock (its process gone) is taken over without a word. The file holds the
holder's pid, host and start time, which a second trainer names in its
:class:`WorkdirLockedError`. With several processes (``jax.process_count() > 1``) only
process 0 locks, so one multi-process run holds one lock.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"


class WorkdirLockedError(RuntimeError):
    """Another process is training into the run folder."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike, *, enabled: bool = True) -> Iterator[None]:
    """Hold ``workdir/.lock`` for the block; :class:`WorkdirLockedError` when another process
    holds it. ``enabled`` False: no lock (the non-primary processes of a multi-process run)."""
    if not enabled:
        yield
        return
    path = Path(workdir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirLockedError(
                f"{Path(workdir)} is in use by another training ({_holder(path)}): wait for it "
                "to finish or stop it, or choose another --workdir."
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the file stays (unlinking it would race a waiting locker)
    finally:
        os.close(fd)  # releases the lock


def _holder(path: Path) -> str:
    """``pid P on host H since T`` from the lock file (what could be read of it)."""
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its holder has not written its name yet"
