"""From a data config to an opened data set: its label space, and how a split is read.

:func:`open_source` looks ``config.data.name`` up in :mod:`jaxhash.data.datasets` (one module
per data set), which prepares or finds the data only from what the user provided (a generated
data set, local files or, for ``cifar100`` with ``download=True``, TFDS's own download) and
raises :class:`DatasetNotFoundError` at once, saying how to get it, when it is absent.

What is common to every data set happens here: a :class:`Source` knows the label space (class
subset, zero-shot hold-out), the class hierarchy, the image style and normalisation, and reads
a split either into host memory (:meth:`Source.load`: arrays, encoded images or file paths,
read once per process) or as a TFDS stream (:meth:`Source.stream`, for data sets larger than
``memory_limit_mb``). A data set read without TFDS (CIFAR-100's ``.npz`` with
``reader="numpy"``, an image folder's paths) brings its own split reader and is held in memory.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping

import numpy as np

from jaxhash.console import muted
from jaxhash.data import datasets
from jaxhash.data.config import DataConfig, data_config
from jaxhash.data.label_space import label_space
from jaxhash.data.prepare import DatasetNotFoundError, ready_line, tfds_data_dir
from jaxhash.data.split import MemorySplit
from jaxhash.data.tf_setup import tf, tfds
from jaxhash.semantics.hierarchy import ClassHierarchy

__all__ = ["DatasetNotFoundError", "MemorySplit", "Source", "open_source", "tfds_data_dir"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(eq=False)
class Source:
    """A prepared data set, its label space and how to read it (built by :func:`open_source`).

    Labels seen by the pipeline are ``remap[raw_label]`` (``-1``: class not kept); ``holdout``
    are labels (after remapping) left out of training.
    """

    config: DataConfig
    name: str
    tfds_name: str
    builder: object
    split_sizes: dict[str, int]
    train_split: str
    eval_split: str
    class_names: tuple[str, ...]
    remap: np.ndarray | None
    coarse_names: tuple[str, ...] | None
    coarse_of_fine: tuple[int, ...] | None
    holdout: tuple[int, ...]
    in_memory: bool
    image_kind: str  # how images are held in memory: "array", "encoded" or "path"
    keys: dict[str, str]  # pipeline field -> TFDS feature ("image", "label", ...)
    style: str  # resolved augmentation: "none", "crop_flip" or "resized_crop_flip"
    image_size: int
    eval_crop_fraction: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    hierarchy_fn: Callable[[], ClassHierarchy | None] | None = None
    has_captions: bool = False
    # split -> MemorySplit read without TFDS (the numpy reader: builder is then None; an image
    # folder's paths)
    read_split: Callable[[str], MemorySplit] | None = None
    location: str = ""  # what identifies the data on disk (the split cache's key)
    # examples per split of the class subset where known without a pass (a filtered stream)
    subset_sizes: Mapping[str, int] | None = None
    class_glosses: Callable[[], Mapping[str, str]] | None = None  # class name -> definition

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_split(self, split: str) -> str:
        if split not in self.split_sizes:
            raise ValueError(
                f"split {split!r} is not a split of {self.name}; it has {sorted(self.split_sizes)}."
            )
        return split

    # -------------------------------------------------------------- labels and pools

    def labels_of(self, raw: np.ndarray) -> np.ndarray:
        """Pipeline labels of raw builder labels (``-1`` where the class is not kept)."""
        return raw if self.remap is None else self.remap[raw]

    def keep_mask(self, labels: np.ndarray, subset: str) -> np.ndarray:
        """Which examples (by pipeline label) belong to ``subset``: "all", "seen", "holdout"."""
        if subset not in ("all", "seen", "holdout"):
            raise ValueError(f"subset must be 'all', 'seen' or 'holdout'; got {subset!r}.")
        keep = labels >= 0
        if self.holdout:
            held = np.isin(labels, self.holdout)
            if subset == "seen":
                keep &= ~held
            elif subset == "holdout":
                keep &= held
        elif subset == "holdout":
            raise ValueError(
                "subset='holdout' needs config.data.holdout_classes (the zero-shot classes)."
            )
        return keep

    def pool(self, split: str, subset: str) -> np.ndarray:
        """Sorted ids (rows of :meth:`load`) of ``split`` that ``subset`` keeps."""
        data = self.load(split)
        if data.labels is None:
            if self.holdout or subset == "holdout":
                raise ValueError(f"{self.name} has no class labels: holdout_classes do not apply.")
            return np.arange(len(data), dtype=np.int64)
        return np.flatnonzero(self.keep_mask(self.labels_of(data.labels), subset))

    # -------------------------------------------------------------- reading

    def load(self, split: str) -> MemorySplit:
        """The whole split in host memory (cached per process)."""
        return _load_split(self, self.check_split(split))

    def stream(self, split, *, shuffle_files: bool, seed: int | None, with_ids: bool):
        """TFDS ``as_dataset`` of a (sub)split with images left encoded."""
        decoders = {self.keys["image"]: tfds.decode.SkipDecoding()}
        read_config = tfds.ReadConfig(
            shuffle_seed=seed,
            shuffle_reshuffle_each_iteration=True if shuffle_files else None,
            try_autocache=False,
            add_tfds_id=with_ids,
        )
        return self.builder.as_dataset(
            split=split, shuffle_files=shuffle_files, decoders=decoders, read_config=read_config
        )

    def shard_offsets(self, split: str) -> np.ndarray:
        """First id of each TFRecord shard of ``split`` (to turn ``tfds_id`` into ids)."""
        lengths = list(self.builder.info.splits[split].shard_lengths) or [0]
        return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple, MemorySplit] = {}


def _load_split(source: Source, split: str) -> MemorySplit:
    key = (source.tfds_name, source.location, split)
    with _LOAD_LOCK:
        if key not in _LOADED:
            if len(_LOADED) >= 8:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = _read_split(source, split)
        return _LOADED[key]


def _read_split(source: Source, split: str) -> MemorySplit:
    if source.read_split is not None:
        return source.read_split(split)
    keys = source.keys
    kind = source.image_kind
    decoders = None if kind == "array" else {keys["image"]: tfds.decode.SkipDecoding()}
    ds = source.builder.as_dataset(
        split=split,
        shuffle_files=False,
        decoders=decoders,
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    wanted = {name: feature for name, feature in keys.items() if name != "captions"}

    def select(example):
        out = {name: example[feature] for name, feature in wanted.items()}
        if "captions" in keys:  # ragged per example: join with a separator no caption has
            out["captions"] = tf.strings.reduce_join(example[keys["captions"]], separator="\x1f")
        return out

    columns: dict[str, list[np.ndarray]] = {}
    for batch in tfds.as_numpy(ds.map(select).batch(2048)):
        for name, value in batch.items():
            columns.setdefault(name, []).append(value)
    if not columns:
        raise ValueError(f"split {split!r} of {source.name} is empty.")
    data = {name: np.concatenate(parts) for name, parts in columns.items()}
    images = data["image"] if kind == "array" else np.array(list(data["image"]), dtype=object)
    return MemorySplit(
        images=images,
        image_kind=kind,
        labels=data["label"].astype(np.int64) if "label" in data else None,
        coarse=data["coarse_label"].astype(np.int64) if "coarse_label" in data else None,
        captions=[tuple(c.decode().split("\x1f")) for c in data["captions"]]
        if "captions" in data
        else None,
        index=data["index"].astype(np.int64) if "index" in data else None,
        file_names=np.array([f.decode() for f in data["file_name"]], dtype=object)
        if "file_name" in data
        else None,
    )


# ----------------------------------------------------------------------------- open


def _memory_bytes(builder, image_kind: str, fixed) -> int:
    """Host memory a loaded data set takes: decoded pixels for fixed-shape images, else about
    its size on disk (encoded images stay encoded)."""
    if image_kind == "array":
        total = sum(int(split.num_examples) for split in builder.info.splits.values())
        return total * int(np.prod(fixed))
    return int(getattr(builder.info, "dataset_size", 0) or 0)


def _check_reader(config: DataConfig, dataset: datasets.Dataset) -> None:
    """A ValueError naming the fix where ``config.reader`` does not apply."""
    if config.reader == "tfds":
        return
    if config.reader not in dataset.readers or not config.manual_dir:
        readers = datasets.reading(config.reader)
        what = " or ".join(d.title for d in readers)
        names = " or ".join(repr(d.name) for d in readers)
        raise ValueError(
            f"config.data.reader={config.reader!r} reads {what} from an .npz: set "
            f"data.name={names} and data.manual_dir to the .npz (got name={config.name!r}, "
            f"manual_dir={config.manual_dir!r}); other data sets are read through TFDS "
            "(reader='tfds')."
        )
    if config.in_memory is False:
        raise ValueError(
            f"config.data.reader={config.reader!r} holds the data in host memory; "
            "in_memory=False (a TFDS stream) needs reader='tfds'."
        )


def _image_kind(opened: datasets.Opened) -> tuple[str, tuple[int, ...] | None]:
    """How images are held in memory ("array", "encoded" or "path") and their fixed shape."""
    if opened.image_kind is not None:
        return opened.image_kind, None
    shape = opened.builder.info.features[opened.keys["image"]].shape
    fixed = tuple(shape) if None not in shape else None
    return ("array" if fixed is not None else "encoded"), fixed


@functools.lru_cache(maxsize=16)
def _open(config: DataConfig) -> Source:
    dataset = datasets.get(config.name)
    _check_reader(config, dataset)
    data_dir = tfds_data_dir(config)
    name = config.name
    opened = dataset.open(config, data_dir)
    builder = opened.builder
    if opened.split_sizes is not None:
        split_sizes = dict(opened.split_sizes)
    else:
        split_sizes = {s: int(info.num_examples) for s, info in builder.info.splits.items()}
        if not split_sizes:  # e.g. under tfds.testing.mock_data: split names are not known
            split_sizes = {"train": 0, "test": 0, "validation": 0}
    log.info("data: %s", opened.ready or ready_line(name, builder, split_sizes))
    train_split = "train" if "train" in split_sizes else sorted(split_sizes)[0]
    eval_split = next(
        (s for s in ("test", "validation", "val") if s in split_sizes and split_sizes[s] != 0),
        next((s for s in ("test", "validation", "val") if s in split_sizes), train_split),
    )
    if opened.class_names:
        class_names, remap, tree, holdout = label_space(
            config, opened.class_names, opened.hierarchy
        )
    else:
        if config.classes is not None or config.holdout_classes:
            raise ValueError(f"{name} has no class labels: classes/holdout_classes do not apply.")
        class_names, remap, tree, holdout = (), None, opened.hierarchy, ()

    image_kind, fixed = _image_kind(opened)
    in_memory = config.in_memory
    if opened.read_split is not None:
        in_memory = True  # read without TFDS into memory (arrays, or an image folder's paths)
    elif in_memory is None:
        in_memory = _memory_bytes(builder, image_kind, fixed) <= config.memory_limit_mb * 2**20

    style = config.augment_style
    if style == "auto":
        style = dataset.augment
    crop_fraction = config.eval_crop_fraction
    if crop_fraction is None:
        crop_fraction = dataset.eval_crop_fraction
    return Source(
        config=config,
        name=name,
        tfds_name=opened.tfds_name or builder.name,
        builder=builder,
        split_sizes=split_sizes,
        train_split=train_split,
        eval_split=eval_split,
        class_names=tuple(class_names),
        remap=remap,
        coarse_names=opened.coarse_names,
        coarse_of_fine=opened.coarse_of_fine,
        holdout=holdout,
        in_memory=bool(in_memory),
        image_kind=image_kind,
        keys=dict(opened.keys),
        style=style,
        image_size=config.image_size or dataset.image_size,
        eval_crop_fraction=crop_fraction,
        mean=config.mean or dataset.mean,
        std=config.std or dataset.std,
        hierarchy_fn=tree,
        has_captions=dataset.has_captions,
        read_split=opened.read_split,
        location=opened.location or str(builder.data_dir),
        subset_sizes=opened.subset_sizes,
        class_glosses=dataset.class_glosses,
    )


# TFDS's notes while our builders are opened: their configs are custom by design, and a folder
# not prepared yet is about to be built (the console says so).
_TFDS_NOTES = ("Using custom data configuration", "Variant folder")


def open_source(config) -> Source:
    """The prepared data set of ``config`` (see the module docstring); cached per config."""
    with muted(*_TFDS_NOTES):
        return _open(data_config(config))
