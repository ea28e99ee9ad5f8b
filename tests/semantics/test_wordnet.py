"""jaxhash.semantics.wordnet: synsets resolve by name or ImageNet id, unknown ones are listed,
and a missing WordNet says how to install it."""

from __future__ import annotations

import numpy as np
import pytest

from jaxhash.semantics import (
    ClassHierarchy,
    HierarchyError,
    resolve_synsets,
)


def test_wordnet_ids_resolve_like_names(wordnet):
    """ImageNet ids resolve through the synset offset (n02084071 = dog.n.01)."""
    by_id = ClassHierarchy.from_wordnet(["n02084071", "n02121808"], wordnet=wordnet)
    assert by_id.classes == ("dog.n.01", "domestic_cat.n.01")
    by_name = ClassHierarchy.from_wordnet(["dog.n.01", "domestic_cat.n.01"], wordnet=wordnet)
    np.testing.assert_array_equal(by_id.similarity(), by_name.similarity())


def test_unknown_synsets_are_listed(wordnet):
    with pytest.raises(HierarchyError, match=r"2 item\(s\).*'tigerr.n.01'.*'n99999999'"):
        resolve_synsets(["tiger.n.02", "tigerr.n.01", "n99999999"], wordnet=wordnet)
    with pytest.raises(HierarchyError, match="not a noun"):
        resolve_synsets(["run.v.01"], wordnet=wordnet)


def test_missing_wordnet_says_how_to_install(tmp_path):
    """Without WordNet on the nltk path the error gives the install commands (fresh process)."""
    import subprocess
    import sys

    code = (
        f"import nltk; nltk.data.path[:] = [{str(tmp_path)!r}]\n"
        "from jaxhash.semantics import load_wordnet\n"
        "try:\n    load_wordnet()\nexcept ValueError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "python -m nltk.downloader wordnet" in out.stdout, out.stdout + out.stderr
    assert "NLTK_DATA" in out.stdout and str(tmp_path) in out.stdout
