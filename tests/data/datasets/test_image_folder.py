"""Image folders (jaxhash.data.datasets.image_folder): rows in ImageFolder's order, and Tiny
ImageNet's validation images from $JAXHASH_TEST_DATA (ImageNet terms of access; skipped with
the reason without it).
"""

import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxhash import data
from jaxhash.data.datasets import image_folder
from tests.conftest import external_data
from tests.data.batch_checks import take, valid_ids


def test_image_folder_rows_follow_tfds_order(tmp_path):
    """folder_examples lists a folder in the order of ImageFolder's as_dataset."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    for split, count in (("train", 5), ("val", 3)):
        for label in ("b_label", "a_label", "c_label"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                name = f"img{rng.integers(1000)}_{i}.{'png' if i % 2 else 'jpg'}"
                (folder / name).write_bytes(tf.io.encode_png(pixels).numpy())
    builder = tfds.folder_dataset.ImageFolder(str(tmp_path))
    for split in ("train", "val"):
        paths, labels = image_folder.folder_examples(str(tmp_path), split)
        ds = builder.as_dataset(
            split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
        )
        expected = [ex["image/filename"].decode() for ex in tfds.as_numpy(ds)]
        assert paths == expected
        assert labels == [Path(p).parent.name for p in paths]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    with tarfile.open(external_data("tiny_imagenet_val20", "tiny_imagenet_val20.tar.gz")) as tar:
        tar.extractall(root, filter="data")
    return root / "tiny_imagenet_val20"


def test_wnid_image_folder(tiny):
    wnids = sorted(p.name for p in (tiny / "val").iterdir())[:10]
    config = {
        "name": "image_folder",
        "folder": str(tiny),
        "classes": wnids,
        "image_size": 64,
        "global_batch_size": 16,
    }
    info = data.get_dataset_info(config)
    assert (
        info.splits == {"val": 4000} and info.num_train == 200 and info.class_names == tuple(wnids)
    )
    files = data.load_split(config, "val").file_names
    for batch in take(data.host_train_batches(config), 3):
        assert batch["image"].shape == (16, 64, 64, 3)
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert Path(files[example]).parent.name == wnids[label]
    ids = valid_ids(list(data.host_eval_batches(config, "val", 48)))
    assert len(ids) == 200 and len(set(ids.tolist())) == 200
    assert {Path(files[i]).parent.name for i in ids} == set(wnids)
