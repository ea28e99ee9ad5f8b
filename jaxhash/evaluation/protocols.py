"""Evaluation protocols for hash codes: every metric of a set of codes from one ranking.

Protocols (docs/method.md, section 5):

* ``"database_is_query"``: every code queries all the others (CIFAR-100 test set for mAHP@250,
  Barz & Denzler); each query is removed from its own ranking and from its ideal ranking.
* ``"query_database"``: a query set against a separate database (e.g. HashNet's ImageNet-100).
* ``"zero_shot"``: train on some classes, then query and retrieve only among the held-out classes
  listed in the config; with no separate query set the database is the query set.

:func:`evaluate` returns the report (each metric with its k, the tie rule, code length and
counts), with the same metrics for random codes of the same length as a baseline row; given a
folder it also writes it there with its pictures (:func:`jaxhash.evaluation.report.write_report`).
It takes arrays (codes, labels, class similarities), so any data pipeline can feed it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxhash import metrics
from jaxhash.evaluation.report import write_report
from jaxhash.evaluation.retrieval_grid import RetrievalGrid

log = logging.getLogger(__name__)

PROTOCOLS = ("database_is_query", "query_database", "zero_shot")


def random_codes(num_rows: int, num_bits: int, seed: int = 0) -> jax.Array:
    """``float32 [num_rows, num_bits]`` uniform random +-1 codes (the chance baseline)."""
    return jax.random.rademacher(jax.random.key(seed), (num_rows, num_bits), jnp.float32)


def held_out_mask(labels, held_out_classes: Sequence[int]) -> np.ndarray:
    """``bool [N]``: rows whose class is held out (zero-shot); a ValueError for unknown classes
    or when no row is held out."""
    labels = np.asarray(labels)
    classes = np.asarray(list(held_out_classes))
    if labels.ndim != 1:
        raise ValueError("zero-shot protocols need class-index labels [N].")
    if classes.size == 0 or classes.ndim != 1 or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(f"held_out_classes must be a non-empty list of ints; got {classes!r}.")
    unknown = np.setdiff1d(classes, np.unique(labels))
    if unknown.size:
        raise ValueError(f"held_out_classes {unknown.tolist()} have no examples in the labels.")
    return np.isin(labels, classes)


def _num_bits(codes) -> int:
    codes = jnp.asarray(codes)
    return 8 * codes.shape[1] if codes.dtype == jnp.uint8 else codes.shape[1]


def evaluate_codes(
    query_codes,
    db_codes,
    query_labels,
    db_labels,
    *,
    class_similarity=None,
    class_distance=None,
    map_k: int | None = 1000,
    mahp_k: int = 250,
    precision_ks: Sequence[int] = (1, 10, 100),
    radius: int = 2,
    ties: str = "stable",
    exclude_self: bool = False,
    ranking: str = "hamming",
    seed: int = 0,
    mesh: Mesh | None = None,
    axis_name: str = "data",
) -> dict:
    """Every metric of one set of codes from a single ranking.

    The database is ranked once to the largest cut-off; mAP@k, P@k and R@k (and, given
    ``class_similarity [C, C]``, mAHP@k with its HP@j curve; given ``class_distance [C, C]``,
    the mistake severity of the top-1 item) are read off it. Hamming rankings add the
    precision-recall curve over radii and the radius-``radius`` lookup. Cut-offs above the
    number of candidates are lowered to it; ``map_k=None`` means all of them. Codes, labels,
    ``ties``, ``exclude_self`` and ``ranking`` are as in :func:`jaxhash.metrics.map_at_k`.

    Returns a JSON-ready dict: ``{"summary": {name: value}, "metrics": {...}, "curves": {...}}``.
    """
    data = metrics.prepare(
        query_codes, db_codes, query_labels, db_labels, exclude_self=exclude_self, ranking=ranking
    )
    n = data.num_candidates
    options = dict(mesh=mesh, axis_name=axis_name)
    map_k = n if map_k is None else min(map_k, n)
    ks = sorted({min(k, n) for k in precision_ks} | {map_k})
    use_mahp = class_similarity is not None
    if use_mahp:
        mahp_k = max(2, min(mahp_k, n)) if n >= 2 else mahp_k
    k_max = max(ks + ([mahp_k] if use_mahp else []))
    ranked = metrics.rank(data, k_max, ties=ties, seed=seed, **options)

    summary, results, curves = {}, {}, {}
    ap = metrics.average_precisions(data, ranked, map_k, **options)
    summary[f"mAP@{map_k}"] = _value(np.mean(np.asarray(ap, np.float64)))
    results["map"] = {"k": map_k, "value": summary[f"mAP@{map_k}"]}
    totals = np.asarray(metrics.relevant_totals(data), np.float64)
    results["precision"], results["recall"] = [], []
    for k in ks:
        hits = np.asarray(metrics.relevant_in_top(data, ranked, k, **options), np.float64)
        precision = _value(np.mean(hits / k))
        has = totals > 0
        recall = _value(np.mean(hits[has] / totals[has])) if has.any() else 0.0
        summary[f"P@{k}"], summary[f"R@{k}"] = precision, recall
        results["precision"].append({"k": k, "value": precision})
        results["recall"].append({"k": k, "value": recall})
    if use_mahp:
        hp, ahp = metrics.hierarchical_precisions(data, ranked, class_similarity, mahp_k, **options)
        summary[f"mAHP@{mahp_k}"] = _value(np.mean(np.asarray(ahp, np.float64)))
        results["mahp"] = {"k": mahp_k, "value": summary[f"mAHP@{mahp_k}"]}
        curves["hp_at_k"] = _floats(np.mean(np.asarray(hp, np.float64), axis=0))
    if class_distance is not None:
        if ties == "expected":
            log.info("mistake severity skipped: it is not defined for ties='expected'.")
        else:
            results["mistake_severity"] = metrics.top1_mistakes(data, ranked, class_distance)
            summary["mistake_severity"] = results["mistake_severity"]["mean_severity"]
    if ranking == "hamming":
        radius = min(radius, data.num_bits)
        pr = metrics.radius_curves(metrics.radius_histograms(data, **options))
        curves["pr_radius"] = {name: _floats(values) for name, values in pr.items()}
        results["radius"] = {
            "r": radius,
            **{name: _value(v[radius]) for name, v in pr.items() if name != "radius"},
        }
        summary[f"precision@r{radius}"] = results["radius"]["precision_empty_zero"]
    return {"summary": summary, "metrics": results, "curves": curves}


def _value(x) -> float:
    return round(float(x), 6)


def _floats(values) -> list:
    return [_value(v) for v in np.asarray(values).ravel()]


def _select_protocol(protocol, codes, labels, query_codes, query_labels, held_out_classes):
    """``(query_codes, db_codes, query_labels, db_labels, exclude_self)`` of a protocol."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
    split = query_codes is not None
    if protocol == "query_database" and not split:
        raise ValueError("protocol 'query_database' needs query_codes and query_labels.")
    if protocol == "database_is_query" and split:
        raise ValueError("protocol 'database_is_query' takes no query_codes: codes are both.")
    if split and query_labels is None:
        raise ValueError("query_codes were given without query_labels.")
    if protocol == "zero_shot":
        if held_out_classes is None:
            raise ValueError("protocol 'zero_shot' needs held_out_classes (from the config).")
        keep = held_out_mask(labels, held_out_classes)
        codes, labels = np.asarray(codes)[keep], np.asarray(labels)[keep]
        if split:
            keep_q = held_out_mask(query_labels, held_out_classes)
            query_codes = np.asarray(query_codes)[keep_q]
            query_labels = np.asarray(query_labels)[keep_q]
    elif held_out_classes is not None:
        raise ValueError(
            f"held_out_classes is only used by protocol 'zero_shot', not {protocol!r}."
        )
    if not split:
        return codes, codes, labels, labels, True
    return query_codes, codes, query_labels, labels, False


