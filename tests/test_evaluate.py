"""jaxhash.evaluation (and its old name jaxhash.evaluate): protocols, the report, plots, the
random-codes baseline, relevance kinds."""

import json

import numpy as np
import pytest

from jaxhash import evaluate, metrics


def _data(seed=0, n=150, bits=16, classes=5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    codes = (rng.normal(size=(classes, bits))[labels] + rng.normal(size=(n, bits))).astype(
        np.float32
    )
    sim = rng.uniform(0.0, 0.7, (classes, classes))
    sim = (sim + sim.T) / 2
    np.fill_diagonal(sim, 1.0)
    return codes, labels, sim


def test_database_is_query_report_and_plots(tmp_path):
    codes, labels, sim = _data()
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


def test_query_database_and_zero_shot():
    codes, labels, _ = _data(1)
    queries, q_labels, _ = _data(1, n=40)
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


def test_cut_offs_above_the_database_are_lowered():
    codes, labels, sim = _data(2, n=30)
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


def test_plots_label_the_rows(tmp_path, monkeypatch):
    """The curves carry readable legend names (codes, random codes, real-valued) and a title
    with the code length and the protocol."""
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    codes, labels, sim = _data(3, n=40)
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


def test_retrieval_grid_written_and_listed(tmp_path):
    from jaxhash import retrieval_grid

    codes, labels, sim = _data(5, n=60)
    pixels = np.random.default_rng(0).integers(0, 256, (60, 24, 24, 3), np.uint8)
    rows = retrieval_grid.evaluation_grid(
        codes,
        codes,
        labels,
        labels,
        query_pixels=lambda rows: pixels[rows],
        db_pixels=lambda rows: pixels[rows],
        names=lambda label: f"class/{label}",
        class_distance=1.0 - sim,
        exclude_self=True,
        num_queries=6,
        k=5,
    )
    assert len(rows) == 6 and len({r.query_name for r in rows}) == 5  # every class, then again
    for row in rows:
        assert row.results.shape == (5, 24, 24, 3) and list(row.hamming) == sorted(row.hamming)
        label = int(row.query_name.split("/")[1])
        expect = [(1.0 - sim)[label, int(n.split("/")[1])] for n in row.result_names]
        np.testing.assert_allclose(row.semantic, expect)
    grid = retrieval_grid.RetrievalGrid(rows, colour_label="hierarchy distance")
    evaluate.evaluate(codes, labels, map_k=10, baseline=False, run_dir=tmp_path, grid=grid)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["plots"] == ["pr_curve.png", "retrieval_grid.png"]
    assert_png(tmp_path / "retrieval_grid.png", 50_000)


def test_nearest_skips_the_query_itself_and_breaks_ties_by_index():
    from jaxhash import retrieval_grid

    codes = np.array([[1, 1, 1, 1], [1, 1, 1, -1], [1, 1, 1, 1], [-1, -1, -1, -1]], np.float32)
    distances, indices = retrieval_grid.nearest(codes[[0, 2]], codes, 3, self_rows=[0, 2])
    np.testing.assert_array_equal(indices, [[2, 1, 3], [0, 1, 3]])
    np.testing.assert_array_equal(distances, [[0, 1, 4], [0, 1, 4]])


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
    codes, labels, _ = _data(4, n=20)
    with pytest.raises(ValueError, match=message):
        evaluate.evaluate(codes, labels, map_k=5, baseline=False, **kwargs)


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


def test_old_names_are_the_evaluation_package():
    """README, notebooks and scripts import these from where they were."""
    from jaxhash import evaluation, model_eval, retrieval, retrieval_grid
    from jaxhash.evaluation import encoding

    assert evaluate.evaluate is evaluation.evaluate
    assert evaluate.write_report is evaluation.write_report
    assert model_eval.Evaluator is evaluation.Evaluator
    assert model_eval.report_dir is evaluation.report_dir
    assert retrieval_grid.RetrievalGrid is evaluation.RetrievalGrid
    assert retrieval.encode is encoding.encode
