"""What the ``jaxhash`` command shows: a few lines, one error line, a results table.

:func:`configure` is called by :mod:`jaxhash.cli` before TensorFlow, JAX or orbax is imported.
By default the console holds jaxhash's own INFO lines (data set ready or built, model and
devices, where the checkpoints go), the training progress bar, and warnings and errors of
other libraries; their INFO chatter (orbax's ``absl`` lines, TFDS's notes, TensorFlow's C++
start-up lines) stays out. ``verbose=True`` shows everything at INFO with logger names, and
tracebacks. The library's logging API is untouched: this only installs a handler on the root
logger and filters what reaches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import traceback
from collections.abc import Iterator, Mapping

# Loggers whose INFO lines are the console's story; every other logger shows WARNING and up,
# and absl (orbax's INFO/WARNING stream, TFDS's "Using custom data configuration") ERROR.
_OWN = "jaxhash"
_MIN_LEVELS = {"absl": logging.ERROR}
_HANDLER = "jaxhash.console"

EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, LookupError)


class _QuietFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == _OWN or name.startswith(_OWN + "."):
            return record.levelno >= logging.INFO
        return record.levelno >= _MIN_LEVELS.get(name.split(".")[0], logging.WARNING)


class _PrefixFilter(logging.Filter):
    """Drops records below ERROR whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not record.getMessage().startswith(self.prefixes)


@contextlib.contextmanager
def muted(*prefixes: str, logger: str = "absl") -> Iterator[None]:
    """Within the block, ``logger`` drops its records below ERROR that start with ``prefixes``.

    For another library's notes that are expected by design where we call it (TFDS's "Using
    custom data configuration", orbax's missing step metadata); errors always pass.
    """
    target, prefix_filter = logging.getLogger(logger), _PrefixFilter(prefixes)
    target.addFilter(prefix_filter)
    try:
        yield
    finally:
        target.removeFilter(prefix_filter)


class _ConsoleFormatter(logging.Formatter):
    """jaxhash's INFO lines as they are; other records prefixed with level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name.startswith(_OWN) and record.levelno == logging.INFO:
            return message
        return f"{record.levelname.lower()}: {record.name}: {message}"


def configure(verbose: bool = False) -> None:
    """Console logging for the command line; call before TensorFlow is imported.

    Quiet (default): TensorFlow's C++ INFO and WARNING lines off (``TF_CPP_MIN_LOG_LEVEL=2``,
    and its start-up lines captured by :mod:`jaxhash.data.tf_setup`), jaxhash's INFO lines
    as plain text, other libraries from WARNING (absl from ERROR). Verbose: everything at INFO
    (jaxhash at DEBUG), ``level logger: message``, TensorFlow's C++ lines included. A value of
    ``TF_CPP_MIN_LOG_LEVEL`` already in the environment is kept.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    handler = logging.StreamHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_ConsoleFormatter())
        handler.addFilter(_QuietFilter())
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:  # configured again
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    if verbose:  # jaxhash's DEBUG lines too (TFDS's own banners and progress bars while preparing)
        logging.getLogger(_OWN).setLevel(logging.DEBUG)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded into single spaces."""
    return re.sub(r"\s+", " ", str(text)).strip()


def error_line(error: BaseException) -> str:
    """The one line ``jaxhash: error: <what>; <how to fix>`` for ``error``.

    Expected errors (:data:`EXPECTED_ERRORS`: bad config values, missing files or data, a
    non-finite loss, ...) carry their own message, which names the problem and the fix. An OS
    error without one gets the path and a hint; anything else is unexpected and points to
    ``--verbose``.
    """
    if isinstance(error, KeyboardInterrupt) and hasattr(error, "signal_number"):
        return f"jaxhash: {one_line(error)}"  # interruptions.TrainingInterrupted: it saved
    if isinstance(error, KeyboardInterrupt):
        return "jaxhash: error: interrupted; rerun the same command to resume from its checkpoint"
    if isinstance(error, OSError) and error.filename is not None and len(error.args) == 2:
        # an OS error as the OS gave it: "[Errno 2] No such file or directory: 'x'"
        what = f"{error.filename}: {str(error.strerror).lower()}"
        fix = "check the path" if isinstance(error, FileNotFoundError) else "check the file"
        return f"jaxhash: error: {what}; {fix}"
    if isinstance(error, EXPECTED_ERRORS):
        return f"jaxhash: error: {one_line(error) or type(error).__name__}"
    lines = str(error).strip().splitlines()
    first = one_line(lines[0]) if lines else ""
    what = f"{type(error).__name__}: {first}" if first else type(error).__name__
    if len(lines) > 1:
        what += " ..."
    return f"jaxhash: error: {what}; rerun with --verbose for the traceback"


def traceback_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


# ----------------------------------------------------------------------------- results

# Report rows -> table columns: the trained codes, the random-codes baseline, real-valued outputs.
_CODES, _RANDOM = "hamming", "random_codes"


def results_table(report: Mapping) -> str:
    """The report's metrics as a table: one row per metric (mAP@k, mAHP@k, P@k, ...), columns
    Hamming codes / random codes / real-valued outputs (each real-valued ranking of the
    report, e.g. cosine). A metric a row lacks shows as "-"."""
    rows = report.get("rows", {})
    columns = [(name, label) for name, label in ((_CODES, "codes"), (_RANDOM, "random codes"))]
    columns += [(name, f"real-valued ({name})") for name in rows if name not in (_CODES, _RANDOM)]
    columns = [(name, label) for name, label in columns if name in rows]
    metrics: list[str] = []
    for name, _ in columns:
        metrics += [m for m in rows[name]["summary"] if m not in metrics]

    def cell(name: str, metric: str) -> str:
        value = rows[name]["summary"].get(metric)
        return "-" if value is None else f"{float(value):.4f}"

    table = [["metric", *(label for _, label in columns)]]
    table += [[metric, *(cell(name, metric) for name, _ in columns)] for metric in metrics]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    text = [
        "  ".join(
            value.ljust(width) if i == 0 else value.rjust(width)
            for i, (value, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in table
    ]
    return "\n".join(text)
