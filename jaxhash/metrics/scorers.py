"""One-call metrics from codes and labels: check the inputs, rank once, score. Each takes the
same keyword options (:class:`Options`); evaluations that score several metrics from one
ranking call :func:`jaxhash.metrics.prepare`, :func:`jaxhash.metrics.rank` and the per-query
scores instead."""

from __future__ import annotations

from typing import TypedDict, Unpack

import numpy as np
from jax.sharding import Mesh

from jaxhash.metrics.inputs import RetrievalSet, prepare
from jaxhash.metrics.radius import radius_curves, radius_histograms
from jaxhash.metrics.ranking import Ranking, rank
from jaxhash.metrics.scores import (
    average_precisions,
    hierarchical_precisions,
    mean,
    relevant_in_top,
    relevant_totals,
    top1_mistakes,
)


class PassOptions(TypedDict, total=False):
    """How the database is searched and passed over: as :func:`jaxhash.retrieval.hamming_topk`."""

    mesh: Mesh | None  # default None: one device
    axis_name: str  # default "data"
    query_block: int | None
    database_block: int | None


class Options(PassOptions, total=False):
    """Keyword options of the ranked metrics.

    ``ties``: "stable" (default), "random" (seeded by ``seed``, default 0) or "expected";
    ``exclude_self``: the queries are the database, each left out of its own ranking (default
    False); ``ranking``: "hamming" (sign codes, default) or "euclidean" / "cosine" (real-valued
    outputs); and the :class:`PassOptions`.
    """

    ties: str
    exclude_self: bool
    ranking: str
    seed: int


_PASS_DEFAULTS = {"mesh": None, "axis_name": "data", "query_block": None, "database_block": None}
_DEFAULTS = {"ties": "stable", "exclude_self": False, "ranking": "hamming", "seed": 0}


def _options(options: dict, defaults: dict) -> dict:
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {unknown}; the options are {sorted(defaults)}."
        )
    return {**defaults, **options}


def _split(options: dict, defaults: dict) -> tuple[dict, dict]:
    """``(metric options, pass options)`` with the defaults filled in."""
    options = _options(options, {**defaults, **_PASS_DEFAULTS})
    passes = {name: options.pop(name) for name in _PASS_DEFAULTS}
    return options, passes


def _ranked(
    query_codes, db_codes, query_labels, db_labels, k: int, options: dict
) -> tuple[RetrievalSet, Ranking, dict]:
    """The checked inputs, their top-k ranking, and the pass options for the scores."""
    metric, passes = _split(options, _DEFAULTS)
    data = prepare(
        query_codes,
        db_codes,
        query_labels,
        db_labels,
        exclude_self=metric["exclude_self"],
        ranking=metric["ranking"],
    )
    return data, rank(data, k, ties=metric["ties"], seed=metric["seed"], **passes), passes


def map_at_k(
    query_codes, db_codes, query_labels, db_labels, k: int, **options: Unpack[Options]
) -> float:
    """Mean over queries of AP@k (peer convention; :mod:`jaxhash.metrics`).

    Args:
      query_codes: ``[Q, K]`` real-valued / +-1 codes or packed ``uint8 [Q, ceil(K/8)]``; None
        means the database is the query set.
      db_codes: ``[N, K]`` or packed, as ``query_codes``.
      query_labels, db_labels: ``int [Q]``/``[N]`` classes or multi-hot ``[Q, L]``/``[N, L]``.
      k: cut-off, ``1 <= k <= N`` (``N - 1`` with ``exclude_self``).
      **options: ``ties``, ``exclude_self``, ``ranking``, ``seed``, ``mesh``, ``axis_name``,
        ``query_block``, ``database_block`` (:class:`Options`).
    """
    data, ranked, passes = _ranked(query_codes, db_codes, query_labels, db_labels, k, options)
    return mean(average_precisions(data, ranked, k, **passes))


def mahp_at_k(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    class_similarity,
    k: int = 250,
    **options: Unpack[Options],
) -> float:
    """Mean average hierarchical precision mAHP@k (Deng et al. 2011; Barz & Denzler 2019, fixed
    version; :mod:`jaxhash.metrics`). ``class_similarity [C, C]``: non-negative similarity between
    classes (e.g. ``1 - height(lcs) / height(root)``); labels must be class indices. Other
    arguments as :func:`map_at_k`; ``k >= 2``. With ``exclude_self`` the query is removed from its
    ranking and from its ideal ranking.
    """
    data, ranked, passes = _ranked(query_codes, db_codes, query_labels, db_labels, k, options)
    return mean(hierarchical_precisions(data, ranked, class_similarity, k, **passes)[1])


