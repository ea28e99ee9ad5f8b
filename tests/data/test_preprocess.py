"""The fast recipe's augmentation in jaxhash.data.preprocess (reflect padding, alternating
flips, the checks of what a source can give) and the whitening images of the pipeline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxhash import data
from jaxhash.data import augment, preprocess


def _uniforms(n, dy, dx, flip, seed=0):
    u = np.random.default_rng(seed).uniform(size=(n, augment.NUM_UNIFORMS)).astype(np.float32)
    u[:, augment.U_DY], u[:, augment.U_DX] = dy, dx
    u[:, augment.U_FLIP] = 0.25 if flip else 0.75
    return u


def test_reflect_padding_crops_equal_a_loop_over_mirrored_pixels():
    """Each output pixel is the input pixel at the shifted position, mirrored at the border
    without repeating the edge (y -> -y, H - 1 + k -> H - 1 - k)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 7, 6, 3), dtype=np.uint8)
    padding = 2

    def mirror(i, n):
        return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)

    for dy_u, dx_u, flip in ((0.0, 0.0, False), (0.99, 0.5, True), (0.3, 0.99, False)):
        u = _uniforms(5, dy_u, dx_u, flip)
        out = preprocess.pad_crop_flip(images, u, padding, "reflect")
        dy = int(np.floor(dy_u * (2 * padding + 1))) - padding
        dx = int(np.floor(dx_u * (2 * padding + 1))) - padding
        expected = np.empty_like(images)
        for y in range(7):
            for x in range(6):
                xs = 5 - x if flip else x
                expected[:, y, xs] = images[:, mirror(y + dy, 7), mirror(x + dx, 6)]
        np.testing.assert_array_equal(out, expected)
    zeros = preprocess.pad_crop_flip(images, _uniforms(5, 0.0, 0.0, False), padding)
    assert not zeros[:, :2].any()  # zero padding stays the default


def test_alternating_flips_switch_every_epoch_and_split_each_epoch_in_half():
    ids = np.arange(4000)
    u = np.full((4000, augment.NUM_UNIFORMS), 0.5, np.float32)
    flips = [
        preprocess.alternate_flips(u, 3, np.full(4000, epoch), ids)[:, augment.U_FLIP] < 0.5
        for epoch in range(4)
    ]
    for a, b in itertools.pairwise(flips):
        assert np.all(a != b)  # every image the other way round in the next epoch
    np.testing.assert_array_equal(flips[0], flips[2])
    assert 0.45 < flips[0].mean() < 0.55
    other_seed = preprocess.alternate_flips(u, 4, np.zeros(4000, int), ids)[:, augment.U_FLIP]
    assert np.mean((other_seed < 0.5) != flips[0]) > 0.3
    np.testing.assert_array_equal(u, 0.5)  # the input is not modified


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    config = {
        "name": "synthetic_hierarchy",
        "data_dir": str(tmp_path_factory.mktemp("tfds")),
        "synthetic_train_per_class": 4,
        "synthetic_test_per_class": 2,
        "global_batch_size": 64,
        "seed": 1,
    }
    data.get_dataset_info(config)
    return config


def test_the_fast_augmentation_trains_in_memory(synthetic):
    config = {**synthetic, "crop_padding": 2, "crop_padding_mode": "reflect", "flip": "alternating"}
    batches = data.host_train_batches(config)
    first = next(batches)
    batches.close()
    assert first["image"].shape == (64, 32, 32, 3) and np.isfinite(first["image"]).all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"crop_padding_mode": "reflect", "in_memory": False}, r"crop_padding_mode='reflect'"),
        ({"crop_padding_mode": "reflect", "augment": "resized_crop_flip"}, r"crop_padding_mode"),
        ({"flip": "alternating", "in_memory": False}, r"data\.flip='alternating' needs in-memory"),
    ],
)
def test_augmentation_a_source_cannot_give_is_an_error_naming_the_field(
    synthetic, changes, message
):
    with pytest.raises(ValueError, match=message):
        next(data.host_train_batches({**synthetic, **changes}))


def test_whitening_images_are_spread_over_the_split_as_evaluation_sees_them(synthetic):
    images = data.first_train_images(synthetic, 100)
    assert images.shape == (100, 32, 32, 3)
    evaluation = np.concatenate(
        [b["image"][b["mask"]] for b in data.host_eval_batches(synthetic, "train", 64)]
    )
    n = len(evaluation)
    np.testing.assert_array_equal(images, evaluation[np.linspace(0, n - 1, 100).astype(int)])
    assert len(data.first_train_images(synthetic, 10**6)) == n  # all of them, once each
    streamed = data.first_train_images({**synthetic, "in_memory": False}, 100)
    assert streamed.shape == (100, 32, 32, 3)


def test_whitening_from_an_empty_training_set_is_an_error_naming_the_field(synthetic):
    names = data.get_dataset_info(synthetic).class_names
    empty = {**synthetic, "holdout_classes": list(names)}
    with pytest.raises(ValueError, match=r"config\.data\.holdout_classes holds out every class"):
        data.first_train_images(empty, 10, "config.model.whitening_images")


def test_numpy_preprocessing_equals_the_tensorflow_ops():
    """In-memory batches are finished in NumPy: pad-crop-flip and the normalisation give the
    same bits as augment's TensorFlow ops (float32 and bfloat16)."""
    import tensorflow as tf

    from jaxhash.data import preprocess

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    u = rng.uniform(size=(64, augment.NUM_UNIFORMS)).astype(np.float32)
    for padding in (0, 4):
        np.testing.assert_array_equal(
            preprocess.pad_crop_flip(images, u, padding),
            augment.pad_crop_flip(tf.constant(images), tf.constant(u), padding).numpy(),
        )
    mean, std = (0.507, 0.4865, 0.441), (0.267, 0.256, 0.276)
    for name, tf_dtype in (("float32", tf.float32), ("bfloat16", tf.bfloat16)):
        ours = preprocess.normalize(
            images, mean, std, preprocess.image_dtype(data.data_config({"image_dtype": name}))
        )
        theirs = augment.normalize(tf.cast(images, tf.float32), mean, std, tf_dtype).numpy()
        assert ours.dtype.itemsize == theirs.dtype.itemsize
        np.testing.assert_array_equal(ours.view(np.uint8), theirs.view(np.uint8))
