"""The input pipeline's entry points (jaxhash.data.pipeline) on a small synthetic_hierarchy:
batch shapes, determinism and restarts, augmentation against a NumPy oracle, host shares,
sharded global batches, streaming, evaluation completeness, and the prefetching thread.

The oracles are NumPy re-implementations (pad-crop-flip, normalisation) and the raw split.
"""

import threading
import time

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxhash import data
from jaxhash.data import augment, pipeline
from tests.data.batch_checks import assert_batches_equal, normalised, take, valid_ids

# ----------------------------------------------------------------------------- training


def test_train_batch_shapes_dtypes_and_ranges(synth):
    info = data.get_dataset_info(synth)
    assert info.num_classes == 64 and info.num_train == 1024 and info.num_eval == 256
    assert info.hierarchy.classes == info.class_names and info.augment == "crop_flip"
    batch = next(data.host_train_batches(synth))
    assert set(batch) == {"image", "label", "coarse_label", "id", "mask"}
    assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.float32
    low = (0 - np.array(info.mean)) / np.array(info.std)
    high = (1 - np.array(info.mean)) / np.array(info.std)
    assert np.all(batch["image"] >= low - 1e-5) and np.all(batch["image"] <= high + 1e-5)
    assert batch["label"].dtype == np.int32 and batch["id"].dtype == np.int32
    assert batch["label"].min() >= 0 and batch["label"].max() < 64
    np.testing.assert_array_equal(batch["coarse_label"], batch["label"] // 16)
    assert batch["mask"].dtype == bool and batch["mask"].all()
    half = next(data.host_train_batches({**synth, "image_dtype": "bfloat16", "image_size": 48}))
    assert half["image"].dtype == jax.numpy.bfloat16 and half["image"].shape == (64, 48, 48, 3)


def test_train_is_deterministic_and_restarts_at_any_step(synth):
    # 1,024 examples / 64 per step: an epoch is 16 steps, so steps 13..19 cross one.
    fresh = take(data.host_train_batches(synth), 20)
    again = take(data.host_train_batches(synth), 20)
    for a, b in zip(fresh, again, strict=True):
        assert_batches_equal(a, b)
    resumed = take(data.host_train_batches(synth, start_step=13), 7)
    for a, b in zip(fresh[13:], resumed, strict=True):
        assert_batches_equal(a, b)
    other_seed = next(data.host_train_batches({**synth, "seed": 8}))
    assert not np.array_equal(other_seed["id"], fresh[0]["id"])
    # Each epoch visits every example once, in a new order.
    epochs = [np.concatenate([b["id"] for b in fresh[16 * e : 16 * e + 16]]) for e in (0,)]
    np.testing.assert_array_equal(np.sort(epochs[0]), np.arange(1024))


def test_augmentation_matches_a_numpy_oracle(synth):
    """Pad 4, crop 32x32 at offsets from the example's uniforms, flip: exactly."""
    info = data.get_dataset_info(synth)
    images = data.load_split(synth, "train").images
    batch = next(data.host_train_batches(synth, start_step=3))
    u = data.example_uniforms(7, np.zeros(64, np.int64), batch["id"])  # step 3 is in epoch 0
    padded = np.pad(images[batch["id"]], ((0, 0), (4, 4), (4, 4), (0, 0)))
    for row, (example_u, image) in enumerate(zip(u, padded, strict=True)):
        dy, dx = (np.floor(example_u[[augment.U_DY, augment.U_DX]] * 9).astype(int) - 4) + 4
        crop = image[dy : dy + 32, dx : dx + 32]
        if example_u[augment.U_FLIP] < 0.5:
            crop = crop[:, ::-1]
        np.testing.assert_allclose(batch["image"][row], normalised(crop, info), atol=1e-4)
    plain = next(data.host_train_batches({**synth, "augment": "none"}))
    np.testing.assert_allclose(plain["image"], normalised(images[plain["id"]], info), atol=1e-5)


def test_hosts_split_the_training_data(synth):
    """Two simulated hosts: disjoint shares of every epoch, together every example, and
    their halves concatenate to the one-host global batches (host-count invariant)."""
    shares, per_host = [], []
    for host in (0, 1):
        batches = take(data.host_train_batches(synth, process_index=host, process_count=2), 16)
        assert batches[0]["image"].shape[0] == 32  # the host's half of the global batch
        per_host.append(batches)
        shares.append(set(np.concatenate([b["id"] for b in batches]).tolist()))
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 1024
    single = take(data.host_train_batches(synth, process_index=0, process_count=1), 16)
    for whole, a, b in zip(single, *per_host, strict=True):
        np.testing.assert_array_equal(whole["id"], np.concatenate([a["id"], b["id"]]))
        np.testing.assert_array_equal(whole["image"], np.concatenate([a["image"], b["image"]]))
    with pytest.raises(ValueError, match="divisible by the number of hosts"):
        data.host_train_batches(
            {**synth, "global_batch_size": 63}, process_index=0, process_count=2
        )


def test_global_batches_are_sharded_over_the_data_axis(synth, mesh4):
    iterator = data.train_iterator(synth, mesh4, start_step=2)
    batch = next(iterator)
    host = next(data.host_train_batches(synth, start_step=2))
    for key, value in batch.items():
        assert isinstance(value, jax.Array)
        assert value.sharding == NamedSharding(mesh4, PartitionSpec("data"))
        assert value.shape[0] == 64
        assert [s.data.shape[0] for s in value.addressable_shards] == [16] * 4
        np.testing.assert_array_equal(np.asarray(value), host[key])
    iterator.close()
    with pytest.raises(ValueError, match="divisible by the 4 devices"):
        data.train_iterator({**synth, "global_batch_size": 66}, mesh4)


def test_streamed_training_is_deterministic_and_restartable(synth):
    stream = {**synth, "in_memory": False, "shuffle_buffer": 300}
    assert not data.open_source(stream).in_memory
    assert data.open_source(synth).in_memory  # 1,280 decoded images: 3.9 MB
    assert not data.open_source({**synth, "memory_limit_mb": 3}).in_memory
    fresh = take(data.host_train_batches(stream), 6)
    resumed = take(data.host_train_batches(stream, start_step=4), 2)
    for a, b in zip(fresh[4:], resumed, strict=True):
        assert_batches_equal(a, b)
    for a, b in zip(fresh, take(data.host_train_batches(stream), 6), strict=True):
        assert_batches_equal(a, b)
    for host in (0, 1):
        batch = next(data.host_train_batches(stream, process_index=host, process_count=2))
        start, stop = data.host_range(1024, host, 2)
        assert np.all((batch["id"] >= start) & (batch["id"] < stop))


# ----------------------------------------------------------------------------- evaluation


def test_eval_sees_every_example_once_and_maps_back(synth, mesh4):
    info = data.get_dataset_info(synth)
    batches = list(data.eval_batches(synth, "test", mesh4, batch_size=48))
    assert len(batches) == 6  # ceil(256 / 48)
    ids = valid_ids(batches)
    np.testing.assert_array_equal(np.sort(ids), np.arange(256))
    images = data.load_split(synth, "test").images
    for batch in batches:
        mask = np.asarray(batch["mask"])
        np.testing.assert_allclose(
            np.asarray(batch["image"])[mask],
            normalised(images[np.asarray(batch["id"])[mask]], info),
            atol=1e-5,
        )
        assert np.all(np.asarray(batch["id"])[~mask] == -1)
        assert np.all(np.asarray(batch["image"])[~mask] == 0)
    last = batches[-1]
    assert np.asarray(last["mask"]).sum() == 256 - 5 * 48


def test_eval_hosts_cover_the_split_without_overlap(synth):
    per_host = [
        list(data.host_eval_batches(synth, "test", 30, process_index=h, process_count=3))
        for h in range(3)
    ]
    assert len({len(b) for b in per_host}) == 1  # every host yields the same number
    ids = [valid_ids(b) for b in per_host]
    everything = np.concatenate(ids)
    np.testing.assert_array_equal(np.sort(everything), np.arange(256))


def test_streamed_eval_equals_in_memory_eval(synth):
    memory = list(data.host_eval_batches(synth, "test", 100))
    stream = list(data.host_eval_batches({**synth, "in_memory": False}, "test", 100))
    assert len(memory) == len(stream) == 3
    for a, b in zip(memory, stream, strict=True):
        assert_batches_equal(a, b)


# ----------------------------------------------------------------------------- prefetching


def test_prefetch_hands_over_errors_and_stops_its_thread():
    def numbers():
        yield 1
        yield 2
        raise RuntimeError("input broke")

    iterator = pipeline.prefetch(numbers(), 2)
    assert next(iterator) == 1 and next(iterator) == 2
    with pytest.raises(RuntimeError, match="input broke"):
        next(iterator)
    endless = pipeline.prefetch(iter(int, 1), 2)  # yields 0 forever
    assert next(endless) == 0
    endless.close()
    deadline = time.time() + 5
    while (
        any(t.name.startswith("jaxhash-prefetch") for t in threading.enumerate())
        and time.time() < deadline
    ):
        time.sleep(0.05)
    assert not any(t.name.startswith("jaxhash-prefetch") for t in threading.enumerate())
