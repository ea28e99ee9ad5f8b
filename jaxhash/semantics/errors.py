"""The error every part of ``jaxhash.semantics`` raises for a bad hierarchy or class name.

Its own module so that ``hierarchy`` (trees) and ``wordnet`` (synset lookup, which
``ClassHierarchy.from_wordnet`` uses) both raise it without importing each other.
"""


class HierarchyError(ValueError):
    """A hierarchy that is not a rooted tree over the classes, or an unknown name."""
