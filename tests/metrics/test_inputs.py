"""jaxhash.metrics.inputs: every bad input is one ValueError naming the argument."""

import numpy as np
import pytest

from jaxhash import metrics

_CODES = np.random.default_rng(0).normal(size=(10, 16))
_LABELS = np.arange(10) % 3
_SIM = np.eye(3)

BAD = [
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 11), {}, "k must be"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 10), {"exclude_self": True}, "k must"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS[:9], _LABELS, 3), {}, "9 rows but query_codes"),
    (metrics.map_at_k, (_CODES, _CODES[:8], _LABELS, _LABELS, 3), {}, "db_labels has 10 rows"),
    (
        metrics.map_at_k,
        (
            np.packbits(_CODES > 0, axis=1),
            np.packbits(_CODES[:, :8] > 0, axis=1),
            _LABELS,
            _LABELS,
            3,
        ),
        {},
        "same code length",
    ),
    (
        metrics.map_at_k,
        ((_CODES > 0).astype(np.uint8),) * 2 + (_LABELS, _LABELS, 3),
        {},
        "look like unpacked bits",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 3), {"ties": "first"}, "ties"),
    (
        metrics.map_at_k,
        (_CODES, _CODES, _LABELS, _LABELS, 3),
        {"ties": "expected", "ranking": "cosine"},
        "needs ranking='hamming'",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS * 1.0, _LABELS, 3), {}, "integer class"),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS - 1, _LABELS, 3), {}, "negative"),
    (
        metrics.map_at_k,
        (_CODES[:5], _CODES, _LABELS[:5], _LABELS, 3),
        {"exclude_self": True},
        "database",
    ),
    (metrics.map_at_k, (_CODES, _CODES, _LABELS, _LABELS, 3), {"ranking": "l2"}, "ranking"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, np.eye(2), 3), {}, "covers 2 classes"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, -_SIM, 3), {}, "non-negative"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, _SIM, 1), {}, "k >= 2"),
    (metrics.mahp_at_k, (_CODES, _CODES, _LABELS, _LABELS, np.ones(3), 3), {}, "square"),
    (
        metrics.mahp_at_k,
        (_CODES, _CODES, np.eye(10, 3), np.eye(10, 3), _SIM, 3),
        {},
        "class-index labels",
    ),
    (
        metrics.mistake_severity,
        (_CODES, _CODES, _LABELS, _LABELS, _SIM),
        {"ties": "expected"},
        "ratio",
    ),
    (metrics.radius_precision_recall, (_CODES, _CODES, _LABELS, _LABELS, 17), {}, "radius"),
    (metrics.map_at_k, (np.full((10, 16), np.nan), _CODES, _LABELS, _LABELS, 3), {}, "NaN"),
]


@pytest.mark.parametrize("fn, args, kwargs, message", BAD)
def test_bad_inputs_raise(fn, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fn(*args, **kwargs)
