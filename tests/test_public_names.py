"""The names users import from jaxhash.losses, jaxhash.retrieval and jaxhash.semantics.text
(README, the notebook, docs, benchmarks) stay importable there, and are the very objects of
the modules that define them."""

import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from jaxhash import losses, retrieval
from jaxhash.evaluation import encoding
from jaxhash.losses import classification, kl, regularizers, similarity, total
from jaxhash.search import faiss as faiss_bridge
from jaxhash.search import packing, plan
from jaxhash.semantics import text
from jaxhash.semantics.text import bert, encoder, targets, weights
from jaxhash.semantics.text import packing as sentence_packing

ROOT = Path(__file__).resolve().parents[1]

HOMES = {
    losses: {
        similarity: "relaxed_hamming ClassTargets EmbeddingTargets Targets similarity_loss".split(),
        kl: "KLTerms knn_kl_divergence KL_FORMS DEFAULT_KL_FORM SCALE_SAFE_KL_FORMS "
        "binary_kl_terms binary_kl_loss".split(),
        classification: ["classification_loss"],
        regularizers: ["quantization_loss", "bit_balance_loss"],
        total: ["LossWeights", "hashing_loss"],
    },
    retrieval: {
        packing: "pack_codes unpack_codes check_packed check_num_bits to_words popcount_distance "
        "hamming_distances".split(),
        plan: ["backend_default"],
        faiss_bridge: ["faiss_index", "check_faiss_factory"],
        retrieval: "search hamming_topk embedding_topk check_k check_mesh".split(),
    },
    text: {
        bert: "BertConfig MINILM_L6 packed_sentence_embeddings sentence_embeddings".split(),
        encoder: ["SentenceEncoder", "SHAPES"],
        sentence_packing: "DEFAULT_LENGTH_BUCKETS DEFAULT_PACK_LENGTH pack_rows plan_passes "
        "plan_fixed_passes".split(),
        targets: ["caption_distances"],
        weights: ["INSTALL_HINT", "MODEL_PACKAGE", "default_model_dir"],
    },
}
CASES = [
    (facade, home, name)
    for facade, homes in HOMES.items()
    for home, names in homes.items()
    for name in names
]


@pytest.mark.parametrize(
    "facade, home, name", CASES, ids=[f"{f.__name__}.{n}" for f, _, n in CASES]
)
def test_old_import_path_is_the_new_home(facade, home, name):
    assert getattr(facade, name) is getattr(home, name)
    assert name in facade.__all__
    value = getattr(home, name)
    if inspect.isfunction(value) or inspect.isclass(value):
        assert value.__module__ == home.__name__  # defined there, not re-exported from elsewhere


@pytest.mark.parametrize("facade", HOMES)
def test_every_exported_name_has_a_home(facade):
    listed = {name for names in HOMES[facade].values() for name in names}
    assert set(facade.__all__) == listed


def test_encode_stays_importable_from_retrieval():
    """``retrieval.encode`` (README) is the evaluation package's, found lazily: encoding
    imports retrieval, so retrieval cannot import it at load time."""
    assert retrieval.encode is encoding.encode
    assert "encode" not in retrieval.__all__


def _mentioned_names() -> set[tuple[str, str]]:
    """``(module, name)`` for each ``jaxhash.losses.X``, ``losses.X`` or ``retrieval.X`` in the
    README, the docs and the notebook's code."""
    texts = [(ROOT / "README.md").read_text()]
    texts += [p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))]
    notebook = json.loads((ROOT / "examples" / "quickstart.ipynb").read_text())
    texts += ["".join(cell["source"]) for cell in notebook["cells"]]
    pattern = re.compile(r"(?<![\w/])(?:jaxhash\.)?(losses|retrieval)\.([A-Za-z_]\w*)")
    return {m.groups() for text in texts for m in pattern.finditer(text) if m.group(2) != "py"}


def test_names_in_readme_docs_and_notebook_resolve():
    mentioned = _mentioned_names()
    assert ("retrieval", "hamming_topk") in mentioned  # the scan finds what it looks for
    for module, name in sorted(mentioned):
        assert hasattr(importlib.import_module(f"jaxhash.{module}"), name), (module, name)
