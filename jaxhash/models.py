"""Hashing networks: a backbone, a K-bit hash head and a classifier head (Flax linen).

The paper's model is "a CNN with a bottleneck layer of K units" (arXiv 2005.04917): features ->
z in R^K (the codes are sign(z)) -> class logits. Backbones:

* ``resnet18`` / ``resnet50`` (He et al., 2016) with a CIFAR stem (3x3 conv, no pooling, for
  32x32 inputs) or the ImageNet stem (7x7/2 conv + 3x3/2 max-pool, for 224x224).
* ``small_cnn``: a fast CNN for CPUs in the spirit of the fastest CIFAR trainers (Page's
  ResNet-9 / Jordan's airbench): conv-BN-GELU blocks with max-pooling, three stages.

Parameters are float32; ``dtype=jnp.bfloat16`` computes activations in bfloat16 (the heads'
outputs are returned in float32, and the losses work in float32 anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Any


class ResNetBlock(nn.Module):
    """Basic residual block: two 3x3 convolutions."""

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x):
        residual = x
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(x)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters, (3, 3))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters, (1, 1), (self.strides, self.strides))(residual)
            residual = self.norm()(residual)
        return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
    """Bottleneck residual block: 1x1, 3x3, 1x1 (4x expansion)."""

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x):
        residual = x
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(y)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters * 4, (1, 1))(y)
        y = self.norm(scale_init=nn.initializers.zeros_init())(y)
        if residual.shape != y.shape:
            residual = self.conv(self.filters * 4, (1, 1), (self.strides, self.strides))(residual)
            residual = self.norm()(residual)
        return nn.relu(residual + y)


class ResNet(nn.Module):
    """ResNet backbone returning pooled features ``[B, F]``."""

    stage_sizes: Sequence[int]
    block_cls: ModuleDef
    stem: str = "cifar"
    width: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        if self.stem == "imagenet":
            x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
            x = nn.relu(norm(name="stem_bn")(x))
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        elif self.stem == "cifar":
            x = conv(self.width, (3, 3), name="stem_conv")(x)
            x = nn.relu(norm(name="stem_bn")(x))
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet'; got {self.stem!r}.")
        for i, size in enumerate(self.stage_sizes):
            for j in range(size):
                strides = 2 if i > 0 and j == 0 else 1
                x = self.block_cls(self.width * 2**i, conv=conv, norm=norm, strides=strides)(x)
        return jnp.mean(x, axis=(1, 2))


class SmallCNN(nn.Module):
    """Fast CPU backbone: stem conv, then three stages of conv-BN-GELU + 2x2 max-pool."""

    widths: Sequence[int] = (32, 64, 128)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        conv = functools.partial(nn.Conv, kernel_size=(3, 3), use_bias=False, dtype=self.dtype)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.9,
            epsilon=1e-5,
            dtype=self.dtype,
        )
        x = nn.gelu(norm()(conv(self.widths[0] // 2)(x)))
        for width in self.widths:
            x = nn.gelu(norm()(conv(width)(x)))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = nn.gelu(norm()(conv(width)(x)))
        return jnp.max(x, axis=(1, 2))


BACKBONES = {
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=ResNetBlock),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock),
    "small_cnn": SmallCNN,
}


class HashingModel(nn.Module):
    """Backbone -> hash layer z (K units) -> classifier.

    ``__call__(images [B, H, W, 3])`` returns ``{"z": float32 [B, K]}`` (the real-valued hash
    layer; the codes are sign(z)) and, with a classifier, ``"logits": float32 [B, C]``.

    Attributes:
      backbone: a module mapping images ``[B, H, W, 3]`` to features ``[B, F]``.
      bits: K, the code length.
      num_classes: classifier outputs (0: no classifier head).
      hash_activation: "linear" (default: z unbounded, the KL term's corners at +-1) or "tanh".
      classifier_input: "codes" (default: the classifier reads z, so cross-entropy shapes the
        codes through the bottleneck, as in the paper's "bottleneck layer of K units") or
        "features".
    """

    backbone: nn.Module
    bits: int
    num_classes: int = 0
    hash_activation: str = "linear"
    classifier_input: str = "codes"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, images, train: bool = True) -> dict[str, jax.Array]:
        if self.hash_activation not in ("linear", "tanh"):
            raise ValueError(
                f"hash_activation must be 'linear' or 'tanh'; got {self.hash_activation!r}."
            )
        if self.classifier_input not in ("codes", "features"):
            raise ValueError(
                f"classifier_input must be 'codes' or 'features'; got {self.classifier_input!r}."
            )
        features = self.backbone(images.astype(self.dtype), train=train)
        z = nn.Dense(self.bits, dtype=self.dtype, name="hash")(features).astype(jnp.float32)
        if self.hash_activation == "tanh":
            z = jnp.tanh(z)
        out = {"z": z}
        if self.num_classes:
            head_input = z if self.classifier_input == "codes" else features
            logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(head_input)
            out["logits"] = logits.astype(jnp.float32)
        return out


def create_model(
    name: str,
    bits: int,
    num_classes: int = 0,
    *,
    stem: str = "cifar",
    width: int | None = None,
    hash_activation: str = "linear",
    classifier_input: str = "codes",
    dtype: Any = jnp.float32,
) -> HashingModel:
    """A :class:`HashingModel` with backbone ``name`` in ``BACKBONES``.

    ``stem`` ("cifar" or "imagenet") and ``width`` apply to the ResNets; ``width`` to the small
    CNN scales its three stages (default 32, 64, 128).
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; known: {sorted(BACKBONES)}.")
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive int; got {bits!r}.")
    if name == "small_cnn":
        widths = (32, 64, 128) if width is None else (width, 2 * width, 4 * width)
        backbone = SmallCNN(widths=widths, dtype=dtype)
    else:
        backbone = BACKBONES[name](stem=stem, width=width or 64, dtype=dtype)
    return HashingModel(
        backbone=backbone,
        bits=bits,
        num_classes=num_classes,
        hash_activation=hash_activation,
        classifier_input=classifier_input,
        dtype=dtype,
    )


# XLA compiles an initialiser's random draws (one inlined copy of threefry's rounds per
# parameter) slowly when it optimises them: ~10 s for the small CNN on a CPU, for a program that
# runs once. At backend optimisation level 0 it compiles in ~1 s; the draws are the same up to
# rounding (~4% of the values differ, by at most 4 float32 ulp measured: floating-point
# contraction in the normal sampler), and a seed still gives the same variables on a backend.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def run_initialiser(init_fn: Callable, *args):
    """``jax.jit(init_fn)(*args)``, compiled with ``INIT_COMPILER_OPTIONS`` (the defaults where
    a backend does not know the option): for programs that run once, such as ``model.init``."""
    lowered = jax.jit(init_fn).lower(*args)
    try:
        compiled = lowered.compile(compiler_options=INIT_COMPILER_OPTIONS)
    except jax.errors.JaxRuntimeError:  # a backend without this XLA option
        compiled = lowered.compile()
    return compiled(*args)


def init_variables(model: HashingModel, key: jax.Array, image_shape: Sequence[int]):
    """Model variables (``params``, ``batch_stats``) for images of ``image_shape`` [H, W, C]."""
    dummy = jnp.zeros((2, *image_shape), jnp.float32)
    return run_initialiser(functools.partial(model.init, train=False), key, dummy)


def load_backbone(variables, path: str) -> dict:
    """Replace the backbone's parameters and batch statistics by those of a checkpoint.

    ``path``: an orbax checkpoint folder holding a pytree with ``params`` and optionally
    ``batch_stats``, whose ``backbone`` subtrees match this model's (e.g. saved from a
    ``HashingModel`` with the same backbone, any bits or classes). Heads stay as initialised.
    """
    import orbax.checkpoint as ocp

    restored = ocp.StandardCheckpointer().restore(path)
    out = jax.tree_util.tree_map(lambda x: x, dict(variables))
    for collection in ("params", "batch_stats"):
        if collection not in out:
            continue
        source = restored.get(collection, {}).get("backbone")
        if source is None:
            raise ValueError(
                f"checkpoint {path} has no {collection}['backbone'] subtree to load; it has "
                f"{sorted(restored.get(collection, {}))}."
            )
        target = out[collection]["backbone"]
        shapes = jax.tree_util.tree_map(jnp.shape, target)
        if jax.tree_util.tree_structure(source) != jax.tree_util.tree_structure(target) or (
            jax.tree_util.tree_map(jnp.shape, source) != shapes
        ):
            raise ValueError(
                f"checkpoint {path}: the backbone's {collection} do not match this model's "
                "(a different backbone or width?)."
            )
        out[collection] = {
            **out[collection],
            "backbone": jax.tree_util.tree_map(
                lambda new, old: jnp.asarray(new, old.dtype), source, target
            ),
        }
    return out
