"""The fast recipe's network pieces: the whitening stem, identity-initialised convolutions,
the fast backbones' shapes and their errors (jaxhash.models)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import models


def _correlated_images(n=64, seed=0):
    """Images whose channels and neighbouring pixels are strongly correlated."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 9, 9, 1))
    smooth = (base[:, 1:, 1:] + base[:, :-1, :-1] + base[:, 1:, :-1]) / 3
    mix = np.array([[1.0, 0.8, 0.3]])
    return (smooth * mix + 0.1 * rng.normal(size=(n, 8, 8, 3))).astype(np.float32)


def test_whitening_kernel_whitens_the_patches_float64_oracle():
    images = _correlated_images()
    kernel = np.asarray(models.whitening_kernel(images, eps=1e-6), np.float64)
    assert kernel.shape == (2, 2, 3, 24)
    patches = np.stack(
        [images[:, dy : 7 + dy, dx : 7 + dx] for dy in range(2) for dx in range(2)], axis=3
    ).reshape(-1, 12)
    patches = patches.astype(np.float64) - patches.mean(axis=0)
    filters = kernel.reshape(12, 24)
    out = patches @ filters
    covariance = out.T @ out / len(out)
    # The first 12 outputs are white (identity covariance); the last 12 their negations.
    np.testing.assert_allclose(covariance[:12, :12], np.eye(12), atol=2e-3)
    np.testing.assert_allclose(filters[:, 12:], -filters[:, :12])
    # Applied as the stem's convolution, the same numbers come out.
    conv = jax.lax.conv_general_dilated(
        jnp.asarray(images),
        jnp.asarray(kernel, jnp.float32),
        (1, 1),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    raw = np.stack(
        [images[:, dy : 7 + dy, dx : 7 + dx] for dy in range(2) for dx in range(2)], axis=3
    ).reshape(-1, 12)
    np.testing.assert_allclose(np.asarray(conv).reshape(-1, 24), raw @ filters, atol=1e-3)


def test_whitening_kernel_rejects_empty_input():
    with pytest.raises(ValueError, match="N >= 1"):
        models.whitening_kernel(np.zeros((0, 8, 8, 3), np.float32))


def test_identity_conv_init_is_a_dirac_on_the_first_channels():
    kernel = np.asarray(models.identity_conv_init()(jax.random.key(0), (3, 3, 4, 6)))
    for i in range(4):
        expected = np.zeros((3, 3, 4))
        expected[1, 1, i] = 1.0
        np.testing.assert_array_equal(kernel[:, :, :, i], expected)
    assert np.abs(kernel[:, :, :, 4:]).sum() > 0  # the extra filters keep their random draws


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "widths", "features"), [("fast_cnn", (8, 16, 24), 24), ("fast_resnet", (8, 8, 16), 16)]
)
def test_fast_backbone_shapes(name, widths, features):
    model = models.create_model(name, 16, 10, widths=widths)
    variables = models.init_variables(model, jax.random.key(0), (32, 32, 3))
    backbone = variables["params"]["backbone"]
    assert backbone["whiten"]["kernel"].shape == (2, 2, 3, 24)
    assert all("scale" not in v for k, v in backbone.items() if k.startswith("BatchNorm"))
    convs = sorted(k for k in backbone if k.startswith("Conv"))
    assert len(convs) == (9 if name == "fast_resnet" else 6)
    assert variables["params"]["hash"]["kernel"].shape == (features, 16)
    out = model.apply(variables, jnp.zeros((2, 32, 32, 3)), train=False)
    assert out["z"].shape == (2, 16) and out["logits"].shape == (2, 10)


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("fast_cnn", 1_960_000, 1_980_000), ("fast_resnet", 9_900_000, 9_950_000)],
)
def test_default_shapes_have_airbench_sizes(name, low, high):
    """airbench94's 2.0 M parameters; the 96-shape (128 / 384 / 512, residual pairs) ~9.9 M."""
    model = models.create_model(name, 64, 100)
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
    )
    leaves = jax.tree_util.tree_leaves(variables["params"]["backbone"])
    assert low < sum(np.prod(x.shape) for x in leaves) < high


def test_set_whitening_replaces_the_stem():
    model = models.create_model("fast_cnn", 8, 0, widths=(4, 4, 4))
    variables = models.init_variables(model, jax.random.key(0), (16, 16, 3))
    kernel = models.whitening_kernel(_correlated_images())
    out = models.set_whitening(variables, kernel)
    np.testing.assert_array_equal(out["params"]["backbone"]["whiten"]["kernel"], kernel)
    assert not np.any(out["params"]["backbone"]["whiten"]["bias"])
    with pytest.raises(ValueError, match="does not fit"):
        models.set_whitening(variables, kernel[:, :, :, :12])


def test_width_errors_name_the_field():
    with pytest.raises(ValueError, match=r"model\.widths must list 3"):
        models.create_model("fast_cnn", 8, widths=(64, 256))
    with pytest.raises(ValueError, match=r"model\.widths must list 3"):
        models.create_model("fast_resnet", 8, widths=(64, 0, 8))
    with pytest.raises(ValueError, match=r"takes model\.width instead"):
        models.create_model("small_cnn", 8, widths=(8, 8, 8))


@pytest.mark.slow
@pytest.mark.parametrize("size", [(31, 31), (16, 15), (2, 2)])
def test_max_pool_2x2_equals_flax_valid_pooling_with_its_gradient(size):
    """Same values as ``nn.max_pool`` (odd edges dropped); without ties, the same gradient."""
    import flax.linen as nn

    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, *size, 5)), jnp.float32)
    ours = models.max_pool_2x2(x)
    flax = nn.max_pool(x, (2, 2), strides=(2, 2))
    np.testing.assert_array_equal(np.asarray(ours), np.asarray(flax))
    weights = jnp.asarray(np.random.default_rng(1).normal(size=ours.shape), jnp.float32)
    grad_ours = jax.grad(lambda v: jnp.sum(weights * models.max_pool_2x2(v)))(x)
    grad_flax = jax.grad(lambda v: jnp.sum(weights * nn.max_pool(v, (2, 2), strides=(2, 2))))(x)
    np.testing.assert_array_equal(np.asarray(grad_ours), np.asarray(grad_flax))
