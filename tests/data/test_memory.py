"""In-memory data (jaxhash.data.memory): per-example uniforms."""

import numpy as np

from jaxhash import data
from jaxhash.data import augment


def test_example_uniforms_are_stateless_and_uniform():
    ids = np.arange(10_000)
    u = data.example_uniforms(3, np.zeros_like(ids), ids)
    assert u.shape == (10_000, augment.NUM_UNIFORMS) and u.dtype == np.float32
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    np.testing.assert_array_equal(u[5:9], data.example_uniforms(3, np.zeros(4, int), ids[5:9]))
    assert not np.array_equal(u[:4], data.example_uniforms(3, np.ones(4, int), ids[:4]))
    assert not np.array_equal(u[:4], data.example_uniforms(4, np.zeros(4, int), ids[:4]))
