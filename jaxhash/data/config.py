"""The data block of an experiment config, validated.

The trainer passes ``config`` (an ``ml_collections.ConfigDict``) whose ``config.data`` holds the
fields of :class:`DataConfig`; the batch size and seed may sit at the top level instead
(``config.batch_size``, ``config.seed``). :func:`data_config` accepts the whole config, the data
block alone, a plain dict or a :class:`DataConfig`, and raises ``ValueError`` naming any unknown
key or wrong type. :func:`default_config` gives the block as a ConfigDict for config files.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from typing import Any

DATASETS = ("synthetic_hierarchy", "cifar100", "imagenet2012", "image_folder", "captions")
AUGMENT_STYLES = ("auto", "none", "crop_flip", "resized_crop_flip")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Everything the input pipeline needs; defaults run the embedded default offline.

    Attributes:
      name: one of ``DATASETS``.
      data_dir: TFDS data folder for prepared data sets (None: TFDS's default,
        ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``).
      manual_dir: folder (or file) of manually downloaded data: for cifar100 the official
        ``cifar-100-binary.tar.gz`` or ``cifar-100-python.tar.gz`` or an ``.npz`` with
        ``x_train, y_train_fine, y_train_coarse, x_test, ...``; for imagenet2012 the two
        ILSVRC2012 tars.
      download: allow TFDS to download (cifar100 only; never implied).
      folder: image_folder root, laid out ``root/split/label/*.jpg`` (e.g. Tiny ImageNet).
      image_size: side of the square output images (None: 32 for 32x32 data sets, else 224).
      global_batch_size: examples per training step over all hosts (None: the top-level
        ``batch_size``).
      eval_batch_size: global evaluation batch size (None: ``global_batch_size``).
      seed: shuffle and augmentation seed (None: the top-level ``seed``, else 0).
      shuffle_buffer: shuffle buffer of streamed data sets (in-memory ones permute exactly).
      augment: "auto" (pad-crop-flip for the 32x32 data sets, random-resized-crop-flip
        otherwise), "none", "crop_flip" or "resized_crop_flip"; True / False mean "auto" /
        "none" (a string default, so ConfigDict overrides with any style type-check).
      crop_padding: pixels of zero padding before the random crop of "crop_flip".
      crop_scale, crop_ratio: area fraction and aspect-ratio ranges of "resized_crop_flip".
      eval_crop_fraction: central crop side / shorter image side at evaluation (None: 1.0 for
        "crop_flip" data, 0.875 otherwise, i.e. resize 256 -> crop 224).
      mean, std: per-channel normalisation in [0, 1] pixel units (None: the data set's own).
      image_dtype: "float32" or "bfloat16" images in the batches.
      classes: keep only these classes, relabelled 0..n-1 in this order: a list of class
        names, or "imagenet100" (the ImageNet-100 hashing subset; for wnid-labelled data).
      holdout_classes: zero-shot: class names left out of training (labels keep their value;
        evaluate them with ``subset="holdout"``).
      hierarchy: class tree of cifar100: "wordnet" (default) or "two_level".
      wordnet_dir: folder holding ``corpora/wordnet`` for WordNet hierarchies (imagenet2012,
        image_folder); None: nltk's search path.
      in_memory: load each split into host memory (None: when the prepared data set is
        smaller than ``memory_limit_mb``); otherwise stream it from TFDS.
      memory_limit_mb: see ``in_memory``.
      prefetch: global batches prepared ahead on the devices.
      synthetic_seed, synthetic_train_per_class, synthetic_test_per_class: the
        synthetic_hierarchy BuilderConfig (its images are a function of these).
      captions_tsv: captions file, one ``caption<TAB>image-file`` (or ``file<TAB>caption``)
        line per caption; several lines may name the same image.
      images_dir: folder the TSV's image files are relative to.
      captions_columns: "auto" (the column naming an existing image file), "caption,file" or
        "file,caption".
      captions_test_fraction: share of images (by a hash of the file name) in the "test" split.
      caption_embeddings: add ``caption_embedding`` [B, 384] (all-MiniLM-L6-v2, computed once
        and cached; needs the optional ``text`` extra).
      caption_target: "mean" (normalised mean of an image's caption embeddings) or "sample"
        (one caption per example and epoch, from the seed).
      embedding_cache: folder of the embedding cache (None: ``<data_dir>/jaxhash_embeddings``).
    """

    name: str = "synthetic_hierarchy"
    data_dir: str | None = None
    manual_dir: str | None = None
    download: bool = False
    folder: str | None = None
    image_size: int | None = None
    global_batch_size: int | None = None
    eval_batch_size: int | None = None
    seed: int | None = None
    shuffle_buffer: int = 16_384
    augment: str | bool = "auto"
    crop_padding: int = 4
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    eval_crop_fraction: float | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    image_dtype: str = "float32"
    classes: str | tuple[str, ...] | None = None
    holdout_classes: tuple[str, ...] = ()
    hierarchy: str = "wordnet"
    wordnet_dir: str | None = None
    in_memory: bool | None = None
    memory_limit_mb: int = 4096
    prefetch: int = 2
    synthetic_seed: int = 0
    synthetic_train_per_class: int = 256
    synthetic_test_per_class: int = 64
    captions_tsv: str | None = None
    images_dir: str | None = None
    captions_columns: str = "auto"
    captions_test_fraction: float = 0.1
    caption_embeddings: bool = False
    caption_target: str = "mean"
    embedding_cache: str | None = None

    @property
    def augment_style(self) -> str:
        """The augmentation as one of AUGMENT_STYLES ("auto" still to be resolved)."""
        if self.augment is True:
            return "auto"
        if self.augment is False:
            return "none"
        return self.augment

    def replace(self, **changes) -> DataConfig:
        """A copy with ``changes`` (validated like the original)."""
        return data_config({**dataclasses.asdict(self), **changes})


