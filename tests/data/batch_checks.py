"""Checks on host batches shared by the data tests (imported, not collected)."""

import numpy as np


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def valid_ids(batches):
    return np.concatenate([np.asarray(b["id"])[np.asarray(b["mask"])] for b in batches])


def normalised(images, info):
    return ((images / 255.0 - np.array(info.mean)) / np.array(info.std)).astype(np.float32)
