"""The embedded default data set: synthetic_hierarchy's tree, renderer and TFDS builder."""

import colorsys

import numpy as np
import pytest

from jaxhash.data import builders, synthetic
from jaxhash.semantics import ClassHierarchy

PER_CLASS = 8  # small renders: 512 images


@pytest.fixture(scope="module")
def rendered():
    return synthetic.render(synthetic.split_labels(PER_CLASS), seed=3)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The TFDS builder, prepared at a tiny size (4 train + 2 test images per class)."""
    import tensorflow_datasets as tfds

    config = builders.SyntheticHierarchyConfig.make(seed=1, train_per_class=4, test_per_class=2)
    builder = builders.SyntheticHierarchy(config=config, data_dir=str(tmp_path_factory.mktemp("t")))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            compute_stats=tfds.download.ComputeStatsMode.SKIP
        )
    )
    return builder


def test_tree_has_three_levels_and_64_leaves():
    tree = synthetic.hierarchy()
    assert isinstance(tree, ClassHierarchy)
    assert tree.classes == synthetic.class_names()
    assert tree.num_classes == 64 and tree.height(tree.root) == 3
    assert tree.children(tree.root) == tuple(sorted(synthetic.SHAPES))
    for label, name in enumerate(tree.classes):
        shape, colour, texture = name.split("/")
        assert tree.ancestors(name) == (name, f"{shape}/{colour}", shape, "root")
        assert synthetic.SHAPES[synthetic.coarse_of(label)] == shape
        assert synthetic.mid_names()[synthetic.mid_of(label)] == f"{shape}/{colour}"
        assert synthetic.TEXTURES[label % 4] == texture
    # lcs_height similarity: 1 for the same leaf, 2/3 same colour node, 1/3 same shape, else 0.
    sim = tree.similarity("lcs_height")
    labels = np.arange(64)
    same_mid = synthetic.mid_of(labels)[:, None] == synthetic.mid_of(labels)[None]
    same_coarse = synthetic.coarse_of(labels)[:, None] == synthetic.coarse_of(labels)[None]
    expected = np.where(
        np.eye(64, dtype=bool), 1, np.where(same_mid, 2 / 3, np.where(same_coarse, 1 / 3, 0))
    )
    np.testing.assert_allclose(sim, expected, atol=1e-12)


def test_render_is_a_pure_function_of_the_seed(rendered):
    labels = synthetic.split_labels(PER_CLASS)
    again = synthetic.render(labels, seed=3)
    np.testing.assert_array_equal(again.images, rendered.images)
    other = synthetic.render(labels, seed=4)
    assert np.mean(other.images != rendered.images) > 0.5
    assert rendered.images.dtype == np.uint8 and rendered.images.shape == (512, 32, 32, 3)
    with pytest.raises(ValueError, match="labels must lie in"):
        synthetic.render(np.array([64]), seed=0)


def test_main_object_carries_its_colour_family(rendered):
    """The median hue of the main object's pixels lies in its class's colour family."""
    for image, label, mask in zip(
        rendered.images, rendered.labels, rendered.object_mask, strict=True
    ):
        assert mask.sum() > 60, "the main object covers a good part of the image"
        rgb = image[mask].astype(np.float64) / 255
        # The darkest texture pixels keep the hue; the median is robust to noise.
        hues = np.array([colorsys.rgb_to_hsv(*p)[0] * 360 for p in rgb])
        centre = synthetic.HUE_CENTRES[synthetic.mid_of(label) % 4]
        offset = np.median((hues - centre + 180) % 360 - 180)
        assert abs(offset) < synthetic.HUE_JITTER + 12, (label, offset)


def test_textures_show_in_the_pixels(rendered):
    """Solid objects are flat inside; striped, dotted and checkered ones vary (leaf level)."""
    spread = {t: [] for t in range(4)}
    for image, label, mask in zip(
        rendered.images, rendered.labels, rendered.object_mask, strict=True
    ):
        luminance = image[mask].astype(np.float64).mean(axis=1)
        spread[int(label) % 4].append(np.std(luminance))
    solid = np.median(spread[0])
    for texture in (1, 2, 3):
        assert np.median(spread[texture]) > 2 * solid, (texture, spread[texture][:5], solid)


def test_pixels_alone_are_not_linearly_separable(rendered):
    """Position, rotation, clutter and noise: ridge regression on raw pixels generalises
    poorly at the leaf level (chance 1.6%); measured 6% with 16k training images."""
    train = synthetic.render(synthetic.split_labels(16), seed=5, stream=0)
    x = train.images.reshape(len(train.images), -1) / 255.0
    xt = rendered.images.reshape(len(rendered.images), -1) / 255.0
    targets = np.eye(64)[train.labels]
    weights = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ targets)
    accuracy = np.mean(np.argmax(xt @ weights, axis=1) == rendered.labels)
    assert accuracy < 0.15


def test_builder_labels_match_the_hierarchy(prepared):
    import tensorflow_datasets as tfds

    info = prepared.info
    assert info.features["label"].names == list(synthetic.class_names())
    assert info.features["coarse_label"].names == list(synthetic.SHAPES)
    assert info.splits["train"].num_examples == 256 and info.splits["test"].num_examples == 128
    tree = synthetic.hierarchy()
    for split in ("train", "test"):
        data = tfds.as_numpy(prepared.as_dataset(split=split, batch_size=-1))
        labels = data["label"]
        assert np.bincount(labels, minlength=64).min() == np.bincount(labels).max()  # balanced
        for label, mid, coarse in zip(labels, data["mid_label"], data["coarse_label"], strict=True):
            name = tree.classes[label]
            assert tree.parent(name) == synthetic.mid_names()[mid]
            assert tree.parent(tree.parent(name)) == synthetic.SHAPES[coarse]
        assert data["image"].shape[1:] == (32, 32, 3) and data["image"].dtype == np.uint8


def test_builder_stores_the_rendered_pixels(prepared):
    """The TFDS records hold exactly what render() draws for that seed."""
    import tensorflow_datasets as tfds

    data = tfds.as_numpy(prepared.as_dataset(split="test", batch_size=-1))
    expected = synthetic.render(synthetic.split_labels(2), seed=1, stream=1)
    # TFDS stores examples in a hashed order: match them by content.
    stored = {img.tobytes(): lab for img, lab in zip(data["image"], data["label"], strict=True)}
    for image, label in zip(expected.images, expected.labels, strict=True):
        assert stored[image.tobytes()] == label
