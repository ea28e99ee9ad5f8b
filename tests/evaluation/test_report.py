"""jaxhash.evaluation.report: the plots label their rows and say the code length and protocol."""

import numpy as np

from jaxhash import evaluate


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