FIELDS = {f.name: f for f in dataclasses.fields(DataConfig)}
_PATHS = (
    "data_dir",
    "manual_dir",
    "folder",
    "wordnet_dir",
    "captions_tsv",
    "images_dir",
    "embedding_cache",
)
_CHOICES = {
    "name": DATASETS,
    "image_dtype": ("float32", "bfloat16"),
    "hierarchy": ("wordnet", "two_level"),
    "captions_columns": ("auto", "caption,file", "file,caption"),
    "caption_target": ("mean", "sample"),
}


def default_config():
    """The defaults as an ``ml_collections.ConfigDict`` (``config.data = default_config()``).

    Fields that default to None are typed placeholders, so ``--config.data.image_size=64``
    style overrides work.
    """
    import ml_collections

    fields = {}
    for name, field in FIELDS.items():
        value = field.default
        if isinstance(value, tuple):
            value = list(value)
        fields[name] = value
    config = ml_collections.ConfigDict(fields)
    return config


def _as_plain(value):
    """ConfigDict / FieldReference / list -> plain Python values."""
    if hasattr(value, "get") and hasattr(value, "to_dict"):
        return value.to_dict()
    if (
        hasattr(value, "get")
        and callable(getattr(value, "get", None))
        and not isinstance(value, Mapping)
    ):  # ml_collections FieldReference
        return value.get()
    return value


def _fail(key: str, expected: str, value) -> None:
    raise ValueError(
        f"config.data.{key} must be {expected}; got {value!r} ({type(value).__name__})."
    )


def _check_int(key, value, minimum=None, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, "an int" + (" or None" if optional else ""), value)
    if minimum is not None and value < minimum:
        _fail(key, f"an int >= {minimum}", value)
    return int(value)


def _check_str(key, value, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str | os.PathLike) or not str(value):
        _fail(key, "a non-empty string" + (" or None" if optional else ""), value)
    return os.fspath(value)


def _check_floats(key, value, length, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != length:
        _fail(key, f"a sequence of {length} numbers" + (" or None" if optional else ""), value)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        _fail(key, f"a sequence of {length} numbers", value)
    return tuple(float(v) for v in value)


def _check_names(key, value):
    if isinstance(value, str) or not isinstance(value, Sequence):
        _fail(key, "a list of class names", value)
    names = tuple(str(v) for v in value)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"config.data.{key} lists classes more than once: {repeated}.")
    return names


