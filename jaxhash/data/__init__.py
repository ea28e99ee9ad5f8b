"""Input pipelines: TFDS data sets feeding device-sharded global batches.

Entry points (``config``: an experiment ConfigDict with a ``data`` block, the block itself, a
dict or a :class:`DataConfig`; see :mod:`jaxhash.data.config` for the fields)::

    info = get_dataset_info(config)          # classes, hierarchy, split sizes, ...
    for batch in train_iterator(config, mesh, start_step=step): ...   # forever
    for batch in eval_batches(config, "test", mesh, batch_size=512): ...  # each example once

Data sets (``config.data.name``): ``synthetic_hierarchy`` (the embedded default, generated,
no download), ``cifar100`` (TFDS download on request, the official archive or an ``.npz`` in
``manual_dir``), ``imagenet2012`` (TFDS, manual download; ``classes="imagenet100"`` for the
ImageNet-100 hashing subset), ``image_folder`` (``root/split/wnid/*.JPEG``, e.g. Tiny
ImageNet) and ``captions`` (a caption TSV and an image folder). Zero-shot: set
``holdout_classes``; training never sees them, ``eval_batches(..., subset="holdout")`` gives them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from jaxhash.data.config import DATASETS, DataConfig, data_config, default_config
from jaxhash.semantics.hierarchy import ClassHierarchy

if TYPE_CHECKING:
    from jaxhash.data.pipeline import (
        eval_batches,
        example_uniforms,
        host_eval_batches,
        host_range,
        host_train_batches,
        prefetch,
        to_global,
        train_dataset,
        train_iterator,
    )
    from jaxhash.data.sources import DatasetNotFoundError, MemorySplit, Source, open_source

# The pipeline and the sources import TensorFlow: they load on first use, so that the config
# (and ``jaxhash.config``, the trainer's step and the benchmarks built on them) works where
# TensorFlow is not installed, e.g. an accelerator image that trains from arrays.
_LAZY = {
    **dict.fromkeys(
        (
            "eval_batches",
            "example_uniforms",
            "host_eval_batches",
            "host_range",
            "host_train_batches",
            "prefetch",
            "to_global",
            "train_dataset",
            "train_iterator",
        ),
        "pipeline",
    ),
    **dict.fromkeys(("DatasetNotFoundError", "MemorySplit", "Source", "open_source"), "sources"),
}
_SUBMODULES = ("augment", "builders", "captions", "pipeline", "sources", "synthetic", "tf_setup")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


# Counts of the ImageNet-100 hashing subset in ILSVRC2012 (jaxhash/semantics/data/README.md):
# all train images of its 100 classes, and their 5,000 validation images.
_IMAGENET100_SIZES = {"train": 128_503, "validation": 5_000}


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetInfo:
    """What the trainer and the evaluators need to know about the configured data set.

    Attributes:
      name: ``config.data.name``; ``tfds_name`` the TFDS builder behind it.
      class_names: label ``i`` is ``class_names[i]`` (after ``config.data.classes``).
      coarse_names, coarse_of_fine: coarse classes (``coarse_label``) and the coarse index of
        each class, where the data set has them; else None.
      splits: examples per split (all classes; TFDS's counts).
      train_split, eval_split: the splits the train iterator and default evaluation use.
      num_train: examples the train iterator draws from (class subset and hold-out applied;
        None when unknown without a full pass, e.g. a filtered stream).
      num_eval: examples of ``eval_split`` in the label space (None when unknown).
      image_shape: ``(S, S, 3)`` of the batches' images.
      holdout_labels: zero-shot labels (never in training); ``seen_labels`` the others.
      has_captions, embedding_dim: captions data; ``caption_embedding`` width if enabled.
      mean, std: the normalisation applied (per channel, [0, 1] pixel units).
      augment: the augmentation style resolved from ``config.data.augment``.
      hierarchy: the class tree (:class:`ClassHierarchy`, built on first access; WordNet
        trees need WordNet), or None (captions, or non-WordNet folder labels).
    """

    name: str
    tfds_name: str
    class_names: tuple[str, ...]
    coarse_names: tuple[str, ...] | None
    coarse_of_fine: tuple[int, ...] | None
    splits: dict[str, int]
    train_split: str
    eval_split: str
    num_train: int | None
    num_eval: int | None
    image_shape: tuple[int, int, int]
    holdout_labels: tuple[int, ...]
    has_captions: bool
    embedding_dim: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: str
    hierarchy_fn: Callable[[], ClassHierarchy | None] | None = dataclasses.field(
        default=None, repr=False
    )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def seen_labels(self) -> tuple[int, ...]:
        held = set(self.holdout_labels)
        return tuple(i for i in range(self.num_classes) if i not in held)

    @functools.cached_property
    def hierarchy(self) -> ClassHierarchy | None:
        return None if self.hierarchy_fn is None else self.hierarchy_fn()


def _count(source: Source, split: str, subset: str) -> int | None:
    if source.in_memory:
        return len(source.pool(split, subset))
    held = subset == "holdout" or (subset == "seen" and bool(source.holdout))
    if source.remap is None and not held:
        return source.split_sizes.get(split)
    cfg = source.config
    if not held and cfg.name == "imagenet2012" and cfg.classes == "imagenet100":
        return _IMAGENET100_SIZES.get(split)
    return None  # a filtered stream: unknown without a full pass


def get_dataset_info(config) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``config`` (prepares the data set if it must, see
    :func:`open_source`; raises :class:`DatasetNotFoundError` at once if it is absent)."""
    from jaxhash.data.sources import open_source

    source = open_source(config)
    cfg = source.config
    dim = None
    if source.has_captions and cfg.caption_embeddings:
        from jaxhash.data.pipeline import _caption_table

        dim = _caption_table(source).dim
    return DatasetInfo(
        name=source.name,
        tfds_name=source.tfds_name,
        class_names=source.class_names,
        coarse_names=source.coarse_names,
        coarse_of_fine=source.coarse_of_fine,
        splits=dict(source.split_sizes),
        train_split=source.train_split,
        eval_split=source.eval_split,
        num_train=_count(source, source.train_split, "seen"),
        num_eval=_count(source, source.eval_split, "all"),
        image_shape=(source.image_size, source.image_size, 3),
        holdout_labels=source.holdout,
        has_captions=source.has_captions,
        embedding_dim=dim,
        mean=source.mean,
        std=source.std,
        augment=source.style,
        hierarchy_fn=source.hierarchy_fn,
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
    "get_dataset_info",
    "host_eval_batches",
    "host_range",
    "host_train_batches",
    "load_split",
    "open_source",
    "prefetch",
    "to_global",
    "train_dataset",
    "train_iterator",
]
