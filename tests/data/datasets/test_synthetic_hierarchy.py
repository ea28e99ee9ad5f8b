"""The embedded default (jaxhash.data.datasets.synthetic_hierarchy) gives the batches it gave
before the data sets became one module each: the values below were computed by the
if/elif opener of jaxhash.data.sources (commit 8495cc0) on the ``synth`` fixture's config
(16 train + 4 test images per class, seed 7, batch 64)."""

import hashlib

import numpy as np

from jaxhash import data

# Per batch: sha256 (first 16 hex digits) of int64 [id, label, coarse_label] rows, then the
# float64 sum and sum of squares of the images and the first pixel of the first image.
TRAIN = [
    (
        "8227daaf0fb795ba",
        -55217.13955002924,
        293284.74843643035,
        (-2.1924882, -2.3088236, -2.0700934),
    ),
    (
        "83f6cbab8062bb1e",
        -63197.14438986464,
        294123.5060807315,
        (-0.9957654, -0.5210495, -0.4208355),
    ),
    (
        "d8ab409a51a93ebe",
        -55199.82630080759,
        314495.8038868902,
        (-2.1924882, -2.3088236, -2.0700934),
    ),
]
EVAL = (
    "86100685caad93da",
    -5714.54883900698,
    84215.3148487478,
    (-1.2719324, -0.2519222, -0.8239874),
)


def _check(batch, expected):
    digest, total, squares, pixel = expected
    ints = np.array([batch["id"], batch["label"], batch["coarse_label"]], np.int64)
    assert hashlib.sha256(ints.tobytes()).hexdigest()[:16] == digest
    image = np.asarray(batch["image"], np.float64)
    np.testing.assert_allclose(image.sum(), total, rtol=1e-9)
    np.testing.assert_allclose((image**2).sum(), squares, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(batch["image"])[0, 0, 0], pixel, atol=1e-6)


def test_the_default_data_set_gives_the_batches_it_gave(synth):
    info = data.get_dataset_info(synth)
    assert (info.name, info.tfds_name, info.train_split, info.eval_split) == (
        "synthetic_hierarchy",
        "synthetic_hierarchy",
        "train",
        "test",
    )
    assert info.mean == (0.467, 0.471, 0.443) and info.std == (0.213, 0.204, 0.214)
    assert info.image_shape == (32, 32, 3) and info.augment == "crop_flip"
    assert (info.num_train, info.num_eval, info.splits) == (1024, 256, {"train": 1024, "test": 256})
    assert info.class_names[:3] == ("round/red/solid", "round/red/striped", "round/red/dotted")
    assert info.coarse_names == ("round", "box", "triangle", "star")
    assert info.coarse_of_fine == tuple(k // 16 for k in range(64)) and info.class_glosses == {}
    batches = data.host_train_batches(synth)
    for expected in TRAIN:
        _check(next(batches), expected)
    batch = next(iter(data.host_eval_batches(synth, "test", 32)))
    assert np.asarray(batch["mask"]).all()
    _check(batch, EVAL)
