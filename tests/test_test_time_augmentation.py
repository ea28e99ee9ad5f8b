"""Test-time views (jaxhash.test_time_augmentation) against NumPy views of the same model."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import test_time_augmentation as tta


class _PositionSensitive(nn.Module):
    """z depends on where things are in the image, so every view gives another output."""

    @nn.compact
    def __call__(self, images, train=False):
        return {"z": nn.Dense(4)(images.reshape(images.shape[0], -1))}


def _numpy_views(images):
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    return {
        "x": images,
        "mirror": images[:, :, ::-1],
        "up_left": padded[:, :h, :w],
        "down_right": padded[:, 2:, 2:],
    }


def test_views_average_the_outputs_of_the_numpy_views():
    model = _PositionSensitive()
    images = np.random.default_rng(0).normal(size=(3, 5, 6, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), jnp.asarray(images))

    def z(x):
        return np.asarray(model.apply(variables, jnp.asarray(x))["z"], np.float64)

    views = _numpy_views(images)
    mirror = {k: 0.5 * (z(v) + z(v[:, :, ::-1])) for k, v in views.items() if k != "mirror"}
    expected = {
        "none": z(images),
        "flip": mirror["x"],
        "flip_translate": 0.5 * mirror["x"] + 0.25 * (mirror["up_left"] + mirror["down_right"]),
    }
    for name, value in expected.items():
        got = jax.jit(tta.encoder(model, name))(variables, jnp.asarray(images))
        np.testing.assert_allclose(np.asarray(got), value, rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected["flip_translate"], expected["none"], atol=1e-3)


def test_unknown_views_name_the_field():
    with pytest.raises(ValueError, match=r"config\.eval\.tta must be one of"):
        tta.encoder(_PositionSensitive(), "rotate")
