"""jaxhash's own TFDS builders: data that TFDS has no builder for, or not offline.

* ``synthetic_hierarchy``: the embedded default (:mod:`jaxhash.data.synthetic`), generated.
* ``cifar100_local``: CIFAR-100 from a local file: the official ``cifar-100-python.tar.gz`` or
  an ``.npz`` with ``x_train, y_train_fine, y_train_coarse, x_test, y_test_fine,
  y_test_coarse`` (e.g. ``tests/data/cifar100_sample``). Same features as TFDS's
  ``cifar100`` (``id, image, label, coarse_label``), official label order. A
  ``cifar-100-python.tar.gz`` is opened only if its sha256 is the official archive's
  (:func:`check_cifar100_archive`: pickles are code), unless the config allows an unverified
  archive (one you built yourself).
* ``caption_folder``: Conceptual-Captions-style data: a TSV of captions and image files plus
  the folder of images the user downloaded.

Each builder's BuilderConfig is derived from its inputs (seed and size; a digest of the source
file), so different inputs never share a prepared folder. Importing this module registers the
three names with TFDS (``tfds.builder("synthetic_hierarchy", config=...)`` works after it).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import logging
import os
import pickle
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jaxhash.data import synthetic
from jaxhash.data.cifar100_npz import read_cifar100_npz
from jaxhash.data.tf_setup import tfds
from jaxhash.file_digest import file_digest
from jaxhash.semantics.known import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


# ----------------------------------------------------------------------------- synthetic


@dataclasses.dataclass
class SyntheticHierarchyConfig(tfds.core.BuilderConfig):
    """Seed and size of the synthetic data set; the name is derived from them."""

    seed: int = 0
    train_per_class: int = 256
    test_per_class: int = 64

    @classmethod
    def make(cls, seed: int = 0, train_per_class: int = 256, test_per_class: int = 64):
        return cls(
            name=f"seed{seed}_train{train_per_class}_test{test_per_class}",
            seed=seed,
            train_per_class=train_per_class,
            test_per_class=test_per_class,
        )


class SyntheticHierarchy(tfds.core.GeneratorBasedBuilder):
    """64 classes on a known 3-level tree (shape / colour / texture), 32x32, generated."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [SyntheticHierarchyConfig.make()]  # noqa: RUF012 (TFDS's API)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=synthetic.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(names=synthetic.class_names()),
                    "mid_label": tfds.features.ClassLabel(names=synthetic.mid_names()),
                    "coarse_label": tfds.features.ClassLabel(names=synthetic.coarse_names()),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # generated, nothing to download
        c = self.builder_config
        return {
            "train": self._generate_examples(c.train_per_class, 0),
            "test": self._generate_examples(c.test_per_class, 1),
        }

    def _generate_examples(self, per_class: int, stream: int):
        labels = synthetic.split_labels(per_class)
        rendered = synthetic.render(labels, seed=self.builder_config.seed, stream=stream)
        for i, (image, label) in enumerate(zip(rendered.images, labels, strict=True)):
            yield (
                i,
                {
                    "image": image,
                    "label": int(label),
                    "mid_label": int(synthetic.mid_of(label)),
                    "coarse_label": int(synthetic.coarse_of(label)),
                },
            )


# ----------------------------------------------------------------------------- CIFAR-100

CIFAR100_SIZES = {"train": 50_000, "test": 10_000}  # the official split
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# sha256 of the official cifar-100-python.tar.gz (169,001,437 bytes; md5
# eb9058c3a382ffc7106e4002c42a8d85), as pinned by Keras' and torchvision's CIFAR-100 loaders.
CIFAR100_PYTHON_SHA256 = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def check_cifar100_archive(
    path: str | os.PathLike, *, allow_unverified: bool = False, sha256: str | None = None
) -> str:
    """The sha256 of ``path``, after checking that it is the official cifar-100-python.tar.gz.

    The archive holds pickles, and unpickling runs code: only the official file is opened
    unless ``allow_unverified`` (your own build of the archive). ``sha256``: the file's digest
    if already known. A ValueError names the file, both digests and where to download.
    """
    actual = sha256 or file_digest(path, 64)
    if actual != CIFAR100_PYTHON_SHA256 and not allow_unverified:
        raise ValueError(
            f"{path} is not the official cifar-100-python.tar.gz: its sha256 is {actual}, the "
            f"official archive's is {CIFAR100_PYTHON_SHA256}; download it again from "
            f"{CIFAR100_URL}, or, for an archive you built yourself, set "
            "config.data.allow_unverified_archive=True (its pickles are code: only for archives "
            "you made)."
        )
    return actual


