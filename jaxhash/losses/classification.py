"""The classification term: softmax cross-entropy on the class head."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxhash import parallel
from jaxhash.losses.common import _defined, _int_labels, _mask_weights, _masked_mean
from jaxhash.validation import float_array


def classification_loss(
    logits: jax.Array,
    labels: jax.Array,
    *,
    mask: jax.Array | None = None,
    label_smoothing: float = 0.0,
    axis_name: parallel.AxisName = None,
) -> jax.Array:
    """Mean softmax cross-entropy ``-log softmax(logits)[label]`` over valid rows.

    Args:
      logits: ``[N, C]``.
      labels: ``[N]`` int in [0, C).
      label_smoothing: weight of the uniform distribution in the target (0: none).
    """
    logits = float_array(logits, "logits", 2)
    labels, invalid = _int_labels(labels, "labels", logits.shape[0], logits.shape[1])
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1); got {label_smoothing!r}.")
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * jnp.mean(log_probs, axis=-1)
    w = _mask_weights(mask, logits.shape[0], logits.dtype)
    return _defined(_masked_mean(nll, w, axis_name), w, axis_name, invalid=invalid)
