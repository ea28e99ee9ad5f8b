"""jaxhash.evaluation.retrieval_grid: the grid's rows, its picture in the report, and the
nearest-neighbour order it shows."""

import json

import numpy as np
import pytest

from jaxhash import evaluate
from tests.evaluation.labelled_codes import labelled_codes


def assert_png(path, min_bytes=5_000):
    """A PNG file with more than a blank canvas in it."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_bytes, path


@pytest.mark.slow
def test_retrieval_grid_written_and_listed(tmp_path):
    from jaxhash import retrieval_grid

    codes, labels, sim = labelled_codes(5, n=60)
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