def evaluate(
    codes,
    labels,
    *,
    protocol: str = "database_is_query",
    query_codes=None,
    query_labels=None,
    held_out_classes: Sequence[int] | None = None,
    class_similarity=None,
    class_distance=None,
    map_k: int | None = 1000,
    mahp_k: int = 250,
    precision_ks: Sequence[int] = (1, 10, 100),
    radius: int = 2,
    ties: str = "stable",
    rankings: Sequence[str] = ("hamming",),
    baseline: bool = True,
    seed: int = 0,
    run_dir: str | os.PathLike | None = None,
    grid: RetrievalGrid | None = None,
    mesh: Mesh | None = None,
    axis_name: str = "data",
) -> dict:
    """Evaluate database ``codes`` under a protocol; write ``report.json`` and plots.

    Args:
      codes: database outputs ``[N, K]`` (real-valued or +-1) or packed ``uint8`` codes.
      labels: ``[N]`` class indices (or multi-hot ``[N, L]`` outside zero-shot; no mAHP then).
      protocol: "database_is_query" (self excluded), "query_database" (give ``query_codes``
        and ``query_labels``) or "zero_shot" (keep only ``held_out_classes``; with query codes
        a split, without them the database is the query set).
      class_similarity, class_distance: ``[C, C]`` class tables for mAHP@k and the mistake
        severity (both skipped when None).
      map_k, mahp_k, precision_ks, radius, ties: see :func:`evaluate_codes`.
      rankings: one row per ranking: "hamming" (sign codes), and for real-valued outputs
        "euclidean" / "cosine" (the binarisation gap).
      baseline: add a row for uniform random +-1 codes of the same length (seeded by ``seed``).
      run_dir: folder for ``report.json``, ``pr_curve.png`` and ``hp_at_k.png`` (None: no files;
        see :func:`write_report`); ``grid``: the retrieval grid to draw there.

    Returns:
      The report (also written as JSON): protocol, counts, code length, settings and one entry
      per row under ``"rows"``.
    """
    q_codes, db_codes, q_labels, db_labels, exclude_self = _select_protocol(
        protocol, codes, labels, query_codes, query_labels, held_out_classes
    )
    num_bits = _num_bits(db_codes)
    settings = dict(
        class_similarity=class_similarity,
        class_distance=class_distance,
        map_k=map_k,
        mahp_k=mahp_k,
        precision_ks=precision_ks,
        radius=radius,
        ties=ties,
        exclude_self=exclude_self,
        seed=seed,
        mesh=mesh,
        axis_name=axis_name,
    )
    rows, timings = {}, {}
    for ranking in rankings:
        start = time.perf_counter()
        rows[ranking] = evaluate_codes(
            q_codes, db_codes, q_labels, db_labels, ranking=ranking, **settings
        )
        timings[ranking] = round(time.perf_counter() - start, 3)
    if baseline:
        start = time.perf_counter()
        db_random = random_codes(np.shape(db_codes)[0], num_bits, seed)
        q_random = (
            db_random if exclude_self else random_codes(np.shape(q_codes)[0], num_bits, seed + 1)
        )
        rows["random_codes"] = evaluate_codes(
            q_random, db_random, q_labels, db_labels, ranking="hamming", **settings
        )
        timings["random_codes"] = round(time.perf_counter() - start, 3)
    report = {
        "protocol": protocol,
        "exclude_self": exclude_self,
        "held_out_classes": None if held_out_classes is None else list(map(int, held_out_classes)),
        "code_length": num_bits,
        "num_queries": int(np.shape(q_codes)[0]),
        "num_database": int(np.shape(db_codes)[0]),
        "ties": ties,
        "seed": seed,
        "map_k": map_k,
        "mahp_k": mahp_k if class_similarity is not None else None,
        "mahp_version": "Barz & Denzler after the Nov 2020 fix (trapezoid rule)",
        "map_convention": "DeepHash-pytorch CalcTopMap: AP over hits in the top k; 0 if none",
        "rows": rows,
        "seconds": timings,
        "jax_version": jax.__version__,
        "device": jax.devices()[0].device_kind,
    }
    if run_dir is not None:
        write_report(report, run_dir, grid)
    return report


__all__ = [
    "PROTOCOLS",
    "evaluate",
    "evaluate_codes",
    "held_out_mask",
    "random_codes",
]
