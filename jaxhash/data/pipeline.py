"""The input pipeline's entry points: deterministic, host-sharded batches, as host NumPy dicts
or as global ``jax.Array`` s sharded over a mesh's data axis.

Training (:func:`train_iterator`) is a pure function of (seed, host, step), from any start
step: in-memory data (data sets that fit ``memory_limit_mb``, and image folders, held as file
paths) by :mod:`jaxhash.data.memory`, NumPy batches with no tf.data in between, in the same
global order for any number of hosts; larger TFDS data sets streamed by
:mod:`jaxhash.data.stream`. Each host's batches become one global array per field with
``jax.make_array_from_process_local_data`` (:func:`jaxhash.data.sharding.to_global`), prepared
``prefetch`` batches ahead by worker threads.

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

import os
from collections.abc import Iterator

import numpy as np

from jaxhash.data import sources
from jaxhash.data.config import data_config
from jaxhash.data.memory import eval_batch_fn, ordered_map, spread_rows, train_batch_fn
from jaxhash.data.preprocess import check_train_augmentation
from jaxhash.data.sharding import (
    STRING,
    check_divisible,
    data_sharding,
    host_batch,
    processes,
    to_global,
)
from jaxhash.data.stream import FOREVER, host_batches, stream_eval, stream_train

# Threads preparing in-memory batches (NumPy and TensorFlow kernels release the GIL): half the
# host's cores, at least 2 and at most 8 (4 cores give 2 threads; 16 or more give 8).
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
_WORKERS = min(8, max(2, (_CORES or 2) // 2))


def _check_start(start_step) -> int:
    if isinstance(start_step, bool) or not isinstance(start_step, int | np.integer):
        raise ValueError(f"start_step must be an int >= 0; got {start_step!r}.")
    if start_step < 0:
        raise ValueError(f"start_step must be an int >= 0; got {start_step!r}.")
    return int(start_step)


def _train_batches(cfg, start_step, process_index, process_count, finish=None) -> Iterator:
    """This host's training batches from ``start_step``, each passed through ``finish``."""
    source = sources.open_source(cfg)
    check_train_augmentation(source)
    host, hosts, _ = processes(process_index, process_count)
    batch = host_batch(cfg.global_batch_size, hosts, "config.data.global_batch_size")
    start_step = _check_start(start_step)
    finish = finish or (lambda b: b)
    if source.in_memory:
        fetch = train_batch_fn(source, host, hosts, batch)
        steps = range(start_step, FOREVER)
        ahead = max(cfg.prefetch + 1, _WORKERS)  # every worker busy
        return ordered_map(lambda step: finish(fetch(step)), steps, _WORKERS, ahead)
    ds = stream_train(source, start_step, host, hosts, batch)
    return prefetch(map(finish, host_batches(ds, source)), cfg.prefetch)


def host_train_batches(config, start_step: int = 0, *, process_index=None, process_count=None):
    """This host's share of each global training batch, as NumPy dicts, forever.

    ``process_index`` / ``process_count`` default to JAX's; pass them to simulate hosts.
    """
    return _train_batches(data_config(config), start_step, process_index, process_count)


def _eval_batches(cfg, split, batch_size, subset, process_index, process_count, finish=None):
    source = sources.open_source(cfg)
    split = source.check_split(split or source.eval_split)
    host, hosts, simulated = processes(process_index, process_count)
    global_batch = batch_size or cfg.eval_batch_size or cfg.global_batch_size
    batch = host_batch(global_batch, hosts, "the eval batch size")
    finish = finish or (lambda b: b)
    if source.in_memory:
        fetch, num_batches = eval_batch_fn(source, split, subset, host, hosts, batch)
        indices = range(num_batches)
        ahead = max(cfg.prefetch + 1, _WORKERS)
        return ordered_map(lambda i: finish(fetch(i)), indices, _WORKERS, ahead)
    ds, num_batches = stream_eval(source, split, subset, host, hosts, batch)
    sync = num_batches is None and hosts > 1 and not simulated
    padded = _padded_stream(host_batches(ds, source), num_batches, sync)
    return prefetch(map(finish, padded), cfg.prefetch)


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
    return _eval_batches(cfg, split, batch_size, subset, process_index, process_count)


def first_train_images(config, count: int, what: str = "the whitening stem") -> np.ndarray:
    """``count`` training images ``[n, S, S, 3]`` (n <= count) of the classes training sees,
    as evaluation sees them (no augmentation, normalised): rows evenly spread over the split
    for in-memory data (every class, whatever the order of the file), the first rows of a
    streamed split.

    Every host reads the same rows, so statistics computed from them (the fast backbones'
    whitening stem, ``jaxhash.models.whitening_kernel``) agree across hosts.
    """
    cfg = data_config(config)
    source = sources.open_source(cfg)
    try:
        if source.in_memory:
            return spread_rows(source, source.train_split, "seen", count)
        batches = _eval_batches(cfg, source.train_split, min(count, 1000), "seen", 0, 1)
    except ValueError as error:
        raise ValueError(f"{what} needs training images: {error}") from None
    images, have = [], 0
    try:
        for item in batches:
            rows = np.asarray(item["image"], np.float32)[np.asarray(item["mask"])]
            images.append(rows[: count - have])
            have += len(images[-1])
            if have >= count:
                break
    finally:
        batches.close()
    return np.concatenate(images)


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
        out[name] = np.full_like(value, "" if value.dtype == STRING else fill)
    return out


def prefetch(iterator: Iterator, size: int) -> Iterator:
    """``iterator``'s items computed ``size`` ahead by a worker thread (0: none); errors reach
    the consumer; closing it stops the thread once the item in progress is done."""
    if size <= 0:
        yield from iterator
        return
    iterator = iter(iterator)
    ahead = ordered_map(lambda _: next(iterator, _END), iter(int, 1), 1, size)
    try:
        for item in ahead:
            if item is _END:
                return
            yield item
    finally:
        ahead.close()
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


_END = object()


def train_iterator(config, mesh, start_step: int = 0, *, data_axis: str = "data"):
    """Global training batches (dicts of ``jax.Array`` sharded over ``data_axis``), forever.

    The batch of step ``s`` is the same whether the iterator started at 0 or at ``s``.

    Args:
      config: experiment config (with ``data``), data block, or DataConfig.
      mesh: a ``jax.sharding.Mesh`` with axis ``data_axis``.
      start_step: first step to deliver (after a restart: the restored step).
    """
    cfg = data_config(config)
    sharding = data_sharding(mesh, data_axis)
    if cfg.global_batch_size is not None:
        check_divisible(cfg.global_batch_size, mesh, data_axis, "config.data.global_batch_size")
    return _train_batches(cfg, start_step, None, None, lambda b: to_global(b, sharding))


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
    sharding = data_sharding(mesh, data_axis)
    global_batch = batch_size or cfg.eval_batch_size or cfg.global_batch_size
    if global_batch is not None:
        check_divisible(global_batch, mesh, data_axis, "the eval batch size")
    finish = lambda b: to_global(b, sharding)  # noqa: E731
    return _eval_batches(cfg, split, batch_size, subset, None, None, finish)
