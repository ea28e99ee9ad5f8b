"""The train state and what it is built from: the model, the optimiser and its schedule.

:func:`create_state` initialises :class:`TrainState` replicated over the mesh
(``jaxhash.parallel.make_mesh``); :func:`make_optimizer` is SGD with momentum or AdamW under a
linear warm-up + cosine schedule (:func:`learning_rate_schedule`) over :func:`total_steps`.
Below everything that trains (``train``), restores (``checkpoints``) or evaluates
(``evaluation``) a state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

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


def finite_trees(
    state: TrainState | Mapping[str, Any], names: Sequence[str] = STATE_TREES
) -> jax.Array:
    """bool ``[len(names)]``: whether each of ``state``'s trees ``names`` (a ``TrainState``'s,
    or a mapping's such as a restored part of one) holds only finite values.

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

    trees = state if isinstance(state, Mapping) else state.as_dict()
    return jnp.stack([finite(trees[name]) for name in names])


def build_model(config, num_classes: int) -> models.HashingModel:
    """The :class:`jaxhash.models.HashingModel` of ``config.model`` with ``num_classes``."""
    return models.create_model(
        config.model.name,
        int(config.model.bits),
        num_classes,
        stem=config.model.stem,
        width=config.model.width or None,
        widths=tuple(config.model.widths),
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
    """Linear warm-up to ``optim.learning_rate``, then decay to 0 at ``total_steps``: cosine
    (``optim.schedule = "cosine"``) or linear ("linear", the fast CIFAR trainers' shape)."""
    warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
    if optim.schedule == "linear":
        peak = float(optim.learning_rate)
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, max(warmup, 1)),
                optax.linear_schedule(peak, 0.0, max(total_steps - warmup, 1)),
            ],
            [warmup],
        )
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=float(optim.learning_rate),
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=0.0,
    )


class LookaheadState(NamedTuple):
    count: jax.Array  # int32 [], updates seen
    slow: Any  # the slow weights (a copy of the parameters' tree)


def lookahead(every: int, decay: float, total_steps: int) -> optax.GradientTransformation:
    """Lookahead (Zhang et al., 2019) as the fast CIFAR trainers schedule it: every ``every``
    updates the slow weights move to ``slow <- d_t slow + (1 - d_t) fast`` and the parameters
    jump to them; ``d_t = decay (t / T)^3`` grows from 0 to ``decay`` over the ``T =
    total_steps`` updates (airbench, arXiv 2404.00498), and the last update ends on the slow
    weights.

    It rewrites the update so that ``params + update`` is the synchronised value, so the
    parameters stay a plain tree (the train state, checkpoints and evaluation are unchanged;
    ``optax.lookahead`` would carry a fast/slow pair instead). Chain it after the optimiser;
    a mask of frozen leaves may follow.
    """

    def init(params):
        return LookaheadState(jnp.zeros((), jnp.int32), jax.tree_util.tree_map(jnp.copy, params))

    def update(updates, state, params):
        if params is None:
            raise ValueError("lookahead needs the parameters: call update(updates, state, params).")
        count = state.count + 1
        sync = (count % every == 0) | (count == total_steps)
        fraction = jnp.minimum(count / total_steps, 1.0).astype(jnp.float32)
        d = jnp.where(count == total_steps, 1.0, decay * fraction**3)

        def leaf(update, param, slow):
            fast = param + update
            synced = d * slow + (1.0 - d) * fast
            new_slow = jnp.where(sync, synced, slow)
            return jnp.where(sync, synced - param, update).astype(update.dtype), new_slow

        pairs = jax.tree_util.tree_map(leaf, updates, params, state.slow)
        is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
        new_updates = jax.tree_util.tree_map(lambda p: p[0], pairs, is_leaf=is_pair)
        slow = jax.tree_util.tree_map(lambda p: p[1], pairs, is_leaf=is_pair)
        return new_updates, LookaheadState(count, slow)

    return optax.GradientTransformation(init, update)


def frozen_mask(params, frozen: Sequence[str]) -> Any:
    """Bool tree over ``params``: True for the leaves whose path ``a/b/c`` ends with one of
    ``frozen`` (e.g. ``"whiten/kernel"``)."""

    def leaf(path, _):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        return any(name == f or name.endswith("/" + f) for f in frozen)

    return jax.tree_util.tree_map_with_path(leaf, params)


def kernels_only(params) -> Any:
    """Mask of the parameters weight decay applies to when ``optim.decay_vectors`` is off:
    those of 2 or more dimensions (kernels), not biases or BatchNorm's 1-D parameters."""
    return jax.tree_util.tree_map(lambda x: jnp.ndim(x) > 1, params)


def make_optimizer(
    optim, total_steps: int, frozen: Sequence[str] = ()
) -> optax.GradientTransformation:
    """SGD with momentum or AdamW, warm-up + cosine or linear decay, optionally a lower
    backbone rate and Lookahead (``optim.lookahead_every``). Weight decay applies to every
    parameter with ``optim.decay_vectors``, else to kernels only (:func:`kernels_only`).
    Parameters named in ``frozen`` (path suffixes, :func:`frozen_mask`) are never updated."""
    schedule = learning_rate_schedule(optim, total_steps)
    decayed = None if optim.decay_vectors else kernels_only

    def base(scale: float) -> optax.GradientTransformation:
        lr = (lambda step: scale * schedule(step)) if scale != 1.0 else schedule
        if optim.name == "sgd":
            return optax.chain(
                optax.add_decayed_weights(float(optim.weight_decay), mask=decayed),
                optax.sgd(lr, momentum=float(optim.momentum), nesterov=bool(optim.nesterov)),
            )
        return optax.adamw(lr, weight_decay=float(optim.weight_decay), mask=decayed)

    chain = [optax.clip_by_global_norm(float(optim.grad_clip))] if optim.grad_clip else []
    if float(optim.backbone_lr_scale) == 1.0:
        chain.append(base(1.0))
    else:

        def labels(params):
            return {name: ("backbone" if name == "backbone" else "heads") for name in params}

        chain.append(
            optax.multi_transform(
                {"backbone": base(float(optim.backbone_lr_scale)), "heads": base(1.0)}, labels
            )
        )
    if optim.lookahead_every:
        every = int(optim.lookahead_every)
        chain.append(lookahead(every, float(optim.lookahead_decay), total_steps))
    if frozen:  # last: a frozen leaf keeps its bits (Lookahead's average would round them)
        chain.append(optax.masked(optax.set_to_zero(), lambda p: frozen_mask(p, frozen)))
    return optax.chain(*chain)


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
