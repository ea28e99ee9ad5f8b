"""The paper's total loss: the weighted sum of the terms, each computed only when weighted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax

from jaxhash import parallel
from jaxhash.losses.classification import classification_loss
from jaxhash.losses.kl import _SAMPLING_FORMS, DEFAULT_KL_FORM, binary_kl_terms
from jaxhash.losses.regularizers import bit_balance_loss, quantization_loss
from jaxhash.losses.similarity import Targets, similarity_loss


class LossWeights(NamedTuple):
    """Weights of the terms of :func:`hashing_loss`; a term of weight 0 is not computed.

    Defaults 1, 1, 1 for CE, similarity and KL (docs/method.md, section 1: the paper's weights are
    not public) and 0 for the baselines' quantization and bit-balance regularisers.
    """

    ce: float = 1.0
    sim: float = 1.0
    kl: float = 1.0
    quant: float = 0.0
    balance: float = 0.0

    @classmethod
    def create(cls, weights: LossWeights | Mapping[str, float] | None) -> LossWeights:
        """From a LossWeights, a mapping (e.g. a config dict) or None (the defaults)."""
        if weights is None:
            return cls()
        if isinstance(weights, cls):
            return weights
        unknown = set(weights) - set(cls._fields)
        if unknown:
            raise ValueError(
                f"unknown loss weight(s) {sorted(unknown)}; known: {list(cls._fields)}."
            )
        return cls(**weights)


def hashing_loss(
    codes: jax.Array,
    key: jax.Array | None = None,
    *,
    logits: jax.Array | None = None,
    labels: jax.Array | None = None,
    targets: Targets | None = None,
    weights: LossWeights | Mapping[str, float] | None = None,
    kl_form: str = DEFAULT_KL_FORM,
    k: int = 1,
    num_targets: int | None = None,
    kl_sigma: float = 0.5,
    kl_floor: float = 0.1,
    kl_decorrelation: float = 1.0,
    normalize: str = "mean",
    power: float = 2.0,
    label_smoothing: float = 0.0,
    mask: jax.Array | None = None,
    block_size: int | None = None,
    axis_name: parallel.AxisName = None,
    knn_impl: str = "auto",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The paper's total: ``ce * CE + sim * L_sim + kl * L_KL + quant * Q + balance * B``.

    Args:
      codes: ``[N, K]`` network outputs.
      key: PRNG key for the KL term's fresh target samples (needed when ``weights.kl != 0`` and
        the KL form samples: "wkv", "sphere").
      logits, labels: ``[N, C]`` and ``[N]`` for the CE term.
      targets: target distances for the similarity term (see :func:`similarity_loss`).
      weights: :class:`LossWeights` or a mapping of its fields.
      kl_form, k, num_targets, kl_sigma, kl_floor, kl_decorrelation: the KL term's ``form``,
        ``k``, ``num_targets``, ``sigma``, ``floor`` and ``decorrelation`` (:func:`binary_kl_loss`).
      normalize, power: of :func:`similarity_loss`.
      knn_impl: the kNN search of the kNN KL forms, "auto", "xla" or "pallas"
        (:func:`binary_kl_loss`; ``config.loss.knn_impl`` in training).

    Returns:
      ``(loss, metrics)``; metrics holds "loss", each computed term unweighted ("ce", "sim",
      "kl", "quant", "balance") and, with the KL term, its parts ("kl_log_nu", ...; see
      :func:`binary_kl_terms`).
    """
    weights = LossWeights.create(weights)
    common = dict(mask=mask, axis_name=axis_name)
    metrics: dict[str, jax.Array] = {}

    def needs(term: str, **inputs) -> bool:
        weight = getattr(weights, term)
        if isinstance(weight, int | float) and weight == 0:
            return False
        missing = [name for name, value in inputs.items() if value is None]
        if missing:
            raise ValueError(
                f"the {term!r} term has weight {weight} but {', '.join(missing)} is None: pass "
                f"it, or set weights.{term} = 0."
            )
        return True

    if needs("ce", logits=logits, labels=labels):
        metrics["ce"] = classification_loss(
            logits, labels, label_smoothing=label_smoothing, **common
        )
    if needs("sim", targets=targets):
        metrics["sim"] = similarity_loss(
            codes, targets, normalize=normalize, power=power, block_size=block_size, **common
        )
    if needs("kl", **({"key": key} if kl_form in _SAMPLING_FORMS else {})):
        metrics.update(
            binary_kl_terms(
                codes,
                key,
                form=kl_form,
                k=k,
                num_targets=num_targets,
                sigma=kl_sigma,
                floor=kl_floor,
                decorrelation=kl_decorrelation,
                block_size=block_size,
                knn_impl=knn_impl,
                **common,
            )
        )
    if needs("quant"):
        metrics["quant"] = quantization_loss(codes, **common)
    if needs("balance"):
        metrics["balance"] = bit_balance_loss(codes, **common)
    weighted = [
        getattr(weights, term) * metrics[term] for term in LossWeights._fields if term in metrics
    ]
    if not weighted:
        raise ValueError(f"every loss weight is 0 ({weights}): nothing to optimise.")
    metrics["loss"] = sum(weighted[1:], weighted[0])
    return metrics["loss"], metrics
