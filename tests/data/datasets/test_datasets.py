"""The data set registry (jaxhash.data.datasets): every data set by name, each one's error
when its data is absent, and the config's choices.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from jaxhash import data
from jaxhash.config import DATASETS
from jaxhash.data import datasets


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        (
            {"name": "cifar100"},
            ["'cifar100'", "manual_dir", "tfds build cifar100", "download=True"],
        ),
        (
            {"name": "imagenet2012"},
            ["'imagenet2012'", "manual_dir", "ILSVRC2012_img_train.tar", "tfds build imagenet2012"],
        ),
        ({"name": "image_folder", "folder": "/nonexistent"}, ["config.data.folder", "ImageFolder"]),
        ({"name": "captions"}, ["captions_tsv", "images_dir", "caption_folder"]),
    ],
)
def test_missing_data_fails_at_once_and_says_how_to_get_it(tmp_path, config, needles):
    start = time.perf_counter()
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.get_dataset_info({**config, "data_dir": str(tmp_path / "empty")})
    # A bound against TFDS retrying a download for minutes, far above a loaded machine's time.
    assert time.perf_counter() - start < 30.0
    for needle in needles:
        assert needle in str(error.value), (needle, str(error.value))


def test_every_data_set_is_registered_under_its_module_name():
    assert datasets.names() == tuple(sorted(DATASETS))
    for name in datasets.names():
        dataset = datasets.get(name)
        assert dataset.name == name and "tfds" in dataset.readers
    assert [d.name for d in datasets.reading("numpy")] == ["cifar100"]


def test_an_unknown_name_is_one_error_listing_the_known_ones():
    with pytest.raises(ValueError, match="unknown data set 'mnist'") as error:
        datasets.get("mnist")
    for name in DATASETS:
        assert repr(name) in str(error.value)


def test_the_data_set_modules_load_without_tensorflow():
    """Listing and describing every data set imports neither TensorFlow nor TFDS (the numpy
    reader trains where they are not installed)."""
    code = """
import sys
for name in ("tensorflow", "tensorflow_datasets"):
    sys.modules[name] = None  # import raises ImportError
from jaxhash.data import datasets
print(sorted(d.name for d in map(datasets.get, datasets.names())))
"""
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == str(sorted(DATASETS))
