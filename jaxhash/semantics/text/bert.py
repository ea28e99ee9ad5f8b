"""The sentence encoder's forward pass: BERT with mean pooling, in pure JAX.

all-MiniLM-L6-v2 (Reimers & Gurevych 2019, "Sentence-BERT"; Wang et al. 2020, "MiniLM") is
BERT (Devlin et al. 2019): token + position + segment embeddings, LayerNorm, then 6
post-LayerNorm encoder layers (hidden 384, 12 heads, MLP 1536, exact-erf GELU, LayerNorm eps
1e-12); the sentence embedding is the mean of the last hidden states over the attention mask,
scaled to unit L2 norm, as sentence-transformers' ``Pooling`` and ``Normalize`` compute it.
Matmuls run at ``Precision.HIGHEST``: the GPU default (TF32) departs from the reference by more
than the tolerance the tests hold it to (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# sentence-transformers' Pooling and Normalize floors.
_POOL_EPS = 1e-9
_NORM_EPS = 1e-12


class BertConfig(NamedTuple):
    """The static shape of a BERT encoder (read from the model's ``config.json``)."""

    hidden_size: int = 384
    num_heads: int = 12
    num_layers: int = 6
    intermediate_size: int = 1536
    max_positions: int = 512
    layer_norm_eps: float = 1e-12


MINILM_L6 = BertConfig()  # all-MiniLM-L6-v2


def _layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """``(x - mean) / sqrt(var + eps) * scale + bias`` over the last axis (biased variance)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred * lax.rsqrt(var + eps) * scale + bias


def _encoder_layer(
    x: jax.Array, layer: dict, mask_bias: jax.Array, config: BertConfig, precision
) -> jax.Array:
    """One post-LayerNorm BERT layer on ``x`` ``[B, L, H]``; ``mask_bias`` ``[B, 1, L, L]``."""
    b, length, hidden = x.shape
    heads = config.num_heads
    head_dim = hidden // heads

    def dense(h, kernel, bias):
        return jnp.dot(h, kernel, precision=precision) + bias

    qkv = dense(x, layer["qkv_kernel"], layer["qkv_bias"]).reshape(b, length, 3, heads, head_dim)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=precision) / np.sqrt(head_dim)
    probs = jax.nn.softmax(scores + mask_bias, axis=-1)
    context = jnp.einsum("bhqk,bkhd->bqhd", probs, v, precision=precision)
    attended = dense(context.reshape(b, length, hidden), layer["out_kernel"], layer["out_bias"])
    eps = config.layer_norm_eps
    x = _layer_norm(attended + x, layer["attn_ln_scale"], layer["attn_ln_bias"], eps)

    h = jax.nn.gelu(dense(x, layer["mlp_in_kernel"], layer["mlp_in_bias"]), approximate=False)
    h = dense(h, layer["mlp_out_kernel"], layer["mlp_out_bias"])
    return _layer_norm(h + x, layer["mlp_ln_scale"], layer["mlp_ln_bias"], eps)


def packed_sentence_embeddings(
    params: dict,
    input_ids: jax.Array,
    segment_ids: jax.Array,
    positions: jax.Array,
    num_segments: int,
    config: BertConfig = MINILM_L6,
    precision=lax.Precision.HIGHEST,
) -> jax.Array:
    """Embeddings of several sentences packed into each row, exactly as if each had its own row.

    Row ``r`` holds sentences ``s = 1..S`` in the tokens ``t`` with ``segment_ids[r, t] = s``
    (0: padding). A token attends only to tokens of its own sentence (other keys get a
    ``finfo.min`` bias, i.e. softmax weight exactly 0) and its position restarts at 0 with each
    sentence, so the result equals the unpacked forward pass up to float32 summation order.
    Packing short sentences into long rows removes most padding.

    Args:
      params: the pytree of :meth:`SentenceEncoder.load` (layer weights stacked on axis 0).
      input_ids: ``[B, L]`` int token ids, each sentence ``[CLS] ... [SEP]``.
      segment_ids: ``[B, L]`` int in [0, S].
      positions: ``[B, L]`` int position of each token within its sentence.
      num_segments: ``S`` (static).

    Returns:
      ``[B, S, H]`` float32 unit-norm mean-pooled embeddings; empty segments give 0.
    """
    emb = params["embeddings"]
    x = emb["word"][input_ids] + emb["position"][positions] + emb["token_type"][0]
    x = _layer_norm(x, emb["ln_scale"], emb["ln_bias"], config.layer_norm_eps)
    same = (segment_ids[:, :, None] == segment_ids[:, None, :]) & (segment_ids[:, None, :] > 0)
    mask_bias = jnp.where(same, 0.0, jnp.finfo(x.dtype).min).astype(x.dtype)[:, None]

    def body(h, layer):
        return _encoder_layer(h, layer, mask_bias, config, precision), None

    x, _ = lax.scan(body, x, params["layers"])
    # one_hot(0 - 1) is all zero: padding joins no segment.
    members = jax.nn.one_hot(segment_ids - 1, num_segments, dtype=x.dtype)  # [B, L, S]
    pooled = jnp.einsum("bls,blh->bsh", members, x, precision=precision)
    counts = jnp.sum(members, axis=1)[:, :, None]
    pooled = pooled / jnp.maximum(counts, _POOL_EPS)
    norm = jnp.sqrt(jnp.sum(pooled * pooled, axis=-1, keepdims=True))
    return pooled / jnp.maximum(norm, _NORM_EPS)


def sentence_embeddings(
    params: dict,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    config: BertConfig = MINILM_L6,
    precision=lax.Precision.HIGHEST,
) -> jax.Array:
    """Unit-norm mean-pooled BERT embeddings of token ids, as sentence-transformers computes them.

    ``e = normalize(sum_t m_t h_t / max(sum_t m_t, 1e-9))`` with ``h`` the last hidden states and
    ``m`` the attention mask; padded keys get a ``finfo.min`` attention bias (softmax weight 0).
    One sentence per row; :func:`packed_sentence_embeddings` packs several.

    Args:
      params: the pytree of :meth:`SentenceEncoder.load` (layer weights stacked on axis 0).
      input_ids: ``[B, L]`` int token ids (``[CLS] ... [SEP]`` then padding).
      attention_mask: ``[B, L]``, 1 for real tokens, 0 for padding. An all-zero row gives 0.
      config: the static shape (hashable: pass it as a static argument under ``jax.jit``).
      precision: of every matmul; HIGHEST keeps float32 on GPUs/TPUs (no TF32/bf16 passes).

    Returns:
      ``[B, H]`` float32, unit rows.
    """
    segment_ids = (jnp.asarray(attention_mask) > 0).astype(jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(segment_ids.shape[1]), segment_ids.shape)
    out = packed_sentence_embeddings(
        params, input_ids, segment_ids, positions, 1, config=config, precision=precision
    )
    return out[:, 0]


jit_packed_sentence_embeddings = jax.jit(
    packed_sentence_embeddings, static_argnames=("num_segments", "config", "precision")
)
