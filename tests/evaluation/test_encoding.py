"""jaxhash.evaluation.encoding: every example encoded once (padded batches, masks, a mesh);
bad batches are one ValueError."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import retrieval


def _apply(params, x):
    return jnp.tanh(x @ params)


def _batches(x, sizes, masks=False):
    start = 0
    for size in sizes:
        batch = x[start : start + size]
        start += size
        if not masks:
            yield batch
            continue
        mask = np.ones(len(batch), bool)
        mask[-1] = False  # a padded row the pipeline marked invalid
        yield {"image": batch, "mask": mask}


@pytest.mark.slow
@pytest.mark.parametrize("use_mesh", [False, True])
def test_encode_keeps_every_example_once(use_mesh, mesh4):
    mesh = mesh4 if use_mesh else None
    rng = np.random.default_rng(9)
    params = jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)
    x = rng.normal(size=(23, 5)).astype(np.float32)
    expected = np.tanh(x @ np.asarray(params))
    codes = retrieval.encode(_apply, params, _batches(x, [8, 8, 7]), mesh=mesh)
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    packed = retrieval.encode(_apply, params, _batches(x, [10, 10, 3]), mesh=mesh, pack=True)
    np.testing.assert_array_equal(np.asarray(packed), np.packbits(expected > 0, axis=1))
    masked = retrieval.encode(_apply, params, _batches(x, [8, 8, 7], masks=True), mesh=mesh)
    keep = np.ones(23, bool)
    keep[[7, 15, 22]] = False
    np.testing.assert_allclose(masked, expected[keep], rtol=1e-5, atol=1e-6)


def test_encode_rejects_bad_batches():
    params = jnp.ones((3, 4))
    with pytest.raises(ValueError, match="no examples"):
        retrieval.encode(_apply, params, [])
    with pytest.raises(ValueError, match="mask"):
        retrieval.encode(_apply, params, [{"image": np.ones((2, 3)), "mask": np.ones(3, bool)}])
    with pytest.raises(ValueError, match="input key"):
        retrieval.encode(_apply, params, [{"x": np.ones((2, 3))}])
