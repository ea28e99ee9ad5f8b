"""From a data config to a prepared TFDS data set: which builder, prepared how, read how.

:func:`open_source` resolves ``config.data.name`` to a TFDS builder and prepares it only from
what the user provided: a generated data set (``synthetic_hierarchy``), local files
(``manual_dir``, an image folder, a captions TSV) or, for ``cifar100`` with
``download=True``, TFDS's own download. Without data it raises :class:`DatasetNotFoundError`
at once, with the TFDS name, the manual folder and the command that gets the data; nothing
ever waits on a download the user did not ask for.

A :class:`Source` then knows the label space (class subset, zero-shot hold-out), the class
hierarchy, the image style and normalisation, and reads a split either into host memory
(:meth:`Source.load`: arrays, encoded images or file paths, read once per process) or as a
TFDS stream (:meth:`Source.stream`, for data sets larger than ``memory_limit_mb``).

``config.data.reader="numpy"`` opens CIFAR-100 from the ``.npz`` in ``manual_dir`` without
TFDS or TensorFlow (:mod:`jaxhash.data.cifar100_npz`): the same label space, hierarchy and
features, rows in the file's order (``file_name`` ``train_00042`` is row 42 of ``x_train``, as
with TFDS; TFDS's prepared data set holds the same rows in another order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import logging
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxhash.console import muted
from jaxhash.data import cifar100_npz, provenance, synthetic
from jaxhash.data.config import DataConfig, data_config
from jaxhash.data.tf_setup import tf, tfds
from jaxhash.semantics import known
from jaxhash.semantics.hierarchy import ClassHierarchy

log = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# Measured on the default synthetic_hierarchy train split (seed 0, 256 per class).
SYNTHETIC_MEAN, SYNTHETIC_STD = (0.467, 0.471, 0.443), (0.213, 0.204, 0.214)
_IMAGENET_TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


class DatasetNotFoundError(FileNotFoundError):
    """The data set is neither prepared nor provided; the message says how to get it."""


def tfds_data_dir(config: DataConfig) -> str:
    """``config.data_dir``, else TFDS's default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    if config.data_dir:
        return os.path.expanduser(config.data_dir)
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


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
    # reader "numpy": split -> MemorySplit, read without TFDS (builder is then None)
    read_split: Callable[[str], MemorySplit] | None = None

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
    folder = source.config.manual_dir if source.read_split else source.builder.data_dir
    key = (source.tfds_name, str(folder), split)
    with _LOAD_LOCK:
        if key not in _LOADED:
            if len(_LOADED) >= 8:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[key] = _read_split(source, split)
        return _LOADED[key]


_FOLDER_IMAGES = (".jpg", ".jpeg", ".png")


def folder_examples(root: str, split: str) -> tuple[list[str], list[str]]:
    """Image paths and label names of ``root/split/label/*`` in the order in which
    ``tfds.folder_dataset.ImageFolder`` reads the split (sorted labels and files, then a
    shuffle seeded by the split name), so row ``i`` is example ``i`` of its ``as_dataset``."""
    split_dir = os.path.join(root, split)
    examples = []
    for label in sorted(f for f in os.listdir(split_dir) if os.path.isdir(f"{split_dir}/{f}")):
        label_dir = os.path.join(split_dir, label)
        files = [f for f in os.listdir(label_dir) if f.lower().endswith(_FOLDER_IMAGES)]
        examples += [(os.path.join(label_dir, f), label) for f in files]
    examples.sort(key=lambda e: (e[1], e[0]))
    random.Random(split).shuffle(examples)
    return [path for path, _ in examples], [label for _, label in examples]


def _read_split(source: Source, split: str) -> MemorySplit:
    if source.read_split is not None:
        return source.read_split(split)
    keys = source.keys
    kind = source.image_kind
    decoders = None if kind == "array" else {keys["image"]: tfds.decode.SkipDecoding()}
    if kind == "path":  # an ImageFolder: keep the paths, read files in the pipeline
        root = str(Path(source.config.folder).expanduser())  # as _open_folder gives TFDS
        paths, label_names = folder_examples(root, split)
        names = source.builder.info.features["label"]
        return MemorySplit(
            images=np.array(paths, dtype=object),
            image_kind="path",
            labels=np.array([names.str2int(label) for label in label_names], np.int64),
            coarse=None,
            file_names=np.array(paths, dtype=object),
        )
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


