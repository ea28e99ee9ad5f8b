"""A data set's label space: the class subset kept, the zero-shot hold-out, and their tree.

``config.data.classes`` keeps some classes, relabelled ``0..K-1`` in the given order
(``"imagenet100"``: HashNet's ImageNet-100 subset of ILSVRC2012); the tree is pruned to them
(or, for WordNet ids, built from WordNet for exactly them). ``config.data.holdout_classes``
names classes that training never sees (zero-shot), kept in the label space for evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxhash.data.config import DataConfig
from jaxhash.semantics import known
from jaxhash.semantics.hierarchy import ClassHierarchy


def is_wnid(name: str) -> bool:
    """Whether ``name`` is a WordNet noun id like ``n01443537``."""
    return len(name) == 9 and name[0] == "n" and name[1:].isdigit()


def wordnet_tree(config: DataConfig, wnids: tuple[str, ...]) -> Callable[[], ClassHierarchy]:
    """Builds the WordNet tree of ``wnids`` on demand (from ``config.wordnet_dir``)."""

    def build() -> ClassHierarchy:
        from jaxhash.semantics.wordnet import load_wordnet

        return ClassHierarchy.from_wordnet(
            list(wnids), classes=list(wnids), wordnet=load_wordnet(config.wordnet_dir)
        )

    return build


def _subset_tree(full: Callable[[], ClassHierarchy], classes) -> Callable[[], ClassHierarchy]:
    def build() -> ClassHierarchy:
        tree = full()
        sub = ClassHierarchy.from_parent_child(tree.edges(), classes)
        sub.synsets = {c: tree.synsets[c] for c in classes if c in tree.synsets}
        return sub

    return build


def label_space(config: DataConfig, raw_names: tuple[str, ...], full_tree):
    """``(class_names, remap, hierarchy_fn, holdout labels)`` after ``classes``/``holdout``.

    ``remap[raw_label]`` is the label in the space (``-1``: class not kept), None when every
    class is kept in its order.
    """
    remap = None
    names = raw_names
    tree = full_tree
    if config.classes is not None:
        wanted = (
            tuple(known.imagenet100_wnids()) if config.classes == "imagenet100" else config.classes
        )
        index = {n: i for i, n in enumerate(raw_names)}
        unknown = [c for c in wanted if c not in index]
        if unknown:
            raise ValueError(
                f"config.data.classes names {len(unknown)} class(es) that {config.name} does not "
                f"have: {unknown[:10]}. Its classes are e.g. {list(raw_names[:5])}."
            )
        remap = np.full(len(raw_names), -1, np.int64)
        remap[[index[c] for c in wanted]] = np.arange(len(wanted))
        names = wanted
        if full_tree is not None:
            tree = (
                wordnet_tree(config, names)
                if all(is_wnid(n) for n in names)
                else _subset_tree(full_tree, names)
            )
    position = {n: i for i, n in enumerate(names)}
    unknown = [c for c in config.holdout_classes if c not in position]
    if unknown:
        raise ValueError(
            f"config.data.holdout_classes names classes that are not in the label space: "
            f"{unknown[:10]}. Use names from DatasetInfo.class_names, e.g. {list(names[:5])}."
        )
    holdout = tuple(sorted(position[c] for c in config.holdout_classes))
    if holdout and len(holdout) == len(names):
        raise ValueError("config.data.holdout_classes holds out every class: nothing to train on.")
    return names, remap, tree, holdout
