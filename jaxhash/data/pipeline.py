"""Deterministic, host-sharded tf.data pipelines that deliver global ``jax.Array`` batches.

Training (:func:`train_iterator`): each host delivers its share of the global batch, and every
step's host batches become one global array per field with
``jax.make_array_from_process_local_data`` on the mesh's data axis, prefetched by a background
thread. The stream is a pure function of (seed, host, step):

* in memory (data that fits ``memory_limit_mb``, and image folders, held as file paths): one
  global order, epoch ``t // n`` and example ``perm_epoch[t % n]`` at global position ``t`` of
  the ``n`` examples, ``perm_epoch`` a NumPy permutation seeded by (seed, epoch); host ``h`` of
  ``H`` takes rows ``[h B/H, (h+1) B/H)`` of each global batch of ``B``. The global batches are
  therefore the same for any number of hosts (a 2-process run reproduces a 1-process run), and
  within an epoch no example goes to two hosts. Augmentation uniforms are a counter-based hash
  of (seed, epoch, example id). Starting at step ``s`` computes its positions directly:
  nothing before it is read or decoded.
* streamed (larger TFDS data, e.g. ImageNet): each host reads its own contiguous share of the
  split (:func:`host_range`, the arithmetic of ``tfds.split_for_jax_process``); seeded file
  shuffle, ``repeat``, seeded shuffle buffer; augmentation uniforms from (seed, host,
  position). Step ``s`` skips ``s * B`` still-encoded records before any decoding (exact, and
  cheap next to decoding; the cost of reading them remains).

Evaluation (:func:`eval_batches`): every example of the split exactly once, in id order per
host; the last batch is padded and carries ``mask`` False there; ``id`` maps rows back to the
data set (row ``id`` of the TFDS split read with ``shuffle_files=False``, which
:func:`jaxhash.data.load_split` returns).

A batch is a dict: ``image`` float32 (or bfloat16) ``[B, S, S, 3]`` normalised, ``label`` int32
``[B]``, ``coarse_label`` int32 ``[B]`` (where the data set has one), ``id`` int32 ``[B]``,
``mask`` bool ``[B]``; captions data add ``caption_embedding`` float32 ``[B, E]`` when enabled
and ``caption`` (host-local NumPy array of str: text is no jax.Array). Padded rows have
``mask`` False, ``id`` -1, label 0 and a zero image.
"""

from __future__ import annotations

import atexit
import math
import queue
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxhash.data import augment, captions, sources
from jaxhash.data.config import data_config
from jaxhash.data.tf_setup import tf

_FOREVER = 2**62
# tf.data functions here have no tensor-dependent Python control flow: skip AutoGraph.
_plain = tf.autograph.experimental.do_not_convert
_STRING = object  # NumPy dtype of text and encoded images


# ----------------------------------------------------------------------------- host shares


