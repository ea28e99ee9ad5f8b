"""Hashing networks: a backbone, a K-bit hash head and a classifier head (Flax linen).

The paper's model is "a CNN with a bottleneck layer of K units" (arXiv 2005.04917): features ->
z in R^K (the codes are sign(z)) -> class logits. Backbones:

* ``resnet18`` / ``resnet50`` (He et al., 2016) with a CIFAR stem (3x3 conv, no pooling, for
  32x32 inputs) or the ImageNet stem (7x7/2 conv + 3x3/2 max-pool, for 224x224).
* ``small_cnn``: a fast CNN for CPUs in the spirit of the fastest CIFAR trainers (Page's
  ResNet-9 / Jordan's airbench): conv-BN-GELU blocks with max-pooling, three stages.
* ``fast_cnn`` / ``fast_resnet``: the network shapes of Jordan's fast CIFAR trainers
  (airbench94 / airbench96, arXiv 2404.00498), for the fast recipe (``configs/cifar100_fast.py``):
  a frozen 2x2 whitening stem computed from the training images (:func:`whitening_kernel`),
  then three blocks of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU (``fast_resnet``
  adds a second conv pair with a skip), identity-initialised convolutions, BatchNorm without
  a learned scale, a global max-pool.

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


def identity_conv_init(base: Callable | None = None) -> Callable:
    """Conv kernel ``[kh, kw, in, out]`` initialiser: output channel ``i < min(in, out)`` is
    the identity of input channel ``i`` (a centred Dirac), the others are ``base``'s draws
    (default: LeCun normal).

    airbench's convolutions start as identities (PyTorch ``dirac_`` on the first ``in``
    filters), so a deep stack starts close to passing its input through.
    """

    draw = base or nn.initializers.lecun_normal()

    def init(key, shape, dtype=jnp.float32):
        kh, kw, cin, cout = shape
        kernel = draw(key, shape, dtype)
        n = min(cin, cout)
        kernel = kernel.at[:, :, :, :n].set(0.0)
        channels = jnp.arange(n)
        return kernel.at[kh // 2, kw // 2, channels, channels].set(1.0)

    return init


# The whitening stem: patches of WHITEN_PATCH x WHITEN_PATCH pixels, 2 * 3 * 2 * 2 = 24 outputs.
WHITEN_PATCH = 2
WHITEN_EPS = 5e-4


def whitening_kernel(images, patch: int = WHITEN_PATCH, eps: float = WHITEN_EPS) -> jax.Array:
    """Conv kernel ``[p, p, C, 2 p^2 C]`` that whitens the ``p x p`` patches of ``images``.

    With the patch covariance ``Sigma = V diag(lambda) V^T`` (patches of ``images`` ``[N, H, W,
    C]``, flattened in the kernel's ``(y, x, c)`` order), filter ``j`` is
    ``v_j / sqrt(lambda_j + eps)`` and filter ``j + p^2 C`` its negation, so that a GELU after
    the stem keeps both signs of every whitened direction (airbench, arXiv 2404.00498).
    """
    x = jnp.asarray(images, jnp.float32)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"whitening needs images [N, H, W, C] with N >= 1; got {x.shape}.")
    _, h, w, c = x.shape
    rows = [
        x[:, dy : h - patch + 1 + dy, dx : w - patch + 1 + dx, :]
        for dy in range(patch)
        for dx in range(patch)
    ]
    patches = jnp.stack(rows, axis=3).reshape(-1, patch * patch * c)  # (y, x, c) order
    patches = patches - patches.mean(axis=0)
    covariance = patches.T @ patches / patches.shape[0]
    eigenvalues, eigenvectors = jnp.linalg.eigh(covariance)
    filters = eigenvectors / jnp.sqrt(jnp.maximum(eigenvalues, 0.0) + eps)
    kernel = filters.reshape(patch, patch, c, patch * patch * c)
    return jnp.concatenate([kernel, -kernel], axis=-1)


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """``nn.max_pool(x, (2, 2), strides=(2, 2))`` (VALID: an odd last row or column is dropped)
    as a reshape and a max over the two window axes.

    The same values; its gradient is XLA's of a reduction, which on the CPU trains the fast
    backbones about 1.2x faster per image than the windowed reduction's select-and-scatter
    (benchmarks/RESULTS.md, "Train step"). Where a window holds tied maxima the gradient is
    shared among them instead of given to the first.
    """
    b, h, w, c = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, : 2 * h2, : 2 * w2]
    return x.reshape(b, h2, 2, w2, 2, c).max(axis=(2, 4))


class FastCNN(nn.Module):
    """The backbone of the fast recipe (airbench94 / airbench96 shapes): ``[B, H, W, 3]`` ->
    features ``[B, widths[-1]]``.

    Whitening stem (2x2 conv, no padding, 24 channels, its kernel set from the data by
    :func:`whitening_kernel`) -> GELU -> per width: conv3x3 -> max-pool 2 -> BN -> GELU ->
    conv3x3 -> BN -> GELU (``residual``: then conv3x3 -> BN -> GELU -> conv3x3 -> BN -> GELU
    added to the block's first activation) -> global max-pool. Convolutions have no bias and
    start as identities; BatchNorm has no scale (airbench freezes it at 1), momentum 0.6 in
    PyTorch's convention.
    """

    widths: Sequence[int] = (64, 256, 256)
    residual: bool = False
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = True):
        conv = functools.partial(
            nn.Conv,
            kernel_size=(3, 3),
            use_bias=False,
            kernel_init=identity_conv_init(),
            dtype=self.dtype,
        )
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=0.4,  # running = 0.4 running + 0.6 batch
            epsilon=1e-5,
            use_scale=False,
            dtype=self.dtype,
        )
        channels = 2 * WHITEN_PATCH * WHITEN_PATCH * x.shape[-1]
        x = nn.Conv(
            channels,
            (WHITEN_PATCH, WHITEN_PATCH),
            padding="VALID",
            dtype=self.dtype,
            name="whiten",
        )(x)
        x = nn.gelu(x)
        for width in self.widths:
            x = max_pool_2x2(conv(width)(x))
            x = nn.gelu(norm()(x))
            y = nn.gelu(norm()(conv(width)(x)))
            if self.residual:
                y = x + nn.gelu(norm()(conv(width)(y)))
            x = y
        return jnp.max(x, axis=(1, 2))


BACKBONES = {
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block_cls=ResNetBlock),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BottleneckBlock),
    "small_cnn": SmallCNN,
    "fast_cnn": functools.partial(FastCNN, residual=False),
    "fast_resnet": functools.partial(FastCNN, residual=True),
}
# Stage widths of the fast backbones (model.widths = [] takes these): airbench94's and a
# 96-class shape (airbench96's widths, its residual conv pairs).
FAST_WIDTHS = {"fast_cnn": (64, 256, 256), "fast_resnet": (128, 384, 512)}


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
    widths: Sequence[int] = (),
    hash_activation: str = "linear",
    classifier_input: str = "codes",
    dtype: Any = jnp.float32,
) -> HashingModel:
    """A :class:`HashingModel` with backbone ``name`` in ``BACKBONES``.

    ``stem`` ("cifar" or "imagenet") and ``width`` apply to the ResNets; ``width`` to the small
    CNN scales its three stages (default 32, 64, 128); ``widths`` (three stage widths, empty:
    :data:`FAST_WIDTHS`) to the fast backbones.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; known: {sorted(BACKBONES)}.")
    if not isinstance(bits, int) or bits < 1:
        raise ValueError(f"bits must be a positive int; got {bits!r}.")
    widths = tuple(widths)
    if name in FAST_WIDTHS:
        widths = widths or FAST_WIDTHS[name]
        if len(widths) != 3 or not all(isinstance(w, int) and w >= 1 for w in widths):
            raise ValueError(
                f"model.widths must list 3 positive stage widths for {name}; got "
                f"{list(widths)} (e.g. {list(FAST_WIDTHS[name])}, or [] for those)."
            )
        backbone = BACKBONES[name](widths=widths, dtype=dtype)
    elif widths:
        raise ValueError(
            f"model.widths sets the stages of {sorted(FAST_WIDTHS)}; {name} takes model.width "
            "instead: set model.widths = []."
        )
    elif name == "small_cnn":
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


def needs_whitening(model: HashingModel) -> bool:
    """Whether ``model``'s backbone has a whitening stem to set from data."""
    return isinstance(model.backbone, FastCNN)


def set_whitening(variables, kernel) -> dict:
    """``variables`` with the whitening stem's kernel replaced by ``kernel``
    (:func:`whitening_kernel`); its bias is reset to 0."""
    params = variables["params"]
    stem = params["backbone"]["whiten"]
    if stem["kernel"].shape != kernel.shape:
        raise ValueError(
            f"whitening kernel of shape {kernel.shape} does not fit the stem's "
            f"{stem['kernel'].shape}."
        )
    kernel = jnp.asarray(kernel, stem["kernel"].dtype)
    stem = {"kernel": kernel, "bias": jnp.zeros_like(stem["bias"])}
    backbone = {**params["backbone"], "whiten": stem}
    return {**variables, "params": {**params, "backbone": backbone}}


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