def read_cifar100_python(
    path: str | os.PathLike, *, allow_unverified: bool = False
) -> dict[str, np.ndarray]:
    """The arrays of the official ``cifar-100-python.tar.gz`` (pickled ``train`` / ``test``),
    its sha256 checked first (:func:`check_cifar100_archive`)."""
    check_cifar100_archive(path, allow_unverified=allow_unverified)
    arrays = {}
    with tarfile.open(path, "r:gz") as tar:
        for split in ("train", "test"):
            member = tar.extractfile(f"cifar-100-python/{split}")
            if member is None:
                raise ValueError(f"{path} has no cifar-100-python/{split}: not the python archive.")
            batch = pickle.load(io.BytesIO(member.read()), encoding="bytes")
            data = np.asarray(batch[b"data"], np.uint8)
            arrays[f"x_{split}"] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            arrays[f"y_{split}_fine"] = np.asarray(batch[b"fine_labels"], np.int64)
            arrays[f"y_{split}_coarse"] = np.asarray(batch[b"coarse_labels"], np.int64)
    return arrays


@dataclasses.dataclass
class Cifar100LocalConfig(tfds.core.BuilderConfig):
    """The source file; the name is its stem plus a digest of its bytes.

    ``allow_unverified``: read a cifar-100-python.tar.gz that is not the official one.
    """

    source: str = ""
    sha256: str = ""
    allow_unverified: bool = False

    @classmethod
    def from_file(cls, path: str | os.PathLike, allow_unverified: bool = False):
        path = Path(path).resolve()
        stem = re.sub(r"[^a-z0-9]+", "_", path.name.lower().split(".")[0]).strip("_")
        digest = file_digest(path, 64)
        return cls(
            name=f"{stem}_{digest[:12]}",
            source=str(path),
            sha256=digest,
            allow_unverified=allow_unverified,
        )


