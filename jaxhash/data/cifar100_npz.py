"""CIFAR-100 as an ``.npz``: its checks, and its arrays read with NumPy alone.

The file holds ``x_train``, ``y_train_fine``, ``y_train_coarse``, ``x_test``, ``y_test_fine``,
``y_test_coarse`` (``x_*`` uint8 ``[N, 32, 32, 3]``, ``y_*`` integer labels in official label
order), as ``numpy.savez`` writes them. TFDS's ``cifar100_local`` builder
(:mod:`jaxhash.data.builders`) prepares a TFDS data set from it; ``config.data.reader="numpy"``
reads it straight into host memory with the functions here, with no TensorFlow.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

NPZ_KEYS = ("x_train", "y_train_fine", "y_train_coarse", "x_test", "y_test_fine", "y_test_coarse")
SPLITS = ("train", "test")


def check_npz_file(path: str | os.PathLike) -> None:
    """A FileNotFoundError or ValueError naming ``path`` unless it is a readable zip archive
    (what ``numpy.savez`` writes): cheap, without reading the arrays."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"CIFAR-100 .npz {path} does not exist; check the path.")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not an .npz archive (not a zip file: truncated, or another format); "
            "write it again with numpy.savez(path, x_train=..., y_train_fine=..., ...)."
        )


def _open_npz(path: str | os.PathLike):
    """``numpy.load`` of the file, after checking that it holds every array of NPZ_KEYS."""
    check_npz_file(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path} cannot be read as an .npz ({err}); write it again with "
            "numpy.savez(path, x_train=..., y_train_fine=..., ...)."
        ) from err
    missing = [k for k in NPZ_KEYS if k not in z.files]
    if missing:
        z.close()
        raise ValueError(
            f"{path} lacks the arrays {missing}; a CIFAR-100 .npz needs {list(NPZ_KEYS)} "
            "(x_*: uint8 images [N, 32, 32, 3]; y_*: integer labels [N])."
        )
    return z


def split_sizes(path: str | os.PathLike) -> dict[str, int]:
    """Examples per split of a CIFAR-100 ``.npz`` (from its fine labels; the images are checked
    when a split is read)."""
    with _open_npz(path) as z:
        try:
            return {split: len(z[f"y_{split}_fine"]) for split in SPLITS}
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"{path}: its label arrays cannot be read ({err}); write it again with "
                "numpy.savez and plain numeric arrays."
            ) from err


def read_cifar100_npz(path: str | os.PathLike, splits=SPLITS) -> dict[str, np.ndarray]:
    """The arrays of ``splits`` of a CIFAR-100 ``.npz`` (``x_train`` uint8 [N, 32, 32, 3],
    ``y_train_fine``, ...), checked; the file must hold every split's arrays."""
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"a CIFAR-100 .npz has the splits {list(SPLITS)}; got {unknown}.")
    with _open_npz(path) as z:
        try:  # materialise once: npz decompresses per access
            arrays = {k: z[k] for k in NPZ_KEYS if k.split("_")[1] in splits}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"{path}: its arrays cannot be read ({err}); the file is damaged or holds "
                "object arrays: write it again with numpy.savez and plain numeric arrays."
            ) from err
    for split in splits:
        x = arrays[f"x_{split}"]
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3) or not len(x):
            raise ValueError(
                f"{path}: x_{split} must be uint8 [N, 32, 32, 3] with N > 0; got {x.dtype} "
                f"{x.shape}."
            )
        for kind, count in (("fine", 100), ("coarse", 20)):
            y = arrays[f"y_{split}_{kind}"]
            integer = np.issubdtype(y.dtype, np.integer)
            if not integer or y.shape != (x.shape[0],) or y.min() < 0 or y.max() >= count:
                raise ValueError(
                    f"{path}: y_{split}_{kind} must be [N] integer labels in [0, {count}); got "
                    f"{y.dtype} {y.shape}."
                )
    return arrays
