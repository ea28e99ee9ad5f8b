"""Class similarity from sentence embeddings of class descriptions (semantics.class_text)."""

from __future__ import annotations

import types

import numpy as np
import pytest

from jaxhash.semantics import class_text, known
from jaxhash.semantics.text import SentenceEncoder
from tests.semantics.text.text_extra import needs_model

NAMES = list(known.CIFAR100_CLASSES)


def test_cifar100_descriptions_are_name_and_gloss():
    descriptions = class_text.class_descriptions(NAMES, known.cifar100_definitions())
    assert len(descriptions) == 100
    assert descriptions[NAMES.index("maple_tree")].startswith("maple tree: any of numerous trees")
    assert class_text.class_descriptions(["sea_lion", "x"]) == ["sea lion", "x"]


@needs_model
def test_text_similarity_is_the_clipped_cosine_of_the_embeddings():
    names = ["lion", "tiger", "bus", "streetcar", "maple_tree"]
    descriptions = class_text.class_descriptions(names, known.cifar100_definitions())
    similarity = class_text.text_similarity(descriptions)
    e = SentenceEncoder.load().embed(descriptions).astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    expected = np.clip(e @ e.T, 0, 1)
    np.fill_diagonal(expected, 1)
    np.testing.assert_allclose(similarity, expected, atol=1e-6)
    np.testing.assert_array_equal(similarity, similarity.T)
    assert similarity[0, 1] > similarity[0, 2] and similarity[2, 3] > similarity[2, 4]


@needs_model
def test_class_similarity_dispatches_on_the_kind():
    tree = known.cifar100()
    glosses = known.cifar100_definitions()
    info = types.SimpleNamespace(
        name="cifar100", class_names=NAMES, class_glosses=glosses, hierarchy=tree
    )
    np.testing.assert_array_equal(class_text.class_similarity(info, "wup"), tree.similarity("wup"))
    text = class_text.class_similarity(info, "text")
    assert text.shape == (100, 100) and np.all(np.diag(text) == 1)
    no_tree = types.SimpleNamespace(
        name="image_folder", class_names=["a"], class_glosses={}, hierarchy=None
    )
    assert class_text.class_similarity(no_tree, "lcs_height") is None


def test_bad_kinds_and_classless_data_are_errors():
    info = types.SimpleNamespace(name="captions", class_names=(), class_glosses={}, hierarchy=None)
    with pytest.raises(ValueError, match="must be one of"):
        class_text.class_similarity(info, "cosine")
    with pytest.raises(ValueError, match="no classes to describe"):
        class_text.class_similarity(info, "text")
    with pytest.raises(ValueError, match="at least one class description"):
        class_text.text_similarity([])
