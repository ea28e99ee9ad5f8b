"""jaxhash.evaluation.relevance: class and caption relevance, the two kinds an evaluation scores."""

import numpy as np
import pytest


def test_relevance_kinds():
    """Classes: labels and the class table as they are, every metric, class names. Captions:
    each image its own class graded by max(cos, 0) of its caption embeddings, the graded
    metrics only, one protocol, images named by id."""
    from jaxhash.evaluation import relevance

    labels, sim = np.array([2, 0, 1]), np.eye(3)
    by_class = relevance.ClassRelevance(("a", "b", "c"), sim, "wup")
    scored, table = by_class.targets(labels, None)
    assert scored is labels and table is sim
    assert by_class.summary({"mAP@5": 0.5}) == {"mAP@5": 0.5} and by_class.note is None
    assert by_class.name(2, np.arange(3)) == "c" and "wup similarity" in by_class.colour_label
    by_class.check("zero_shot")

    by_caption = relevance.CaptionRelevance()
    embeddings = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0]])
    rows, graded = by_caption.targets(None, embeddings)
    np.testing.assert_array_equal(rows, np.arange(3))
    np.testing.assert_allclose(graded, [[1, 0, 0], [0, 1, 0.5**0.5], [0, 0.5**0.5, 1]])
    summary = {"mAP@5": 0.5, "mAHP@5": 0.4, "mistake_severity": 0.3, "P@1": 0.2}
    assert by_caption.summary(summary) == {"mAHP@5": 0.4, "mistake_severity": 0.3}
    assert by_caption.name(1, np.array([7, 9, 11])) == "image 9" and by_caption.note
    with pytest.raises(ValueError, match=r"caption data supports .*database_is_query"):
        by_caption.check("query_database")
    with pytest.raises(ValueError, match="caption_embeddings = True"):
        by_caption.targets(None, None)
