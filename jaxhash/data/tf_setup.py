"""TensorFlow for the input pipeline only: imported on first use, quietly, accelerators hidden.

tf.data runs on the host CPUs; if TensorFlow saw the GPUs or TPUs it would reserve their memory
next to JAX. Every module of ``jaxhash.data`` that needs TensorFlow or TFDS takes them from here
(``from jaxhash.data.tf_setup import tf, tfds``): two stand-ins that import the modules on the
first attribute read (``tf.constant``), so that the pipeline loads without TensorFlow and
only the paths that use it need it (TFDS data sets, crops that resample). CIFAR-100 from an
``.npz`` with ``config.data.reader="numpy"`` trains and evaluates with none of it, e.g. on an
accelerator image without TensorFlow; elsewhere a missing TensorFlow is one ImportError that
says so.

TensorFlow's C++ start-up lines ("oneDNN custom operations are on", "All log messages before
absl::InitializeLog()") are written to the process's stderr before ``TF_CPP_MIN_LOG_LEVEL``
applies; while that variable is 1 or more (the default set here) the import runs with file
descriptor 2 captured, and the capture is replayed only if the import fails.
``TF_CPP_MIN_LOG_LEVEL=0`` shows them (``jaxhash --verbose`` sets it).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import threading
import types

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


_MISSING = (
    "{module} cannot be imported ({err}). jaxhash reads data sets through TensorFlow Datasets "
    "(pip install tensorflow-cpu tensorflow-datasets, both in jaxhash's dependencies); "
    "without them, CIFAR-100 from an .npz still trains: set config.data.reader='numpy' and "
    "config.data.manual_dir to the .npz."
)


_IMPORT_LOCK = threading.Lock()  # one import at a time: each swaps file descriptor 2
_imported: tuple[types.ModuleType, types.ModuleType] | None = None


def _modules() -> tuple[types.ModuleType, types.ModuleType]:
    """(tensorflow, tensorflow_datasets), imported once, quietly; accelerators hidden."""
    global _imported
    if _imported is not None:
        return _imported
    with _IMPORT_LOCK:
        if _imported is None:
            quiet = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip() not in ("", "0")
            with _captured_stderr_fd() if quiet else contextlib.nullcontext():
                tensorflow = _import("tensorflow", "TensorFlow")
                tensorflow_datasets = _import("tensorflow_datasets", "tensorflow-datasets")
            _hide_accelerators(tensorflow)
            _imported = tensorflow, tensorflow_datasets
    return _imported


def _import(module: str, package: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(_MISSING.format(module=package, err=err)) from err


def _hide_accelerators(tensorflow) -> None:
    for kind in ("GPU", "TPU"):
        try:
            tensorflow.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # already initialised, or no such device type
            pass


def hide_accelerators() -> None:
    """Make GPUs and TPUs invisible to TensorFlow (no-op once TF's devices are initialised)."""
    _hide_accelerators(_modules()[0])


class _OnFirstUse:
    """Stands for module ``index`` of :func:`_modules`, imported on the first attribute read."""

    def __init__(self, index: int, name: str):
        self._index, self._name = index, name

    def __getattr__(self, attr: str):
        return getattr(_modules()[self._index], attr)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use by jaxhash.data.tf_setup>"


tf = _OnFirstUse(0, "tensorflow")
tfds = _OnFirstUse(1, "tensorflow_datasets")

__all__ = ["hide_accelerators", "tf", "tfds"]