def host_range(num_examples: int, process_index: int, process_count: int) -> tuple[int, int]:
    """``[start, stop)`` of host ``process_index``'s share of ``num_examples`` examples.

    Contiguous, disjoint, covering; sizes differ by at most one, the first hosts get the extra
    examples (``tfds.split_for_jax_process`` with ``drop_remainder=False``).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"process_index must lie in [0, process_count={process_count}); got {process_index}."
        )
    per, extra = divmod(num_examples, process_count)
    start = per * process_index + min(process_index, extra)
    return start, start + per + (process_index < extra)


def _processes(process_index, process_count) -> tuple[int, int, bool]:
    """(index, count, simulated): explicit values simulate hosts in one process."""
    simulated = process_index is not None or process_count is not None
    index = jax.process_index() if process_index is None else int(process_index)
    count = jax.process_count() if process_count is None else int(process_count)
    host_range(0, index, count)  # validates
    return index, count, simulated


def _host_batch(global_batch: int | None, process_count: int, what: str) -> int:
    if global_batch is None:
        raise ValueError(
            f"{what} is unset: set config.data.global_batch_size (or the top-level batch_size)."
        )
    if global_batch % process_count:
        raise ValueError(
            f"{what} = {global_batch} must be divisible by the number of hosts ({process_count})."
        )
    return global_batch // process_count


# ----------------------------------------------------------------------------- randomness


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014) on uint64, wrapping arithmetic."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def example_uniforms(seed: int, epochs, ids, count: int = augment.NUM_UNIFORMS) -> np.ndarray:
    """``[B, count]`` float32 uniforms in [0, 1), a hash of (seed, epoch, example id, column).

    Stateless: the augmentation of an example depends on nothing else (not on the host count,
    the batch size or what came before), which makes restarts exact.
    """
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(np.shape(ids), seed, np.uint64))
        key = _splitmix64(key ^ np.asarray(epochs).astype(np.uint64))
        key = _splitmix64(key ^ np.asarray(ids).astype(np.uint64))
        bits = _splitmix64(
            key[:, None] ^ (np.arange(count, dtype=np.uint64)[None] << np.uint64(40))
        )
    return (bits >> np.uint64(40)).astype(np.float32) * np.float32(2.0**-24)


class _Permutations:
    """Per-epoch permutations of ``n`` examples, seeded by (seed, epoch, host); thread-safe."""

    def __init__(self, n: int, seed: int, host: int, keep: int = 3):
        self.n, self.seed, self.host, self.keep = n, seed, host, keep
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def epoch(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._cache:
                rng = np.random.default_rng([self.seed, epoch, self.host])
                self._cache[epoch] = rng.permutation(self.n)
                while len(self._cache) > self.keep:
                    self._cache.popitem(last=False)
            return self._cache[epoch]

    def take(self, epochs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        out = np.empty_like(offsets)
        for epoch in np.unique(epochs):
            rows = epochs == epoch
            out[rows] = self.epoch(int(epoch))[offsets[rows]]
        return out


# ----------------------------------------------------------------------------- fields


def _dtype(config):
    return tf.bfloat16 if config.image_dtype == "bfloat16" else tf.float32


def _caption_table(source):
    cfg = source.config
    if not (source.has_captions and cfg.caption_embeddings):
        return None
    bc = source.builder.builder_config
    cache = cfg.embedding_cache or str(Path(sources.tfds_data_dir(cfg)) / "jaxhash_embeddings")
    return captions.caption_table(bc.tsv, bc.images_dir, bc.columns, cache)


class _Fields:
    """What a batch of ``source`` carries, and the TF signature of the fetched host batch."""

    def __init__(self, source, image_shape=None):
        self.source = source
        self.labels = bool(source.class_names)
        self.coarse = "coarse_label" in source.keys
        self.captions = source.has_captions
        self.table = _caption_table(source)
        self.image_shape = image_shape  # fixed uint8 images, else encoded/path strings

    def signature(self, batch: int):
        image = (
            tf.TensorSpec([batch, *self.image_shape], tf.uint8)
            if self.image_shape
            else tf.TensorSpec([batch], tf.string)
        )
        spec = {"image": image}
        if self.labels:
            spec["label"] = tf.TensorSpec([batch], tf.int32)
        if self.coarse:
            spec["coarse_label"] = tf.TensorSpec([batch], tf.int32)
        spec["id"] = tf.TensorSpec([batch], tf.int32)
        spec["mask"] = tf.TensorSpec([batch], tf.bool)
        spec["u"] = tf.TensorSpec([batch, augment.NUM_UNIFORMS], tf.float32)
        if self.captions:
            spec["caption"] = tf.TensorSpec([batch], tf.string)
        if self.table is not None:
            spec["caption_embedding"] = tf.TensorSpec([batch, self.table.dim], tf.float32)
        return spec

    def caption_rows(self, data, ids, u):
        """Chosen caption per example: the ``U_CAPTION`` uniform picks one of its captions."""
        counts = np.array([len(data.captions[i]) for i in ids])
        return np.minimum((u[:, augment.U_CAPTION] * counts).astype(np.int64), counts - 1)

    def embedding(self, index, choice):
        table = self.table
        if self.source.config.caption_target == "mean":
            return table.mean[index]
        return np.asarray(table.embeddings[table.offsets[index] + choice], np.float32)


def _numpy_batch(fields: _Fields, data, ids, valid, u) -> dict[str, np.ndarray]:
    """Host batch of memory rows ``ids`` (``valid`` False: padding) before decoding."""
    batch = {"image": data.images[ids]}
    if fields.labels:
        labels = fields.source.labels_of(data.labels[ids])
        batch["label"] = np.where(valid, labels, 0).astype(np.int32)
    if fields.coarse:
        batch["coarse_label"] = np.where(valid, data.coarse[ids], 0).astype(np.int32)
    batch["id"] = np.where(valid, ids, -1).astype(np.int32)
    batch["mask"] = valid
    batch["u"] = u
    if fields.captions:
        choice = fields.caption_rows(data, ids, u)
        batch["caption"] = np.array(
            [
                data.captions[i][k].encode() if ok else b""
                for i, k, ok in zip(ids, choice, valid, strict=True)
            ],
            _STRING,
        )
        if fields.table is not None:
            embedding = fields.embedding(data.index[ids], choice)
            batch["caption_embedding"] = np.where(valid[:, None], embedding, 0).astype(np.float32)
    return batch


def _from_numpy(fetch, signature, steps):
    """tf.data of ``fetch(step)`` dicts for ``steps`` (a ``tf.data.Dataset`` of int64)."""
    names = list(signature)

    def call(step):
        batch = fetch(int(step))
        return [batch[name] for name in names]

    def fetch_tf(step):
        values = tf.numpy_function(call, [step], [signature[n].dtype for n in names])
        out = {}
        for name, value in zip(names, values, strict=True):
            value.set_shape(signature[name].shape)
            out[name] = value
        return out

    return steps.map(_plain(fetch_tf), num_parallel_calls=2, deterministic=True)


# ----------------------------------------------------------------------------- decoding


def _preprocess(source, batched: tf.data.Dataset, batch: int, train: bool, per_example: bool):
    """Decode (per example) or crop (per batch), resize, normalise, zero padded rows."""
    cfg = source.config
    size = source.image_size
    kind = source.image_kind

    def boxes(heights, widths, u):
        if train:
            return augment.train_boxes(
                source.style,
                heights,
                widths,
                u,
                padding=cfg.crop_padding,
                scale=cfg.crop_scale,
                ratio=cfg.crop_ratio,
                crop_fraction=source.eval_crop_fraction,
            )
        return augment.eval_boxes(heights, widths, source.eval_crop_fraction)

    def finish(ex):
        image = augment.normalize(
            tf.cast(ex["image"], tf.float32), source.mean, source.std, _dtype(cfg)
        )
        if not train:  # padded rows (training batches have none)
            image = tf.where(ex["mask"][:, None, None, None], image, tf.zeros_like(image))
        ex = dict(ex, image=image)
        ex.pop("u")
        return ex

    if not per_example:
        native = batched.element_spec["image"].shape[1:3]  # fixed [H, W] of in-memory arrays
        same_size = native == (size, size)

        def crop(ex):
            if train and source.style == "crop_flip" and same_size:  # exact integer shifts
                return dict(ex, image=augment.pad_crop_flip(ex["image"], ex["u"], cfg.crop_padding))
            if not train and same_size and source.eval_crop_fraction == 1.0:
                return ex  # the whole image at its size: nothing to resample
            shape = tf.shape(ex["image"])
            n = shape[0]
            b = boxes(tf.fill([n], shape[1]), tf.fill([n], shape[2]), ex["u"])
            return dict(ex, image=augment.crop_resize(ex["image"], b, size))

        return batched.map(_plain(crop), num_parallel_calls=tf.data.AUTOTUNE).map(_plain(finish))

    def one(ex):
        raw = tf.io.read_file(ex["image"]) if kind == "path" else ex["image"]
        image = augment.decode(raw)
        shape = tf.shape(image)
        b = boxes(shape[None, 0], shape[None, 1], ex["u"][None])
        return dict(ex, image=augment.crop_resize(image[None], b, size)[0])

    ds = batched.unbatch().map(_plain(one), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch, drop_remainder=True).map(_plain(finish))


def _options(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_optimization.map_parallelization = True
    return ds.with_options(options)


# ----------------------------------------------------------------------------- memory


def _memory_train(source, start_step, host, hosts, batch) -> tf.data.Dataset:
    cfg = source.config
    seed = cfg.seed or 0
    split = source.train_split
    data = source.load(split)
    pool = source.pool(split, "seen")
    if len(pool) == 0:
        raise ValueError(f"no training examples in {split!r}.")
    # One global order for all hosts: host h takes rows [h * batch, (h + 1) * batch) of each
    # global batch, so the global batches (and the training run) do not depend on the number
    # of hosts, and within an epoch no example goes to two hosts.
    perms = _Permutations(len(pool), seed, 0)
    fields = _Fields(source, data.images.shape[1:] if data.image_kind == "array" else None)

    def fetch(step: int):
        position = step * batch * hosts + host * batch + np.arange(batch, dtype=np.int64)
        epochs, offsets = np.divmod(position, len(pool))
        ids = pool[perms.take(epochs, offsets)]
        u = example_uniforms(seed, epochs, ids)
        return _numpy_batch(fields, data, ids, np.ones(batch, bool), u)

    steps = tf.data.Dataset.range(start_step, _FOREVER)
    ds = _from_numpy(fetch, fields.signature(batch), steps)
    return _preprocess(source, ds, batch, True, data.image_kind != "array")


def _memory_eval(source, split, subset, host, hosts, batch) -> tuple[tf.data.Dataset, int]:
    data = source.load(split)
    pool = source.pool(split, subset)
    if len(pool) == 0:
        raise ValueError(f"split {split!r} of {source.name} has no examples in subset {subset!r}.")
    start, stop = host_range(len(pool), host, hosts)
    shard = pool[start:stop]
    num_batches = math.ceil(math.ceil(len(pool) / hosts) / batch)  # the same on every host
    fields = _Fields(source, data.images.shape[1:] if data.image_kind == "array" else None)
    u = np.zeros((batch, augment.NUM_UNIFORMS), np.float32)

    def fetch(step: int):
        ids = shard[step * batch : (step + 1) * batch]
        valid = np.arange(batch) < len(ids)
        ids = np.concatenate([ids, np.full(batch - len(ids), pool[0])]).astype(np.int64)
        return _numpy_batch(fields, data, ids, valid, u)

    steps = tf.data.Dataset.range(num_batches)
    ds = _from_numpy(fetch, fields.signature(batch), steps)
    return _preprocess(source, ds, batch, False, data.image_kind != "array"), num_batches


# ----------------------------------------------------------------------------- streamed


def _stream_examples(source, ids, fields: _Fields):
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


def _stream_embeddings(fields: _Fields, ds):
    """Look caption embeddings up per batch (the table may be memory-mapped, so NumPy)."""
    if not fields.captions:
        return ds
    table = fields.table

    def lookup(ex):
        index, choice = ex.pop("index"), ex.pop("choice")
        if table is not None:
            value = tf.numpy_function(
                lambda i, c: fields.embedding(i, c).astype(np.float32), [index, choice], tf.float32
            )
            value.set_shape([None, table.dim])
            ex["caption_embedding"] = value
        return ex

    return ds.map(_plain(lookup))


def _stream_train(source, start_step, host, hosts, batch) -> tf.data.Dataset:
    cfg = source.config
    seed = cfg.seed or 0
    split = source.train_split
    fields = _Fields(source)
    subsplit = _tfds().split_for_jax_process(split, process_index=host, process_count=hosts)
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
    ds = _stream_embeddings(fields, ds)
    return _preprocess(source, ds, batch, True, per_example=True)


def _stream_eval(source, split, subset, host, hosts, batch) -> tuple[tf.data.Dataset, int | None]:
    fields = _Fields(source)
    size = source.split_sizes.get(split, 0)
    start, _ = host_range(size, host, hosts)
    subsplit = _tfds().split_for_jax_process(split, process_index=host, process_count=hosts)
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
    ds = _stream_embeddings(fields, ds)

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


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


# ----------------------------------------------------------------------------- public


def train_dataset(config, start_step: int = 0, *, process_index=None, process_count=None):
    """This host's training batches as a ``tf.data.Dataset`` (infinite), from ``start_step``.

    ``process_index`` / ``process_count`` default to JAX's; pass them to simulate hosts.
    """
    cfg = data_config(config)
    source = sources.open_source(cfg)
    host, hosts, _ = _processes(process_index, process_count)
    batch = _host_batch(cfg.global_batch_size, hosts, "config.data.global_batch_size")
    if (
        isinstance(start_step, bool)
        or not isinstance(start_step, int | np.integer)
        or start_step < 0
    ):
        raise ValueError(f"start_step must be an int >= 0; got {start_step!r}.")
    build = _memory_train if source.in_memory else _stream_train
    return _options(build(source, int(start_step), host, hosts, batch).prefetch(2))


def host_train_batches(config, start_step: int = 0, *, process_index=None, process_count=None):
    """:func:`train_dataset` as NumPy dicts (this host's share of each global batch)."""
    ds = train_dataset(config, start_step, process_index=process_index, process_count=process_count)
    return _as_numpy(ds)


def host_eval_batches(
    config,
    split: str | None = None,
    batch_size: int | None = None,
    *,
    subset: str = "all",
    process_index=None,
    process_count=None,
) -> Iterator[dict[str, np.ndarray]]:
    """This host's evaluation batches as NumPy dicts: every example of its share once.

    ``batch_size`` is global (default ``eval_batch_size``, else ``global_batch_size``);
    ``subset``: "all", "seen" or "holdout" (zero-shot classes). All hosts yield the same
    number of batches (short hosts pad).
    """
    cfg = data_config(config)
    source = sources.open_source(cfg)
    split = source.check_split(split or source.eval_split)
    host, hosts, simulated = _processes(process_index, process_count)
    global_batch = batch_size or cfg.eval_batch_size or cfg.global_batch_size
    batch = _host_batch(global_batch, hosts, "the eval batch size")
    if source.in_memory:
        ds, _ = _memory_eval(source, split, subset, host, hosts, batch)
        return _as_numpy(_options(ds.prefetch(2)))
    ds, num_batches = _stream_eval(source, split, subset, host, hosts, batch)
    sync = num_batches is None and hosts > 1 and not simulated
    return _padded_stream(_as_numpy(_options(ds.prefetch(2))), num_batches, sync)


def _padded_stream(iterator, num_batches: int | None, sync: bool):
    """Yield ``num_batches`` batches (padding after the data ends); with ``num_batches`` None
    stop when every host's data has ended (``sync``: agreed across processes)."""
    produced = 0
    template = None
    while True:
        batch = next(iterator, None)
        if sync:
            from jax.experimental import multihost_utils

            more = bool(np.any(multihost_utils.process_allgather(np.array(batch is not None))))
        elif num_batches is None:
            more = batch is not None
        else:
            more = produced < num_batches
        if not more:
            return
        if batch is None:
            if template is None:
                raise ValueError("this host has no evaluation examples to shape padding batches.")
            batch = _padding_like(template)
        template = batch
        produced += 1
        yield batch


def _padding_like(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in batch.items():
        fill = {"id": -1, "mask": False}.get(name, 0)
        out[name] = np.full_like(value, "" if value.dtype == _STRING else fill)
    return out


def _numpy_batches(ds) -> Iterator[dict[str, np.ndarray]]:
    for batch in ds.as_numpy_iterator():
        if "caption" in batch:
            batch["caption"] = np.array([t.decode("utf-8") for t in batch["caption"]], _STRING)
        yield batch


def _as_numpy(ds) -> Iterator[dict[str, np.ndarray]]:
    """NumPy batches; caption text as ``str`` objects (TF gives bytes). Registered so that
    interpreter exit closes it (and its TF iterator) while Python still runs callbacks."""
    return _closed_at_exit(_numpy_batches(ds))


# ----------------------------------------------------------------------------- global arrays


def _data_sharding(mesh, data_axis: str) -> NamedSharding:
    if data_axis not in mesh.axis_names:
        raise ValueError(f"mesh has no axis {data_axis!r}; its axes are {mesh.axis_names}.")
    return NamedSharding(mesh, PartitionSpec(data_axis))


def _check_divisible(global_batch: int, mesh, data_axis: str, what: str) -> None:
    devices = mesh.shape[data_axis]
    if global_batch % devices:
        raise ValueError(
            f"{what} = {global_batch} must be divisible by the {devices} devices of mesh axis "
            f"{data_axis!r}."
        )


def to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict:
    """Host batch -> global ``jax.Array`` per numeric field (batch dim over the data axis).

    Text fields stay host-local NumPy arrays.
    """
    hosts = jax.process_count()
    out = {}
    for name, value in batch.items():
        if value.dtype == _STRING:
            out[name] = value
        else:
            shape = (value.shape[0] * hosts, *value.shape[1:])
            out[name] = jax.make_array_from_process_local_data(sharding, value, shape)
    return out


_END = object()
_RUNNING: set[tuple[threading.Thread, threading.Event]] = set()
_LIVE: weakref.WeakSet = weakref.WeakSet()  # generators that own TF iterators
_LOCK = threading.Lock()


def _closed_at_exit(generator):
    with _LOCK:
        _LIVE.add(generator)
    return generator


@atexit.register
def _shut_down() -> None:
    """Stop prefetch threads and close TF iterators before interpreter finalisation: deleting
    a tf.data iterator whose ``numpy_function`` waits for the GIL then would hang or crash."""
    with _LOCK:
        running, live = list(_RUNNING), list(_LIVE)
    for _, stop in running:
        stop.set()
    for thread, _ in running:
        thread.join(timeout=10)
    for generator in live:
        try:
            generator.close()
        except (ValueError, RuntimeError):  # still running in a thread that did not stop
            pass


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(iterator: Iterator, size: int) -> Iterator:
    """Run ``iterator`` in a background thread, ``size`` items ahead (0: no thread)."""
    if size <= 0:
        yield from iterator
        return
    items: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed to the consumer
            put(_Failure(error))
        finally:  # release the source (and its TF iterator) in this thread
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="jaxhash-prefetch", daemon=True)
    entry = (thread, stop)
    with _LOCK:
        _RUNNING.add(entry)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        # Wait for the worker to leave the source and close it: a TF iterator still running
        # in a daemon thread at interpreter exit can abort the process.
        thread.join(timeout=60)
        with _LOCK:
            _RUNNING.discard(entry)


def train_iterator(config, mesh, start_step: int = 0, *, data_axis: str = "data"):
    """Global training batches (dicts of ``jax.Array`` sharded over ``data_axis``), forever.

    The batch of step ``s`` is the same whether the iterator started at 0 or at ``s``.

    Args:
      config: experiment config (with ``data``), data block, or DataConfig.
      mesh: a ``jax.sharding.Mesh`` with axis ``data_axis``.
      start_step: first step to deliver (after a restart: the restored step).
    """
    cfg = data_config(config)
    sharding = _data_sharding(mesh, data_axis)
    if cfg.global_batch_size is not None:
        _check_divisible(cfg.global_batch_size, mesh, data_axis, "config.data.global_batch_size")
    host_batches = host_train_batches(cfg, start_step)
    return _closed_at_exit(prefetch(_globalize(host_batches, sharding), cfg.prefetch))


def eval_batches(
    config,
    split: str | None = None,
    mesh=None,
    batch_size: int | None = None,
    *,
    subset: str = "all",
    data_axis: str = "data",
):
    """Global evaluation batches: each example of ``split`` once, the last batch padded.

    Args:
      config: experiment config, data block or DataConfig.
      split: default the data set's evaluation split (``DatasetInfo.eval_split``).
      mesh: a Mesh with ``data_axis``; None: host-local NumPy batches (one process).
      batch_size: global batch size (default ``eval_batch_size``, else ``global_batch_size``).
      subset: "all", "seen" (not held out) or "holdout" (the zero-shot classes).
    """
    cfg = data_config(config)
    if mesh is None:
        return host_eval_batches(cfg, split, batch_size, subset=subset)
    sharding = _data_sharding(mesh, data_axis)
    global_batch = batch_size or cfg.eval_batch_size or cfg.global_batch_size
    if global_batch is not None:
        _check_divisible(global_batch, mesh, data_axis, "the eval batch size")
    host_batches = host_eval_batches(cfg, split, batch_size, subset=subset)
    return _closed_at_exit(prefetch(_globalize(host_batches, sharding), cfg.prefetch))


def _globalize(host_batches, sharding):
    """Global arrays of host batches; closing it closes ``host_batches``."""
    try:
        for batch in host_batches:
            yield to_global(batch, sharding)
    finally:
        host_batches.close()
