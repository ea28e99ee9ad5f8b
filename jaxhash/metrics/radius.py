"""Hamming-ball retrieval: per query, the database items at each distance r = 0..K (all and
relevant), and the precision, recall and coverage curves over r. Ties do not arise (a ball holds
every item at distance <= r)."""

from __future__ import annotations

import jax
import numpy as np

from jaxhash.metrics.inputs import RetrievalSet
from jaxhash.metrics.passes import database_pass


def radius_histograms(data: RetrievalSet, **pass_options) -> jax.Array:
    """``int32 [Q, 2, K + 1]``: database items (self excluded) at each Hamming distance, all and
    relevant."""
    if data.ranking != "hamming":
        raise ValueError("Hamming-radius metrics need ranking='hamming'.")
    counts = database_pass(data, "histogram", **pass_options)[:, :, : data.num_bits + 1]
    return counts.at[:, 0].add(counts[:, 1])


def radius_curves(histograms) -> dict:
    """Per radius r = 0..K: precision over queries that retrieve something (``precision``), the
    same with empty retrievals counted as 0 (``precision_empty_zero``), recall over queries with a
    relevant item, and the share of queries retrieving something (``coverage``)."""
    h = np.asarray(histograms, np.float64)
    retrieved = np.cumsum(h[:, 0], axis=1)
    hits = np.cumsum(h[:, 1], axis=1)
    relevant = hits[:, -1]
    nonempty = retrieved > 0
    precision_q = np.where(nonempty, hits / np.where(nonempty, retrieved, 1), 0.0)
    count = nonempty.sum(axis=0)
    has = relevant > 0
    recall = (hits[has] / relevant[has, None]).mean(axis=0) if has.any() else hits[0] * 0
    return {
        "radius": np.arange(h.shape[2]),
        "precision": np.where(count > 0, precision_q.sum(axis=0) / np.maximum(count, 1), 0.0),
        "precision_empty_zero": precision_q.mean(axis=0),
        "recall": recall,
        "coverage": count / h.shape[0],
    }
