"""Caption targets (jaxhash.semantics.text.targets): cosine distances against NumPy."""

import jax
import numpy as np
import pytest

from jaxhash import losses
from jaxhash.semantics.text import (
    caption_distances,
)


def test_caption_distances_vs_numpy(fixture):
    a = fixture["embeddings"][:9]
    b = np.random.default_rng(1).normal(size=(5, 384)).astype(np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = (1 - unit(a64) @ unit(b64).T) / 2
    got = np.asarray(caption_distances(a, b))
    assert got.shape == (9, 5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    square = np.asarray(caption_distances(a))
    np.testing.assert_allclose(square, (1 - unit(a64) @ unit(a64).T) / 2, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.diag(square), 0, atol=1e-6)


def test_embedding_targets_give_the_same_loss(fixture):
    """similarity_loss(codes, EmbeddingTargets(e)) == the loss on the dense caption distances."""
    emb = fixture["embeddings"][:12]
    codes = np.random.default_rng(2).normal(size=(12, 16)).astype(np.float32)
    loss = jax.jit(losses.similarity_loss)
    structured = loss(codes, losses.EmbeddingTargets(emb))
    dense = loss(codes, caption_distances(emb))
    np.testing.assert_allclose(structured, dense, rtol=1e-5)


def test_caption_distances_errors():
    with pytest.raises(ValueError, match="embeddings_a"):
        caption_distances(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="embeddings_b"):
        caption_distances(np.ones((3, 4), np.float32), np.ones((2, 4), np.int32))
    with pytest.raises(ValueError, match="same width"):
        caption_distances(np.ones((3, 4), np.float32), np.ones((2, 5), np.float32))
