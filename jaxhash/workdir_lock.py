"""One training per run folder: an exclusive lock on ``workdir/.lock`` while a run trains.

The lock is ``fcntl.flock`` on the file, so the kernel releases it when its holder exits or
dies: a stale lock (its process gone) is taken over without a word. The file holds the
holder's pid, host and start time, which a second trainer names in its
:class:`WorkdirLockedError`. With several processes (``jax.process_count() > 1``) only
process 0 locks (:func:`run_lock`), so one multi-process run holds one lock, and every
process stops when process 0 cannot take it.
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

import jax
import numpy as np

LOCK_NAME = ".lock"


class WorkdirLockedError(BlockingIOError):
    """Another process is training into the run folder (the lock would block): an expected
    error, whose message names the holder and the fix."""


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``workdir/.lock`` for the block; :class:`WorkdirLockedError` when another process
    holds it."""
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


@contextlib.contextmanager
def run_lock(workdir: str | os.PathLike) -> Iterator[None]:
    """:func:`workdir_lock` held by process 0 of a run; with several processes, all of them
    learn (one broadcast) whether it was taken and raise together when not."""
    if jax.process_count() == 1:
        with workdir_lock(workdir):
            yield
        return
    from jax.experimental import multihost_utils

    with contextlib.ExitStack() as stack:
        refused = None
        if jax.process_index() == 0:
            try:
                stack.enter_context(workdir_lock(workdir))
            except WorkdirLockedError as error:
                refused = error
        taken = multihost_utils.broadcast_one_to_all(np.int32(refused is None))
        if refused is not None:
            raise refused
        if not int(taken):
            raise WorkdirLockedError(
                f"{Path(workdir)} is in use by another training (process 0 could not lock "
                "it): wait for it to finish or stop it, or choose another --workdir."
            )
        yield


def _holder(path: Path) -> str:
    """``pid P on host H since T`` from the lock file (what could be read of it)."""
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on host {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its holder has not written its name yet"
