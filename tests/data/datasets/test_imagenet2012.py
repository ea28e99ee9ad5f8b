"""ImageNet (jaxhash.data.datasets.imagenet2012) under tfds.testing.mock_data: the ImageNet-100
class filter, in memory and streamed."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxhash import data
from jaxhash.semantics import known
from tests.data.batch_checks import assert_batches_equal, take, valid_ids


@pytest.mark.parametrize("in_memory", [True, False])
def test_imagenet100_class_filter_under_mock_data(tmp_path, in_memory):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).write_bytes(b"")  # present; mock_data makes preparing a no-op
    config = {
        "name": "imagenet2012",
        "manual_dir": str(manual),
        "data_dir": str(tmp_path),
        "classes": "imagenet100",
        "global_batch_size": 4,
        "image_size": 64,
        "in_memory": in_memory,
        "shuffle_buffer": 64,
    }
    wnids = known.imagenet100_wnids()
    with tfds.testing.mock_data(num_examples=600, policy=tfds.testing.MockPolicy.USE_CODE):
        data.clear_caches()
        info = data.get_dataset_info(config)
        assert info.class_names == tuple(wnids) and info.augment == "resized_crop_flip"
        builder = data.open_source(config).builder
        raw_names = builder.info.features["label"].names
        raw = data.open_source({**config, "in_memory": True}).load("train").labels
        batches = take(data.host_train_batches(config), 3)
        again = next(data.host_train_batches(config, start_step=2))
        evaluation = list(data.host_eval_batches(config, "validation", 8))
    data.clear_caches()
    assert_batches_equal(batches[2], again)
    for batch in batches:
        assert batch["image"].shape == (4, 64, 64, 3) and np.isfinite(batch["image"]).all()
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert wnids[label] == raw_names[raw[example]]
    kept = np.flatnonzero(np.isin(np.array(raw_names)[raw], wnids))  # mock: splits are alike
    np.testing.assert_array_equal(np.sort(valid_ids(evaluation)), kept)
