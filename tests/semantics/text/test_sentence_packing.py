"""Packing sentences into passes (jaxhash.semantics.text.packing)."""

import numpy as np
import pytest

from jaxhash.semantics import text
from jaxhash.semantics.text import pack_rows, plan_passes


def test_pack_rows_fills_rows_within_width():
    lengths = [12, 3, 7, 7, 16, 2, 9, 5, 5, 11, 2]
    rows = pack_rows(lengths, 16)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 16 for row in rows)
    assert len(rows) == -(-sum(lengths) // 16)  # best fit reaches the lower bound here


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_plan_passes_covers_every_sentence_once(batch_size):
    lengths = np.random.default_rng(batch_size).integers(2, 257, 150)
    lengths[:100] = np.minimum(lengths[:100], 30)
    buckets = (16, 24, 32, 48, 64, 96, 128, 192, 256)
    plans = plan_passes(lengths, batch_size, buckets, pack_length=64)
    assigned = sorted(i for plan in plans for row in plan.rows for i in row)
    assert assigned == list(range(len(lengths)))
    for plan in plans:
        assert sum(len(row) for row in plan.rows) <= batch_size
        assert len(plan.rows) <= plan.num_rows <= batch_size
        assert plan.width in (*buckets, 64)
        assert all(sum(lengths[i] for i in row) <= plan.width for row in plan.rows)
        assert max(len(row) for row in plan.rows) <= plan.num_segments


def test_plan_fixed_passes_one_shape():
    """Fixed passes cover every sentence once, in one [rows, width] shape and segment count."""
    lengths = np.random.default_rng(7).integers(2, 65, 300)
    plans = text.plan_fixed_passes(lengths, 4, 64)
    assigned = sorted(i for plan in plans for row in plan.rows for i in row)
    assert assigned == list(range(len(lengths)))
    assert {(plan.num_rows, plan.width, plan.num_segments) for plan in plans} == {(4, 64, 32)}
    for plan in plans:
        assert 1 <= len(plan.rows) <= 4
        assert all(sum(lengths[i] for i in row) <= 64 for row in plan.rows)
