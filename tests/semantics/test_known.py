"""jaxhash.semantics.known: the shipped CIFAR-100 and ImageNet-100 class data, equal to a rebuild
from WordNet."""

from __future__ import annotations

import numpy as np
import pytest

from jaxhash.semantics import (
    HierarchyError,
    known,
    resolve_synsets,
)


def test_cifar100_synsets_resolve_to_nouns(wordnet):
    """All 100 hand-chosen CIFAR-100 synsets exist, are nouns, distinct, in label order."""
    synsets = known.cifar100_synsets()
    assert tuple(synsets) == known.CIFAR100_CLASSES
    resolved = resolve_synsets(list(synsets.values()), wordnet=wordnet)
    assert len({s.name() for s in resolved}) == 100
    assert synsets["tiger"] == "tiger.n.02" and synsets["seal"] == "seal.n.09"
    assert synsets["ray"] == "ray.n.07" and synsets["plain"] == "plain.n.01"
    assert known.CIFAR100_CLASSES[0] == "apple" and known.CIFAR100_CLASSES[99] == "worm"


def test_cifar100_shipped_data_equals_a_rebuild_from_wordnet(wordnet):
    """The shipped tree and similarity matrices are exactly what WordNet gives today."""
    rebuilt = known.build_cifar100_wordnet(wordnet)
    shipped = known.cifar100()
    assert shipped.classes == known.CIFAR100_CLASSES
    assert sorted(rebuilt.edges()) == sorted(shipped.edges())
    for kind in ("lcs_height", "wup", "path"):
        np.testing.assert_array_equal(known.cifar100_similarity(kind), rebuilt.similarity(kind))
        np.testing.assert_array_equal(known.cifar100_similarity(kind), shipped.similarity(kind))


def test_cifar100_hierarchy_without_wordnet():
    """cifar100() needs no WordNet: big cats meet at big_cat.n.01, diagonal 1, symmetric."""
    tree = known.cifar100()
    assert tree.lcs("tiger", "leopard") == "big_cat.n.01"
    assert tree.synsets["tiger"] == "tiger.n.02"
    sim = known.cifar100_similarity()
    c = known.CIFAR100_CLASSES.index
    assert sim[c("tiger"), c("leopard")] > sim[c("tiger"), c("apple")]
    assert sim[c("whale"), c("dolphin")] > sim[c("whale"), c("shark")]
    np.testing.assert_array_equal(np.diag(sim), 1.0)
    np.testing.assert_array_equal(sim, sim.T)
    with pytest.raises(HierarchyError, match="kind must be"):
        known.cifar100("three_level")


def test_imagenet100(wordnet):
    """HashNet's ImageNet-100: 100 distinct wnids that resolve, in ascending (label) order."""
    wnids = known.imagenet100_wnids()
    assert len(set(wnids)) == 100 and wnids == sorted(wnids)
    tree = known.imagenet100(wordnet=wordnet)
    assert tree.classes == tuple(wnids) and tree.similarity().shape == (100, 100)
