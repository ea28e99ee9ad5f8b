"""CIFAR-100 (jaxhash.data.datasets.cifar100) through TFDS: the committed-format sample, the
official archives' checks, provenance, and TFDS's download path under mock data.

CIFAR-100's images may not be committed: tests/conftest.py builds a sample in the official
format (labels and layout real, pixels random).
"""

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxhash import data
from jaxhash.data import builders
from jaxhash.semantics import known
from tests.data.batch_checks import normalised, take


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


def test_empty_manual_dir_is_named(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="holds no CIFAR-100 archive"):
        data.get_dataset_info(
            {"name": "cifar100", "manual_dir": str(tmp_path), "data_dir": str(tmp_path)}
        )


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
    assert info.class_glosses["maple_tree"].startswith("any of numerous trees")
    assert set(info.class_glosses) == set(known.CIFAR100_CLASSES)


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