# ----------------------------------------------------------------------------- preparing


# Prepared folders built by this process and not reported yet ("built now", not "reused").
_BUILT_NOW: set[str] = set()


def _prepare(builder, *, manual_dir: str | None = None) -> None:
    """Build ``builder`` from local inputs (generation or manual files), or by TFDS's download
    where the builder downloads (``cifar100`` with ``download=True``).

    TFDS's banners (printed to stdout) and progress bars show only when this module's logger
    is enabled for DEBUG (``jaxhash --verbose``); otherwise one line says what is built where.
    """
    verbose = log.isEnabledFor(logging.DEBUG)
    name = f"{builder.name}/{_config_name(builder)}"
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


def _config_name(builder) -> str:
    return builder.builder_config.name if builder.builder_config else "default"


def _cifar100_help(data_dir: str, why: str) -> str:
    return (
        f"{why}\nGet CIFAR-100 one of these ways (TFDS name 'cifar100'):\n"
        f"  * download through TFDS: set config.data.download=True, or run once\n"
        f"      tfds build cifar100 --data_dir {data_dir}\n"
        "  * offline: put the official cifar-100-binary.tar.gz or cifar-100-python.tar.gz\n"
        "    (https://www.cs.toronto.edu/~kriz/cifar.html), or an .npz with x_train,\n"
        "    y_train_fine, y_train_coarse, x_test, y_test_fine, y_test_coarse, in a folder and\n"
        "    set config.data.manual_dir to that folder (or to the file)."
    )


def _cifar100_file(manual_dir: str, data_dir: str) -> Path:
    path = Path(manual_dir).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetNotFoundError(_cifar100_help(data_dir, f"manual_dir {path} does not exist."))
    for name in ("cifar-100-binary.tar.gz", "cifar-100-python.tar.gz"):
        if (path / name).is_file():
            return path / name
    npz = sorted(path.glob("*.npz"))
    if len(npz) == 1:
        return npz[0]
    why = (
        f"manual_dir {path} holds several .npz files ({[p.name for p in npz]}); set "
        "config.data.manual_dir to the one to use."
        if npz
        else f"manual_dir {path} holds no CIFAR-100 archive or .npz."
    )
    raise DatasetNotFoundError(_cifar100_help(data_dir, why))


