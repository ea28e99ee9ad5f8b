"""Input pipelines: TFDS data sets feeding device-sharded global batches.

Entry points (``config``: an experiment ConfigDict with a ``data`` block, the block itself, a
dict or a :class:`DataConfig`; see :mod:`jaxhash.data.config` for the fields)::

    info = get_dataset_info(config)          # classes, hierarchy, split sizes, ...
    for batch in train_iterator(config, mesh, start_step=step): ...   # forever
    for batch in eval_batches(config, "test", mesh, batch_size=512): ...  # each example once

Data sets (``config.data.name``, one module each in :mod:`jaxhash.data.datasets`):
``synthetic_hierarchy`` (the embedded default, generated,
no download), ``cifar100`` (TFDS download on request, the official archive or an ``.npz`` in
``manual_dir``; ``reader="numpy"`` reads the ``.npz`` without TensorFlow), ``imagenet2012``
(TFDS, manual download; ``classes="imagenet100"`` for the ImageNet-100 hashing subset),
``image_folder`` (``root/split/wnid/*.JPEG``, e.g. Tiny ImageNet) and ``captions`` (a caption
TSV and an image folder). Zero-shot: set
``holdout_classes``; training never sees them, ``eval_batches(..., subset="holdout")`` gives them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import TYPE_CHECKING

from jaxhash.data.config import DATASETS, DataConfig, data_config, default_config
from jaxhash.semantics.hierarchy import ClassHierarchy

if TYPE_CHECKING:
    from jaxhash.data.memory import example_uniforms
    from jaxhash.data.pipeline import (
        eval_batches,
        first_train_images,
        host_eval_batches,
        host_train_batches,
        prefetch,
        train_iterator,
    )
    from jaxhash.data.sharding import host_range, to_global
    from jaxhash.data.sources import DatasetNotFoundError, MemorySplit, Source, open_source

# The pipeline and the sources load on first use, and TensorFlow loads only when a TFDS path or
# a resampling crop needs it (jaxhash.data.tf_setup): the config, the trainer's step and the
# pipeline over CIFAR-100 from an .npz (reader "numpy") work where TensorFlow is not installed,
# e.g. an accelerator image.
_LAZY = {
    **dict.fromkeys(
        (
            "eval_batches",
            "first_train_images",
            "host_eval_batches",
            "host_train_batches",
            "prefetch",
            "train_iterator",
        ),
        "pipeline",
    ),
    "example_uniforms": "memory",
    **dict.fromkeys(("host_range", "to_global"), "sharding"),
    **dict.fromkeys(("DatasetNotFoundError", "MemorySplit", "Source", "open_source"), "sources"),
}
_SUBMODULES = (
    "augment",
    "builders",
    "captions",
    "datasets",
    "label_space",
    "memory",
    "pipeline",
    "prepare",
    "preprocess",
    "sharding",
    "sources",
    "split",
    "stream",
    "synthetic",
    "tf_setup",
    "views",
)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the trainer and the evaluators need to know about the configured data set.

    The facts of the opened data set are read from its :class:`Source` (``name``,
    ``tfds_name``, ``class_names``, ``coarse_names``, ``coarse_of_fine``, ``train_split``,
    ``eval_split``, ``has_captions``, ``mean``, ``std``: see there); this adds what the
    pipeline derives:

    Attributes:
      splits: examples per split (all classes; TFDS's counts).
      num_train: examples the train iterator draws from (class subset and hold-out applied;
        None when unknown without a full pass, e.g. a filtered stream).
      num_eval: examples of ``eval_split`` in the label space (None when unknown).
      embedding_dim: ``caption_embedding`` width where enabled, else None.
      image_shape: ``(S, S, 3)`` of the batches' images.
      holdout_labels: zero-shot labels (never in training); ``seen_labels`` the others.
      augment: the augmentation style resolved from ``config.data.augment``.
      class_glosses: a definition per class name (CIFAR-100's WordNet glosses), or empty.
      hierarchy: the class tree (:class:`ClassHierarchy`, built on first access; WordNet
        trees need WordNet), or None (captions, or non-WordNet folder labels).
    """

    source: Source = dataclasses.field(repr=False)
    num_train: int | None
    num_eval: int | None
    embedding_dim: int | None

    _FROM_SOURCE = frozenset(
        (
            "name",
            "tfds_name",
            "class_names",
            "coarse_names",
            "coarse_of_fine",
            "train_split",
            "eval_split",
            "has_captions",
            "mean",
            "std",
            "num_classes",
        )
    )

    def __getattr__(self, name: str):
        if name in DatasetInfo._FROM_SOURCE:
            return getattr(self.source, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def splits(self) -> dict[str, int]:
        return dict(self.source.split_sizes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.source.image_size, self.source.image_size, 3)

    @property
    def holdout_labels(self) -> tuple[int, ...]:
        return self.source.holdout

    @property
    def augment(self) -> str:
        return self.source.style

    @property
    def seen_labels(self) -> tuple[int, ...]:
        held = set(self.holdout_labels)
        return tuple(i for i in range(self.num_classes) if i not in held)

    @property
    def class_glosses(self) -> dict[str, str]:
        """A definition per class name where the data set has them (CIFAR-100: WordNet's
        glosses), else empty; used to describe classes in sentences."""
        glosses = self.source.class_glosses
        return {} if glosses is None else dict(glosses())

    @functools.cached_property
    def hierarchy(self) -> ClassHierarchy | None:
        fn = self.source.hierarchy_fn
        return None if fn is None else fn()


def _count(source: Source, split: str, subset: str) -> int | None:
    if source.in_memory:
        return len(source.pool(split, subset))
    held = subset == "holdout" or (subset == "seen" and bool(source.holdout))
    if source.remap is None and not held:
        return source.split_sizes.get(split)
    if not held and source.subset_sizes is not None:
        return source.subset_sizes.get(split)
    return None  # a filtered stream: unknown without a full pass


def get_dataset_info(config) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``config`` (prepares the data set if it must, see
    :func:`open_source`; raises :class:`DatasetNotFoundError` at once if it is absent)."""
    from jaxhash.data.sources import open_source

    source = open_source(config)
    cfg = source.config
    dim = None
    if source.has_captions and cfg.caption_embeddings:
        from jaxhash.data.preprocess import caption_table

        dim = caption_table(source).dim
    return DatasetInfo(
        source,
        num_train=_count(source, source.train_split, "seen"),
        num_eval=_count(source, source.eval_split, "all"),
        embedding_dim=dim,
    )


def load_split(config, split: str) -> MemorySplit:
    """A split in host memory, row ``i`` = example id ``i`` (to map retrieval results back:
    ``images``, raw ``labels``, ``file_names``, ``captions``)."""
    from jaxhash.data.sources import open_source

    return open_source(config).load(split)


def clear_caches() -> None:
    """Forget opened data sets and loaded splits (e.g. after re-preparing one)."""
    from jaxhash.data import captions, sources

    sources._open.cache_clear()
    with sources._LOAD_LOCK:
        sources._LOADED.clear()
    captions.caption_table.cache_clear()


__all__ = [
    "DATASETS",
    "DataConfig",
    "DatasetInfo",
    "DatasetNotFoundError",
    "MemorySplit",
    "clear_caches",
    "data_config",
    "default_config",
    "eval_batches",
    "example_uniforms",
    "first_train_images",
    "get_dataset_info",
    "host_eval_batches",
    "host_range",
    "host_train_batches",
    "load_split",
    "open_source",
    "prefetch",
    "to_global",
    "train_iterator",
]
