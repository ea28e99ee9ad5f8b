"""jaxhash.evaluation.protocols: database-is-query, query/database and zero-shot evaluations, the
random-codes baseline, cut-offs, and bad arguments."""

import json

import numpy as np
import pytest

from jaxhash import evaluate, metrics
from tests.evaluation.labelled_codes import labelled_codes


@pytest.mark.slow
def test_database_is_query_report_and_plots(tmp_path):
    codes, labels, sim = labelled_codes()
    report = evaluate.evaluate(
        codes,
        labels,
        class_similarity=sim,
        class_distance=1.0 - sim,
        map_k=50,
        mahp_k=40,
        precision_ks=(1, 10),
        rankings=("hamming", "euclidean"),
        run_dir=tmp_path,
    )
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["rows"].keys() == {"hamming", "euclidean", "random_codes"}
    assert saved["protocol"] == "database_is_query" and saved["exclude_self"] is True
    assert saved["code_length"] == 16 and saved["num_queries"] == saved["num_database"] == 150
    assert saved["ties"] == "stable" and saved["map_k"] == 50 and saved["mahp_k"] == 40
    hamming = saved["rows"]["hamming"]
    assert hamming["metrics"]["map"] == {"k": 50, "value": hamming["summary"]["mAP@50"]}
    assert hamming["metrics"]["mahp"]["k"] == 40
    assert hamming["summary"]["mAP@50"] == pytest.approx(
        metrics.map_at_k(codes, codes, labels, labels, 50, exclude_self=True), abs=1e-6
    )
    assert hamming["summary"]["mAHP@40"] == pytest.approx(
        metrics.mahp_at_k(codes, codes, labels, labels, sim, 40, exclude_self=True), abs=1e-6
    )
    assert hamming["summary"]["P@10"] == pytest.approx(
        metrics.precision_at_k(codes, codes, labels, labels, 10, exclude_self=True), abs=1e-6
    )
    assert len(hamming["curves"]["hp_at_k"]) == 40
    assert len(hamming["curves"]["pr_radius"]["precision"]) == 17
    assert "pr_radius" not in saved["rows"]["euclidean"]["curves"]
    # Learned codes beat random ones.
    assert hamming["summary"]["mAP@50"] > saved["rows"]["random_codes"]["summary"]["mAP@50"]
    assert report["rows"]["hamming"]["summary"] == hamming["summary"]
    assert saved["plots"] == ["hp_at_k.png", "pr_curve.png"]
    for name in saved["plots"]:
        assert_png(tmp_path / name)


@pytest.mark.slow
def test_query_database_and_zero_shot():
    codes, labels, _ = labelled_codes(1)
    queries, q_labels, _ = labelled_codes(1, n=40)
    report = evaluate.evaluate(
        codes,
        labels,
        protocol="query_database",
        query_codes=queries,
        query_labels=q_labels,
        map_k=30,
        baseline=False,
    )
    assert report["exclude_self"] is False and report["num_queries"] == 40
    assert report["rows"]["hamming"]["summary"]["mAP@30"] == pytest.approx(
        metrics.map_at_k(queries, codes, q_labels, labels, 30), abs=1e-6
    )
    held_out = [1, 3]
    zero_shot = evaluate.evaluate(
        codes, labels, protocol="zero_shot", held_out_classes=held_out, map_k=20, baseline=False
    )
    keep = np.isin(labels, held_out)
    assert zero_shot["num_database"] == keep.sum() and zero_shot["held_out_classes"] == held_out
    assert zero_shot["rows"]["hamming"]["summary"]["mAP@20"] == pytest.approx(
        metrics.map_at_k(
            codes[keep], codes[keep], labels[keep], labels[keep], 20, exclude_self=True
        ),
        abs=1e-6,
    )


@pytest.mark.slow
def test_cut_offs_above_the_database_are_lowered():
    codes, labels, sim = labelled_codes(2, n=30)
    report = evaluate.evaluate_codes(
        codes, codes, labels, labels, class_similarity=sim, map_k=None, mahp_k=250,
        exclude_self=True,
    )  # fmt: skip
    assert report["metrics"]["map"]["k"] == 29 and report["metrics"]["mahp"]["k"] == 29


def test_random_codes_are_seeded_signs():
    a, b = evaluate.random_codes(50, 24, seed=3), evaluate.random_codes(50, 24, seed=3)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(np.asarray(a))) == {-1.0, 1.0}


def assert_png(path, min_bytes=5_000):
    """A PNG file with more than a blank canvas in it."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, path


BAD = [
    ({"protocol": "leave_one_out"}, "protocol"),
    ({"protocol": "query_database"}, "needs query_codes"),
    ({"protocol": "zero_shot"}, "held_out_classes"),
    ({"protocol": "zero_shot", "held_out_classes": [7]}, "no examples"),
    ({"held_out_classes": [1]}, "only used by protocol 'zero_shot'"),
    ({"query_codes": np.ones((3, 16))}, "takes no query_codes"),
    ({"ties": "first"}, "ties"),
    ({"rankings": ("manhattan",)}, "ranking"),
]


@pytest.mark.parametrize("kwargs, message", BAD)
def test_bad_arguments_raise(kwargs, message):
    codes, labels, _ = labelled_codes(4, n=20)
    with pytest.raises(ValueError, match=message):
        evaluate.evaluate(codes, labels, map_k=5, baseline=False, **kwargs)
