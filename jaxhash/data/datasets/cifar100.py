"""``cifar100``: CIFAR-100 (Krizhevsky 2009), 100 classes in 20 superclasses, 32x32 images.

Read from what the config names: the official ``cifar-100-binary.tar.gz`` (TFDS's ``cifar100``
builder, sha256-checked), ``cifar-100-python.tar.gz`` (only the official one unless
``allow_unverified_archive``: pickles are code) or an ``.npz`` in ``manual_dir`` (jaxhash's
``cifar100_local`` builder), TFDS's download with ``download=True``, else the full data set
prepared earlier. ``config.data.reader="numpy"`` reads the ``.npz`` straight into memory
without TFDS or TensorFlow (:mod:`jaxhash.data.cifar100_npz`): the same label space,
hierarchy and features, rows in the file's order (``file_name`` ``train_00042`` is row 42 of
``x_train``, as with TFDS; TFDS's prepared data set holds the same rows in another order).

The class tree is WordNet's (shipped, :func:`jaxhash.semantics.known.cifar100`) or, with
``config.data.hierarchy="two_level"``, the superclasses; each class has its WordNet gloss.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from jaxhash.data import cifar100_npz, provenance
from jaxhash.data.config import DataConfig
from jaxhash.data.datasets import Dataset, Opened
from jaxhash.data.prepare import DatasetNotFoundError, built_now, prepare
from jaxhash.data.split import MemorySplit
from jaxhash.data.tf_setup import tfds
from jaxhash.semantics import known

log = logging.getLogger(__name__)

CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
# The numpy reader's stand-in for a TFDS name (DatasetInfo.tfds_name, the split cache's key).
NPZ_NAME = "cifar100_npz"
_KEYS = {"image": "image", "label": "label", "coarse_label": "coarse_label", "file_name": "id"}


def _help(data_dir: str, why: str) -> str:
    return (
        f"{why}\nGet CIFAR-100 one of these ways (TFDS name 'cifar100'):\n"
        f"  * download through TFDS: set config.data.download=True, or run once\n"
        f"      tfds build cifar100 --data_dir {data_dir}\n"
        "  * offline: put the official cifar-100-binary.tar.gz or cifar-100-python.tar.gz\n"
        "    (https://www.cs.toronto.edu/~kriz/cifar.html), or an .npz with x_train,\n"
        "    y_train_fine, y_train_coarse, x_test, y_test_fine, y_test_coarse, in a folder and\n"
        "    set config.data.manual_dir to that folder (or to the file)."
    )


def cifar100_file(manual_dir: str, data_dir: str) -> Path:
    """The archive or ``.npz`` that ``manual_dir`` names (a file, or a folder holding one)."""
    path = Path(manual_dir).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetNotFoundError(_help(data_dir, f"manual_dir {path} does not exist."))
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
    raise DatasetNotFoundError(_help(data_dir, why))


def _builder(config: DataConfig, data_dir: str):
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
        path = cifar100_file(config.manual_dir, data_dir)
        if path.name == "cifar-100-binary.tar.gz":  # TFDS's own builder checks its sha256
            builder = tfds.builder("cifar100", data_dir=data_dir)
            if not builder.is_prepared():
                try:
                    prepare(builder, manual_dir=str(path.parent))
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
            prepare(builder)
        if not built_now(builder) and provenance.read(builder.data_dir):
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
        prepare(builder)
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
    raise DatasetNotFoundError(_help(data_dir, why))


# ----------------------------------------------------------------------------- numpy reader


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


# ----------------------------------------------------------------------------- open


def open_cifar100(config: DataConfig, data_dir: str) -> Opened:
    """CIFAR-100 through TFDS, or (``reader="numpy"``) the ``.npz`` in ``manual_dir``."""
    kind = config.hierarchy
    labels = {
        "class_names": known.CIFAR100_CLASSES,
        "keys": _KEYS,
        "hierarchy": lambda: known.cifar100(kind),
        "coarse_names": known.CIFAR100_SUPERCLASSES,
        "coarse_of_fine": tuple(known.CIFAR100_COARSE_OF_FINE),
    }
    if config.reader != "numpy":
        return Opened(builder=_builder(config, data_dir), **labels)
    npz = cifar100_file(config.manual_dir, data_dir)
    sizes = _npz_split_sizes(npz)
    return Opened(
        builder=None,
        read_split=functools.partial(_read_npz_split, npz),
        split_sizes=sizes,
        location=str(config.manual_dir),
        tfds_name=NPZ_NAME,
        image_kind="array",
        ready=f"cifar100 (numpy reader): {provenance.describe({'source': str(npz)}, sizes)}",
        **labels,
    )


DATASET = Dataset(
    name="cifar100",
    title="CIFAR-100",
    open=open_cifar100,
    mean=CIFAR100_MEAN,
    std=CIFAR100_STD,
    image_size=32,
    augment="crop_flip",
    eval_crop_fraction=1.0,
    readers=("tfds", "numpy"),
    class_glosses=known.cifar100_definitions,
)