def precision_at_k(
    query_codes, db_codes, query_labels, db_labels, k: int, **options: Unpack[Options]
) -> float:
    """Mean over queries of (#relevant in the top k) / k. Arguments as :func:`map_at_k`."""
    data, ranked, passes = _ranked(query_codes, db_codes, query_labels, db_labels, k, options)
    return mean(relevant_in_top(data, ranked, k, **passes) / k)


def recall_at_k(
    query_codes, db_codes, query_labels, db_labels, k: int, **options: Unpack[Options]
) -> float:
    """Mean over queries with at least one relevant item of (#relevant in the top k) /
    (#relevant in the database). Arguments as :func:`map_at_k`."""
    data, ranked, passes = _ranked(query_codes, db_codes, query_labels, db_labels, k, options)
    hits = np.asarray(relevant_in_top(data, ranked, k, **passes), np.float64)
    totals = np.asarray(relevant_totals(data), np.float64)
    has = totals > 0
    return float(np.mean(hits[has] / totals[has])) if has.any() else 0.0


def mistake_severity(
    query_codes, db_codes, query_labels, db_labels, class_distance, **options: Unpack[Options]
) -> dict[str, float]:
    """Mistake severity of the nearest retrieved item (Bertinetto et al., CVPR 2020, for
    retrieval): ``{"mistake_rate", "mistakes", "mean_severity"}``, the severity being
    ``class_distance[query class, top-1 class]`` (a hierarchy distance, e.g. LCS height) averaged
    over the queries whose top-1 item has another class. Ties "stable" or "random"."""
    if options.get("ties") == "expected":
        raise ValueError(
            "mistake severity is a ratio over the queries that err; use ties='stable' or "
            "'random' for it."
        )
    data, ranked, _ = _ranked(query_codes, db_codes, query_labels, db_labels, 1, options)
    return top1_mistakes(data, ranked, class_distance)


def _ball_inputs(query_codes, db_codes, query_labels, db_labels, options) -> tuple:
    metric, passes = _split(options, {"exclude_self": False})
    data = prepare(
        query_codes, db_codes, query_labels, db_labels, exclude_self=metric["exclude_self"]
    )
    return data, passes


class BallOptions(PassOptions, total=False):
    """Keyword options of the Hamming-ball metrics: ``exclude_self`` and the pass options."""

    exclude_self: bool


def precision_recall_curve(
    query_codes, db_codes, query_labels, db_labels, **options: Unpack[BallOptions]
) -> dict[str, np.ndarray]:
    """Precision and recall of Hamming-ball retrieval at every radius r = 0..K.

    Returns ``{"radius", "precision", "precision_empty_zero", "recall", "coverage"}``, arrays
    ``[K + 1]``: ``precision`` averages over queries whose ball holds an item,
    ``precision_empty_zero`` counts the others as 0, ``recall`` averages over queries with a
    relevant item, ``coverage`` is the share of queries whose ball holds an item. Ties do not
    arise (a ball holds every item at distance <= r). Options: ``exclude_self`` and the
    :class:`PassOptions`.
    """
    data, passes = _ball_inputs(query_codes, db_codes, query_labels, db_labels, options)
    return radius_curves(radius_histograms(data, **passes))


def radius_precision_recall(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    radius: int = 2,
    **options: Unpack[BallOptions],
) -> dict[str, float]:
    """Hamming-ball lookup at ``radius`` (2 is the classic setting): the entries of
    :func:`precision_recall_curve` at that radius, as floats."""
    data, passes = _ball_inputs(query_codes, db_codes, query_labels, db_labels, options)
    if not isinstance(radius, int) or not 0 <= radius <= data.num_bits:
        raise ValueError(f"radius must be an int in [0, {data.num_bits}]; got {radius!r}.")
    curves = radius_curves(radius_histograms(data, **passes))
    return {name: float(values[radius]) for name, values in curves.items() if name != "radius"}
