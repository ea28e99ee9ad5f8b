"""The BERT forward pass (jaxhash.semantics.text.bert) against sentence-transformers."""

import jax
import numpy as np

from jaxhash.semantics import text
from tests.semantics.text.text_extra import TOLERANCE, needs_model


@needs_model
def test_unpacked_forward_matches(encoder, fixture):
    """The public one-sentence-per-row function, on a plain padded batch."""
    picks = [0, 5, 6, 12]  # short, punctuation, accents, 188 tokens
    ids = encoder.tokenize([fixture["sentences"][i] for i in picks])
    input_ids = np.zeros((len(ids), 192), np.int32)
    mask = np.zeros_like(input_ids)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    forward = jax.jit(text.sentence_embeddings, static_argnames="config")
    out = np.asarray(forward(encoder.params, input_ids, mask, config=encoder.config))
    np.testing.assert_allclose(out, fixture["embeddings"][picks], rtol=0, atol=TOLERANCE)
