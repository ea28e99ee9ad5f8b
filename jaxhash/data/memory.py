"""In-memory data: a pure function of (seed, step) from the arrays to each host batch.

One global order for all hosts: global position ``t`` of ``n`` examples is epoch ``t // n``,
example ``perm_epoch[t % n]`` (``perm_epoch`` a NumPy permutation seeded by (seed, epoch));
host ``h`` of ``H`` takes rows ``[h B/H, (h+1) B/H)`` of each global batch of ``B``. The global
batches are therefore the same for any number of hosts, and within an epoch no example goes to
two hosts. Augmentation uniforms are a counter-based hash of (seed, epoch, example id).
Starting at step ``s`` computes its positions directly: nothing before it is read.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jaxhash.data import augment
from jaxhash.data.preprocess import Fields, alternate_flips, finish
from jaxhash.data.sharding import STRING, host_range


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


def _rows(fields: Fields, data, ids, valid, u) -> dict[str, np.ndarray]:
    """Host batch of memory rows ``ids`` (``valid`` False: padding) before preprocessing."""
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
                data.captions[i][k] if ok else ""
                for i, k, ok in zip(ids, choice, valid, strict=True)
            ],
            STRING,
        )
        if fields.table is not None:
            embedding = fields.embedding(data.index[ids], choice)
            batch["caption_embedding"] = np.where(valid[:, None], embedding, 0).astype(np.float32)
    return batch


def train_batch_fn(source, host: int, hosts: int, batch: int) -> Callable[[int], dict]:
    """``step -> host batch`` of the training split (a pure function of seed and step)."""
    seed = source.config.seed or 0
    split = source.train_split
    data = source.load(split)
    pool = source.pool(split, "seen")
    if len(pool) == 0:
        raise ValueError(f"no training examples in {split!r}.")
    perms = _Permutations(len(pool), seed, 0)  # one global order for all hosts
    fields = Fields(source)
    alternating = source.config.flip == "alternating"

    def fetch(step: int) -> dict[str, np.ndarray]:
        position = step * batch * hosts + host * batch + np.arange(batch, dtype=np.int64)
        epochs, offsets = np.divmod(position, len(pool))
        ids = pool[perms.take(epochs, offsets)]
        u = example_uniforms(seed, epochs, ids)
        if alternating:
            u = alternate_flips(u, seed, epochs, ids)
        return finish(source, _rows(fields, data, ids, np.ones(batch, bool), u), train=True)

    return fetch


def eval_batch_fn(source, split, subset, host, hosts, batch) -> tuple[Callable[[int], dict], int]:
    """``(index -> host batch, number of batches)`` covering this host's share of ``split``
    once, in id order; every host has the same number of batches (short ones pad)."""
    data = source.load(split)
    pool = source.pool(split, subset)
    if len(pool) == 0:
        raise ValueError(f"split {split!r} of {source.name} has no examples in subset {subset!r}.")
    start, stop = host_range(len(pool), host, hosts)
    shard = pool[start:stop]
    num_batches = math.ceil(math.ceil(len(pool) / hosts) / batch)  # the same on every host
    fields = Fields(source)
    u = np.zeros((batch, augment.NUM_UNIFORMS), np.float32)

    def fetch(index: int) -> dict[str, np.ndarray]:
        ids = shard[index * batch : (index + 1) * batch]
        valid = np.arange(batch) < len(ids)
        ids = np.concatenate([ids, np.full(batch - len(ids), pool[0])]).astype(np.int64)
        return finish(source, _rows(fields, data, ids, valid, u), train=False)

    return fetch, num_batches


def spread_rows(source, split, subset: str, count: int, batch: int = 1000) -> np.ndarray:
    """Images ``[n, S, S, 3]`` of ``n = min(count, N)`` rows evenly spread over the ``N``
    examples of ``split``'s ``subset`` (all classes alike, whatever the order of the data),
    as evaluation sees them (no augmentation, normalised)."""
    data = source.load(split)
    pool = source.pool(split, subset)
    if len(pool) == 0:
        raise ValueError(f"split {split!r} of {source.name} has no examples in subset {subset!r}.")
    positions = np.unique(np.linspace(0, len(pool) - 1, min(count, len(pool))).astype(np.int64))
    fields = Fields(source)
    out = []
    for start in range(0, len(positions), batch):
        ids = pool[positions[start : start + batch]]
        valid = np.ones(len(ids), bool)
        u = np.zeros((len(ids), augment.NUM_UNIFORMS), np.float32)
        out.append(finish(source, _rows(fields, data, ids, valid, u), train=False)["image"])
    return np.concatenate(out).astype(np.float32, copy=False)


def ordered_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """``fn(item)`` for each item in order, computed by ``workers`` threads up to ``ahead``
    items in advance. Closing the iterator cancels what has not started."""
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="jaxhash-prefetch")
    pending = []
    try:
        items = iter(items)
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > ahead:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