def _validate(raw: dict[str, Any]) -> DataConfig:
    values = {}
    for key, value in raw.items():
        value = _as_plain(value)
        if key in _PATHS:
            value = _check_str(key, value, optional=True)
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                _fail(key, f"one of {_CHOICES[key]}", value)
        elif key in ("download", "caption_embeddings"):
            if not isinstance(value, bool):
                _fail(key, "True or False", value)
        elif key == "in_memory":
            if value is not None and not isinstance(value, bool):
                _fail(key, "True, False or None (automatic)", value)
        elif key in ("image_size", "global_batch_size", "eval_batch_size"):
            value = _check_int(key, value, minimum=1, optional=True)
        elif key == "seed":
            value = _check_int(key, value, minimum=0, optional=True)
        elif key in (
            "shuffle_buffer",
            "memory_limit_mb",
            "synthetic_train_per_class",
            "synthetic_test_per_class",
        ):
            value = _check_int(key, value, minimum=1)
        elif key in ("crop_padding", "prefetch", "synthetic_seed"):
            value = _check_int(key, value, minimum=0)
        elif key == "augment":
            if not isinstance(value, bool) and value not in AUGMENT_STYLES:
                _fail(key, f"True, False or one of {AUGMENT_STYLES}", value)
        elif key in ("crop_scale", "crop_ratio"):
            value = _check_floats(key, value, 2)
            if not 0 < value[0] <= value[1] or (key == "crop_scale" and value[1] > 1):
                _fail(
                    key,
                    "(low, high) with 0 < low <= high" + (" <= 1" * (key == "crop_scale")),
                    value,
                )
        elif key in ("mean", "std"):
            value = _check_floats(key, value, 3, optional=True)
            if key == "std" and value is not None and min(value) <= 0:
                _fail(key, "three positive numbers", value)
        elif key == "eval_crop_fraction":
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    _fail(key, "a number in (0, 1] or None", value)
                if not 0 < value <= 1:
                    _fail(key, "a number in (0, 1] or None", value)
                value = float(value)
        elif key == "captions_test_fraction":
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
                _fail(key, "a number in [0, 1)", value)
            value = float(value)
        elif key == "classes":
            if value is not None and value != "imagenet100":
                value = _check_names(key, value)
                if not value:
                    _fail(key, "None, 'imagenet100' or a non-empty list of class names", value)
        elif key == "holdout_classes":
            value = _check_names(key, value or ())
        values[key] = value
    return DataConfig(**values)


def _unknown(keys, where: str) -> None:
    unknown = [k for k in keys if k not in FIELDS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, FIELDS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{where} has unknown key {key!r}.{hint} Valid keys: {', '.join(FIELDS)}.")


def data_config(config) -> DataConfig:
    """The validated :class:`DataConfig` of ``config``.

    ``config`` is a :class:`DataConfig`, the data block (ConfigDict or dict), or a whole
    experiment config with a ``data`` block; in the last case ``batch_size`` (or
    ``global_batch_size``) and ``seed`` at the top level fill the data block's unset ones.
    """
    if isinstance(config, DataConfig):
        return config
    if config is None:
        return DataConfig()
    plain = _as_plain(config)
    if not isinstance(plain, Mapping):
        raise ValueError(
            f"config must be a ConfigDict, a dict or a DataConfig; got {type(config).__name__}."
        )
    if "data" in plain:
        raw = dict(_as_plain(plain["data"]) or {})
        _unknown(raw, "config.data")
        if raw.get("global_batch_size") is None:
            for key in ("global_batch_size", "batch_size"):
                if plain.get(key) is not None:
                    raw["global_batch_size"] = plain[key]
                    break
        if raw.get("seed") is None and plain.get("seed") is not None:
            raw["seed"] = plain["seed"]
    else:
        raw = dict(plain)
        _unknown(raw, "config.data")
    return _validate(raw)
