"""Hashing networks (jaxhash.models): shapes, dtypes, heads, backbone loading."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import models
from jaxhash.models import create_model, init_variables, load_backbone


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "stem", "shape"),
    [
        ("small_cnn", "cifar", (32, 32, 3)),
        ("resnet18", "cifar", (32, 32, 3)),
        ("resnet18", "imagenet", (64, 64, 3)),
    ],
)
def test_outputs(name, stem, shape):
    """codes [B, K] and logits [B, C] in float32, in train and eval mode."""
    model = create_model(name, 16, 10, stem=stem, width=4)
    variables = init_variables(model, jax.random.key(0), shape)
    images = jax.random.normal(jax.random.key(1), (2, *shape))
    out = model.apply(variables, images, train=False)
    assert out["z"].shape == (2, 16) and out["logits"].shape == (2, 10)
    assert out["z"].dtype == jnp.float32
    out, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert set(updates) == {"batch_stats"} and np.isfinite(out["z"]).all()


@pytest.mark.slow
def test_initialiser_compile_options_keep_the_draws_and_fall_back(monkeypatch):
    """Variables compiled with INIT_COMPILER_OPTIONS equal the default build's up to rounding
    (at most 4 float32 ulp measured; 8 allowed); a backend that rejects the options gets the
    default build, bit for bit."""
    model = create_model("small_cnn", 16, 10, width=4)
    key, images = jax.random.key(3), jnp.zeros((2, 32, 32, 3))
    default = jax.jit(functools.partial(model.init, train=False))(key, images)
    fast = init_variables(model, key, (32, 32, 3))
    for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(default), strict=True):
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_max_ulp(got, want, maxulp=8)
    monkeypatch.setattr(models, "INIT_COMPILER_OPTIONS", {"no_such_xla_option": 1})
    fallback = init_variables(model, key, (32, 32, 3))
    for got, want in zip(jax.tree.leaves(fallback), jax.tree.leaves(default), strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_tanh_head_bf16_and_no_classifier():
    """tanh codes lie in [-1, 1]; bf16 compute keeps float32 params and outputs."""
    model = create_model("small_cnn", 8, 0, width=4, hash_activation="tanh", dtype=jnp.bfloat16)
    variables = init_variables(model, jax.random.key(0), (32, 32, 3))
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(variables["params"]))
    out = model.apply(
        variables, 10 * jax.random.normal(jax.random.key(1), (2, 32, 32, 3)), train=False
    )
    assert set(out) == {"z"} and out["z"].dtype == jnp.float32
    assert float(jnp.max(jnp.abs(out["z"]))) <= 1.0


def _param_shapes(model):
    """Parameter shapes without running anything (abstract evaluation of init)."""
    images = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)


def test_classifier_reads_codes_by_default():
    """With classifier_input='codes' the classifier kernel is [K, C]; 'features' [F, C]."""
    on_codes = _param_shapes(create_model("small_cnn", 12, 5, width=8))
    assert on_codes["params"]["classifier"]["kernel"].shape == (12, 5)
    on_features = _param_shapes(
        create_model("small_cnn", 12, 5, width=8, classifier_input="features")
    )
    assert on_features["params"]["classifier"]["kernel"].shape == (32, 5)


def test_resnet_sizes():
    """Parameter counts of the standard backbones (CIFAR stem, 64 bits, 100 classes)."""

    def count(model):
        return sum(
            np.prod(x.shape) for x in jax.tree_util.tree_leaves(_param_shapes(model)["params"])
        )

    # ResNet-18: 11.17M backbone + hash 512x64+64 + classifier 64x100+100.
    assert count(create_model("resnet18", 64, 100)) == 11_208_164
    assert count(create_model("resnet50", 64, 100)) == 23_637_988


@pytest.mark.slow
def test_load_backbone(tmp_path):
    """A backbone saved by orbax loads into a model with other heads; a mismatch is named."""
    import orbax.checkpoint as ocp

    source = init_variables(
        create_model("small_cnn", 32, 100, width=4), jax.random.key(0), (32, 32, 3)
    )
    ocp.StandardCheckpointer().save(tmp_path / "ckpt", source)
    ocp.StandardCheckpointer().wait_until_finished()
    target_model = create_model("small_cnn", 16, 10, width=4)
    target = init_variables(target_model, jax.random.key(1), (32, 32, 3))
    loaded = load_backbone(target, str(tmp_path / "ckpt"))
    chex_equal = jax.tree_util.tree_map(
        np.testing.assert_array_equal, loaded["params"]["backbone"], source["params"]["backbone"]
    )
    del chex_equal
    np.testing.assert_array_equal(
        loaded["params"]["hash"]["kernel"], target["params"]["hash"]["kernel"]
    )
    wider = _param_shapes(create_model("small_cnn", 16, 10, width=8))
    with pytest.raises(ValueError, match="do not match"):
        load_backbone(wider, str(tmp_path / "ckpt"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        create_model("vgg", 16)
    with pytest.raises(ValueError, match="bits"):
        create_model("small_cnn", 0)
