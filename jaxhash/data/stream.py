"""Streamed data (TFDS data sets larger than memory, e.g. ImageNet) as tf.data pipelines.

Each host reads its own contiguous share of the split (:func:`jaxhash.data.sharding.host_range`,
the arithmetic of ``tfds.split_for_jax_process``); training adds a seeded file shuffle,
``repeat`` and a seeded shuffle buffer, with augmentation uniforms from (seed, host, position).
Step ``s`` skips ``s * B`` still-encoded records before any decoding (exact, and cheap next to
decoding; the cost of reading them remains). Batches leave TensorFlow as NumPy; caption
embeddings are looked up there (:func:`host_batches`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from jaxhash.data import augment
from jaxhash.data.preprocess import Fields, decode_captions
from jaxhash.data.sharding import host_range
from jaxhash.data.tf_setup import tf, tfds

FOREVER = 2**62


def _plain(fn):
    """``fn`` for tf.data without AutoGraph (the functions here branch on no tensor)."""
    return tf.autograph.experimental.do_not_convert(fn)


def _dtype(config):
    return tf.bfloat16 if config.image_dtype == "bfloat16" else tf.float32


def _stream_examples(source, ids, fields: Fields):
    """Map raw TFDS examples to pipeline fields (``ids``: a function of the raw example)."""
    keys = source.keys
    remap = None if source.remap is None else tf.constant(source.remap, tf.int64)

    def select(*args):
        ex = args[-1]
        out = {"image": ex[keys["image"]], "id": tf.cast(ids(*args), tf.int32)}
        if fields.labels:
            label = tf.cast(ex[keys["label"]], tf.int64)
            out["label"] = tf.cast(label if remap is None else tf.gather(remap, label), tf.int32)
        if fields.coarse:
            out["coarse_label"] = tf.cast(ex[keys["coarse_label"]], tf.int32)
        if fields.captions:
            out["captions"] = ex[keys["captions"]]
            out["index"] = ex[keys["index"]]
        out["mask"] = tf.constant(True)
        return out

    return select


def _keep_fn(source, subset):
    holdout = tf.constant(source.holdout or (-1,), tf.int32)

    def keep(ex):
        if "label" not in ex:
            return tf.constant(True)
        ok = ex["label"] >= 0
        held = tf.reduce_any(tf.equal(ex["label"], holdout))
        if subset == "seen":
            ok &= ~held
        elif subset == "holdout":
            ok &= held
        return ok

    return keep


def _choose_caption(ex, u):
    count = tf.shape(ex["captions"], out_type=tf.int64)[0]
    choice = tf.minimum(
        tf.cast(u[augment.U_CAPTION] * tf.cast(count, tf.float32), tf.int64), count - 1
    )
    ex = dict(ex, caption=ex["captions"][choice], choice=choice)
    ex.pop("captions")
    return ex


def stream_train(source, start_step, host, hosts, batch) -> tf.data.Dataset:
    cfg = source.config
    seed = cfg.seed or 0
    split = source.train_split
    fields = Fields(source)
    subsplit = tfds.split_for_jax_process(split, process_index=host, process_count=hosts)
    offsets = tf.constant(
        source.shard_offsets(split) if split in source.builder.info.splits else [0], tf.int64
    )

    def example_id(ex):  # tfds_id "<name>-<split>.tfrecord-<shard>-of-<n>__<index>"
        parts = tf.strings.split(ex["tfds_id"], "__")
        file_name, index = parts[0], parts[-1]
        shard = tf.strings.to_number(
            tf.strings.regex_replace(file_name, r"^.*-(\d+)-of-\d+$", r"\1"), tf.int64
        )
        return tf.gather(offsets, shard) + tf.strings.to_number(index, tf.int64)

    ds = source.stream(subsplit, shuffle_files=True, seed=seed, with_ids=True)
    ds = ds.map(_plain(_stream_examples(source, example_id, fields)))
    ds = ds.filter(_plain(_keep_fn(source, "seen"))).repeat()
    ds = ds.shuffle(cfg.shuffle_buffer, seed=seed * 1_000_003 + host, reshuffle_each_iteration=True)
    ds = ds.enumerate().skip(start_step * batch)  # before any decoding
    base = tf.constant([seed, host], tf.int64)

    def uniforms(position, ex):
        key = tf.random.experimental.stateless_fold_in(base, position)
        u = tf.random.stateless_uniform([augment.NUM_UNIFORMS], seed=key)
        ex = dict(ex, u=u)
        return _choose_caption(ex, u) if fields.captions else ex

    ds = ds.map(_plain(uniforms)).batch(batch, drop_remainder=True)
    return _augment(source, ds, batch)


def stream_eval(source, split, subset, host, hosts, batch) -> tuple[tf.data.Dataset, int | None]:
    fields = Fields(source)
    size = source.split_sizes.get(split, 0)
    start, _ = host_range(size, host, hosts)
    subsplit = tfds.split_for_jax_process(split, process_index=host, process_count=hosts)
    ds = source.stream(subsplit, shuffle_files=False, seed=None, with_ids=False).enumerate()
    ds = ds.map(_plain(_stream_examples(source, lambda i, ex: start + i, fields)))
    filtered = source.remap is not None or subset != "all"
    if filtered:
        ds = ds.filter(_plain(_keep_fn(source, subset)))
    zeros = tf.zeros([augment.NUM_UNIFORMS], tf.float32)
    size_out = source.image_size

    def one(ex):
        if fields.captions:
            ex = _choose_caption(ex, zeros)
        image = augment.decode(ex["image"])
        shape = tf.shape(image)
        box = augment.eval_boxes(shape[None, 0], shape[None, 1], source.eval_crop_fraction)
        return dict(ex, image=augment.crop_resize(image[None], box, size_out)[0])

    ds = ds.map(_plain(one), num_parallel_calls=tf.data.AUTOTUNE).batch(batch)

    def pad(ex):  # the last batch is short: pad every field to `batch` rows, mask False
        missing = batch - tf.shape(ex["mask"])[0]
        out = {}
        for name, value in ex.items():
            fill = "" if value.dtype == tf.string else {"id": -1, "mask": False}.get(name, 0)
            paddings = [[0, missing]] + [[0, 0]] * (value.shape.rank - 1)
            out[name] = tf.pad(value, paddings, constant_values=fill)
            out[name].set_shape([batch, *value.shape[1:]])
        image = augment.normalize(out["image"], source.mean, source.std, _dtype(source.config))
        out["image"] = tf.where(out["mask"][:, None, None, None], image, tf.zeros_like(image))
        return out

    num_batches = None if filtered else math.ceil(math.ceil(size / hosts) / batch)
    return ds.map(_plain(pad)), num_batches


def _augment(source, batched: tf.data.Dataset, batch: int) -> tf.data.Dataset:
    """Training batches: decode, randomly crop and resize each example, then normalise."""
    cfg = source.config

    def one(ex):
        raw = tf.io.read_file(ex["image"]) if source.image_kind == "path" else ex["image"]
        image = augment.decode(raw)
        shape = tf.shape(image)
        boxes = augment.train_boxes(
            source.style,
            shape[None, 0],
            shape[None, 1],
            ex["u"][None],
            padding=cfg.crop_padding,
            scale=cfg.crop_scale,
            ratio=cfg.crop_ratio,
            crop_fraction=source.eval_crop_fraction,
        )
        return dict(ex, image=augment.crop_resize(image[None], boxes, source.image_size)[0])

    def finish(ex):
        image = augment.normalize(ex["image"], source.mean, source.std, _dtype(cfg))
        ex = dict(ex, image=image)
        ex.pop("u")
        return ex

    ds = batched.unbatch().map(_plain(one), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).map(_plain(finish))


def _options(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options)


def host_batches(ds: tf.data.Dataset, source) -> Iterator[dict[str, np.ndarray]]:
    """NumPy batches of a stream: caption text as ``str``, the chosen captions' embeddings
    looked up (zero on padded rows), the lookup keys dropped."""
    fields = Fields(source)
    for batch in _options(ds.prefetch(2)).as_numpy_iterator():
        batch = decode_captions(batch)
        if fields.captions:
            index, choice = batch.pop("index"), batch.pop("choice")
            if fields.table is not None:
                embedding = fields.embedding(index, choice).astype(np.float32)
                batch["caption_embedding"] = np.where(batch["mask"][:, None], embedding, 0)
        yield batch
