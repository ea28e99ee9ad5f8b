"""``imagenet2012``: ILSVRC2012 through TFDS's builder, from the two tars the user downloaded.

1,000 WordNet ids, the WordNet tree; ``config.data.classes="imagenet100"`` keeps HashNet's
ImageNet-100 hashing subset (relabelled 0..99). Preparing decodes 1.3M JPEGs once (hours);
TFDS cannot download it.
"""

from __future__ import annotations

from pathlib import Path

from jaxhash.data.config import DataConfig
from jaxhash.data.datasets import Dataset, Opened
from jaxhash.data.label_space import wordnet_tree
from jaxhash.data.prepare import DatasetNotFoundError, prepare
from jaxhash.data.tf_setup import tfds

TARS = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
# Counts of the ImageNet-100 hashing subset in ILSVRC2012 (jaxhash/semantics/data/README.md):
# all train images of its 100 classes, and their 5,000 validation images.
IMAGENET100_SIZES = {"train": 128_503, "validation": 5_000}


def _builder(config: DataConfig, data_dir: str):
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    manual = Path(config.manual_dir).expanduser() if config.manual_dir else None
    missing = [n for n in TARS if manual is None or not (manual / n).is_file()]
    if not missing:
        prepare(builder, manual_dir=str(manual))  # hours: decodes 1.3M JPEGs once
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


def open_imagenet(config: DataConfig, data_dir: str) -> Opened:
    """ILSVRC2012 prepared in ``data_dir``, or prepared now from ``config.manual_dir``."""
    builder = _builder(config, data_dir)
    names = tuple(builder.info.features["label"].names)
    return Opened(
        builder=builder,
        class_names=names,
        keys={"image": "image", "label": "label", "file_name": "file_name"},
        hierarchy=wordnet_tree(config, names),
        subset_sizes=IMAGENET100_SIZES if config.classes == "imagenet100" else None,
    )


DATASET = Dataset(name="imagenet2012", title="ImageNet (ILSVRC2012)", open=open_imagenet)
