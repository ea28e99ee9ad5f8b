"""The train state and what it is built from: the model, the optimiser and its schedule.

:func:`create_state` initialises :class:`TrainState` replicated over the mesh
(``jaxhash.parallel.make_mesh``); :func:`make_optimizer` is SGD with momentum or AdamW under a
linear warm-up + cosine schedule (:func:`learning_rate_schedule`) over :func:`total_steps`.
Below everything that trains (``train``), restores (``checkpoints``) or evaluates
(``model_eval``) a state.
"""

from __future__ import annotations

import math
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhash import models


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 [], steps applied (a skipped non-finite step does not count)
    params: Any
    batch_stats: Any
    opt_state: Any

    def as_dict(self) -> dict:
        return {
            "step": self.step,
            "params": self.params,
            "batch_stats": self.batch_stats,
            "opt_state": self.opt_state,
        }

    @property
    def variables(self) -> dict:
        """The model's variables, ``{"params", "batch_stats"}`` (for ``model.apply``)."""
        return {"params": self.params, "batch_stats": self.batch_stats}


STATE_TREES = ("params", "batch_stats", "opt_state")  # the trees :func:`finite_trees` checks


def finite_trees(state: TrainState) -> jax.Array:
    """bool ``[len(STATE_TREES)]``: whether each of ``state``'s trees holds only finite values.

    One fused reduction per tree (``all(isfinite(x))`` over its float leaves), cheap inside a
    jitted step; integer leaves (counters) are always finite.
    """

    def finite(tree) -> jax.Array:
        leaves = [
            jnp.all(jnp.isfinite(x))
            for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)
        ]
        return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)

    return jnp.stack([finite(getattr(state, name)) for name in STATE_TREES])


def build_model(config, num_classes: int) -> models.HashingModel:
    """The :class:`jaxhash.models.HashingModel` of ``config.model`` with ``num_classes``."""
    return models.create_model(
        config.model.name,
        int(config.model.bits),
        num_classes,
        stem=config.model.stem,
        width=config.model.width or None,
        hash_activation=config.model.hash_activation,
        classifier_input=config.model.classifier_input,
        dtype=jnp.bfloat16 if config.model.dtype == "bfloat16" else jnp.float32,
    )


def total_steps(config, info) -> int:
    """``config.train.steps``, else ``ceil(epochs * num_train / batch_size)`` (at least 1)."""
    if config.train.steps:
        return int(config.train.steps)
    if not info.num_train:
        raise ValueError(
            "config.train.steps is 0 and the number of training examples is unknown: set "
            "config.train.steps."
        )
    return max(1, math.ceil(config.train.epochs * info.num_train / config.batch_size))


def learning_rate_schedule(optim, total_steps: int) -> optax.Schedule:
    """Linear warm-up to ``optim.learning_rate``, then cosine decay to 0 at ``total_steps``."""
    warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(optim.learning_rate),
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


def make_optimizer(optim, total_steps: int) -> optax.GradientTransformation:
    """SGD with momentum or AdamW, warm-up + cosine, optionally a lower backbone rate."""
    schedule = learning_rate_schedule(optim, total_steps)

    def base(scale: float) -> optax.GradientTransformation:
        lr = (lambda step: scale * schedule(step)) if scale != 1.0 else schedule
        if optim.name == "sgd":
            return optax.chain(
                optax.add_decayed_weights(float(optim.weight_decay)),
                optax.sgd(lr, momentum=float(optim.momentum), nesterov=bool(optim.nesterov)),
            )
        return optax.adamw(lr, weight_decay=float(optim.weight_decay))

    chain = [optax.clip_by_global_norm(float(optim.grad_clip))] if optim.grad_clip else []
    if float(optim.backbone_lr_scale) == 1.0:
        return optax.chain(*chain, base(1.0))

    def labels(params):
        return {name: ("backbone" if name == "backbone" else "heads") for name in params}

    return optax.chain(
        *chain,
        optax.multi_transform(
            {"backbone": base(float(optim.backbone_lr_scale)), "heads": base(1.0)}, labels
        ),
    )


def create_state(config, model, optimizer, image_shape, mesh: Mesh) -> TrainState:
    """Initial, replicated train state (pretrained backbone loaded if configured)."""
    key = jax.random.key(int(config.seed))
    variables = dict(models.init_variables(model, key, image_shape))
    if config.model.pretrained:
        variables = models.load_backbone(variables, config.model.pretrained)
    params = variables["params"]
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=optimizer.init(params),
    )
    return jax.device_put(state, NamedSharding(mesh, P()))
