"""The losses of semantic hashing, as pure functions of arrays.

Arponen & Bishop, "Learning to hash with semantic similarity metrics and empirical KL divergence"
(arXiv 2005.04917): a network maps an example to ``z`` in R^K, the code is ``sign(z)``, and

    loss = w_ce * CE(classes) + w_sim * L_sim + w_kl * L_KL  (+ the usual baselines' regularisers)

* ``similarity_loss`` (L_sim): relaxed Hamming distances of the batch's codes are matched to
  *relative* target distances (class hierarchy or caption embeddings).
* ``binary_kl_loss`` (L_KL): how far the outputs are from a binary code distribution (uniform
  on {-1, +1}^K by default), in one of :data:`KL_FORMS`: the paper's literal Wang-Kulkarni-Verdu
  kNN estimate ("wkv"; ill-posed with a linear hash layer: it is lowered by inflating the
  outputs) or a well-posed form ("sphere", "corner", "smoothed_prior", "marginal": the default).

Every function computes in float32 (float64 for float64 inputs; bf16 inputs are upcast), checks
its arguments at trace time (``ValueError`` naming the argument), takes an optional ``mask``
``[N]`` of valid (not padded) rows, and takes ``axis_name``: called inside ``jax.shard_map`` with
the batch split over that mesh axis, it gathers or sums what it needs so that value and
gradients equal the single-device result on the global batch. The paper's exact constants are
not public; every choice is an argument with a documented default.

Inputs that cannot be checked at trace time have a defined value: under ``jax.jit`` a batch with
too few valid rows (all masked; fewer than k + 1 for the kNN terms) or labels outside [0, C)
give NaN, which the trainer stops on, naming the term. Concrete inputs (called outside jit)
get a ValueError instead.

Modules: ``similarity`` (L_sim, its targets, the relaxed Hamming distance), ``kl`` (L_KL: the
kNN estimate and the forms), ``classification`` (CE), ``regularizers`` (the baselines'
quantization and bit balance), ``total`` (the weighted sum) and ``common`` (masks and checks).
"""

from jaxhash.losses.classification import classification_loss
from jaxhash.losses.kl import (
    DEFAULT_KL_FORM,
    KL_FORMS,
    SCALE_SAFE_KL_FORMS,
    KLTerms,
    binary_kl_loss,
    binary_kl_terms,
    knn_kl_divergence,
)
from jaxhash.losses.regularizers import bit_balance_loss, quantization_loss
from jaxhash.losses.similarity import (
    ClassTargets,
    EmbeddingTargets,
    Targets,
    relaxed_hamming,
    similarity_loss,
)
from jaxhash.losses.total import LossWeights, hashing_loss

__all__ = [
    "DEFAULT_KL_FORM",
    "KL_FORMS",
    "SCALE_SAFE_KL_FORMS",
    "ClassTargets",
    "EmbeddingTargets",
    "KLTerms",
    "LossWeights",
    "Targets",
    "binary_kl_loss",
    "binary_kl_terms",
    "bit_balance_loss",
    "classification_loss",
    "hashing_loss",
    "knn_kl_divergence",
    "quantization_loss",
    "relaxed_hamming",
    "similarity_loss",
]
