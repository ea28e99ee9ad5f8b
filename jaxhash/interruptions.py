"""Stopping a training run early, decided once for all its processes: SIGTERM, SIGINT and the
time limit.

A run stops early for three reasons, and every process must take the same decision at the
same step (a process that saves or stops alone leaves the others waiting in a collective):

* **A signal, one process.** SIGTERM (a scheduler or a preemptible VM) and SIGINT (Ctrl-C) set
  a flag that the loop reads after each step: it saves a checkpoint at the step reached and
  raises :class:`TrainingInterrupted`. A second signal while the first is handled stops at
  once, as Python would without the handler.
* **A signal, several processes** (``jax.distributed``): a SIGTERM to any process is a
  preemption notice for all. JAX's preemption sync manager (started by
  ``jax.distributed.initialize``) agrees in the background on the first step that every
  process reaches after the notice, and ``multihost_utils.reached_preemption_sync_point`` is
  True on every process at that same step. SIGINT is forwarded to this process as SIGTERM, so
  it takes the same route.
* **The time limit.** One process reads its own clock after each step. Several processes use
  process 0's clock, broadcast at the steps where the loop already waits on the devices
  (logging, saving), so a late clock elsewhere cannot split them.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import types

import jax
import numpy as np

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint at the step it reached.

    ``signal_number`` is the signal (``jaxhash train`` exits with ``128 + signal_number``) and
    ``step`` the step saved; rerunning the same command resumes from it.
    """

    def __init__(self, message: str, signal_number: int, step: int):
        super().__init__(message)
        self.signal_number, self.step = signal_number, step


class Interruptions:
    """The early-stop decisions of one training loop; a context manager that installs the
    signal handlers (main thread only) and restores the previous ones on exit.

    Call :meth:`signalled` and :meth:`out_of_time` after every step, on every process.
    """

    def __init__(self, time_limit_s: float | None = None, start_time: float | None = None):
        self.time_limit_s = time_limit_s
        self.start_time = time.time() if start_time is None else start_time
        self.multi_process = jax.process_count() > 1
        self.received: int | None = None  # the first stop signal received (one process)
        self._previous: dict[int, object] = {}

    # -- signals

    def __enter__(self) -> Interruptions:
        if threading.current_thread() is not threading.main_thread():
            log.debug("not the main thread: SIGTERM and SIGINT keep their handlers")
            return self
        # Several processes: SIGTERM belongs to JAX's preemption notifier; SIGINT joins it.
        handled = (signal.SIGINT,) if self.multi_process else STOP_SIGNALS
        for number in handled:
            self._previous[number] = signal.signal(number, self._on_signal)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _on_signal(self, number: int, frame: types.FrameType | None) -> None:
        if self.multi_process:
            signal.raise_signal(signal.SIGTERM)  # to JAX's notifier, shared with every process
            return
        if self.received is not None:  # asked twice: stop now, as without the handler
            signal.signal(number, self._previous.get(number, signal.SIG_DFL))
            signal.raise_signal(number)
            return
        self.received = number
        log.warning(
            "%s received: saving a checkpoint after this step, then stopping (send it again to "
            "stop at once, without saving)",
            signal.Signals(number).name,
        )

    def signalled(self, step: int) -> int | None:
        """The signal asking every process to stop after ``step``, else None."""
        if self.multi_process:
            from jax.experimental import multihost_utils

            reached = multihost_utils.reached_preemption_sync_point(int(step))
            return int(signal.SIGTERM) if reached else None
        return self.received

    # -- the time limit

    def out_of_time(self, at_sync_point: bool) -> bool:
        """Whether the time limit has passed, the same answer on every process.

        ``at_sync_point``: the loop waits on the devices at this step anyway (all processes
        alike); with several processes the clock is read only there, process 0's answer
        broadcast to all.
        """
        if self.time_limit_s is None:
            return False
        late = time.time() - self.start_time > self.time_limit_s
        if not self.multi_process:
            return late
        if not at_sync_point:
            return False
        from jax.experimental import multihost_utils

        return bool(multihost_utils.broadcast_one_to_all(np.asarray(late)))


def stop_message(number: int, step: int, where: str) -> str:
    """The one line said when a signal stopped training after saving checkpoint ``step``."""
    return (
        f"stopped by {signal.Signals(number).name} at step {step}: checkpoint {step} saved in "
        f"{where}; rerun the same command to resume"
    )
