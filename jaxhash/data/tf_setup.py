"""TensorFlow for the input pipeline only: imported here with the accelerators hidden from it.

tf.data runs on the host CPUs; if TensorFlow saw the GPUs or TPUs it would reserve their memory
next to JAX. Every module of ``jaxhash.data`` that needs TensorFlow imports this one first.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TF's C++ INFO lines out of the logs

import tensorflow as tf


def hide_accelerators() -> None:
    """Make GPUs and TPUs invisible to TensorFlow (no-op once TF's devices are initialised)."""
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # already initialised, or no such device type
            pass


hide_accelerators()
