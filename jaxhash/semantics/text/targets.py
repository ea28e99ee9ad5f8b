"""Caption targets: cosine distances between sentence embeddings.

The similarity loss of Arponen & Bishop (arXiv 2005.04917) matches the codes' relaxed Hamming
distances to target distances; for captioned images the targets are cosine distances between
the captions' sentence embeddings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxhash.losses import relaxed_hamming


def caption_distances(
    embeddings_a: jax.Array | np.ndarray, embeddings_b: jax.Array | np.ndarray | None = None
) -> jax.Array:
    """Cosine-distance targets ``D_ij = (1 - cos(a_i, b_j)) / 2`` in [0, 1].

    The same distance as :func:`jaxhash.losses.relaxed_hamming`, which it calls. For the loss,
    pass ``jaxhash.losses.EmbeddingTargets(embeddings)`` to ``similarity_loss`` instead: it gives
    these targets without forming the ``[N, N]`` matrix.

    Args:
      embeddings_a: ``[N, E]`` (e.g. :meth:`SentenceEncoder.embed` output).
      embeddings_b: ``[M, E]``; None means ``embeddings_a``.

    Returns:
      ``[N, M]`` float32.
    """
    embeddings = [_check_embeddings(embeddings_a, "embeddings_a")]
    if embeddings_b is not None:
        embeddings.append(_check_embeddings(embeddings_b, "embeddings_b"))
        if embeddings[1].shape[1] != embeddings[0].shape[1]:
            raise ValueError(
                "embeddings_a and embeddings_b must have the same width; got "
                f"{embeddings[0].shape} and {embeddings[1].shape}."
            )
    return relaxed_hamming(*embeddings)


def _check_embeddings(x, name: str) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty [N, E] array; got shape {x.shape}.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name} must be floating point; got dtype {x.dtype}.")
    return x
