"""One split of a data set in host memory (what :meth:`jaxhash.data.sources.Source.load` gives)."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class MemorySplit:
    """One split in host memory, rows in the TFDS split's order (row ``i`` has id ``i``).

    ``images``: uint8 ``[N, H, W, 3]`` (``image_kind`` "array"), encoded bytes ``[N]``
    ("encoded") or file paths ``[N]`` ("path"), both object arrays. ``labels``/``coarse``: raw
    (builder) labels ``[N]`` int64 or None. ``captions``: per row a tuple of str, or None.
    ``index``: per row the caption table row (captions data), or None.
    """

    images: np.ndarray
    image_kind: str
    labels: np.ndarray | None
    coarse: np.ndarray | None
    captions: list[tuple[str, ...]] | None = None
    index: np.ndarray | None = None
    file_names: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)
