"""``image_folder``: images laid out ``root/split/label/*.jpg`` (e.g. Tiny ImageNet), read in
place by ``tfds.folder_dataset.ImageFolder``; nothing is prepared or downloaded.

The folder names are the classes; when they are WordNet ids the class tree is WordNet's. The
split is held in memory as file paths (:func:`folder_examples`, in ImageFolder's order) and
the images are read in the pipeline.
"""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import numpy as np

from jaxhash.data import provenance
from jaxhash.data.config import DataConfig
from jaxhash.data.datasets import Dataset, Opened
from jaxhash.data.label_space import is_wnid, wordnet_tree
from jaxhash.data.prepare import DatasetNotFoundError
from jaxhash.data.split import MemorySplit
from jaxhash.data.tf_setup import tfds

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


def _read_paths(root: str, label_names, split: str) -> MemorySplit:
    """A split as file paths and labels (the files are read in the pipeline)."""
    paths, labels = folder_examples(root, split)
    return MemorySplit(
        images=np.array(paths, dtype=object),
        image_kind="path",
        labels=np.array([label_names.str2int(label) for label in labels], np.int64),
        coarse=None,
        file_names=np.array(paths, dtype=object),
    )


def open_folder(config: DataConfig, data_dir: str) -> Opened:
    """The image folder ``config.folder`` (``data_dir`` unused: it is read in place)."""
    del data_dir
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
    labels = builder.info.features["label"]
    names = tuple(labels.names)
    sizes = {s: int(info.num_examples) for s, info in builder.info.splits.items()}
    return Opened(
        builder=builder,
        class_names=names,
        keys={"image": "image", "label": "label"},
        hierarchy=wordnet_tree(config, names) if all(map(is_wnid, names)) else None,
        read_split=functools.partial(_read_paths, str(root), labels),
        split_sizes=sizes,
        location=str(builder.data_dir),
        image_kind="path",
        ready=f"image_folder: {provenance.describe(None, sizes)}, read in place",
    )


DATASET = Dataset(name="image_folder", title="an image folder", open=open_folder)
