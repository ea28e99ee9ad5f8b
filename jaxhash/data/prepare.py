"""Preparing a TFDS data set once, from what the user provided, and saying what was used.

A data set module (:mod:`jaxhash.data.datasets`) builds its TFDS builder with :func:`prepare`
only from local inputs (generation, manual files) or, where the user asked for it, TFDS's own
download; data that is absent raises :class:`DatasetNotFoundError` with the way to get it, so
nothing ever waits on a download the user did not ask for. :func:`ready_line` is the one
console line that says which data a run reads, built now or reused.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os

from jaxhash.data import provenance
from jaxhash.data.config import DataConfig
from jaxhash.data.tf_setup import tfds

log = logging.getLogger(__name__)

# Prepared folders built by this process and not reported yet ("built now", not "reused").
_BUILT_NOW: set[str] = set()


class DatasetNotFoundError(FileNotFoundError):
    """The data set is neither prepared nor provided; the message says how to get it."""


def tfds_data_dir(config: DataConfig) -> str:
    """``config.data_dir``, else TFDS's default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    if config.data_dir:
        return os.path.expanduser(config.data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def prepare(builder, *, manual_dir: str | None = None) -> None:
    """Build ``builder`` from local inputs (generation or manual files), or by TFDS's download
    where the builder downloads (``cifar100`` with ``download=True``).

    TFDS's banners (printed to stdout) and progress bars show only when this module's logger
    is enabled for DEBUG (``jaxhash --verbose``); otherwise one line says what is built where.
    """
    verbose = log.isEnabledFor(logging.DEBUG)
    name = f"{builder.name}/{config_name(builder)}"
    log.info("data: building %s in %s (once)", name, builder.data_dir)
    tqdm_utils = tfds.core.utils.tqdm_utils
    bars_were_shown = getattr(tqdm_utils, "_active", True)  # restored below
    tfds.display_progress_bar(verbose and bars_were_shown)
    banners = io.StringIO()
    try:
        with contextlib.nullcontext() if verbose else contextlib.redirect_stdout(banners):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(
                    manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP
                )
            )
    finally:
        tfds.display_progress_bar(bars_were_shown)
    _BUILT_NOW.add(str(builder.data_dir))


def built_now(builder) -> bool:
    """Whether this process prepared ``builder``'s folder and has not reported it yet."""
    return str(builder.data_dir) in _BUILT_NOW


def config_name(builder) -> str:
    """The name of ``builder``'s BuilderConfig ("default" without one)."""
    return builder.builder_config.name if builder.builder_config else "default"


def ready_line(name: str, builder, split_sizes: dict[str, int]) -> str:
    """``"cifar100 (cifar100_local/x_1a2b): 50,000 train / 10,000 test examples, from
    /data/cifar-100-python.tar.gz (sha256 85cd44d02ba6, the official archive); reused from
    DIR"``: which data, how many examples, built now or reused."""
    folder = str(builder.data_dir)
    how = "built now in" if folder in _BUILT_NOW else "reused from"
    _BUILT_NOW.discard(folder)  # said once: a later opening reuses it
    facts = provenance.read(folder)
    return (
        f"{name} ({builder.name}/{config_name(builder)}): "
        f"{provenance.describe(facts, split_sizes)}; {how} {folder}"
    )