def _open_cifar100(config: DataConfig, data_dir: str):
    """CIFAR-100 from what the config names, else the full data set prepared earlier.

    ``manual_dir``: that file is used (a cifar-100-python.tar.gz only if it is the official
    archive, or with ``allow_unverified_archive``), whatever its size. Without it, the run asks
    for the full CIFAR-100: TFDS's ``cifar100`` if prepared (or downloaded with
    ``download=True``), else a ``cifar100_local`` folder whose provenance record says it holds
    the full official split; a subset, or a folder without a record, is never taken silently.
    """
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    full = {"full_sizes": builders.CIFAR100_SIZES, "official_sizes": builders.CIFAR100_SIZES}
    if config.manual_dir:
        path = _cifar100_file(config.manual_dir, data_dir)
        if path.name == "cifar-100-binary.tar.gz":  # TFDS's own builder checks its sha256
            builder = tfds.builder("cifar100", data_dir=data_dir)
            if not builder.is_prepared():
                try:
                    _prepare(builder, manual_dir=str(path.parent))
                except tfds.core.download.download_manager.NonMatchingChecksumError as err:
                    raise ValueError(
                        f"{path} is not the official cifar-100-binary.tar.gz (its sha256 differs, "
                        "and TFDS's cifar100 builder accepts only the official file). For other "
                        "copies use cifar-100-python.tar.gz or an .npz in manual_dir (jaxhash's "
                        "cifar100_local builder reads them)."
                    ) from err
                provenance.record(builder, source=str(path), official_archive=True, **full)
            return builder
        local = builders.Cifar100LocalConfig.from_file(
            path, allow_unverified=config.allow_unverified_archive
        )
        is_archive = not path.name.endswith(".npz")
        if is_archive:  # before any pickle is opened (and on reuse: the same rule every run)
            builders.check_cifar100_archive(
                path, allow_unverified=config.allow_unverified_archive, sha256=local.sha256
            )
        else:
            cifar100_npz.check_npz_file(path)
        builder = builders.Cifar100Local(config=local, data_dir=data_dir)
        if not builder.is_prepared():
            _prepare(builder)
        if str(builder.data_dir) not in _BUILT_NOW and provenance.read(builder.data_dir):
            return builder
        provenance.record(  # built now, or prepared by an earlier jaxhash without a record
            builder,
            source=str(path),
            sha256=local.sha256,
            official_archive=is_archive and local.sha256 == builders.CIFAR100_PYTHON_SHA256,
            **full,
        )
        return builder
    builder = tfds.builder("cifar100", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if config.download:
        log.info("data: downloading cifar100 through TFDS into %s", data_dir)
        _prepare(builder)
        provenance.record(builder, source="TFDS download (checksums verified)", **full)
        return builder
    return _full_cifar100_local(data_dir)


def _full_cifar100_local(data_dir: str):
    """The ``cifar100_local`` folder prepared earlier that holds the full official split (the
    official archive first); a DatasetNotFoundError naming what is there otherwise."""
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    found = []  # (provenance or None, config name)
    for info_file in sorted(Path(data_dir, "cifar100_local").glob("*/1.0.0/dataset_info.json")):
        found.append((provenance.read(info_file.parent), info_file.parent.parent.name))
    full = [(facts, name) for facts, name in found if facts and facts.get("full")]
    if full:
        facts, name = min(full, key=lambda f: (not f[0].get("official_archive"), f[1]))
        return builders.Cifar100Local(
            config=builders.Cifar100LocalConfig(name=name, source=facts.get("source", "")),
            data_dir=data_dir,
        )
    if not found:
        why = f"cifar100 is not prepared in {data_dir} and no source is given."
    else:
        what = "; ".join(
            f"{name} holds " + provenance.describe(facts)
            if facts
            else f"{name} has no provenance record (prepared by an earlier jaxhash)"
            for facts, name in found
        )
        why = (
            f"the full CIFAR-100 is not prepared in {data_dir}: {data_dir}/cifar100_local/"
            f"{what}. A subset or data of unknown origin is not used unless named: set "
            "config.data.manual_dir to its source file to train on it."
        )
    raise DatasetNotFoundError(_cifar100_help(data_dir, why))


def _open_imagenet(config: DataConfig, data_dir: str):
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    manual = Path(config.manual_dir).expanduser() if config.manual_dir else None
    missing = [n for n in _IMAGENET_TARS if manual is None or not (manual / n).is_file()]
    if not missing:
        _prepare(builder, manual_dir=str(manual))  # hours: decodes 1.3M JPEGs once
        return builder
    where = (
        f"manual_dir {manual} lacks {missing}." if manual else "config.data.manual_dir is not set."
    )
    download = " TFDS cannot download it (download=True does not apply)." if config.download else ""
    raise DatasetNotFoundError(
        f"imagenet2012 is not prepared in {data_dir} and {where}{download}\n"
        "Get it (TFDS name 'imagenet2012', manual download):\n"
        "  1. download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from\n"
        "     https://image-net.org/download-images (free registration);\n"
        "  2. put both in a folder DIR and set config.data.manual_dir=DIR (preparation then runs\n"
        f"     once), or run: tfds build imagenet2012 --data_dir {data_dir} --manual_dir DIR\n"
        "For the ImageNet-100 hashing subset add config.data.classes='imagenet100'. A folder of\n"
        "root/split/wnid/*.JPEG images works too: name='image_folder', folder=root."
    )


def _open_folder(config: DataConfig):
    root = Path(config.folder).expanduser() if config.folder else None
    if root is None or not root.is_dir():
        raise DatasetNotFoundError(
            f"image_folder needs config.data.folder, a folder laid out root/split/label/*.jpg "
            f"(e.g. Tiny ImageNet: root/train/n01443537/*.JPEG); got {config.folder!r}, which "
            "is not a folder. tfds.folder_dataset.ImageFolder(root) reads it; nothing is "
            "downloaded."
        )
    builder = tfds.folder_dataset.ImageFolder(str(root))
    if not builder.info.splits:
        raise DatasetNotFoundError(
            f"image_folder {root} has no split/label/image files (.jpg, .jpeg, .png)."
        )
    return builder


def _open_captions(config: DataConfig, data_dir: str):
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    tsv = Path(config.captions_tsv).expanduser() if config.captions_tsv else None
    images = Path(config.images_dir).expanduser() if config.images_dir else None
    if tsv is None or images is None or not tsv.is_file() or not images.is_dir():
        raise DatasetNotFoundError(
            "captions needs config.data.captions_tsv (a file of caption<TAB>image-file lines, "
            "e.g. Conceptual Captions' TSV after downloading its images, or Flickr8k's "
            "captions) and config.data.images_dir (the folder the image files are in); got "
            f"captions_tsv={config.captions_tsv!r}, images_dir={config.images_dir!r}. The "
            "TFDS builder 'caption_folder' (jaxhash.data.builders.CaptionFolder) prepares them "
            f"into {data_dir}; nothing is downloaded."
        )
    builder = builders.CaptionFolder(
        config=builders.CaptionFolderConfig.make(
            tsv, images, config.captions_columns, config.captions_test_fraction
        ),
        data_dir=data_dir,
    )
    if not builder.is_prepared():
        _prepare(builder)
        provenance.record(builder, source=str(tsv), images_dir=str(images))
    return builder


def _open_synthetic(config: DataConfig, data_dir: str):
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    wanted = builders.SyntheticHierarchyConfig.make(
        config.synthetic_seed, config.synthetic_train_per_class, config.synthetic_test_per_class
    )
    # TFDS wants its own object for a predefined config (the default one).
    wanted = builders.SyntheticHierarchy.builder_configs.get(wanted.name, wanted)
    builder = builders.SyntheticHierarchy(config=wanted, data_dir=data_dir)
    if not builder.is_prepared():
        _prepare(builder)
        provenance.record(builder, source=f"jaxhash's generator (seed {config.synthetic_seed})")
    return builder


# ----------------------------------------------------------------------------- labels


def _is_wnid(name: str) -> bool:
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def _wordnet_tree(config: DataConfig, wnids: tuple[str, ...]) -> Callable[[], ClassHierarchy]:
    def build() -> ClassHierarchy:
        from jaxhash.semantics.wordnet import load_wordnet

        return ClassHierarchy.from_wordnet(
            list(wnids), classes=list(wnids), wordnet=load_wordnet(config.wordnet_dir)
        )

    return build


def _subset_tree(full: Callable[[], ClassHierarchy], classes) -> Callable[[], ClassHierarchy]:
    def build() -> ClassHierarchy:
        tree = full()
        sub = ClassHierarchy.from_parent_child(tree.edges(), classes)
        sub.synsets = {c: tree.synsets[c] for c in classes if c in tree.synsets}
        return sub

    return build


def _label_space(config: DataConfig, raw_names: tuple[str, ...], full_tree):
    """``(class_names, remap, hierarchy_fn, holdout labels)`` after ``classes``/``holdout``."""
    remap = None
    names = raw_names
    tree = full_tree
    if config.classes is not None:
        wanted = (
            tuple(known.imagenet100_wnids()) if config.classes == "imagenet100" else config.classes
        )
        index = {n: i for i, n in enumerate(raw_names)}
        unknown = [c for c in wanted if c not in index]
        if unknown:
            raise ValueError(
                f"config.data.classes names {len(unknown)} class(es) that {config.name} does not "
                f"have: {unknown[:10]}. Its classes are e.g. {list(raw_names[:5])}."
            )
        remap = np.full(len(raw_names), -1, np.int64)
        remap[[index[c] for c in wanted]] = np.arange(len(wanted))
        names = wanted
        if full_tree is not None:
            tree = (
                _wordnet_tree(config, names)
                if all(_is_wnid(n) for n in names)
                else _subset_tree(full_tree, names)
            )
    position = {n: i for i, n in enumerate(names)}
    unknown = [c for c in config.holdout_classes if c not in position]
    if unknown:
        raise ValueError(
            f"config.data.holdout_classes names classes that are not in the label space: "
            f"{unknown[:10]}. Use names from DatasetInfo.class_names, e.g. {list(names[:5])}."
        )
    holdout = tuple(sorted(position[c] for c in config.holdout_classes))
    if holdout and len(holdout) == len(names):
        raise ValueError("config.data.holdout_classes holds out every class: nothing to train on.")
    return names, remap, tree, holdout


# ----------------------------------------------------------------------------- open


def _memory_bytes(builder, image_kind: str, fixed) -> int:
    """Host memory a loaded data set takes: decoded pixels for fixed-shape images, else about
    its size on disk (encoded images stay encoded; folders hold paths only)."""
    if image_kind == "path":
        return 0
    if image_kind == "array":
        total = sum(int(split.num_examples) for split in builder.info.splits.values())
        return total * int(np.prod(fixed))
    return int(getattr(builder.info, "dataset_size", 0) or 0)


# The numpy reader's stand-in for a TFDS name (DatasetInfo.tfds_name, the split cache's key).
_NPZ_NAME = "cifar100_npz"


def _check_reader(config: DataConfig) -> None:
    """A ValueError naming the fix where ``reader="numpy"`` does not apply."""
    if config.reader != "numpy":
        return
    if config.name != "cifar100" or not config.manual_dir:
        raise ValueError(
            "config.data.reader='numpy' reads CIFAR-100 from an .npz: set data.name='cifar100' "
            f"and data.manual_dir to the .npz (got name={config.name!r}, manual_dir="
            f"{config.manual_dir!r}); other data sets are read through TFDS (reader='tfds')."
        )
    if config.in_memory is False:
        raise ValueError(
            "config.data.reader='numpy' holds the data in host memory; in_memory=False (a TFDS "
            "stream) needs reader='tfds'."
        )


def _npz_split_sizes(path: Path) -> dict[str, int]:
    if not path.name.endswith(".npz"):
        raise ValueError(
            f"config.data.reader='numpy' reads an .npz, and {path} is not one: set "
            "data.reader='tfds' to read the archive through TFDS, or write the arrays with "
            "numpy.savez(path, x_train=..., y_train_fine=..., ...)."
        )
    return cifar100_npz.split_sizes(path)


def _read_npz_split(path: Path, split: str) -> MemorySplit:
    arrays = cifar100_npz.read_cifar100_npz(path, (split,))
    images = arrays[f"x_{split}"]
    return MemorySplit(
        images=images,
        image_kind="array",
        labels=arrays[f"y_{split}_fine"].astype(np.int64),
        coarse=arrays[f"y_{split}_coarse"].astype(np.int64),
        file_names=np.array([f"{split}_{i:05d}" for i in range(len(images))], dtype=object),
    )


@functools.lru_cache(maxsize=16)
def _open(config: DataConfig) -> Source:
    _check_reader(config)
    data_dir = tfds_data_dir(config)
    name = config.name
    keys = {"image": "image", "label": "label"}
    coarse_names = coarse_of_fine = None
    tree = None
    small = name in ("synthetic_hierarchy", "cifar100")
    if name == "synthetic_hierarchy":
        builder = _open_synthetic(config, data_dir)
        raw_names = synthetic.class_names()
        coarse_names = synthetic.coarse_names()
        coarse_of_fine = tuple(int(synthetic.coarse_of(k)) for k in range(synthetic.NUM_CLASSES))
        keys["coarse_label"] = "coarse_label"
        tree = synthetic.hierarchy
        mean, std = SYNTHETIC_MEAN, SYNTHETIC_STD
    elif name == "cifar100":
        builder = None if config.reader == "numpy" else _open_cifar100(config, data_dir)
        raw_names = known.CIFAR100_CLASSES
        coarse_names = known.CIFAR100_SUPERCLASSES
        coarse_of_fine = tuple(known.CIFAR100_COARSE_OF_FINE)
        keys.update(coarse_label="coarse_label", file_name="id")
        hierarchy_kind = config.hierarchy

        def tree():
            return known.cifar100(hierarchy_kind)

        mean, std = CIFAR100_MEAN, CIFAR100_STD
    elif name == "imagenet2012":
        builder = _open_imagenet(config, data_dir)
        keys["file_name"] = "file_name"
        raw_names = tuple(builder.info.features["label"].names)
        tree = _wordnet_tree(config, raw_names)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    elif name == "image_folder":
        builder = _open_folder(config)
        raw_names = tuple(builder.info.features["label"].names)
        tree = _wordnet_tree(config, raw_names) if all(map(_is_wnid, raw_names)) else None
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:  # captions
        builder = _open_captions(config, data_dir)
        keys = {
            "image": "image",
            "captions": "captions",
            "file_name": "file_name",
            "index": "index",
        }
        raw_names = ()
        mean, std = IMAGENET_MEAN, IMAGENET_STD

    read_split = None
    if builder is None:  # reader "numpy": cifar100 from an .npz, without TFDS
        npz = _cifar100_file(config.manual_dir, data_dir)
        split_sizes = _npz_split_sizes(npz)
        read_split = functools.partial(_read_npz_split, npz)
        log.info(
            "data: %s (numpy reader): %s",
            name,
            provenance.describe({"source": str(npz)}, split_sizes),
        )
    else:
        split_sizes = {s: int(info.num_examples) for s, info in builder.info.splits.items()}
        if not split_sizes:  # e.g. under tfds.testing.mock_data: split names are not known
            split_sizes = {"train": 0, "test": 0, "validation": 0}
        log.info("data: %s", _ready_line(name, builder, split_sizes))
    train_split = "train" if "train" in split_sizes else sorted(split_sizes)[0]
    eval_split = next(
        (s for s in ("test", "validation", "val") if s in split_sizes and split_sizes[s] != 0),
        next((s for s in ("test", "validation", "val") if s in split_sizes), train_split),
    )
    if raw_names:
        class_names, remap, tree, holdout = _label_space(config, raw_names, tree)
    else:
        if config.classes is not None or config.holdout_classes:
            raise ValueError(f"{name} has no class labels: classes/holdout_classes do not apply.")
        class_names, remap, holdout = (), None, ()

    if builder is None:
        fixed = (32, 32, 3)
    else:
        feature = builder.info.features["image"]
        fixed = tuple(feature.shape) if None not in feature.shape else None
    if builder is not None and isinstance(builder, tfds.folder_dataset.ImageFolder):
        image_kind = "path"
    elif fixed is not None:
        image_kind = "array"
    else:
        image_kind = "encoded"
    in_memory = config.in_memory
    if image_kind == "path":
        in_memory = True  # paths are tiny; files are read in the pipeline
    elif builder is None:
        in_memory = True  # checked by _check_reader: the numpy reader holds arrays in memory
    elif in_memory is None:
        in_memory = _memory_bytes(builder, image_kind, fixed) <= config.memory_limit_mb * 2**20

    style = config.augment_style
    if style == "auto":
        style = "crop_flip" if small else "resized_crop_flip"
    image_size = config.image_size or (32 if small else 224)
    crop_fraction = config.eval_crop_fraction
    if crop_fraction is None:
        crop_fraction = 1.0 if small else 0.875
    return Source(
        config=config,
        name=name,
        tfds_name=_NPZ_NAME if builder is None else builder.name,
        builder=builder,
        split_sizes=split_sizes,
        train_split=train_split,
        eval_split=eval_split,
        class_names=tuple(class_names),
        remap=remap,
        coarse_names=coarse_names,
        coarse_of_fine=coarse_of_fine,
        holdout=holdout,
        in_memory=bool(in_memory),
        image_kind=image_kind,
        keys=keys,
        style=style,
        image_size=image_size,
        eval_crop_fraction=crop_fraction,
        mean=config.mean or mean,
        std=config.std or std,
        hierarchy_fn=tree,
        has_captions=name == "captions",
        read_split=read_split,
    )


def _ready_line(name: str, builder, split_sizes: dict[str, int]) -> str:
    """``"cifar100 (cifar100_local/x_1a2b): 50,000 train / 10,000 test examples, from
    /data/cifar-100-python.tar.gz (sha256 85cd44d02ba6, the official archive); reused from
    DIR"``: which data, how many examples, built now or reused."""
    if isinstance(builder, tfds.folder_dataset.ImageFolder):
        return f"{name}: {provenance.describe(None, split_sizes)}, read in place"
    folder = str(builder.data_dir)
    how = "built now in" if folder in _BUILT_NOW else "reused from"
    _BUILT_NOW.discard(folder)  # said once: a later opening reuses it
    facts = provenance.read(folder)
    return (
        f"{name} ({builder.name}/{_config_name(builder)}): "
        f"{provenance.describe(facts, split_sizes)}; {how} {folder}"
    )


# TFDS's notes while our builders are opened: their configs are custom by design, and a folder
# not prepared yet is about to be built (the console says so).
_TFDS_NOTES = ("Using custom data configuration", "Variant folder")


def open_source(config) -> Source:
    """The prepared data set of ``config`` (see the module docstring); cached per config."""
    with muted(*_TFDS_NOTES):
        return _open(data_config(config))
