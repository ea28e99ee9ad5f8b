"""``synthetic_hierarchy``: the embedded default, generated here (:mod:`jaxhash.data.synthetic`).

64 classes on a known three-level tree (shape / colour / texture), 32x32 images, prepared
once as the TFDS builder ``synthetic_hierarchy`` from ``config.data.synthetic_seed`` and the
images per class; nothing is downloaded.
"""

from __future__ import annotations

from jaxhash.data import provenance, synthetic
from jaxhash.data.config import DataConfig
from jaxhash.data.datasets import Dataset, Opened
from jaxhash.data.prepare import prepare

# Measured on the default synthetic_hierarchy train split (seed 0, 256 per class).
SYNTHETIC_MEAN, SYNTHETIC_STD = (0.467, 0.471, 0.443), (0.213, 0.204, 0.214)


def open_synthetic(config: DataConfig, data_dir: str) -> Opened:
    """The generated data set of ``config``'s seed and sizes, prepared on first use."""
    from jaxhash.data import builders  # registers jaxhash's TFDS builders

    wanted = builders.SyntheticHierarchyConfig.make(
        config.synthetic_seed, config.synthetic_train_per_class, config.synthetic_test_per_class
    )
    # TFDS wants its own object for a predefined config (the default one).
    wanted = builders.SyntheticHierarchy.builder_configs.get(wanted.name, wanted)
    builder = builders.SyntheticHierarchy(config=wanted, data_dir=data_dir)
    if not builder.is_prepared():
        prepare(builder)
        provenance.record(builder, source=f"jaxhash's generator (seed {config.synthetic_seed})")
    return Opened(
        builder=builder,
        class_names=synthetic.class_names(),
        keys={"image": "image", "label": "label", "coarse_label": "coarse_label"},
        hierarchy=synthetic.hierarchy,
        coarse_names=synthetic.coarse_names(),
        coarse_of_fine=tuple(int(synthetic.coarse_of(k)) for k in range(synthetic.NUM_CLASSES)),
    )


DATASET = Dataset(
    name="synthetic_hierarchy",
    title="the synthetic hierarchy",
    open=open_synthetic,
    mean=SYNTHETIC_MEAN,
    std=SYNTHETIC_STD,
    image_size=synthetic.IMAGE_SIZE,
    augment="crop_flip",
    eval_crop_fraction=1.0,
)