class Cifar100Local(tfds.core.GeneratorBasedBuilder):
    """CIFAR-100 from a local ``cifar-100-python.tar.gz`` or ``.npz``; features as ``cifar100``."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [Cifar100LocalConfig(name="unset")]  # noqa: RUF012 (TFDS's API)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="CIFAR-100 (Krizhevsky 2009) from a local file; official label order.",
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(names=CIFAR100_CLASSES),
                    "coarse_label": tfds.features.ClassLabel(names=CIFAR100_SUPERCLASSES),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        source = self.builder_config.source
        if not source or not Path(source).is_file():
            raise FileNotFoundError(f"cifar100_local needs its source file; {source!r} is absent.")
        if source.endswith(".npz"):
            arrays = read_cifar100_npz(source)
        else:
            arrays = read_cifar100_python(
                source, allow_unverified=self.builder_config.allow_unverified
            )
        return {split: self._generate_examples(arrays, split) for split in ("train", "test")}

    def _generate_examples(self, arrays, split: str):
        images = arrays[f"x_{split}"]
        fine, coarse = arrays[f"y_{split}_fine"], arrays[f"y_{split}_coarse"]
        for i in range(images.shape[0]):
            yield (
                i,
                {
                    "id": f"{split}_{i:05d}",
                    "image": images[i],
                    "label": int(fine[i]),
                    "coarse_label": int(coarse[i]),
                },
            )


# ----------------------------------------------------------------------------- captions


def read_captions(
    tsv: str | os.PathLike, images_dir: str | os.PathLike, columns: str = "auto"
) -> tuple[list[str], list[list[str]], int]:
    """Group a captions TSV by image: ``(files, captions per file, lines whose image is absent)``.

    ``columns``: "caption,file" (Conceptual Captions), "file,caption" (Flickr8k style) or
    "auto": the column that names an existing file under ``images_dir``, else the one with an
    image extension. Files keep their first-appearance order; captions their file order.
    Read with ``csv.QUOTE_NONE``: captions may contain quotes.
    """
    tsv, images_dir = Path(tsv), Path(images_dir)
    with open(tsv, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r]
    if not rows:
        raise ValueError(f"captions_tsv {tsv} is empty.")
    bad = next((i for i, r in enumerate(rows) if len(r) != 2), None)
    if bad is not None:
        raise ValueError(
            f"captions_tsv {tsv} line {bad + 1} has {len(rows[bad])} tab-separated fields; "
            "expected 2 (caption and image file)."
        )
    if columns == "auto":

        def looks_like_file(value: str) -> bool:
            return (images_dir / value).is_file() or value.lower().endswith(IMAGE_EXTENSIONS)

        sample = rows[:20]
        first = sum(looks_like_file(r[0]) for r in sample)
        second = sum(looks_like_file(r[1]) for r in sample)
        if first == second:
            raise ValueError(
                f"cannot tell which column of {tsv} names the image files; set "
                "config.data.captions_columns to 'caption,file' or 'file,caption'."
            )
        columns = "file,caption" if first > second else "caption,file"
    file_col = 0 if columns == "file,caption" else 1
    grouped: dict[str, list[str]] = {}
    for row in rows:
        grouped.setdefault(row[file_col].strip(), []).append(row[1 - file_col].strip())
    present = {name: caps for name, caps in grouped.items() if (images_dir / name).is_file()}
    absent_lines = sum(len(caps) for name, caps in grouped.items() if name not in present)
    return list(present), list(present.values()), absent_lines


def in_test_split(file_name: str, fraction: float) -> bool:
    """Deterministic split by file name: sha1(name) / 2**160 < fraction."""
    value = int.from_bytes(hashlib.sha1(file_name.encode("utf-8")).digest(), "big")
    return value < fraction * (1 << 160)


@dataclasses.dataclass
class CaptionFolderConfig(tfds.core.BuilderConfig):
    """TSV, image folder, column order and test share; named by a digest of all four."""

    tsv: str = ""
    images_dir: str = ""
    columns: str = "auto"
    test_fraction: float = 0.1

    @classmethod
    def make(cls, tsv, images_dir, columns: str = "auto", test_fraction: float = 0.1):
        tsv, images_dir = Path(tsv).resolve(), Path(images_dir).resolve()
        key = f"{file_digest(tsv, 64)}\0{images_dir}\0{columns}\0{test_fraction!r}"
        stem = re.sub(r"[^a-z0-9]+", "_", tsv.stem.lower()).strip("_") or "captions"
        return cls(
            name=f"{stem}_{hashlib.sha256(key.encode()).hexdigest()[:12]}",
            tsv=str(tsv),
            images_dir=str(images_dir),
            columns=columns,
            test_fraction=test_fraction,
        )


class CaptionFolder(tfds.core.GeneratorBasedBuilder):
    """Captioned images: one example per image with all its captions (encoded image kept)."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [CaptionFolderConfig(name="unset")]  # noqa: RUF012 (TFDS's API)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Images with captions from a TSV and an image folder.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3)),
                    "captions": tfds.features.Sequence(tfds.features.Text()),
                    "file_name": tfds.features.Text(),
                    "index": tfds.features.Scalar(np.int64),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        c = self.builder_config
        files, captions, absent = read_captions(c.tsv, c.images_dir, c.columns)
        if absent:
            log.warning(
                "%s: %d caption lines name images absent from %s; skipped.",
                c.tsv,
                absent,
                c.images_dir,
            )
        if not files:
            raise FileNotFoundError(f"none of the images named in {c.tsv} is in {c.images_dir}.")
        test = [in_test_split(name, c.test_fraction) for name in files]
        splits = {"train": self._generate_examples(files, captions, [not t for t in test])}
        if any(test):
            splits["test"] = self._generate_examples(files, captions, test)
        return splits

    def _generate_examples(self, files, captions, keep) -> Iterator:
        root = Path(self.builder_config.images_dir)
        for index, (name, caps, kept) in enumerate(zip(files, captions, keep, strict=True)):
            if kept:
                yield (
                    name,
                    {
                        "image": root / name,
                        "captions": caps,
                        "file_name": name,
                        "index": index,
                    },
                )
