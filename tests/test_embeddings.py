"""jaxhash.embeddings: unit rows against NumPy (zero rows stay zero, finite gradient), and the
input check's errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash.embeddings import check_embeddings, unit_rows


def test_unit_rows_matches_numpy_and_keeps_zero_rows_finite():
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    x[2] = 0.0
    got = np.asarray(unit_rows(jnp.asarray(x)))
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    want = np.divide(x, norms, out=np.zeros_like(x, np.float64), where=norms > 0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    grad = jax.grad(lambda v: unit_rows(v).sum())(jnp.asarray(x))
    assert np.isfinite(np.asarray(grad)).all()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.ones(3), "non-empty matrix"),
        (np.ones((0, 3)), "non-empty matrix"),
        (np.ones((2, 3), np.int32), "real-valued"),
        (np.array([[1.0, np.nan]]), "NaN or infinite"),
    ],
)
def test_check_embeddings_names_the_argument(value, message):
    with pytest.raises(ValueError, match=f"queries .*{message}|{message}"):
        check_embeddings(value, "queries")
    assert check_embeddings(np.ones((2, 3), np.float64), "x").dtype == jnp.float32
