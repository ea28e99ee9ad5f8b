"""Caption embeddings of a captions data set, computed once and cached on disk.

The similarity targets of captioned images are cosine distances between sentence embeddings
(Arponen & Bishop, arXiv 2005.04917; :mod:`jaxhash.semantics.text`, all-MiniLM-L6-v2). Every
caption of the TSV is embedded once, in TSV-grouped order, and stored as one ``.npy`` whose
name is a digest of the model and the caption texts; later runs memory-map it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class CaptionTable:
    """Embeddings of every caption, grouped by image (the builder's ``index`` feature).

    Attributes:
      offsets: ``[N + 1]`` int64; image ``i``'s captions are rows ``offsets[i]:offsets[i+1]``.
      embeddings: ``[M, E]`` float32 unit rows, one per caption (memory-mapped).
      mean: ``[N, E]`` float32, the normalised mean of each image's caption embeddings.
    """

    offsets: np.ndarray
    embeddings: np.ndarray
    mean: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def _encoder():
    from jaxhash.semantics import text

    try:
        return text.SentenceEncoder.load()
    except ImportError as err:
        raise ImportError(
            f"config.data.caption_embeddings=True needs the optional 'text' extra: "
            f"{text.INSTALL_HINT}\n(or set caption_embeddings=False to train on caption text). "
            f"Cause: {err}"
        ) from err


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@functools.lru_cache(maxsize=4)
def caption_table(tsv: str, images_dir: str, columns: str, cache_dir: str) -> CaptionTable:
    """Embed (or read from ``cache_dir``) all captions of ``tsv`` for the images present."""
    from jaxhash.data import builders  # TFDS's: loads on first use

    _, captions, _ = builders.read_captions(tsv, images_dir, columns)
    flat = [c for caps in captions for c in caps]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in captions])]).astype(np.int64)
    encoder = _encoder()
    digest = encoder.model_digest()
    for caption in flat:
        digest.update(caption.encode("utf-8", "surrogatepass") + b"\0")
    path = Path(cache_dir).expanduser() / f"captions_{digest.hexdigest()[:24]}.npy"
    embeddings = None
    if path.is_file():
        try:
            embeddings = np.load(path, mmap_mode="r")
            if embeddings.shape != (len(flat), encoder.dim):
                embeddings = None
        except (OSError, ValueError):
            embeddings = None
    if embeddings is None:
        log.warning("Embedding %d captions into %s (once).", len(flat), path)
        _save_atomic(path, encoder.embed(flat, batch_size=256).astype(np.float32))
        embeddings = np.load(path, mmap_mode="r")
    counts = np.diff(offsets)[:, None].astype(np.float32)
    sums = np.add.reduceat(np.asarray(embeddings), offsets[:-1], axis=0) / np.maximum(counts, 1)
    mean = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return CaptionTable(offsets, embeddings, mean.astype(np.float32))
