"""Input pipeline throughput: images/s that jaxhash.data delivers, next to a train step's.

CIFAR-100-shaped training batches (32x32x3, pad-crop-flip augmentation, normalised float32,
global arrays sharded over all devices, prefetched), at global batch 256 and 512, from:

* ``jaxhash.train_iterator``: :func:`jaxhash.data.train_iterator` (in memory: seeded
  per-epoch permutations, stateless per-example augmentation, restartable);
* ``jaxhash.train_iterator[stream]``: the same data streamed from TFDS records
  (``in_memory=False``: seeded file shuffle, shuffle buffer, decode per example);
* reference ``tf.data shuffle+map+batch``: what a plain TFDS pipeline does (``as_dataset``,
  ``cache``, ``shuffle``, ``repeat``, per-example ``random_crop`` of the padded image and
  ``random_flip_left_right``, normalise, ``batch``, ``prefetch``), its NumPy batches put on the
  devices with the same sharding; no determinism machinery.
* ``train_step.small_cnn``: forward + backward + Adam update of a small CNN (6 conv layers,
  32-64-128 channels, softmax cross-entropy; a fixed stand-in defined here, not
  jaxhash.models, so the row stays comparable as the models change) on a batch of the same
  shape, jitted, compile excluded.

Each row's ``images_per_s`` is global batch / median time per batch (iterator rows: time to
receive the next device batch, at steady state); ``speedup`` is the reference time / this
time. ``input_bound`` says whether the train step would wait for the input (pipeline
images/s below the step's). Data: ``--manual-dir`` (a CIFAR-100 archive or .npz), by default
jaxhash's generated ``synthetic_hierarchy`` (64 classes, ``--synthetic-per-class`` training
images each, 256 by default: 16,384; the pipeline cycles through it), 32x32x3. Each row names
its data set and size (``dataset``, ``examples``).

    python -m benchmarks.input_pipeline                 # both batch sizes
    python -m benchmarks.input_pipeline --batch-sizes 256 --quick
    python -m benchmarks.input_pipeline --manual-dir cifar100.npz   # the official 50,000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from benchmarks.common import emit, time_fn
from jaxhash import data
from jaxhash.data.tf_setup import tf
from jaxhash.models import run_initialiser

BENCHMARK = "input_pipeline.train"


class SmallCNN(nn.Module):
    """3 stages of two 3x3 convolutions (32, 64, 128 channels), max-pool, mean-pool, dense."""

    num_classes: int = 100

    @nn.compact
    def __call__(self, x):
        for features in (32, 64, 128):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        return nn.Dense(self.num_classes)(x.mean(axis=(1, 2)))


def data_config(
    data_dir: str, batch: int, manual_dir: str | None = None, per_class: int = 256
) -> dict:
    if manual_dir:
        config = {"name": "cifar100", "manual_dir": manual_dir}
    else:
        config = {"name": "synthetic_hierarchy", "synthetic_train_per_class": per_class}
    return {**config, "data_dir": data_dir, "global_batch_size": batch, "seed": 0}


def reference_iterator(config: dict, sharding):
    """A plain TFDS / tf.data pipeline of the same data, batches put on the devices."""
    source = data.open_source(config)
    info = data.get_dataset_info(config)
    mean = tf.constant(info.mean, tf.float32)
    std = tf.constant(info.std, tf.float32)

    def augment(example):
        image = tf.image.pad_to_bounding_box(example["image"], 4, 4, 40, 40)
        image = tf.image.random_crop(image, [32, 32, 3])
        image = tf.image.random_flip_left_right(image)
        image = (tf.cast(image, tf.float32) / 255.0 - mean) / std
        return {"image": image, "label": tf.cast(example["label"], tf.int32)}

    ds = source.builder.as_dataset(split="train", shuffle_files=True)
    ds = ds.cache().shuffle(10_000).repeat()
    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(config["global_batch_size"], drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    for batch in ds.as_numpy_iterator():
        yield {k: jax.device_put(v, sharding) for k, v in batch.items()}


def train_step_ms(batch: int, num_classes: int, sharding, seconds: float) -> float:
    model = SmallCNN(num_classes)
    params = run_initialiser(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    tx = optax.adam(1e-3)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss(p):
            logits = model.apply(p, images)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    rng = np.random.default_rng(0)
    images = jax.device_put(rng.normal(size=(batch, 32, 32, 3)).astype(np.float32), sharding)
    labels = jax.device_put(rng.integers(0, num_classes, batch).astype(np.int32), sharding)
    return time_fn(lambda: step(params, opt_state, images, labels), warmup=2, min_seconds=seconds)


def iterator_ms(iterator, seconds: float) -> float:
    return time_fn(
        lambda: next(iterator), warmup=20, min_repeats=20, max_repeats=2000, min_seconds=seconds
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: a temp dir)")
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument(
        "--manual-dir",
        default=None,
        help="CIFAR-100 archive or .npz (e.g. the full official split); default: "
        "jaxhash's synthetic_hierarchy data set",
    )
    parser.add_argument(
        "--synthetic-per-class",
        type=int,
        default=256,
        help="training images per class of the synthetic data (64 classes; default 256)",
    )
    args = parser.parse_args()
    seconds = 1.0 if args.quick else 3.0
    if args.synthetic_per_class < 1:
        parser.error(f"--synthetic-per-class must be >= 1, got {args.synthetic_per_class}")
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        for batch in args.batch_sizes:
            config = data_config(data_dir, batch, args.manual_dir, args.synthetic_per_class)
            with contextlib.redirect_stdout(sys.stderr):  # TFDS's preparation messages
                info = data.get_dataset_info(config)
            shape = {
                "batch": batch,
                "image": [32, 32, 3],
                "dataset": info.name,
                "examples": info.num_train,
            }
            reference = reference_iterator(config, sharding)
            ref_ms = iterator_ms(reference, seconds)
            reference.close()  # stops its prefetching before the next measurement
            step_ms = train_step_ms(batch, info.num_classes, sharding, 2 * seconds / 3)
            step_rate = batch / step_ms * 1e3
            extra = {"cpu_cores": os.cpu_count(), "devices": jax.device_count()}
            emit(
                BENCHMARK,
                "reference",
                shape,
                ref_ms,
                None,
                None,
                images_per_s=round(batch / ref_ms * 1e3),
                **extra,
            )
            for impl, overrides in (
                ("jaxhash.train_iterator", {}),
                ("jaxhash.train_iterator[stream]", {"in_memory": False, "shuffle_buffer": 10_000}),
            ):
                iterator = data.train_iterator({**config, **overrides}, mesh)
                ms = iterator_ms(iterator, seconds)
                iterator.close()
                rate = batch / ms * 1e3
                emit(
                    BENCHMARK,
                    impl,
                    shape,
                    ms,
                    "tf.data shuffle+map+batch",
                    ref_ms,
                    images_per_s=round(rate),
                    train_step_images_per_s=round(step_rate),
                    input_bound=rate < step_rate,
                    **extra,
                )
            emit(
                "input_pipeline.train_step",
                "small_cnn",
                shape,
                step_ms,
                None,
                None,
                images_per_s=round(step_rate),
                **extra,
            )


if __name__ == "__main__":
    main()
