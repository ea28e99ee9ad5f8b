"""jaxhash.evaluation.report: the report folder, report.json with its pictures listed, and
plots that label their rows and say the code length and protocol."""

import json

import pytest

from jaxhash import evaluate
from jaxhash.evaluation import report_dir, write_report
from tests.evaluation.labelled_codes import labelled_codes


@pytest.mark.slow
def test_plots_label_the_rows(tmp_path, monkeypatch):
    """The curves carry readable legend names (codes, random codes, real-valued) and a title
    with the code length and the protocol."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    codes, labels, sim = labelled_codes(3, n=40)
    evaluate.evaluate(
        codes,
        labels,
        class_similarity=sim,
        map_k=10,
        mahp_k=10,
        rankings=("hamming", "cosine"),
        run_dir=tmp_path,
    )
    (pr,) = figures[0].axes
    (hp,) = figures[1].axes
    assert [t.get_text() for t in pr.get_legend().get_texts()] == [
        "learned codes (Hamming)",
        "random codes (Hamming)",
    ]
    assert [t.get_text() for t in hp.get_legend().get_texts()] == [
        "learned codes (Hamming)",
        "real-valued outputs (cosine)",
        "random codes (Hamming)",
    ]
    for ax in (pr, hp):
        assert ax.get_xlabel() and ax.get_ylabel()
        assert "16 bits, database is query" in ax.get_title()


def test_write_report_saves_the_json_and_lists_its_pictures(tmp_path):
    """Only the curves the report holds are drawn; report.json is the report with "plots";
    a NaN is refused rather than written as invalid JSON."""
    assert report_dir(tmp_path, 7) == tmp_path / "eval" / "step_7"
    report = {
        "protocol": "database_is_query",
        "code_length": 16,
        "num_queries": 10,
        "num_database": 10,
        "rows": {"hamming": {"summary": {"mAHP@3": 0.5}, "curves": {"hp_at_k": [1.0, 0.5, 0.5]}}},
    }
    paths = write_report(report, report_dir(tmp_path, 7))
    assert sorted(paths) == ["hp_at_k", "report"] and report["plots"] == ["hp_at_k.png"]
    assert json.loads((report_dir(tmp_path, 7) / "report.json").read_text()) == report
    assert (report_dir(tmp_path, 7) / "hp_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report["rows"]["hamming"]["summary"]["mAHP@3"] = float("nan")
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_report(report, tmp_path / "nan")
