"""Fixtures of the data tests: one small synthetic_hierarchy, prepared once per session."""

import pytest

from jaxhash import data


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="session")
def synth(tfds_dir):
    """A small synthetic_hierarchy: 16 train (1,024) and 4 test (256) images per class."""
    config = {
        "name": "synthetic_hierarchy",
        "data_dir": tfds_dir,
        "synthetic_train_per_class": 16,
        "synthetic_test_per_class": 4,
        "global_batch_size": 64,
        "seed": 7,
    }
    data.get_dataset_info(config)  # prepares it
    return config
