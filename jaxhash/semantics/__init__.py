"""Semantic targets: class hierarchies (WordNet, parent-child files, two-level) and their
similarity matrices, shipped data for known data sets, and caption embeddings (``.text``)."""

from jaxhash.semantics.errors import HierarchyError
from jaxhash.semantics.hierarchy import SIMILARITY_KINDS, ClassHierarchy, read_parent_child
from jaxhash.semantics.wordnet import load_wordnet, resolve_synsets, wnid

__all__ = [
    "SIMILARITY_KINDS",
    "ClassHierarchy",
    "HierarchyError",
    "load_wordnet",
    "read_parent_child",
    "resolve_synsets",
    "wnid",
]
