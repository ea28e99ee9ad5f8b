"""What counts as relevant in an evaluation: the classes, or the captions of each image.

One small object per kind, chosen once from the data set (:func:`relevance_of`) and asked by
the evaluator wherever the kinds differ, instead of branches on the data set:

* :class:`ClassRelevance`: a result is relevant when it shares the query's class; graded by a
  ``[C, C]`` class similarity (``config.eval.similarity``: a hierarchy's, or the class
  descriptions') for mAHP@k and the mistake severity. Every protocol applies.
* :class:`CaptionRelevance`: caption data has no classes; every image is its own "class",
  graded by the cosine similarity of the images' caption embeddings (:func:`caption_targets`).
  Only ``database_is_query`` applies and only the graded metrics are reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np


def caption_targets(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Caption data: every image is its own "class", graded by caption similarity.

    Returns labels ``arange(N)`` and the ``[N, N]`` relevance ``max(cos(e_i, e_j), 0)`` of the
    images' caption embeddings ``[N, E]``, for mAHP@k (and the distance of the top-1 item).
    """
    if embeddings is None:
        raise ValueError(
            "caption data is evaluated against caption embeddings: set "
            "config.data.caption_embeddings = True (needs the optional extra 'text')."
        )
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    similarity = np.clip(unit @ unit.T, 0.0, 1.0)
    np.fill_diagonal(similarity, 1.0)
    return np.arange(len(embeddings)), similarity


@dataclasses.dataclass(frozen=True)
class ClassRelevance:
    """Relevance by class, graded by ``similarity [C, C]`` (None: no class hierarchy) of the
    kind ``kind`` (``config.eval.similarity``)."""

    class_names: Sequence[str]
    similarity: np.ndarray | None
    kind: str
    note = None  # nothing to add to the report

    def check(self, protocol: str) -> None:
        """Every protocol applies."""

    def targets(self, labels, embeddings) -> tuple[np.ndarray, np.ndarray | None]:
        """``(labels [N], similarity [C, C] or None)`` to score: the class labels as they are."""
        return labels, self.similarity

    def summary(self, summary: dict) -> dict:
        """A row's summary as reported: every metric."""
        return summary

    def name(self, label: int, ids: np.ndarray) -> str:
        """The grid's caption of a thumbnail with ``label``: its class name."""
        return self.class_names[label]

    @property
    def colour_label(self) -> str:
        """The grid's colour bar: what a frame's colour measures."""
        return (
            f"hierarchy distance to the query's class (1 - {self.kind} similarity; 0 = same class)"
        )


@dataclasses.dataclass(frozen=True)
class CaptionRelevance:
    """Relevance by caption similarity, every image its own class (:func:`caption_targets`)."""

    note = (
        "caption data: each image is its own class; mAHP@k uses max(cos, 0) of the caption "
        "embeddings as graded relevance and mistake_severity is the mean caption distance of "
        "the top-1 item (lower is better); label metrics (mAP, P@k) do not apply."
    )
    colour_label = "caption distance to the query's captions (1 - max(cos, 0))"

    def check(self, protocol: str) -> None:
        """A ValueError for a protocol other than ``database_is_query`` (no query set)."""
        if protocol != "database_is_query":
            raise ValueError("caption data supports config.eval.protocol='database_is_query'.")

    def targets(self, labels, embeddings) -> tuple[np.ndarray, np.ndarray]:
        """``(arange(N), caption similarity [N, N])`` (:func:`caption_targets`)."""
        return caption_targets(embeddings)

    def summary(self, summary: dict) -> dict:
        """A row's summary as reported: the graded metrics only (no classes, no mAP)."""
        return {k: v for k, v in summary.items() if k.startswith("mAHP") or k == "mistake_severity"}

    def name(self, label: int, ids: np.ndarray) -> str:
        """The grid's caption of image ``label`` (its row): its example id."""
        return f"image {int(ids[label])}"


Relevance = ClassRelevance | CaptionRelevance


def relevance_of(info, config) -> Relevance:
    """The relevance of the data set ``info`` (``jaxhash.data.DatasetInfo``) under ``config``:
    captions, else classes with the ``config.eval.similarity`` table
    (``jaxhash.semantics.class_text.class_similarity``, computed here)."""
    if info.has_captions:
        return CaptionRelevance()
    from jaxhash.semantics import class_text

    kind = config.eval.similarity
    return ClassRelevance(info.class_names, class_text.class_similarity(info, kind), kind)


__all__ = [
    "CaptionRelevance",
    "ClassRelevance",
    "Relevance",
    "caption_targets",
    "relevance_of",
]
