"""Class similarity from sentence embeddings of class descriptions.

The paper's second kind of target is the cosine distance between sentence embeddings of
captions (arXiv 2005.04917). Applied to a labelled data set, each class gets one sentence, its
name and, where the data set defines its classes (``DatasetInfo.class_glosses``), its gloss
(CIFAR-100: "maple tree: any of numerous trees or shrubs of the genus Acer bearing winged seeds
borne in pairs; ...", WordNet's glosses shipped in ``data/cifar100_synsets.tsv``), embedded with
all-MiniLM-L6-v2 (:class:`jaxhash.semantics.text.SentenceEncoder`, the optional ``text``
extra). The class similarity is ``S_ab = max(cos(e_a, e_b), 0)`` with ``S_aa = 1``, the graded
relevance jaxhash uses for captions; ``1 - S`` is the distance the similarity loss matches.

``config.loss.similarity = "text"`` trains on it, ``config.eval.similarity = "text"`` scores
mAHP@k with it; the hierarchy's kinds (``SIMILARITY_KINDS``) are the other choices of both.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np

from jaxhash.semantics.hierarchy import SIMILARITY_KINDS

TEXT = "text"
KINDS = (*SIMILARITY_KINDS, TEXT)


def class_descriptions(
    class_names: Sequence[str], glosses: Mapping[str, str] | None = None
) -> list[str]:
    """One sentence per class: ``"<name>: <gloss>"`` where ``glosses`` defines the class
    (CIFAR-100: its WordNet glosses, ``DatasetInfo.class_glosses``), else the name; underscores
    as spaces."""
    glosses = glosses or {}
    return [
        f"{n.replace('_', ' ')}: {glosses[n]}" if n in glosses else n.replace("_", " ")
        for n in map(str, class_names)
    ]


@functools.cache
def _text_similarity(descriptions: tuple[str, ...]) -> np.ndarray:
    from jaxhash.semantics.text import SentenceEncoder

    embeddings = np.asarray(SentenceEncoder.load().embed(list(descriptions)), np.float64)
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return similarity


def text_similarity(descriptions: Sequence[str]) -> np.ndarray:
    """``[C, C]`` float64 ``max(cos, 0)`` of the descriptions' sentence embeddings, diagonal
    exactly 1 (computed once per process for the same descriptions)."""
    descriptions = tuple(str(d) for d in descriptions)
    if not descriptions:
        raise ValueError("text similarity needs at least one class description; got none.")
    return _text_similarity(descriptions).copy()


def class_similarity(info, kind: str) -> np.ndarray | None:
    """``[C, C]`` class similarity of a data set (``jaxhash.data.DatasetInfo``: its
    ``class_names``, ``class_glosses`` and ``hierarchy``) of ``kind``: one of the hierarchy's
    kinds (None when the data set has no hierarchy) or ``"text"``."""
    if kind not in KINDS:
        raise ValueError(f"the class similarity must be one of {KINDS}; got {kind!r}.")
    if kind == TEXT:
        if not info.class_names:
            raise ValueError(
                f"data set {info.name!r} has no classes to describe: 'text' class similarity "
                "needs labelled data (caption data trains on caption embeddings instead)."
            )
        return text_similarity(class_descriptions(info.class_names, info.class_glosses))
    return None if info.hierarchy is None else info.hierarchy.similarity(kind)
