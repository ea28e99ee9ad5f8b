"""The data sets jaxhash reads (``config.data.name``), one module each, looked up by name.

Each module of this package is named after its data set and defines ``DATASET``, a
:class:`Dataset`: how to open it from what the user provided (a TFDS builder prepared once, or
arrays read without TFDS), its class names, coarse labels and hierarchy, its image size,
augmentation and normalisation. :func:`jaxhash.data.sources.open_source` does what is common
to every data set (the class subset and hold-out, memory or stream, reading a split). Adding a
data set is adding one module here (the config's choices, ``DATASETS``, are read from
this folder).

The registry reads the package's module names without importing them, so listing the data
sets loads neither TensorFlow nor any data set's code.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jaxhash.data.config import DataConfig
    from jaxhash.data.split import MemorySplit
    from jaxhash.semantics.hierarchy import ClassHierarchy

# ImageNet's per-channel mean and standard deviation of RGB in [0, 1] (the torchvision values):
# the normalisation of natural photographs unless a data set has its own.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class Opened:
    """A data set opened for a config: what :attr:`Dataset.open` returns.

    ``builder``: the prepared TFDS builder, or None when ``read_split`` reads the data without
    TFDS (then ``split_sizes`` and ``location`` are given). ``class_names``: the raw label
    names in label order (``()``: no class labels). ``hierarchy``: builds the class tree of
    ``class_names`` on demand (it may need WordNet), or None. ``keys``: pipeline field ->
    TFDS feature. ``read_split``: reads a split into host memory itself (arrays without TFDS,
    or an image folder's file paths); the data set is then held in memory. ``subset_sizes``:
    examples per split of the configured class subset where known without a pass (a filtered
    stream's length). ``ready``: the console line that says what is read (default: the
    prepared folder's provenance, built now or reused).
    """

    builder: object | None
    class_names: tuple[str, ...]
    keys: Mapping[str, str]
    hierarchy: Callable[[], ClassHierarchy] | None = None
    coarse_names: tuple[str, ...] | None = None
    coarse_of_fine: tuple[int, ...] | None = None
    read_split: Callable[[str], MemorySplit] | None = None
    split_sizes: Mapping[str, int] | None = None
    location: str | None = None  # what identifies the data on disk; default builder.data_dir
    tfds_name: str | None = None  # default builder.name
    image_kind: str | None = None  # "array", "encoded" or "path"; default from the builder
    subset_sizes: Mapping[str, int] | None = None
    ready: str | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One data set: its name, how it opens, and the defaults that suit its images.

    ``open(config, data_dir)`` prepares or finds the data (``data_dir``: TFDS's folder) and
    returns :class:`Opened`, or raises :class:`jaxhash.data.prepare.DatasetNotFoundError`
    saying how to get the data. ``image_size``, ``augment`` ("crop_flip" for 32x32 images,
    "resized_crop_flip" for photographs) and ``eval_crop_fraction`` are the defaults of the
    config's ``image_size``, ``augment="auto"`` and ``eval_crop_fraction``; ``mean``/``std``
    the default normalisation. ``readers``: the values of ``config.data.reader`` it accepts.
    ``class_glosses``: a definition per class name, for the sentences that describe classes
    (:mod:`jaxhash.semantics.class_text`).
    """

    name: str
    title: str
    open: Callable[[DataConfig, str], Opened]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    image_size: int = 224
    augment: str = "resized_crop_flip"
    eval_crop_fraction: float = 0.875
    readers: tuple[str, ...] = ("tfds",)
    has_captions: bool = False
    class_glosses: Callable[[], Mapping[str, str]] | None = None


@functools.cache
def names() -> tuple[str, ...]:
    """The registered data sets: the modules of this package, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg))


def get(name: str) -> Dataset:
    """The :class:`Dataset` called ``name``; a ValueError listing the known names otherwise."""
    if name not in names():
        raise ValueError(
            f"unknown data set {name!r}: config.data.name must be one of {list(names())} "
            f"(the modules of {__name__})."
        )
    dataset = importlib.import_module(f"{__name__}.{name}").DATASET
    if dataset.name != name:
        raise ValueError(
            f"{__name__}.{name} defines DATASET named {dataset.name!r}: a data set's module "
            "and its name must agree."
        )
    return dataset


def reading(reader: str) -> tuple[Dataset, ...]:
    """The data sets that ``config.data.reader=reader`` applies to."""
    return tuple(d for d in map(get, names()) if reader in d.readers)
