"""CIFAR-100 read from an .npz with NumPy alone (config.data.reader="numpy")."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxhash import data
from jaxhash.data import cifar100_npz

ROOT = Path(__file__).resolve().parents[2]


def _config(npz, tmp_path, **changes):
    return {
        "name": "cifar100",
        "manual_dir": str(npz),
        "data_dir": str(tmp_path / "tfds"),
        "reader": "numpy",
        **changes,
    }


def _by_file_name(split):
    order = np.argsort(split.file_names)
    return split.file_names[order], split.images[order], split.labels[order], split.coarse[order]


def test_the_numpy_reader_holds_the_rows_of_the_tfds_reader(cifar_sample, tmp_path):
    """The same examples under the same ids ("train_00042" is row 42 of x_train) and the same
    label space; only the order of the rows differs (TFDS shuffles them when it prepares)."""
    held = ["apple", "whale"]
    npy = data.get_dataset_info(_config(cifar_sample, tmp_path, holdout_classes=held))
    tfds = data.get_dataset_info(
        _config(cifar_sample, tmp_path, holdout_classes=held, reader="tfds")
    )
    for name in ("class_names", "coarse_names", "coarse_of_fine", "splits", "num_train"):
        assert getattr(npy, name) == getattr(tfds, name), name
    assert (npy.tfds_name, npy.image_shape, npy.augment) == (
        "cifar100_npz",
        (32, 32, 3),
        "crop_flip",
    )
    assert npy.hierarchy.classes == tfds.hierarchy.classes
    for split in ("train", "test"):
        a = npy.source.load(split)
        b = tfds.source.load(split)
        for x, y in zip(_by_file_name(a), _by_file_name(b), strict=True):
            np.testing.assert_array_equal(x, y)
        arrays = cifar100_npz.read_cifar100_npz(cifar_sample, (split,))
        np.testing.assert_array_equal(a.images, arrays[f"x_{split}"])  # the file's order
        assert a.file_names[42] == f"{split}_00042"
        for subset in ("seen", "holdout"):
            ids_a, ids_b = npy.source.pool(split, subset), tfds.source.pool(split, subset)
            assert sorted(a.file_names[ids_a]) == sorted(b.file_names[ids_b])


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"name": "synthetic_hierarchy"}, "set data.name='cifar100'"),
        ({"manual_dir": None}, "data.manual_dir to the .npz"),
        ({"in_memory": False}, "needs reader='tfds'"),
        ({"reader": "pandas"}, "one of ('tfds', 'numpy')"),
    ],
)
def test_the_numpy_reader_names_what_it_cannot_read(cifar_sample, tmp_path, changes, needle):
    with pytest.raises(ValueError, match=r"data\.reader|config key") as error:
        data.get_dataset_info(_config(cifar_sample, tmp_path, **changes))
    assert needle in str(error.value)


def test_the_numpy_reader_rejects_archives_and_bad_arrays(cifar_sample, tmp_path):
    archive = tmp_path / "cifar-100-python.tar.gz"
    archive.write_bytes(b"not read")
    with pytest.raises(ValueError, match=r"reads an \.npz") as error:
        data.get_dataset_info(_config(archive, tmp_path))
    assert "data.reader='tfds'" in str(error.value)
    arrays = dict(np.load(cifar_sample))
    for key, value, needle in [
        ("y_train_fine", arrays["y_train_fine"].astype(np.float32), "integer labels"),
        ("x_test", arrays["x_test"][:0], "N > 0"),
        ("x_train", arrays["x_train"][..., :1], "uint8 [N, 32, 32, 3]"),
    ]:
        bad = tmp_path / f"bad_{key}.npz"
        np.savez(bad, **{**arrays, key: value})
        with pytest.raises(ValueError) as error:
            data.get_dataset_info(_config(bad, tmp_path))
        assert needle in str(error.value)
        assert str(bad) in str(error.value) and key in str(error.value)
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "y_test_coarse"})
    with pytest.raises(ValueError, match=r"lacks the arrays \['y_test_coarse'\]"):
        data.get_dataset_info(_config(missing, tmp_path))


@pytest.mark.slow
def test_a_study_row_trains_without_tensorflow(cifar_sample, tmp_path):
    """With TensorFlow, TFDS and nltk unimportable: a study row trains and evaluates from the
    .npz (reader "numpy"), and a data set read through TFDS fails with one error naming the
    missing package and the numpy reader."""
    out = tmp_path / "study.json"
    code = f"""
import sys
for name in ("tensorflow", "tensorflow_datasets", "nltk"):
    sys.modules[name] = None  # import raises ImportError
from studies import reproduce_cifar100 as study
study.main(["--data", {str(cifar_sample)!r}, "--reader", "numpy", "--epochs", "0.11",
            "--workdir", {str(tmp_path / "runs")!r}, "--out", {str(out)!r},
            "--rows", "ce_sim,16,0"])
from jaxhash import config, data
try:
    data.get_dataset_info(config.default_config())
except ImportError as err:
    print("TFDS:", err)
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert (row["method"], row["bits"], row["reader"]) == ("ce_sim", 16, "numpy")
    assert row["steps"] == 1  # ceil(0.11 x 500 / 256)
    assert row["num_queries"] == row["num_database"] == 600
    assert 0 <= row["metrics"]["mAHP@250"] <= 1
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("TFDS:")]
    assert "TensorFlow cannot be imported" in line and "config.data.reader='numpy'" in line
