"""TensorFlow for the input pipeline only: imported here, quietly, with the accelerators hidden.

tf.data runs on the host CPUs; if TensorFlow saw the GPUs or TPUs it would reserve their memory
next to JAX. Every module of ``jaxhash.data`` that needs TensorFlow or TFDS imports them from
here (``from jaxhash.data.tf_setup import tf, tfds``), so this runs first.

TensorFlow's C++ start-up lines ("oneDNN custom operations are on", "All log messages before
absl::InitializeLog()") are written to the process's stderr before ``TF_CPP_MIN_LOG_LEVEL``
applies; while that variable is 1 or more (the default set here) the import runs with file
descriptor 2 captured, and the capture is replayed only if the import fails.
``TF_CPP_MIN_LOG_LEVEL=0`` shows them (``jaxhash --verbose`` sets it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TF's C++ INFO lines out of the logs


@contextlib.contextmanager
def _captured_stderr_fd():
    """Redirect file descriptor 2 to a temporary file; replay it if the block raises."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (e.g. some embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() not in ("", "0")
with _captured_stderr_fd() if _quiet else contextlib.nullcontext():
    import tensorflow as tf
    import tensorflow_datasets as tfds


def hide_accelerators() -> None:
    """Make GPUs and TPUs invisible to TensorFlow (no-op once TF's devices are initialised)."""
    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # already initialised, or no such device type
            pass


hide_accelerators()

__all__ = ["hide_accelerators", "tf", "tfds"]
