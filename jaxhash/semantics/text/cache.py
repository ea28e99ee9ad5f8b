"""The on-disk cache of sentence embeddings: one ``.npy`` per sentence, written atomically.

A sentence's file is named by a sha256 of the model, ``max_length`` and the text
(:meth:`jaxhash.semantics.text.SentenceEncoder.cache_key`), so each caption is embedded once
across runs and processes; a missing or unreadable file is recomputed and rewritten.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


def read_cached(path: Path, dim: int) -> np.ndarray | None:
    """The cached vector, or None if absent or unreadable (it is then recomputed and rewritten)."""
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if value.shape != (dim,) or value.dtype != np.float32 or not np.all(np.isfinite(value)):
        return None
    return value


def write_cached(path: Path, value: np.ndarray) -> None:
    """Atomic write: a temporary file in the same folder, then ``os.replace``.

    Readers see the old file, no file, or the whole new one; concurrent writers of one key write
    the same bytes, and the last rename wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
